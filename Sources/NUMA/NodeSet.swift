/// A set of NUMA node ids. It has no 64-node limit and allows gaps, such as `{0, 2}`.
///
/// Its text form is numactl's list syntax: `0`, `0,2`, `1-3`; `all` is accepted by
/// `init(parsing:all:)` and means the given set (by default, the nodes this process may use).
public struct NodeSet: Hashable, Sendable, Sequence, CustomStringConvertible, ExpressibleByArrayLiteral {
    @usableFromInline var mask: Bitmask

    /// The empty set.
    public init() { mask = Bitmask() }
    /// The set of `nodes`; an id may appear more than once. Traps on a negative id.
    public init<S: Sequence<Int>>(_ nodes: S) { mask = Bitmask(nodes) }
    /// The set of the listed nodes, as in `[0, 2]`. Traps on a negative id.
    public init(arrayLiteral nodes: Int...) { mask = Bitmask(nodes) }
    init(mask: Bitmask) { self.mask = mask }

    /// Parses numactl's node-list syntax. `all` yields `all`.
    public init(parsing text: String, all: @autoclosure () -> NodeSet = Topology.current.allowedNodes) throws(NUMAError) {
        if text.trimmingSpaces == "all" {
            self = all()
        } else {
            mask = try Bitmask.parse(text, kind: "node", maximumID: IDSetLimit.maximumID)
        }
    }

    /// Whether `node` is in the set; false for a negative id.
    @inlinable public func contains(_ node: Int) -> Bool { mask.contains(node) }
    /// Adds `node`. Traps on a negative id.
    public mutating func insert(_ node: Int) { mask.insert(node) }
    /// Removes `node` if it is in the set.
    public mutating func remove(_ node: Int) { mask.remove(node) }
    /// The number of nodes in the set.
    public var count: Int { mask.count }
    /// Whether the set has no node.
    public var isEmpty: Bool { mask.words.isEmpty }
    /// The node ids in ascending order.
    public var ids: [Int] { mask.ids }
    /// The lowest node id, or nil for the empty set.
    public var first: Int? { mask.ids.first }
    /// Iterates over the node ids in ascending order.
    public func makeIterator() -> IndexingIterator<[Int]> { mask.ids.makeIterator() }

    /// The nodes in either set.
    public func union(_ other: NodeSet) -> NodeSet { NodeSet(mask: mask.combined(other.mask, |)) }
    /// The nodes in both sets.
    public func intersection(_ other: NodeSet) -> NodeSet { NodeSet(mask: mask.combined(other.mask, &)) }
    /// The nodes of this set that are not in `other`.
    public func subtracting(_ other: NodeSet) -> NodeSet { NodeSet(mask: mask.combined(other.mask) { $0 & ~$1 }) }
    /// Whether every node of this set is in `other`.
    public func isSubset(of other: NodeSet) -> Bool { subtracting(other).isEmpty }

    /// The list form, such as `0-2,5`; empty for the empty set.
    public var description: String { mask.list }

    /// The mask as the 64-bit words that mbind(2) and set_mempolicy(2) take.
    public var words: [UInt64] { mask.words }
}

/// A node set is coded as an array of its ids, such as `[0, 2]`.
extension NodeSet: Codable {
    /// Decodes a set from an array of node ids.
    public init(from decoder: any Decoder) throws {
        self.init(try decoder.singleValueContainer().decode([Int].self))
    }

    /// Encodes the set as its node ids in ascending order.
    public func encode(to encoder: any Encoder) throws {
        var container = encoder.singleValueContainer()
        try container.encode(ids)
    }
}
