/// A memory tier: nodes the kernel groups as of like performance
/// (`/sys/devices/virtual/memory_tiering/memory_tierN`). A lower id is a faster tier: DRAM
/// sits above CXL expanders and other slow memory.
public struct MemoryTier: Hashable, Sendable, Codable {
    /// The kernel's tier id, N of `memory_tierN`.
    public let id: Int
    /// The nodes in the tier (its `nodelist`).
    public let nodes: NodeSet

    /// A tier with the kernel's id `id` that holds `nodes`.
    public init(id: Int, nodes: NodeSet) {
        self.id = id
        self.nodes = nodes
    }

    static let root = "/sys/devices/virtual/memory_tiering"

    /// The kernel's tiers in id order; empty on a kernel without memory tiering (before 6.1)
    /// or without the sysfs directory.
    static func read() -> [MemoryTier] {
        SysFS.entries(root, prefix: "memory_tier").compactMap { id in
            guard let list = SysFS.read("\(root)/memory_tier\(id)/nodelist"),
                  let nodes = try? NodeSet(parsing: list, all: NodeSet()) else { return nil }
            return MemoryTier(id: id, nodes: nodes)
        }
    }
}
