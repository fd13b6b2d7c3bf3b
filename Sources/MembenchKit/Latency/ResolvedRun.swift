import NUMA

/// A run's options checked against the machine, with every default filled in.
public struct ResolvedRun: Sendable {
    public private(set) var options: RunOptions
    /// Bytes each thread chases.
    public let size: Int
    /// Bytes per TLB-locality group (and per pool block).
    public let groupBytes: Int
    /// Where the workers run and their memory goes.
    public let placement: ResolvedPlacement

    /// The same run with another strategy: nothing in the resolution depends on it.
    public func with(strategy: PoolStrategy) -> ResolvedRun {
        var copy = self
        copy.options.strategy = strategy
        return copy
    }
}

extension RunOptions {
    /// Checks every option, returning a one-line error that names the flag.
    public func resolve(topology: Topology = .current) throws(MembenchError) -> ResolvedRun {
        guard stride >= 8 && stride % 8 == 0 && stride <= 1 << 20 else {
            throw .invalid(.stride, "must be a multiple of 8 between 8 and 1MiB, got \(stride)")
        }
        if let tlbLocality, tlbLocality != 0 && (tlbLocality < stride || tlbLocality % stride != 0) {
            throw .invalid(.tlbLocality, "\(ByteSize.format(tlbLocality)) is not a multiple of the stride, \(ByteSize.format(stride)); give a multiple of it, or 0 for fully random")
        }
        guard loadsPerSample >= 256 && loadsPerSample <= 1 << 30 else {
            throw .invalid(.loadsPerSample, "must be at least 256, got \(loadsPerSample)")
        }
        switch length {
        case .samples(let samples):
            guard samples >= 1 && samples <= 1 << 40 else { throw .invalid(.samples, "must be between 1 and \(1 << 40), got \(samples)") }
        case .duration(let seconds):
            try Check.duration(seconds)
        }
        guard window >= 0.001 && window <= 3600 else {
            throw .invalid(.window, "must be between 1ms and 3600 seconds, got \(window)")
        }
        guard warmup >= 0 && warmup <= 3600 else {
            throw .invalid(.warmup, "must be between 0 and 3600 seconds, got \(warmup)")
        }
        let size = self.size ?? RunOptions.defaultSize(topology: topology)
        guard size >= stride else {
            throw .invalid(.size, "must be at least the stride (\(stride) bytes), got \(size)")
        }
        let resolved = try placement.resolve(threads: threads, topology: topology)

        try checkMemory([MemoryDemand(size: size, count: threads, nodes: resolved.memoryNodes, pageMode: pageMode)], topology: topology)
        return ResolvedRun(options: self, size: size, groupBytes: groupBytes(for: size), placement: resolved)
    }

    /// `count` CPUs from `set`, taking nodes in turn, so that two threads over two nodes land
    /// one on each.
    static func spread(_ set: CPUSet, count: Int, topology: Topology) -> [Int] {
        var byNode: [Int: [Int]] = [:]
        for cpu in set { byNode[topology.node(ofCPU: cpu) ?? -1, default: []].append(cpu) }
        let nodes = byNode.keys.sorted()
        var result: [Int] = []
        var round = 0
        while result.count < count {
            for node in nodes where round < byNode[node]!.count && result.count < count {
                result.append(byNode[node]![round])
            }
            round += 1
        }
        return result
    }
}
