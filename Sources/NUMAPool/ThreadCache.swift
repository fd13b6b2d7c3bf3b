internal import Atomics
import NUMA
#if canImport(Glibc)
import Glibc
#endif

/// The hot state of one thread's cache for one pool, in memory of its own so that the fast
/// path reaches it through a plain pointer: no reference counting, no exclusivity checks.
struct CacheState {
    /// Blocks in the stack, all from `arena`.
    var count = 0
    /// Entries below this index are fresh blocks (never handed out).
    var freshBelow = 0
    /// The arena whose blocks the stack holds; -1 before first use.
    var arena = -1
    let capacity: Int
    let blocks: UnsafeMutablePointer<UnsafeMutableRawPointer>
}

/// The calling thread's block cache for one `LocalPool`: a bounded stack of blocks that all
/// belong to one arena (the arena of the node the thread last ran on), plus per-arena batches
/// of blocks on their way home, and the thread's counters.
///
/// Only the owning thread touches the state and the batches. The counters are atomics that the
/// owner updates with relaxed loads and stores (no read-modify-write, nothing shared on the hot
/// path), so that a snapshot on another thread reads them without a race.
final class ThreadCache: @unchecked Sendable {
    // @unchecked: `state` and `homebound` belong to the owning thread (or to its exit
    // destructor); other threads read only the atomic counters.
    let poolID: UInt64
    weak var core: LocalPoolCore?
    /// The hot state and the counters share one block of two cache lines of their own, so that
    /// threads never write to the same line (no false sharing between threads' caches).
    let state: UnsafeMutablePointer<CacheState>
    private let block: UnsafeMutableRawPointer
    /// Blocks of other arenas waiting to go home, by arena.
    var homebound: [[UnsafeMutableRawPointer]]

    let gets: UnsafeAtomic<UInt64>
    let puts: UnsafeAtomic<UInt64>
    let misses: UnsafeAtomic<UInt64>
    let remoteReturns: UnsafeAtomic<UInt64>
    let fallbacks: UnsafeAtomic<UInt64>

    private static let line = 64

    init(poolID: UInt64, core: LocalPoolCore, capacity: Int, arenas: Int) {
        self.poolID = poolID
        self.core = core
        precondition(MemoryLayout<CacheState>.size <= Self.line)
        block = .allocate(byteCount: 2 * Self.line, alignment: Self.line)
        let stack = UnsafeMutableRawPointer.allocate(byteCount: (capacity * 8 + Self.line - 1) / Self.line * Self.line,
                                                     alignment: Self.line)
        state = block.bindMemory(to: CacheState.self, capacity: 1)
        state.initialize(to: CacheState(capacity: capacity, blocks: stack.bindMemory(to: UnsafeMutableRawPointer.self, capacity: capacity)))
        let counters = (block + Self.line).bindMemory(to: UInt64.AtomicRepresentation.self, capacity: 6)
        for i in 0..<6 { (counters + i).initialize(to: UInt64.AtomicRepresentation(0)) }
        gets = UnsafeAtomic(at: counters)
        puts = UnsafeAtomic(at: counters + 1)
        misses = UnsafeAtomic(at: counters + 3)
        remoteReturns = UnsafeAtomic(at: counters + 4)
        fallbacks = UnsafeAtomic(at: counters + 5)
        homebound = Array(repeating: [], count: arenas)
    }

    deinit {
        UnsafeMutableRawPointer(state.pointee.blocks).deallocate()
        state.deinitialize(count: 1)
        block.deallocate()
    }

    /// Adds to a counter that only this cache's thread writes: a relaxed load and store.
    @inline(__always)
    static func bump(_ counter: UnsafeAtomic<UInt64>, by n: UInt64 = 1) {
        counter.store(counter.load(ordering: .relaxed) &+ n, ordering: .relaxed)
    }

    /// Takes the top block, counting a get and, for a fresh block, a miss. The stack must not be empty.
    @inline(__always)
    func pop() -> UnsafeMutableRawPointer {
        let state = self.state
        state.pointee.count -= 1
        let count = state.pointee.count
        ThreadCache.bump(gets)
        if count < state.pointee.freshBelow {  // hits are gets − misses
            state.pointee.freshBelow = count
            ThreadCache.bump(misses)
        }
        return state.pointee.blocks[count]
    }
}

/// Every thread's caches, one slot per live pool, reached through one pthread key. When the
/// thread exits, its caches go back to their pools (pthread_key_create(3)'s destructor).
///
/// `slots` holds the caches without reference counting for the fast path; `owned` keeps them
/// alive. Only the owning thread touches either.
final class ThreadCaches {
    private(set) var owned: [ThreadCache?] = []
    @exclusivity(unchecked) private(set) var slots: UnsafeMutablePointer<Unmanaged<ThreadCache>?>
    @exclusivity(unchecked) private(set) var slotCount = 0

    init() {
        slots = .allocate(capacity: 1)
    }

    deinit {
        slots.deallocate()
    }

    /// The key, created once for the process.
    static let key: pthread_key_t = {
        var key = pthread_key_t()
        let rc = pthread_key_create(&key) { pointer in
            guard let pointer else { return }
            Unmanaged<ThreadCaches>.fromOpaque(pointer).takeRetainedValue().retire()
        }
        precondition(rc == 0, "pthread_key_create failed: \(rc)")
        return key
    }()

    /// The calling thread's cache for pool `id` in `slot`, or nil; no reference counting.
    @inline(__always)
    static func lookup(key: pthread_key_t, slot: Int, id: UInt64) -> Unmanaged<ThreadCache>? {
        guard let pointer = pthread_getspecific(key) else { return nil }
        return Unmanaged<ThreadCaches>.fromOpaque(pointer)._withUnsafeGuaranteedRef { caches in
            guard slot < caches.slotCount, let cache = caches.slots[slot],
                  cache._withUnsafeGuaranteedRef({ $0.poolID == id }) else { return nil }
            return cache
        }
    }

    /// The calling thread's caches, created on first use.
    static var current: ThreadCaches {
        if let pointer = pthread_getspecific(key) {
            return Unmanaged<ThreadCaches>.fromOpaque(pointer).takeUnretainedValue()
        }
        let caches = ThreadCaches()
        pthread_setspecific(key, Unmanaged.passRetained(caches).toOpaque())
        return caches
    }

    /// Puts `cache` in `slot`, returning what was there.
    func install(_ cache: ThreadCache, in slot: Int) -> ThreadCache? {
        if slot >= owned.count {
            owned.append(contentsOf: repeatElement(nil, count: slot - owned.count + 1))
            let grown = UnsafeMutablePointer<Unmanaged<ThreadCache>?>.allocate(capacity: owned.count)
            grown.initialize(repeating: nil, count: owned.count)
            grown.update(from: slots, count: slotCount)
            slots.deallocate()
            slots = grown
            slotCount = owned.count
        }
        let old = owned[slot]
        owned[slot] = cache
        slots[slot] = Unmanaged.passUnretained(cache)
        return old
    }

    /// At thread exit: each cache goes back to its pool, if the pool still lives.
    private func retire() {
        for case let cache? in owned {
            cache.core?.retire(cache)
        }
        for slot in 0..<slotCount { slots[slot] = nil }
        owned.removeAll()
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
