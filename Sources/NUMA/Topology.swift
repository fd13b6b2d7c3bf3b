import CLibNuma
import CNuma
#if canImport(Glibc)
import Glibc
#endif

/// The last-level cache as hwloc reports it.
public struct CacheInfo: Hashable, Sendable, Codable {
    /// 3 for an L3 and so on.
    public let level: Int
    /// Bytes in one cache instance.
    public let size: UInt64
    /// How many instances the machine has.
    public let instances: Int
}

/// The machine's NUMA layout, read once and cached (`Topology.current`); `reload()` reads it
/// again. Built from libnuma (nodes, CPUs, memory, distances, allowed memory nodes),
/// sched_getaffinity(2) (allowed CPUs), hwloc (caches, packages, memory attributes) and sysfs
/// (memory tiers, the firmware's access figures, reclaimable memory). A kernel without NUMA
/// support yields one node built from sysfs and `/proc/meminfo`.
public struct Topology: Hashable, Sendable, Codable {
    /// The nodes in ascending id order.
    public let nodes: [Node]
    /// Whether the kernel has the NUMA syscalls (`numa_available() == 0`).
    public let numaAvailable: Bool
    /// The nodes this process may allocate memory on (its cpuset's `mems`).
    public let allowedNodes: NodeSet
    /// The CPUs this process may run on (its affinity and cpuset).
    public let allowedCPUs: CPUSet
    /// The last-level cache, when hwloc knows one.
    public let lastLevelCache: CacheInfo?
    /// Packages (sockets), as hwloc counts them.
    public let packages: Int
    /// The node of each CPU id; -1 for ids that are not present.
    public let cpuToNode: [Int]
    /// The kernel's memory tiers, fastest first; empty where it shows none.
    public let tiers: [MemoryTier]

    private static let cache = Locked<Topology?>(nil)

    /// The topology read at first use.
    public static var current: Topology {
        cache.withLock { cached in
            if let cached { return cached }
            let fresh = Topology.read()
            cached = fresh
            return fresh
        }
    }

    /// Reads the topology again (after hot-plug or a cpuset change) and caches it.
    @discardableResult
    public static func reload() -> Topology {
        let fresh = Topology.read()
        cache.withLock { $0 = fresh }
        return fresh
    }

    /// The number of nodes.
    public var nodeCount: Int { nodes.count }
    /// The ids of every node.
    public var nodeIDs: NodeSet { NodeSet(nodes.map(\.id)) }
    /// The nodes that have memory, allowed to this process or not.
    public var nodesWithMemory: NodeSet { NodeSet(nodes.filter(\.hasMemory).map(\.id)) }
    /// The nodes with memory that this process may bind to.
    public var bindableNodes: NodeSet { nodesWithMemory.intersection(allowedNodes) }
    /// The nodes that have CPUs, allowed to this process or not.
    public var nodesWithCPUs: NodeSet { NodeSet(nodes.filter(\.hasCPUs).map(\.id)) }

    /// The node with id `id`, or nil when there is none.
    public func node(_ id: Int) -> Node? { nodes.first { $0.id == id } }

    /// The node of a CPU, or nil for an unknown CPU.
    public func node(ofCPU cpu: Int) -> Int? {
        cpu >= 0 && cpu < cpuToNode.count && cpuToNode[cpu] >= 0 ? cpuToNode[cpu] : nil
    }

    /// The kernel's distance from one node to another (10 is local), or nil for unknown ids.
    public func distance(from a: Int, to b: Int) -> Int? {
        guard let row = node(a), let column = nodes.firstIndex(where: { $0.id == b }) else { return nil }
        return row.distances[column]
    }

    /// The CPUs of the given nodes that this process may use.
    public func allowedCPUs(on nodes: NodeSet) -> CPUSet {
        var cpus = CPUSet()
        for id in nodes { if let node = node(id) { cpus = cpus.union(node.cpus) } }
        return cpus.intersection(allowedCPUs)
    }

    /// The nodes with memory that this process may use, nearest first from `node`.
    public func memoryNodes(nearestTo node: Int) -> [Int] {
        fallbackOrder(bindableNodes.ids, from: node)
    }

    /// What the firmware says of access from `initiator`'s CPUs to `target`'s memory: the
    /// access class whose best initiators include `initiator` (CPU initiators, class 1, before
    /// any, class 0), or nil when it does not name `initiator` (the kernel shows the best
    /// initiators only) or has no data.
    public func firmwareAccess(from initiator: Int, to target: Int) -> FirmwareAccess? {
        node(target)?.firmware.sorted { $0.accessClass > $1.accessClass }.first { $0.initiators.contains(initiator) }
    }

