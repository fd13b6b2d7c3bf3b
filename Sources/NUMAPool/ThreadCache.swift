import NUMA
import Synchronization
#if canImport(Glibc)
import Glibc
#endif

/// The calling thread's block cache for one `LocalPool`: a bounded stack of blocks that all
/// belong to one arena (the arena of the node the thread last allocated on), plus per-arena
/// batches of blocks on their way home, and the thread's counters.
///
/// Only the owning thread touches the stack and the batches. The counters are atomics that the
/// owner updates with plain relaxed loads and stores (no read-modify-write, nothing shared on
/// the hot path), so that a snapshot on another thread can read them without a race.
final class ThreadCache: @unchecked Sendable {
    // @unchecked: `blocks`, `count`, `freshBelow`, `arena` and `homebound` belong to the owning
    // thread (or to its exit destructor); other threads read only the atomic counters.
    let poolID: UInt64
    weak var core: LocalPoolCore?
    let capacity: Int
    let blocks: UnsafeMutablePointer<UnsafeMutableRawPointer>
    var count = 0
    /// Entries below this index are fresh blocks (never handed out).
    var freshBelow = 0
    /// The arena whose blocks the stack holds; -1 before first use.
    var arena = -1
    /// Blocks of other arenas waiting to go home, by arena.
    var homebound: [[UnsafeMutableRawPointer]]

    let gets = Atomic<UInt64>(0)
    let puts = Atomic<UInt64>(0)
    let hits = Atomic<UInt64>(0)
    let misses = Atomic<UInt64>(0)
    let remoteReturns = Atomic<UInt64>(0)
    let fallbacks = Atomic<UInt64>(0)

    init(poolID: UInt64, core: LocalPoolCore, capacity: Int, arenas: Int) {
        self.poolID = poolID
        self.core = core
        self.capacity = capacity
        blocks = .allocate(capacity: capacity)
        homebound = Array(repeating: [], count: arenas)
    }

    deinit { blocks.deallocate() }

    @inline(__always)
    static func bump(_ counter: borrowing Atomic<UInt64>, by n: UInt64 = 1) {
        counter.store(counter.load(ordering: .relaxed) &+ n, ordering: .relaxed)
    }
}

/// Every thread's caches, one slot per live pool, reached through one pthread key. When the
/// thread exits, its caches go back to their pools (pthread_key_create(3)'s destructor).
final class ThreadCaches {
    var slots: [ThreadCache?] = []

    private static let key: pthread_key_t = {
        var key = pthread_key_t()
        let rc = pthread_key_create(&key) { pointer in
            guard let pointer else { return }
            Unmanaged<ThreadCaches>.fromOpaque(pointer).takeRetainedValue().retire()
        }
        precondition(rc == 0, "pthread_key_create failed: \(rc)")
        return key
    }()

    /// The calling thread's caches, created on first use.
    @inline(__always)
    static var current: ThreadCaches {
        if let pointer = pthread_getspecific(key) {
            return Unmanaged<ThreadCaches>.fromOpaque(pointer).takeUnretainedValue()
        }
        let caches = ThreadCaches()
        pthread_setspecific(key, Unmanaged.passRetained(caches).toOpaque())
        return caches
    }

    /// At thread exit: each cache goes back to its pool, if the pool still lives.
    private func retire() {
        for case let cache? in slots {
            cache.core?.retire(cache)
        }
        slots.removeAll()
    }
}

/// Slots for pools in every thread's `ThreadCaches`: reused after a pool ends; a cache left in
/// a reused slot is recognised by its pool id and replaced.
enum PoolSlots {
    private static let state = Locked<(next: UInt64, free: [Int], count: Int)>((1, [], 0))

    static func claim() -> (id: UInt64, slot: Int) {
        state.withLock { state in
            let id = state.next
            state.next += 1
            if let slot = state.free.popLast() { return (id, slot) }
            state.count += 1
            return (id, state.count - 1)
        }
    }

    static func release(_ slot: Int) {
        state.withLock { $0.free.append(slot) }
    }
}
