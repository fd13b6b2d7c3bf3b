// Public imports: the pools' fast paths are @inlinable, and they read the thread-local cache
// table (CNuma) and bump relaxed atomic counters (Atomics) in the caller's code.
public import Atomics
import NUMA
public import CNuma
#if canImport(Glibc)
import Glibc
#endif

/// The hot state of one thread's cache for one pool, in memory of its own so that the fast
/// path reaches it through a plain pointer from the thread's cache table (CNuma_thread_cache):
/// no reference counting, no exclusivity checks, no call.
///
/// The first cache line holds the state, which only the owning thread touches; the second holds
/// the counters (see `CacheCounter`), which the owner updates with relaxed atomic loads and
/// stores and a snapshot on another thread reads.
@usableFromInline
struct CacheState {
    /// The pool this cache belongs to (a reused slot may still hold an ended pool's cache).
    @usableFromInline let poolID: UInt64
    /// Blocks in the stack, all from `arena`.
    @usableFromInline var count = 0
    /// Entries below this index are fresh blocks (never handed out).
    @usableFromInline var freshBelow = 0
    /// The address range of `arena` (0 and 0 before first use): the fast path of `deallocate`
    /// checks that a block is the cache's own arena's with one subtraction and one comparison.
    @usableFromInline var arenaBase: UInt = 0
    @usableFromInline var arenaSize: UInt = 0
    @usableFromInline var arenaIndex: Int32 = -1
    /// The CPU (rseq cpu_id) on which `arena` was last found to be the thread's node's arena;
    /// -1 when unknown. While the thread stays on that CPU, `allocate()` needs no CPU table.
    @usableFromInline var cpu: Int32 = -1
    @usableFromInline let blocks: UnsafeMutablePointer<UnsafeMutableRawPointer>
    /// The cache object, for the slow paths; the thread's `ThreadCaches` keeps it alive.
    let owner: Unmanaged<ThreadCache>

    /// The arena whose blocks the stack holds; -1 before first use.
    var arena: Int { Int(arenaIndex) }
}

/// The counters of one thread's cache, by their index on the state's second cache line.
/// Hits are gets − misses.
@usableFromInline
enum CacheCounter: Int, CaseIterable {
    case gets, puts, misses, remoteReturns, fallbacks

    @usableFromInline static var line: Int { 64 }

    /// The counter's atomic cell for the cache whose state is at `state`.
    @inlinable @inline(__always)
    func cell(_ state: UnsafeMutablePointer<CacheState>) -> UnsafeAtomic<UInt64> {
        let counters = UnsafeMutableRawPointer(state) + CacheCounter.line
        return UnsafeAtomic(at: counters.assumingMemoryBound(to: UInt64.AtomicRepresentation.self) + rawValue)
    }

    /// Adds to a counter that only the cache's thread writes: a relaxed load and store, no
    /// read-modify-write.
    @inlinable @inline(__always)
    func bump(_ state: UnsafeMutablePointer<CacheState>, by n: UInt64 = 1) {
        let cell = cell(state)
        cell.store(cell.load(ordering: .relaxed) &+ n, ordering: .relaxed)
    }

    /// Reads the counter from any thread.
    func read(_ state: UnsafeMutablePointer<CacheState>) -> UInt64 {
        cell(state).load(ordering: .relaxed)
    }
}

/// The calling thread's block cache for one `LocalPool`: a bounded stack of blocks that all
/// belong to one arena (the arena of the node the thread last ran on), plus per-arena batches
/// of blocks on their way home, and the thread's counters.
@usableFromInline
final class ThreadCache: @unchecked Sendable {
    // @unchecked: `state` (but for its counters) and `homebound` belong to the owning thread
    // (or to its exit destructor); other threads read only the atomic counters.
    weak var core: LocalPoolCore?
    /// The state and the counters: two cache lines of their own, so that threads never write
    /// to the same line (no false sharing between threads' caches).
    let state: UnsafeMutablePointer<CacheState>
    /// Blocks of other arenas waiting to go home, by arena.
    var homebound: [[UnsafeMutableRawPointer]]

