#if canImport(Glibc)
import Glibc
#endif
/// The shared storage of `NodeSet` and `CPUSet`: a bitmask of small non-negative ids in
/// 64-bit words, with no upper limit of its own, and numactl's list syntax. Parsing refuses ids
/// above the limit it is given (`IDSetLimit.maximumID` for nodes and CPUs).
@usableFromInline
struct Bitmask: Hashable, Sendable {
    @usableFromInline var words: [UInt64] = []

    @inlinable init() {}

    init<S: Sequence<Int>>(_ ids: S) {
        for id in ids { insert(id) }
    }

    init(words: [UInt64]) {
        self.words = words
        trim()
    }

    @inlinable func contains(_ id: Int) -> Bool {
        guard id >= 0 else { return false }
        let word = id >> 6
        return word < words.count && words[word] & (1 << UInt64(id & 63)) != 0
    }

    mutating func insert(_ id: Int) {
        precondition(id >= 0, "ids are non-negative")
        let word = id >> 6
        if word >= words.count { words.append(contentsOf: repeatElement(0, count: word - words.count + 1)) }
        words[word] |= 1 << UInt64(id & 63)
    }

    mutating func remove(_ id: Int) {
        guard contains(id) else { return }
        words[id >> 6] &= ~(1 << UInt64(id & 63))
        trim()
    }

    private mutating func trim() {
        while let last = words.last, last == 0 { words.removeLast() }
    }

    var count: Int { words.reduce(0) { $0 + $1.nonzeroBitCount } }

    var ids: [Int] {
        var result: [Int] = []
        for (index, word) in words.enumerated() {
            var bits = word
            while bits != 0 {
                let bit = bits.trailingZeroBitCount
                result.append(index * 64 + bit)
                bits &= bits - 1
            }
        }
        return result
    }

    func combined(_ other: Bitmask, _ op: (UInt64, UInt64) -> UInt64) -> Bitmask {
        let n = max(words.count, other.words.count)
        var out = [UInt64](repeating: 0, count: n)
        for i in 0..<n {
            out[i] = op(i < words.count ? words[i] : 0, i < other.words.count ? other.words[i] : 0)
        }
        return Bitmask(words: out)
    }

    /// numactl's compact list: `0-3,5,8-9`.
    var list: String {
        var parts: [String] = []
        var runStart: Int?
        var previous = -2
        for id in ids {
            if id == previous + 1 {
                previous = id
                continue
            }
            if let start = runStart { parts.append(start == previous ? "\(start)" : "\(start)-\(previous)") }
            runStart = id
            previous = id
        }
        if let start = runStart { parts.append(start == previous ? "\(start)" : "\(start)-\(previous)") }
        return parts.joined(separator: ",")
    }

    /// Parses `0`, `0,2`, `1-3` and combinations; `all` is resolved by the caller.
    /// Throws a `NUMAError` whose message names the bad part.
    static func parse(_ text: String, kind: String, maximumID: Int) throws(NUMAError) -> Bitmask {
        func refuse(_ why: String) -> NUMAError {
            NUMAError(operation: "parse \(kind) list", errno: EINVAL, message: "invalid \(kind) list '\(text)': \(why)")
        }
        let trimmed = text.trimmingSpaces
        guard !trimmed.isEmpty else { throw refuse("it is empty") }
        var mask = Bitmask()
        for part in trimmed.split(separator: ",", omittingEmptySubsequences: false) {
            guard !part.isEmpty else { throw refuse("empty element") }
            let bounds = part.split(separator: "-", omittingEmptySubsequences: false)
            guard bounds.count <= 2 else { throw refuse("'\(part)' is not an id or a range") }
            var numbers: [Int] = []
            for bound in bounds {
                guard !bound.isEmpty, bound.allSatisfy(\.isASCIIDigit), let value = Int(bound) else {
                    throw refuse("'\(part)' is not an id or a range")
                }
                guard value <= maximumID else { throw refuse("\(value) is larger than \(maximumID)") }
                numbers.append(value)
            }
            let low = numbers[0], high = numbers.last!
            guard low <= high else { throw refuse("range '\(part)' runs backwards") }
            for id in low...high { mask.insert(id) }
        }
        return mask
    }
}

extension Character {
    var isASCIIDigit: Bool { isASCII && isNumber }
}

extension String {
    var trimmingSpaces: String {
        String(drop(while: { $0 == " " }).reversed().drop(while: { $0 == " " }).reversed())
    }
}

/// Bounds on ids in parsed lists, to refuse absurd input before allocating for it.
public enum IDSetLimit {
    /// Linux's largest NODES_SHIFT and NR_CPUS configurations stay below this.
    public static let maximumID = 8191
}