    /// `candidates` ordered nearest first from `node` by the kernel's distance, ties broken by
    /// id; unknown distances go last.
    public func nearest(_ candidates: [Int], to node: Int) -> [Int] {
        candidates.sorted {
            (distance(from: node, to: $0) ?? Int.max, $0) < (distance(from: node, to: $1) ?? Int.max, $1)
        }
    }

    /// `candidates` in the order memory should be taken from them for `node`: `node` itself
    /// first when it is one, then the others by memory tier, fastest first, and nearest first
    /// by distance within a tier (`nearest`). A slow tier (CXL, say) that the firmware puts
    /// closer than another node's DRAM still comes after it. Without tiers this is `nearest`.
    /// Every fallback order in the package comes from here.
    public func fallbackOrder(_ candidates: [Int], from node: Int) -> [Int] {
        let rank = Dictionary(uniqueKeysWithValues: nodes.map { ($0.id, $0.tier ?? 0) })
        let others = nearest(candidates.filter { $0 != node }, to: node).enumerated().sorted {
            (rank[$0.element] ?? Int.max, $0.offset) < (rank[$1.element] ?? Int.max, $1.offset)
        }.map(\.element)
        return (candidates.contains(node) ? [node] : []) + others
    }

    /// Checks that every node exists and, when `needsMemory`, has memory and is in this
    /// process's allowed memory nodes. Throws a `NUMAError` naming the first bad node.
    public func validate(_ set: NodeSet, operation: String, needsMemory: Bool = true) throws(NUMAError) {
        guard !set.isEmpty else {
            throw NUMAError(operation: operation, errno: EINVAL, message: "the node set is empty")
        }
        for id in set {
            guard let node = node(id) else {
                throw NUMAError(operation: operation, errno: ENODEV,
                                message: "node \(id) does not exist (nodes: \(nodeIDs))")
            }
            // Memory-only questions: a node without memory is never in the allowed memory set,
            // so say what is really wrong with it first. CPU placement checks CPUs elsewhere.
            guard needsMemory else { continue }
            if !node.hasMemory {
                throw NUMAError(operation: operation, errno: ENOMEM, message: "node \(id) has no memory")
            }
            guard allowedNodes.contains(id) else {
                throw NUMAError(operation: operation, errno: EPERM,
                                message: "node \(id) is not allowed for this process (allowed: \(allowedNodes))")
            }
        }
    }

    /// The CPU and node the calling thread runs on now: getcpu(3), through the vDSO where the
    /// kernel offers one (tens of nanoseconds, no system call). The one way the package asks.
    public static func currentCPU() -> (cpu: Int, node: Int) {
        var cpu: UInt32 = 0, node: UInt32 = 0
        if CNuma_getcpu(&cpu, &node) != 0 { return (0, 0) }
        return (Int(cpu), Int(node))
    }

    /// The node of the CPU the calling thread runs on now.
    public static var currentNode: Int { currentCPU().node }

    static func read() -> Topology {
        let hwloc = HwlocSummary.read()
        let allowedCPUs = ThreadAffinity.processCPUs()
        guard numa_available() >= 0 else {
            return singleNode(allowedCPUs: allowedCPUs, hwloc: hwloc)
        }
        var ids: [Int] = []
        let maxNode = Int(numa_max_node())
        for id in 0...max(0, maxNode) where CNuma_node_configured(Int32(id)) != 0 {
            ids.append(id)
        }
        let tiers = MemoryTier.read()
        var nodes: [Node] = []
        var cpuToNode: [Int] = []
        let cpumask = numa_allocate_cpumask()!
        defer { numa_bitmask_free(cpumask) }
        for id in ids {
            numa_bitmask_clearall(cpumask)
            var cpus = CPUSet()
            if numa_node_to_cpus(Int32(id), cpumask) == 0 {
                for cpu in 0..<Int(cpumask.pointee.size) where numa_bitmask_isbitset(cpumask, UInt32(cpu)) != 0 {
                    cpus.insert(cpu)
                    if cpu >= cpuToNode.count { cpuToNode += repeatElement(-1, count: cpu - cpuToNode.count + 1) }
                    cpuToNode[cpu] = id
                }
            }
            var free: Int64 = 0
            let total = numa_node_size64(Int32(id), &free)
            let memoryFree = UInt64(max(0, total > 0 ? free : 0))
            nodes.append(Node(
                id: id, cpus: cpus,
                memoryTotal: UInt64(max(0, total)), memoryFree: memoryFree,
                memoryAvailable: total > 0 ? Self.available(node: id, free: memoryFree, nodes: ids.count) : 0,
                distances: ids.map { Int(numa_distance(Int32(id), Int32($0))) },
                tier: tiers.first { $0.nodes.contains(id) }?.id,
                firmware: FirmwareAccess.read(node: id),
                memoryAttributes: hwloc.memoryAttributes[id] ?? []
            ))
        }
        var allowedNodes = NodeSet()
        if let mems = numa_get_mems_allowed() {
            for id in ids where numa_bitmask_isbitset(mems, UInt32(id)) != 0 { allowedNodes.insert(id) }
            numa_bitmask_free(mems)
        }
        return Topology(nodes: nodes, numaAvailable: true, allowedNodes: allowedNodes,
                        allowedCPUs: allowedCPUs, lastLevelCache: hwloc.cache,
                        packages: hwloc.packages, cpuToNode: cpuToNode, tiers: tiers)
    }