    init(poolID: UInt64, core: LocalPoolCore, capacity: Int, arenas: Int) {
        self.core = core
        precondition(MemoryLayout<CacheState>.size <= CacheCounter.line)
        let block = UnsafeMutableRawPointer.allocate(byteCount: 2 * CacheCounter.line, alignment: CacheCounter.line)
        let stack = UnsafeMutableRawPointer.allocate(byteCount: (capacity * 8 + CacheCounter.line - 1) / CacheCounter.line * CacheCounter.line,
                                                     alignment: CacheCounter.line)
        state = block.bindMemory(to: CacheState.self, capacity: 1)
        let counters = (block + CacheCounter.line).bindMemory(to: UInt64.AtomicRepresentation.self,
                                                              capacity: CacheCounter.allCases.count)
        for counter in CacheCounter.allCases { (counters + counter.rawValue).initialize(to: UInt64.AtomicRepresentation(0)) }
        homebound = Array(repeating: [], count: arenas)
        state.initialize(to: CacheState(poolID: poolID,
                                        blocks: stack.bindMemory(to: UnsafeMutableRawPointer.self, capacity: capacity),
                                        owner: Unmanaged.passUnretained(self)))
    }

    deinit {
        UnsafeMutableRawPointer(state.pointee.blocks).deallocate()
        state.deinitialize(count: 1)
        UnsafeMutableRawPointer(state).deallocate()
    }

    func read(_ counter: CacheCounter) -> UInt64 { counter.read(state) }

    /// Takes the top block, counting a get and, for a fresh block, a miss. The stack must not be empty.
    @inlinable @inline(__always)
    static func pop(_ state: UnsafeMutablePointer<CacheState>) -> UnsafeMutableRawPointer {
        let count = state.pointee.count &- 1
        state.pointee.count = count
        CacheCounter.gets.bump(state)
        if count < state.pointee.freshBelow {
            state.pointee.freshBelow = count
            CacheCounter.misses.bump(state)
        }
        return state.pointee.blocks[count]
    }
}

/// Every thread's caches, one slot per live pool. The fast path finds them through the C
/// thread-local table (CNuma_thread_cache), which points at `slots`; a pthread key holds the
/// object so that when the thread exits its caches go back to their pools
/// (pthread_key_create(3)'s destructor).
///
/// `slots` holds the caches' states without reference counting; `owned` keeps the caches
/// alive. Only the owning thread touches either.
@usableFromInline
final class ThreadCaches {
    private(set) var owned: [ThreadCache?] = []
    private var slots: UnsafeMutablePointer<UnsafeMutableRawPointer?>

    private init() {
        slots = .allocate(capacity: 1)
        slots.initialize(to: nil)
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

    /// The state of the calling thread's cache in `slot` if it belongs to pool `id`, or nil:
    /// a thread-local load, a bounds check and an id check.
    @inlinable @inline(__always)
    static func lookup(slot: Int, id: UInt64) -> UnsafeMutablePointer<CacheState>? {
        guard let raw = CNuma_thread_cache(slot) else { return nil }
        let state = raw.assumingMemoryBound(to: CacheState.self)
        return state.pointee.poolID == id ? state : nil
    }

    /// The calling thread's caches, created on first use.
    static var current: ThreadCaches {
        if let pointer = pthread_getspecific(key) {
            return Unmanaged<ThreadCaches>.fromOpaque(pointer).takeUnretainedValue()
        }
        let caches = ThreadCaches()
        pthread_setspecific(key, Unmanaged.passRetained(caches).toOpaque())
        caches.publish()
        return caches
    }

    /// Points the thread-local table at `slots`.
    private func publish() {
        CNuma_set_thread_caches(UnsafeMutableRawPointer(slots).assumingMemoryBound(to: UnsafeMutableRawPointer?.self),
                                owned.count)
    }

    /// Puts `cache` in `slot`, returning what was there.
    func install(_ cache: ThreadCache, in slot: Int) -> ThreadCache? {
        if slot >= owned.count {
            let oldCount = owned.count, count = slot + 1
            owned.append(contentsOf: repeatElement(nil, count: count - oldCount))
            let grown = UnsafeMutablePointer<UnsafeMutableRawPointer?>.allocate(capacity: count)
            grown.initialize(repeating: nil, count: count)
            grown.update(from: slots, count: oldCount)
            slots.deallocate()
            slots = grown
        }
        let old = owned[slot]
        owned[slot] = cache
        slots[slot] = UnsafeMutableRawPointer(cache.state)
        publish()
        return old
    }

    /// At thread exit: the table is cleared, and each cache goes back to its pool if the pool
    /// still lives.
    private func retire() {
        CNuma_set_thread_caches(nil, 0)
        for case let cache? in owned {
            cache.core?.retire(cache)
        }
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
