import NUMA
#if canImport(Glibc)
import Glibc
#endif
@testable import NUMAPool

let page = PagePlacement.basePageSize

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

/// Whether this process runs under ThreadSanitizer (its runtime is linked in).
let underThreadSanitizer = dlsym(nil, "__tsan_init") != nil  // nil: RTLD_DEFAULT

/// A flag that one thread sets and others poll.
final class StopFlag: Sendable {
    private let state = Locked(false)
    var isSet: Bool { state.withLock { $0 } }
    func set() { state.withLock { $0 = true } }
}
