import NUMA
@testable import NUMAPool

let page = PagePlacement.basePageSize

/// The node of the page holding `block`.
func nodeOfPage(_ block: UnsafeRawPointer) throws -> Int? {
    try PagePlacement(address: block, length: 1).nodes.first.flatMap { $0 >= 0 ? Int($0) : nil }
}

/// A small deterministic generator (SplitMix64), so that a failing stress run can be replayed.
struct SplitMix: RandomNumberGenerator {
    var state: UInt64
    mutating func next() -> UInt64 {
        state &+= 0x9E37_79B9_7F4A_7C15
        var z = state
        z = (z ^ (z >> 30)) &* 0xBF58_476D_1CE4_E5B9
        z = (z ^ (z >> 27)) &* 0x94D0_49BB_1331_11EB
        return z ^ (z >> 31)
    }
}

/// Every address handed out and not yet returned, across threads.
final class LiveSet: Sendable {
    private let state = Locked<Set<UInt>>([])

    /// False when the address was already live: a block handed out twice.
    func insert(_ block: UnsafeMutableRawPointer) -> Bool {
        state.withLock { $0.insert(UInt(bitPattern: block)).inserted }
    }

    func remove(_ block: UnsafeMutableRawPointer) -> Bool {
        state.withLock { $0.remove(UInt(bitPattern: block)) != nil }
    }

    var count: Int { state.withLock { $0.count } }
}
