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
    /// The process's own policy when no flag sets one (`numactl --membind=0,1 membench ...`).
    public let inheritedPolicy: MemoryPolicy?
    /// The nodes the run's memory may come from.
    public let memoryNodes: NodeSet
    /// The nodes a local pool gets arenas on.
    public let poolNodes: NodeSet
}

/// Where a run's threads and memory go, resolved from the placement flags.
public struct ResolvedPlacement: Sendable {
    /// The CPU each worker thread is pinned to.
    public let cpus: [Int]
    /// The memory policy applied to every worker (nil: inherited).
    public let policy: MemoryPolicy?
    /// The process's own policy when no flag sets one and it names nodes (bind, interleave or
    /// preferred, as `numactl --membind=0,1` leaves it); it then stands for the flags.
    public let inheritedPolicy: MemoryPolicy?
    /// The nodes the run's memory may come from.
    public let memoryNodes: NodeSet
    /// The nodes a local pool gets arenas on.
    public let poolNodes: NodeSet
}

extension PlacementOptions {
    /// Checks the flags and picks CPUs for `threads` workers. With `needsMemory` false (a run
    /// of malloc alone) the memory flags must be absent and no node information is needed.
    public func resolve(threads: Int, needsMemory: Bool = true,
                        topology: Topology = .current) throws(MembenchError) -> ResolvedPlacement {
        let memoryFlags = [("--membind", membind != nil), ("--interleave", interleave != nil),
                           ("--preferred", preferred != nil), ("--localalloc", localalloc)]
            .filter(\.1).map(\.0)
        if memoryFlags.count > 1 {
            throw .usage(flag: memoryFlags[0], reason: "conflicts with \(memoryFlags[1]); give one memory policy")
        }
        if cpunodebind != nil && physcpubind != nil {
            throw .usage(flag: "--cpunodebind", reason: "conflicts with --physcpubind; give one CPU placement")
        }
        guard threads >= 1 && threads <= 4096 else {
            throw .usage(flag: "--threads", reason: "must be between 1 and 4096, got \(threads)")
        }
        // Memory nodes named by the flags must exist (usage), be allowed and have memory (refused).
        for (flag, nodes) in [("--membind", membind), ("--interleave", interleave), ("--preferred", preferred.map { NodeSet([$0]) })] {
            guard let nodes else { continue }
            do {
                try topology.validate(nodes, operation: flag)
            } catch {
                throw MembenchError.from(error, flag: flag)
            }
        }

        // CPUs: the flags' set, else the process's own.
        var cpuSet = topology.allowedCPUs
        if let nodes = cpunodebind {
            do {
                cpuSet = try ThreadAffinity.cpus(ofNodes: nodes, topology: topology)
            } catch {
                throw MembenchError.from(error, flag: "--cpunodebind")
            }
        } else if let cpus = physcpubind {
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
        let cpus = RunOptions.spread(cpuSet, count: threads, topology: topology)

        let policy = memoryPolicy
        guard needsMemory else {
            return ResolvedPlacement(cpus: cpus, policy: policy, inheritedPolicy: nil, memoryNodes: [], poolNodes: [])
        }
        // Without a flag, the process's own policy (numactl's) says where memory may go.
        var inherited: MemoryPolicy?
        if policy == nil, let own = try? MemoryPolicy.currentThread(), own != .local { inherited = own }
        let effective = policy ?? inherited
        let memoryNodes: NodeSet = {
            switch effective {
            case .bind(let nodes)?, .interleave(let nodes)?: return nodes
            case .preferred?, .local?, nil: return topology.bindableNodes
            }
        }()
        guard !memoryNodes.isEmpty else {
            throw .refused("no node with memory is known or allowed for this process (is /sys/devices/system/node readable?)")
        }
        let poolNodes: NodeSet = {
            switch effective {
            case .bind(let nodes)?, .interleave(let nodes)?: return nodes
            case .preferred(let node)?: return [node]
            case .local?, nil: return topology.bindableNodes
            }
        }()
        return ResolvedPlacement(cpus: cpus, policy: policy, inheritedPolicy: inherited, memoryNodes: memoryNodes,
                                 poolNodes: poolNodes)
    }
}

extension RunOptions {
    /// Checks every option, returning a one-line error that names the flag.
    public func resolve(topology: Topology = .current) throws(MembenchError) -> ResolvedRun {
        guard stride >= 8 && stride % 8 == 0 && stride <= 1 << 20 else {
            throw .usage(flag: "--stride", reason: "must be a multiple of 8 between 8 and 1MiB, got \(stride)")
        }
        if let tlbLocality, tlbLocality != 0 && (tlbLocality < stride || tlbLocality % stride != 0) {
            throw .usage(flag: "--tlb-locality", reason: "\(ByteSize.format(tlbLocality)) is not a multiple of --stride \(ByteSize.format(stride)); give a multiple of it, or 0 for fully random")
        }
        guard loadsPerSample >= 256 && loadsPerSample <= 1 << 30 else {
            throw .usage(flag: "--loads-per-sample", reason: "must be at least 256, got \(loadsPerSample)")
        }
        if let samples, samples < 1 || samples > 1 << 40 {
            throw .usage(flag: "--samples", reason: "must be positive, got \(samples)")
        }
        guard duration > 0 && duration <= 86_400 else {
            throw .usage(flag: "--duration", reason: "must be more than 0 seconds and at most 86400, got \(duration)")
        }
        guard window >= 0.001 && window <= 3600 else {
            throw .usage(flag: "--window", reason: "must be between 1ms and 3600 seconds, got \(window)")
        }
        guard warmup >= 0 && warmup <= 3600 else {
            throw .usage(flag: "--warmup", reason: "must be between 0 and 3600 seconds, got \(warmup)")
        }
        let size = self.size ?? RunOptions.defaultSize(topology: topology)
        guard size >= stride else {
            throw .usage(flag: "--size", reason: "must be at least the stride (\(stride) bytes), got \(size)")
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

/// Refuses a run whose buffers (`size` per thread) do not fit in what `nodes` can hand out, or
/// in the free huge pages.
func checkMemory(size: Int, threads: Int, pageMode: PageMode, nodes: NodeSet, topology: Topology) throws(MembenchError) {
    let available = nodes.reduce(UInt64(0)) { $0 + (topology.node($1)?.memoryAvailable ?? 0) }
    let (needed, overflow) = UInt64(size).multipliedReportingOverflow(by: UInt64(threads))
    if overflow || needed > available {
        throw .refused("--size: \(ByteSize.format(size)) x \(threads) threads needs \(overflow ? "more than 16EiB" : ByteSize.format(needed)), but nodes \(nodes) have \(available >> 20) MiB available (\(topology.availableMemorySource))")
    }
    if let free = pageMode.freeHugePages {
        // Each thread's buffer is its own mapping, rounded up to whole huge pages.
        let granule = pageMode.placementGranule
        let pages = (size + granule - 1) / granule * threads
        if free < pages {
            throw .refused("--page-size \(pageMode.rawValue): \(pages) huge pages needed, \(free) free (see /proc/sys/vm/nr_hugepages)")
        }
    }
}