    /// What the figure `Node.memoryAvailable` is, for messages.
    public var availableMemorySource: String {
        nodes.count == 1 ? "MemAvailable" : "free plus reclaimable memory"
    }

    /// `Node.memoryAvailable`: MemAvailable on a one-node machine, else free plus reclaimable.
    static func available(node: Int, free: UInt64, nodes: Int) -> UInt64 {
        if nodes == 1, let available = SysFS.meminfo()["MemAvailable"] { return available }
        let info = SysFS.meminfo("/sys/devices/system/node/node\(node)/meminfo")
        let reclaimable = ["Active(file)", "Inactive(file)", "KReclaimable"].reduce(UInt64(0)) { $0 + (info[$1] ?? 0) }
        return free + reclaimable
    }

    /// One node 0 from `/sys/devices/system/cpu/online` and `/proc/meminfo`.
    static func singleNode(allowedCPUs: CPUSet, hwloc: HwlocSummary) -> Topology {
        let online = (try? CPUSet(parsing: SysFS.read("/sys/devices/system/cpu/online") ?? "", all: allowedCPUs))
            ?? allowedCPUs
        let meminfo = SysFS.meminfo()
        let node = Node(id: 0, cpus: online, memoryTotal: meminfo["MemTotal"] ?? 0,
                        memoryFree: meminfo["MemFree"] ?? 0,
                        memoryAvailable: meminfo["MemAvailable"] ?? meminfo["MemFree"] ?? 0, distances: [10],
                        tier: nil, firmware: [], memoryAttributes: hwloc.memoryAttributes[0] ?? [])
        var cpuToNode = [Int](repeating: -1, count: (online.ids.last ?? 0) + 1)
        for cpu in online { cpuToNode[cpu] = 0 }
        return Topology(nodes: [node], numaAvailable: false, allowedNodes: [0], allowedCPUs: allowedCPUs,
                        lastLevelCache: hwloc.cache, packages: hwloc.packages, cpuToNode: cpuToNode, tiers: [])
    }
}

extension Topology {
    private enum CodingKeys: String, CodingKey {
        case nodes, numaAvailable, allowedNodes, allowedCPUs, lastLevelCache, packages, cpuToNode, tiers
    }

    /// Decodes a topology; JSON written before tiers were read (no `tiers`) decodes with none,
    /// as on a kernel that shows none.
    public init(from decoder: any Decoder) throws {
        let container = try decoder.container(keyedBy: CodingKeys.self)
        self.init(nodes: try container.decode([Node].self, forKey: .nodes),
                  numaAvailable: try container.decode(Bool.self, forKey: .numaAvailable),
                  allowedNodes: try container.decode(NodeSet.self, forKey: .allowedNodes),
                  allowedCPUs: try container.decode(CPUSet.self, forKey: .allowedCPUs),
                  lastLevelCache: try container.decodeIfPresent(CacheInfo.self, forKey: .lastLevelCache),
                  packages: try container.decode(Int.self, forKey: .packages),
                  cpuToNode: try container.decode([Int].self, forKey: .cpuToNode),
                  tiers: try container.decodeIfPresent([MemoryTier].self, forKey: .tiers) ?? [])
    }
}

/// What the topology takes from hwloc, read through one load and destroy cycle.
struct HwlocSummary {
    var cache: CacheInfo?
    var packages = 1
    /// Memory attributes by node OS index.
    var memoryAttributes: [Int: [MemoryAttribute]] = [:]

    static func read() -> HwlocSummary {
        guard let handle = CNuma_hwloc_open() else { return HwlocSummary() }
        defer { CNuma_hwloc_close(handle) }
        var level: UInt32 = 0
        let size = CNuma_hwloc_llc_size(handle, &level)
        let cache = size > 0
            ? CacheInfo(level: Int(level), size: size, instances: Int(CNuma_hwloc_llc_count(handle))) : nil
        var attributes: [Int: [MemoryAttribute]] = [:]
        for node in 0..<max(0, Int(CNuma_hwloc_numa_max_index(handle)) + 1) {
            let found = memoryAttributes(handle, node: node)
            if !found.isEmpty { attributes[node] = found }
        }
        return HwlocSummary(cache: cache, packages: max(1, Int(CNuma_hwloc_package_count(handle))),
                            memoryAttributes: attributes)
    }
}
