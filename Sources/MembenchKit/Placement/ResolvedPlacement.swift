import NUMA

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

    /// The policy as headers and records show it (`MemoryPolicy.text`).
    public var policyText: String { MemoryPolicy.text(policy: policy, inherited: inheritedPolicy) }
}

extension MemoryPolicy {
    /// The policy a run ran under, as headers and records show it: the flags' policy, else the
    /// process's own marked "(inherited)", else "inherit".
    static func text(policy: MemoryPolicy?, inherited: MemoryPolicy?) -> String {
        policy?.description ?? inherited.map { "\($0.description) (inherited)" } ?? "inherit"
    }
}

extension PlacementOptions {
    /// Checks the flags and picks CPUs for `threads` workers (nil: one per CPU the flags, or
    /// the process, allow). With `needsMemory` false (a run of malloc alone) the memory flags
    /// must be absent and no node information is needed.
    public func resolve(threads requested: Int?, needsMemory: Bool = true,
                        topology: Topology = .current) throws(MembenchError) -> ResolvedPlacement {
        let memorySettings = memorySettingsGiven
        if memorySettings.count > 1 {
            throw .conflicting(memorySettings[0], memorySettings[1])
        }
        if cpunodebind != nil && physcpubind != nil {
            throw .conflicting(.cpuNodes, .cpus)
        }
        if let requested, !(1...4096).contains(requested) {
            throw .invalid(.threads, "must be between 1 and 4096, got \(requested)")
        }
        // The policy asked for: its nodes must exist (usage), be allowed and have memory
        // (refused), and weighted interleave needs a kernel that has it (refused).
        if let policy = memoryPolicy, let setting = memorySettings.first {
            do {
                try policy.validate(in: topology, operation: setting.rawValue)
            } catch {
                throw MembenchError.from(error, setting: setting)
            }
        }
        if let interleaveWeights {
            guard let weightedInterleave, Set(interleaveWeights.keys) == Set(weightedInterleave.ids) else {
                throw .invalid(.weightedInterleave, "give a weight for every node or for none")
            }
            do { try InterleaveWeights.check(interleaveWeights) } catch { throw MembenchError.from(error, setting: .weightedInterleave) }
        }

        // CPUs: the flags' set, else the process's own.
        var cpuSet = topology.allowedCPUs
        if let nodes = cpunodebind {
            do {
                cpuSet = try ThreadAffinity.cpus(ofNodes: nodes, topology: topology)
            } catch {
                throw MembenchError.from(error, setting: .cpuNodes)
            }
        } else if let cpus = physcpubind {
            try Self.check(cpus, setting: .cpus, topology: topology)
            cpuSet = cpus
        }
        let threads = requested ?? cpuSet.count
        guard threads <= cpuSet.count else {
            throw .invalid(.threads, "\(counted(threads, "thread")) but only \(counted(cpuSet.count, "CPU")) to run them on (\(cpuSet))")
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
            case .bind(let nodes)?, .interleave(let nodes)?, .weightedInterleave(let nodes)?: return nodes
            case .preferred?, .local?, nil: return topology.bindableNodes
            }
        }()
        guard !memoryNodes.isEmpty else {
            throw .refused("no node with memory is known or allowed for this process (is /sys/devices/system/node readable?)")
        }
        let poolNodes: NodeSet = {
            switch effective {
            case .bind(let nodes)?, .interleave(let nodes)?, .weightedInterleave(let nodes)?: return nodes
            case .preferred(let node)?: return [node]
            case .local?, nil: return topology.bindableNodes
            }
        }()
        return ResolvedPlacement(cpus: cpus, policy: policy, inheritedPolicy: inherited, memoryNodes: memoryNodes,
                                 poolNodes: poolNodes)
    }

    /// Refuses a CPU list that is empty (usage), names a CPU that does not exist (usage) or one
    /// this process may not use (refused), naming `setting`.
    static func check(_ cpus: CPUSet, setting: Setting, topology: Topology) throws(MembenchError) {
        guard !cpus.isEmpty else { throw .invalid(setting, "the CPU list is empty") }
        for cpu in cpus where !topology.allowedCPUs.contains(cpu) {
            if topology.node(ofCPU: cpu) == nil {
                throw .invalid(setting, "CPU \(cpu) does not exist")
            }
            throw .unavailable(setting, "CPU \(cpu) is not allowed for this process (allowed: \(topology.allowedCPUs))")
        }
    }
}
