import NUMA

/// Buffers of one kind that a run allocates: `count` buffers of `size` bytes on `nodes`, each a
/// mapping of its own backed by `pageMode`.
struct MemoryDemand {
    var size: Int
    var count: Int
    var nodes: NodeSet
    var pageMode: PageMode = .base
    /// What each buffer belongs to, plural: "threads", "load threads".
    var owner = "threads"
    /// How errors name the buffers, when not "size x count owner": "12GiB for the chase".
    var label: String?

    var description: String { label ?? "\(ByteSize.format(size)) x \(counted(count, String(owner.dropLast()), plural: owner))" }

    /// The bytes of all the buffers, or nil past 2^64.
    var bytes: UInt64? {
        let (bytes, overflow) = UInt64(size).multipliedReportingOverflow(by: UInt64(count))
        return overflow ? nil : bytes
    }
}

/// Refuses a run whose buffers, all of them together, do not fit: in what the nodes each
/// demand names can hand out (and all of them together), under every limit this process is
/// under (`MemoryLimit`: its memory cgroup, its rlimits), or in the free huge pages. The error
/// names the figure it compared against.
func checkMemory(_ demands: [MemoryDemand], topology: Topology,
                 limits: [MemoryLimit] = MemoryLimit.current()) throws(MembenchError) {
    let what = demands.map(\.description).joined(separator: " and ")
    let verb = demands.count == 1 ? "needs" : "need"
    func total(_ included: [MemoryDemand]) -> UInt64? {
        included.reduce(UInt64(0) as UInt64?) { sum, demand in
            guard let sum, let bytes = demand.bytes else { return nil }
            let (total, overflow) = sum.addingReportingOverflow(bytes)
            return overflow ? nil : total
        }
    }
    let everything = total(demands)
    let needed = everything.map { ByteSize.format(Int(clamping: $0)) } ?? "more than 16EiB"
    // Each node set named, and all of them together, against the demands that must fit in it.
    let union = demands.reduce(NodeSet()) { $0.union($1.nodes) }
    for nodes in [union] + demands.map(\.nodes) {
        let inside = demands.filter { $0.nodes.isSubset(of: nodes) }
        let available = nodes.reduce(UInt64(0)) { $0 + (topology.node($1)?.memoryAvailable ?? 0) }
        guard let bytes = total(inside), bytes <= available else {
            // The buffers that must fit in these nodes, and what they need.
            let named = inside.map(\.description).joined(separator: " and ")
            let amount = total(inside).map { ByteSize.format(Int(clamping: $0)) } ?? "more than 16EiB"
            throw .unavailable(.size, "\(named) \(inside.count == 1 ? "needs" : "need") \(amount), but \(nodesHave(nodes)) \(available >> 20) MiB available (\(topology.availableMemorySource))")
        }
    }
    for limit in limits where everything.map({ $0 > limit.available }) ?? true {
        throw .unavailable(.size, "\(what) \(verb) \(needed), but \(limit)")
    }
    // Huge pages: each buffer is its own mapping, rounded up to whole pages.
    for mode in Set(demands.map(\.pageMode)) {
        guard let free = mode.freeHugePages else { continue }
        let granule = mode.placementGranule
        let pages = demands.filter { $0.pageMode == mode }.reduce(0) { $0 + ($1.size + granule - 1) / granule * $1.count }
        if free < pages {
            throw .unavailable(.pageSize, "\(mode.rawValue): \(pages) huge pages needed, \(free) free (see /proc/sys/vm/nr_hugepages)")
        }
    }
}
