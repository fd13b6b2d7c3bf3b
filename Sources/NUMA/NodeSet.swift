/// A set of NUMA node ids. It has no 64-node limit and allows gaps, such as `{0, 2}`.
///
/// Its text form is numactl's list syntax: `0`, `0,2`, `1-3`; `all` is accepted by
/// `init(parsing:all:)` and means the given set (by default, the nodes this process may use).
public struct NodeSet: Hashable, Sendable, Sequence, CustomStringConvertible, ExpressibleByArrayLiteral {
    @usableFromInline var mask: Bitmask

    public init() { mask = Bitmask() }
    public init<S: Sequence<Int>>(_ nodes: S) { mask = Bitmask(nodes) }
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

    @inlinable public func contains(_ node: Int) -> Bool { mask.contains(node) }
    public mutating func insert(_ node: Int) { mask.insert(node) }
    public mutating func remove(_ node: Int) { mask.remove(node) }
    public var count: Int { mask.count }
    public var isEmpty: Bool { mask.words.isEmpty }
    public var ids: [Int] { mask.ids }
    public var first: Int? { mask.ids.first }
    public func makeIterator() -> IndexingIterator<[Int]> { mask.ids.makeIterator() }

    public func union(_ other: NodeSet) -> NodeSet { NodeSet(mask: mask.combined(other.mask, |)) }
    public func intersection(_ other: NodeSet) -> NodeSet { NodeSet(mask: mask.combined(other.mask, &)) }
    public func subtracting(_ other: NodeSet) -> NodeSet { NodeSet(mask: mask.combined(other.mask) { $0 & ~$1 }) }
    public func isSubset(of other: NodeSet) -> Bool { subtracting(other).isEmpty }

    /// The list form, such as `0-2,5`; empty for the empty set.
    public var description: String { mask.list }

    /// The mask as the 64-bit words that mbind(2) and set_mempolicy(2) take.
    public var words: [UInt64] { mask.words }
}

extension NodeSet: Codable {
    public init(from decoder: any Decoder) throws {
        self.init(try decoder.singleValueContainer().decode([Int].self))
    }

    public func encode(to encoder: any Encoder) throws {
        var container = encoder.singleValueContainer()
        try container.encode(ids)
    }
}

/// A set of CPU ids with no 64-CPU limit, in numactl's list syntax like `NodeSet`.
public struct CPUSet: Hashable, Sendable, Sequence, CustomStringConvertible, ExpressibleByArrayLiteral {
    var mask: Bitmask

    public init() { mask = Bitmask() }
    public init<S: Sequence<Int>>(_ cpus: S) { mask = Bitmask(cpus) }
    public init(arrayLiteral cpus: Int...) { mask = Bitmask(cpus) }
    init(words: [UInt64]) { mask = Bitmask(words: words) }
    init(mask: Bitmask) { self.mask = mask }

    /// Parses numactl's CPU-list syntax. `all` yields `all`.
    public init(parsing text: String, all: @autoclosure () -> CPUSet = Topology.current.allowedCPUs) throws(NUMAError) {
        if text.trimmingSpaces == "all" {
            self = all()
        } else {
            mask = try Bitmask.parse(text, kind: "CPU", maximumID: IDSetLimit.maximumID)
        }
    }

    public func contains(_ cpu: Int) -> Bool { mask.contains(cpu) }
    public mutating func insert(_ cpu: Int) { mask.insert(cpu) }
    public var count: Int { mask.count }
    public var isEmpty: Bool { mask.words.isEmpty }
    public var ids: [Int] { mask.ids }
    public var first: Int? { mask.ids.first }
    public func makeIterator() -> IndexingIterator<[Int]> { mask.ids.makeIterator() }
    public func union(_ other: CPUSet) -> CPUSet { CPUSet(mask: mask.combined(other.mask, |)) }
    public func subtracting(_ other: CPUSet) -> CPUSet { CPUSet(mask: mask.combined(other.mask) { $0 & ~$1 }) }
    public func intersection(_ other: CPUSet) -> CPUSet { CPUSet(mask: mask.combined(other.mask, &)) }
    public func isSubset(of other: CPUSet) -> Bool { CPUSet(mask: mask.combined(other.mask) { $0 & ~$1 }).isEmpty }
    public var description: String { mask.list }
    var words: [UInt64] { mask.words }
}

extension CPUSet: Codable {
    public init(from decoder: any Decoder) throws {
        self.init(try decoder.singleValueContainer().decode([Int].self))
    }

    public func encode(to encoder: any Encoder) throws {
        var container = encoder.singleValueContainer()
        try container.encode(ids)
    }
}
