import NUMA

/// A run's options checked against the machine, with every default filled in.
public struct ResolvedRun: Sendable {
    public private(set) var options: RunOptions
    /// Bytes each thread chases.
    public let size: Int
    /// Bytes per TLB-locality group (and per pool block).
    public let groupBytes: Int
    /// The CPU each worker thread is pinned to.
    public let cpus: [Int]
    /// The memory policy applied to every worker (nil: inherited).
    public let policy: MemoryPolicy?
    /// The process's own policy when no flag sets one (`numactl --membind=0,1 membench ...`).
    public let inheritedPolicy: MemoryPolicy?
    /// The nodes the run's memory may come from.
    public let memoryNodes: NodeSet
    /// The nodes a local pool gets arenas on.
    public let poolNodes: NodeSet

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
        if let samples, samples < 1 || samples > 1 << 40 {
            throw .invalid(.samples, "must be positive, got \(samples)")
        }
        guard duration > 0 && duration <= 86_400 else {
            throw .invalid(.duration, "must be more than 0 seconds and at most 86400, got \(duration)")
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

        try checkMemory(size: size, threads: threads, pageMode: pageMode, nodes: resolved.memoryNodes, topology: topology)
        return ResolvedRun(options: self, size: size, groupBytes: groupBytes(for: size), cpus: resolved.cpus,
                           policy: resolved.policy, inheritedPolicy: resolved.inheritedPolicy,
                           memoryNodes: resolved.memoryNodes, poolNodes: resolved.poolNodes)
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
