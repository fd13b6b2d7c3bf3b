/// One NUMA node as the kernel reports it.
public struct Node: Hashable, Sendable, Codable {
    /// The kernel's node id. Ids may have gaps.
    public let id: Int
    /// The CPUs on this node; empty for a memory-only node (such as CXL memory).
    public let cpus: CPUSet
    /// Total memory in bytes (`numa_node_size64`); 0 for a node without memory.
    public let memoryTotal: UInt64
    /// Free memory in bytes when the topology was read (the node's MemFree).
    public let memoryFree: UInt64
    /// Memory the kernel can hand out on this node when the topology was read, counting what
    /// it would reclaim for it: `MemAvailable` of /proc/meminfo on a machine of one node,
    /// otherwise the node's MemFree plus its file pages and reclaimable kernel memory
    /// (`/sys/devices/system/node/nodeN/meminfo`). MemFree alone is far below what a node
    /// can allocate once the page cache has grown.
    public let memoryAvailable: UInt64
    /// The distance to every node, in the order of `Topology.nodes` (`numa_distance`).
    public let distances: [Int]
    /// The node's memory tier (`MemoryTier.id`), or nil where the kernel shows none.
    public let tier: Int?
    /// What the firmware says of access to this node's memory, per access class; empty where
    /// the kernel shows none (no ACPI HMAT).
    public let firmware: [FirmwareAccess]
    /// hwloc's memory attributes of this node, per initiator; empty where hwloc has none.
    public let memoryAttributes: [MemoryAttribute]

    /// Whether the node has memory (`memoryTotal` is not 0).
    public var hasMemory: Bool { memoryTotal > 0 }
    /// Whether the node has CPUs; a memory-only node has none.
    public var hasCPUs: Bool { !cpus.isEmpty }
}

extension Node {
    private enum CodingKeys: String, CodingKey {
        case id, cpus, memoryTotal, memoryFree, memoryAvailable, distances, tier, firmware, memoryAttributes
    }

    /// Decodes a node; JSON written before tiers were read (no `firmware` or
    /// `memoryAttributes`) decodes with those empty, as on a machine that shows none.
    public init(from decoder: any Decoder) throws {
        let container = try decoder.container(keyedBy: CodingKeys.self)
        self.init(id: try container.decode(Int.self, forKey: .id),
                  cpus: try container.decode(CPUSet.self, forKey: .cpus),
                  memoryTotal: try container.decode(UInt64.self, forKey: .memoryTotal),
                  memoryFree: try container.decode(UInt64.self, forKey: .memoryFree),
                  memoryAvailable: try container.decode(UInt64.self, forKey: .memoryAvailable),
                  distances: try container.decode([Int].self, forKey: .distances),
                  tier: try container.decodeIfPresent(Int.self, forKey: .tier),
                  firmware: try container.decodeIfPresent([FirmwareAccess].self, forKey: .firmware) ?? [],
                  memoryAttributes: try container.decodeIfPresent([MemoryAttribute].self, forKey: .memoryAttributes) ?? [])
    }
}
