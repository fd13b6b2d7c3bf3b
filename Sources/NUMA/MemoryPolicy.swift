import CLibNuma
#if canImport(Glibc)
import Glibc
#endif

/// A Linux memory policy (see set_mempolicy(2)): where the kernel places a page when it is
/// first touched.
public enum MemoryPolicy: Hashable, Sendable, CustomStringConvertible {
    /// Allocate on the node of the CPU that touches the page (`MPOL_LOCAL`).
    case local
    /// Allocate only on these nodes (`MPOL_BIND`); a full node set is an allocation failure.
    case bind(NodeSet)
    /// Allocate on this node while it has room, elsewhere after that (`MPOL_PREFERRED`).
    case preferred(Int)
    /// Spread pages round-robin over these nodes (`MPOL_INTERLEAVE`).
    case interleave(NodeSet)
    /// Spread pages over these nodes in proportion to the kernel's interleave weights
    /// (`MPOL_WEIGHTED_INTERLEAVE`, Linux 6.9; see `InterleaveWeights`).
    case weightedInterleave(NodeSet)

    /// `MPOL_WEIGHTED_INTERLEAVE` of linux/mempolicy.h, which our libnuma's headers predate.
    static let weightedInterleaveMode: Int32 = 6

    /// The policy as text: `local`, `bind:0-1`, `preferred:1`, `interleave:0,2` or
    /// `weighted-interleave:0-2`.
    public var description: String {
        switch self {
        case .local: "local"
        case .bind(let nodes): "bind:\(nodes)"
        case .preferred(let node): "preferred:\(node)"
        case .interleave(let nodes): "interleave:\(nodes)"
        case .weightedInterleave(let nodes): "weighted-interleave:\(nodes)"
        }
    }

    /// The nodes the policy names; empty for `.local`.
    public var nodes: NodeSet {
        switch self {
        case .local: NodeSet()
        case .bind(let nodes), .interleave(let nodes), .weightedInterleave(let nodes): nodes
        case .preferred(let node): [node]
        }
    }

    var mode: Int32 {
        switch self {
        case .local: MPOL_LOCAL
        case .bind: MPOL_BIND
        case .preferred: MPOL_PREFERRED
        case .interleave: MPOL_INTERLEAVE
        case .weightedInterleave: Self.weightedInterleaveMode
        }
    }

    /// Checks the nodes against the topology: they must exist, be allowed and have memory.
    /// Weighted interleave also needs a kernel that has it.
    public func validate(in topology: Topology = .current, operation: String) throws(NUMAError) {
        if case .local = self { return }
        if case .weightedInterleave = self, !InterleaveWeights.isSupported {
            throw InterleaveWeights.unsupported(operation: operation)
        }
        try topology.validate(nodes, operation: operation)
    }

    /// Applies the policy to a page-aligned address range (mbind(2)). With `move`, pages
    /// already placed elsewhere are migrated (`MPOL_MF_MOVE`); with `strict`, pages that do not
    /// follow the policy fail the call (`MPOL_MF_STRICT`). The nodes are checked against
    /// `topology` (a caller that holds a lock passes the topology it read before, since
    /// `Topology.current` takes a lock of its own).
    public func apply(to address: UnsafeMutableRawPointer, length: Int, move: Bool = false,
                      strict: Bool = false, topology: Topology = .current) throws(NUMAError) {
        try validate(in: topology, operation: "mbind")
        var words = nodes.words
        if words.isEmpty { words = [0] }
        let flags = UInt32((move ? MPOL_MF_MOVE : 0) | (strict ? MPOL_MF_STRICT : 0))
        let mode = self.mode
        let maxnode = UInt(words.count * 64 + 1)
        try words.withUnsafeBufferPointer { (mask) throws(NUMAError) in
            let pointer = self == .local ? nil : UnsafeRawPointer(mask.baseAddress!).assumingMemoryBound(to: UInt.self)
            try systemCall("mbind") { mbind(address, UInt(length), mode, pointer, maxnode, flags) }
        }
    }

    /// Sets the policy of the calling thread (set_mempolicy(2)). It governs pages that this
    /// thread touches first outside ranges with their own policy.
    public func applyToCurrentThread() throws(NUMAError) {
        try validate(operation: "set_mempolicy")
        var words = nodes.words
        if words.isEmpty { words = [0] }
        let mode = self.mode
        let maxnode = UInt(words.count * 64 + 1)
        try words.withUnsafeBufferPointer { (mask) throws(NUMAError) in
            let pointer = self == .local ? nil : UnsafeRawPointer(mask.baseAddress!).assumingMemoryBound(to: UInt.self)
            try systemCall("set_mempolicy") { set_mempolicy(mode, pointer, maxnode) }
        }
    }

    /// Restores the default policy of the calling thread: set_mempolicy(2) with `MPOL_DEFAULT`.
    public static func resetCurrentThread() throws(NUMAError) {
        try systemCall("set_mempolicy") { set_mempolicy(MPOL_DEFAULT, nil, 0) }
    }

    /// The policy of the calling thread (get_mempolicy(2)). `MPOL_DEFAULT` reads as `.local`,
    /// which is what it does.
    public static func currentThread() throws(NUMAError) -> MemoryPolicy {
        try query(address: nil)
    }

    /// The policy that governs the page at `address` (get_mempolicy(2) with `MPOL_F_ADDR`).
    public static func policy(at address: UnsafeMutableRawPointer) throws(NUMAError) -> MemoryPolicy {
        try query(address: address)
    }

    private static func query(address: UnsafeMutableRawPointer?) throws(NUMAError) -> MemoryPolicy {
        let bits = max(Int(numa_num_possible_nodes()), 64)
        var words = [UInt](repeating: 0, count: (bits + 63) / 64)
        var mode: Int32 = 0
        let count = words.count
        _ = try words.withUnsafeMutableBufferPointer { (mask) throws(NUMAError) in
            try systemCall("get_mempolicy") {
                get_mempolicy(&mode, mask.baseAddress, UInt(count * 64), address,
                              address == nil ? 0 : UInt32(MPOL_F_ADDR))
            }
        }
        let nodes = NodeSet(mask: Bitmask(words: words.map { UInt64($0) }))
        let base = mode & 0xff  // drop MPOL_F_STATIC_NODES and MPOL_F_RELATIVE_NODES
        switch base {
        case MPOL_BIND: return .bind(nodes)
        case MPOL_INTERLEAVE: return .interleave(nodes)
        case Self.weightedInterleaveMode: return .weightedInterleave(nodes)
        case MPOL_PREFERRED: return nodes.first.map { .preferred($0) } ?? .local
        default: return .local
        }
    }
}
