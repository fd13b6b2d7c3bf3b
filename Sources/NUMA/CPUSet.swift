/// A set of CPU ids with no 64-CPU limit, in numactl's list syntax like `NodeSet`.
public struct CPUSet: Hashable, Sendable, Sequence, CustomStringConvertible, ExpressibleByArrayLiteral {
    var mask: Bitmask

    /// The empty set.
    public init() { mask = Bitmask() }
    /// The set of `cpus`; an id may appear more than once. Traps on a negative id.
    public init<S: Sequence<Int>>(_ cpus: S) { mask = Bitmask(cpus) }
    /// The set of the listed CPUs, as in `[0, 1]`. Traps on a negative id.
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

    /// Whether `cpu` is in the set; false for a negative id.
    public func contains(_ cpu: Int) -> Bool { mask.contains(cpu) }
    /// Adds `cpu`. Traps on a negative id.
    public mutating func insert(_ cpu: Int) { mask.insert(cpu) }
    /// The number of CPUs in the set.
    public var count: Int { mask.count }
    /// Whether the set has no CPU.
    public var isEmpty: Bool { mask.words.isEmpty }
    /// The CPU ids in ascending order.
    public var ids: [Int] { mask.ids }
    /// The lowest CPU id, or nil for the empty set.
    public var first: Int? { mask.ids.first }
    /// Iterates over the CPU ids in ascending order.
    public func makeIterator() -> IndexingIterator<[Int]> { mask.ids.makeIterator() }
    /// The CPUs in either set.
    public func union(_ other: CPUSet) -> CPUSet { CPUSet(mask: mask.combined(other.mask, |)) }
    /// The CPUs of this set that are not in `other`.
    public func subtracting(_ other: CPUSet) -> CPUSet { CPUSet(mask: mask.combined(other.mask) { $0 & ~$1 }) }
    /// The CPUs in both sets.
    public func intersection(_ other: CPUSet) -> CPUSet { CPUSet(mask: mask.combined(other.mask, &)) }
    /// Whether every CPU of this set is in `other`.
    public func isSubset(of other: CPUSet) -> Bool { CPUSet(mask: mask.combined(other.mask) { $0 & ~$1 }).isEmpty }
    /// The list form, such as `0-3,8`; empty for the empty set.
    public var description: String { mask.list }
    var words: [UInt64] { mask.words }
}

/// A CPU set is coded as an array of its ids, such as `[0, 1, 2]`.
extension CPUSet: Codable {
    /// Decodes a set from an array of CPU ids.
    public init(from decoder: any Decoder) throws {
        self.init(try decoder.singleValueContainer().decode([Int].self))
    }

    /// Encodes the set as its CPU ids in ascending order.
    public func encode(to encoder: any Encoder) throws {
        var container = encoder.singleValueContainer()
        try container.encode(ids)
    }
}
