import NUMA
@testable import NUMAPool

let page = PagePlacement.basePageSize

/// The node of the page holding `block`.
func nodeOfPage(_ block: UnsafeRawPointer) throws -> Int? {
    try PagePlacement(address: block, length: 1).nodes.first.flatMap { $0 >= 0 ? Int($0) : nil }
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
