import NUMA

/// A run's options checked against the machine, with every default filled in.
public struct ResolvedRun: Sendable {
    public let options: RunOptions
    /// Bytes each thread chases.
    public let size: Int
    /// Bytes per TLB-locality group (and per pool block).
    public let groupBytes: Int
    /// The CPU each worker thread is pinned to.
    public let cpus: [Int]
    /// The memory policy applied to every worker (nil: inherited).
    public let policy: MemoryPolicy?
    /// The nodes a local pool gets arenas on.
    public let poolNodes: NodeSet
}

extension RunOptions {
    /// Checks every option, returning a one-line error that names the flag.
    public func resolve(topology: Topology = .current) throws(MembenchError) -> ResolvedRun {
        let placement = self.placement
        let memoryFlags = [("--membind", placement.membind != nil), ("--interleave", placement.interleave != nil),
                           ("--preferred", placement.preferred != nil), ("--localalloc", placement.localalloc)]
            .filter(\.1).map(\.0)
        if memoryFlags.count > 1 {
            throw .usage(flag: memoryFlags[0], reason: "conflicts with \(memoryFlags[1]); give one memory policy")
        }
        if placement.cpunodebind != nil && placement.physcpubind != nil {
            throw .usage(flag: "--cpunodebind", reason: "conflicts with --physcpubind; give one CPU placement")
        }
        guard threads >= 1 && threads <= 4096 else {
            throw .usage(flag: "--threads", reason: "must be between 1 and 4096, got \(threads)")
        }
        guard stride >= 8 && stride % 8 == 0 && stride <= 1 << 20 else {
            throw .usage(flag: "--stride", reason: "must be a multiple of 8 between 8 and 1MiB, got \(stride)")
        }
        guard tlbLocality == 0 || (tlbLocality >= stride && tlbLocality % stride == 0) else {
            throw .usage(flag: "--tlb-locality", reason: "must be 0 (fully random) or a multiple of the stride \(stride), got \(tlbLocality)")
        }
        guard loadsPerSample >= 256 && loadsPerSample <= 1 << 30 else {
            throw .usage(flag: "--loads-per-sample", reason: "must be at least 256, got \(loadsPerSample)")
        }
        if let samples, samples < 1 || samples > 1 << 40 {
            throw .usage(flag: "--samples", reason: "must be positive, got \(samples)")
        }
        guard duration > 0 && duration <= 86_400 else {
            throw .usage(flag: "--duration", reason: "must be between 0 and 86400 seconds, got \(duration)")
        }
        guard warmup >= 0 && warmup <= 3600 else {
            throw .usage(flag: "--warmup", reason: "must be between 0 and 3600 seconds, got \(warmup)")
        }
        let size = self.size ?? RunOptions.defaultSize(topology: topology)
        guard size >= stride else {
            throw .usage(flag: "--size", reason: "must be at least the stride (\(stride) bytes), got \(size)")
        }

        // Memory nodes named by the flags must exist (usage), be allowed and have memory (refused).
        for (flag, nodes) in [("--membind", placement.membind), ("--interleave", placement.interleave),
                              ("--preferred", placement.preferred.map { NodeSet([$0]) })] {
            guard let nodes else { continue }
            do {
                try topology.validate(nodes, operation: flag)
            } catch {
                throw MembenchError.from(error, flag: flag)
            }
        }

        // CPUs: the flags' set, else the process's own.
        var cpuSet = topology.allowedCPUs
        if let nodes = placement.cpunodebind {
            do {
                cpuSet = try ThreadAffinity.cpus(ofNodes: nodes, topology: topology)
            } catch {
                throw MembenchError.from(error, flag: "--cpunodebind")
            }
        } else if let cpus = placement.physcpubind {
            guard !cpus.isEmpty else { throw .usage(flag: "--physcpubind", reason: "the CPU list is empty") }
            for cpu in cpus where !topology.allowedCPUs.contains(cpu) {
                if topology.node(ofCPU: cpu) == nil {
                    throw .usage(flag: "--physcpubind", reason: "CPU \(cpu) does not exist")
                }
                throw .refused("--physcpubind: CPU \(cpu) is not allowed for this process (allowed: \(topology.allowedCPUs))")
            }
            cpuSet = cpus
        }
        guard threads <= cpuSet.count else {
            throw .usage(flag: "--threads", reason: "\(threads) threads but only \(cpuSet.count) CPUs to run them on (\(cpuSet))")
        }
        let cpus = Self.spread(cpuSet, count: threads, topology: topology)

        // Memory: what the run needs against what the candidate nodes have free.
        let policy = placement.memoryPolicy
        let memoryNodes: NodeSet = {
            switch policy {
            case .bind(let nodes)?, .interleave(let nodes)?: return nodes
            case .preferred?, .local?, nil: return topology.bindableNodes
            }
        }()
        let free = memoryNodes.reduce(UInt64(0)) { $0 + (topology.node($1)?.memoryFree ?? 0) }
        let needed = UInt64(size) * UInt64(threads)
        if needed > free {
            throw .refused("--size: \(ByteSize.format(size)) x \(threads) threads needs \(ByteSize.format(needed)), but nodes \(memoryNodes) have \(free >> 20) MiB free")
        }
        if let free = pageMode.freeHugePages, let granule = Optional(pageMode.placementGranule),
           free * granule < Int(needed) {
            throw .refused("--page-size \(pageMode.rawValue): \(Int(needed) / granule) huge pages needed, \(free) free (see /proc/sys/vm/nr_hugepages)")
        }
        let poolNodes: NodeSet = {
            switch policy {
            case .bind(let nodes)?, .interleave(let nodes)?: return nodes
            case .preferred(let node)?: return [node]
            case .local?, nil: return topology.bindableNodes
            }
        }()
        return ResolvedRun(options: self, size: size, groupBytes: groupBytes(for: size), cpus: cpus,
                           policy: policy, poolNodes: poolNodes)
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
