// Public import: the pools' @inlinable fast paths count with relaxed atomics.
public import Atomics
import NUMA

/// Line 1 of a thread's cache: what the fast paths read. Only the owning thread writes it.
///
/// - `LocalPool` (one cache per thread): `base`, `inverse` and `marker` are the arena's block
///   arithmetic (`BlockGuard`), `limit` the blocks of the arena the cache knows to be carved
///   (blocks past it go to the slow path, which looks again).
/// - `ObjectPool`: `base` and `limit` are the address range (start, length in bytes) of the
///   partition whose objects the cache holds; `count` is read by other threads (`idleCount`),
///   so the object pool reads and writes it as a relaxed atomic (`sharedCount`).
/// - `NUMAHeap` (one cache per size class): `base` is unused, `limit` the blocks in a chunk,
///   `inverse` and `marker` the class's block arithmetic.
///
/// The pool's constants are copied into every cache so that a fast path reads them as memory
/// operands off the one register that holds the cache.
@frozen @usableFromInline
struct CacheHead {
    /// Blocks on the stack.
    @usableFromInline var count: Int
    /// The most blocks the stack may hold.
    @usableFromInline var capacity: Int
    @usableFromInline var base: UInt
    @usableFromInline var inverse: UInt64
    @usableFromInline var limit: UInt64
    @usableFromInline var marker: UInt64
    /// The arena or partition whose blocks the cache holds, or -1 before it has one (slow paths).
    @usableFromInline var home: Int
    /// The heap's flush epoch this cache last honoured (slow paths).
    @usableFromInline var epoch: UInt64
}

/// The counters of line 2, in order. The owner counts with relaxed stores (no read-modify-write);
/// snapshots read them from any thread.
@usableFromInline
enum CacheCounter: Int, CaseIterable, Sendable {
    case gets, puts, misses, fallbacks, remoteReturns, escaped, rejected, flushes

    /// When a snapshot reads this counter: puts and what is counted with them first, then
    /// misses and the like, gets last. Each thread counts a put or a miss after the get it
    /// follows, with release ordering, so a snapshot read in this order never shows more puts
    /// or misses than gets.
    var readPhase: Int {
        switch self {
        case .puts, .remoteReturns, .escaped, .flushes: 0
        case .misses, .fallbacks, .rejected: 1
        case .gets: 2
        }
    }
}

/// Line 2 of a thread's cache: one atomic word per `CacheCounter`.
@frozen @usableFromInline
struct CacheCounters {
    @usableFromInline var words: (UInt64, UInt64, UInt64, UInt64, UInt64, UInt64, UInt64, UInt64)
}

/// One thread's cache for one pool (or one size class of the heap): plain memory reached from
/// the thread's slot table, so that the fast paths take no reference, no lock and no call.
///
/// The layout: `CacheHead` (one cache line), `CacheCounters` (one line), then the stack of
/// blocks (`capacity` entries), then bytes of the owner's own slow-path state (`LocalPool`'s
/// fresh run and home batches). A slot entry that holds no cache points at
/// `CNuma_empty_state`, whose zeros read as a cache with no blocks, no room and nothing known
/// to be carved: every call takes the slow path.
@frozen @usableFromInline
struct ThreadCache: Hashable, @unchecked Sendable {
    // @unchecked: a cache's memory belongs to its thread, but for its counters and (object
    // pools) its count, which other threads read atomically, and for retire and write-off,
    // which run when the thread cannot touch it. The value is an address, passed to those.
    @usableFromInline let raw: UnsafeMutableRawPointer

    @inlinable @inline(__always)
    init(_ raw: UnsafeMutableRawPointer) { self.raw = raw }

    /// Bytes before the stack: the head line and the counter line.
    @inlinable static var stackOffset: Int { 128 }

    /// Bytes of a cache whose stack holds `capacity` blocks, with `extra` bytes after it.
    static func size(capacity: Int, extra: Int = 0) -> Int { stackOffset + capacity * 8 + extra }

    /// Sets up a cache in `memory` (at least `size(capacity:extra:)` bytes, zeroed): its
    /// lines bound to their types, `capacity` set, no home yet.
    static func initialize(_ memory: UnsafeMutableRawPointer, capacity: Int) -> ThreadCache {
        let head = memory.bindMemory(to: CacheHead.self, capacity: 1)
        head.initialize(to: CacheHead(count: 0, capacity: capacity, base: 0, inverse: 0, limit: 0, marker: 0, home: -1,
                                      epoch: 0))
        (memory + MemoryLayout<CacheHead>.stride).bindMemory(to: UInt64.AtomicRepresentation.self,
                                                             capacity: CacheCounter.allCases.count)
        (memory + stackOffset).bindMemory(to: UnsafeMutableRawPointer.self, capacity: capacity)
        return ThreadCache(memory)
    }

    /// A cache of its own allocation (64-byte aligned, zeroed); `free()` gives it back.
    static func make(capacity: Int, extra: Int = 0) -> ThreadCache {
        let bytes = size(capacity: capacity, extra: extra)
        let memory = UnsafeMutableRawPointer.allocate(byteCount: bytes, alignment: 64)
        memory.initializeMemory(as: UInt8.self, repeating: 0, count: bytes)
        return initialize(memory, capacity: capacity)
    }

    func free() { raw.deallocate() }

    @inlinable
    var head: UnsafeMutablePointer<CacheHead> {
        @inline(__always) get { raw.assumingMemoryBound(to: CacheHead.self) }
    }

    @inlinable
    var stack: UnsafeMutablePointer<UnsafeMutableRawPointer> {
        @inline(__always) get { (raw + Self.stackOffset).assumingMemoryBound(to: UnsafeMutableRawPointer.self) }
    }

    /// The bytes after a stack of `capacity` entries: the owner's slow-path state.
    func extra(capacity: Int) -> UnsafeMutableRawPointer { raw + Self.stackOffset + capacity * 8 }

    @inlinable @inline(__always)
    func counter(_ counter: CacheCounter) -> UnsafeAtomic<UInt64> {
        UnsafeAtomic(at: (raw + MemoryLayout<CacheHead>.stride).assumingMemoryBound(to: UInt64.AtomicRepresentation.self)
            + counter.rawValue)
    }

    /// Adds to a counter that only the owning thread writes: a relaxed load and a store (no
    /// read-modify-write), one memory add on x86-64.
    @inlinable @inline(__always)
    func bump(_ counter: CacheCounter, by n: UInt64 = 1) {
        let cell = self.counter(counter)
        cell.store(cell.load(ordering: .relaxed) &+ n, ordering: .relaxed)
    }

    /// As `bump`, with release ordering: a snapshot that reads the new value with acquiring
    /// ordering also sees every count the thread made before it (see `CacheCounter.readPhase`).
    @inlinable @inline(__always)
    func bumpReleasing(_ counter: CacheCounter, by n: UInt64 = 1) {
        let cell = self.counter(counter)
        cell.store(cell.load(ordering: .relaxed) &+ n, ordering: .releasing)
    }

    /// Reads a counter from any thread.
    func read(_ counter: CacheCounter) -> UInt64 { self.counter(counter).load(ordering: .acquiring) }

    /// The stack's depth as other threads may read it (`ObjectPool`): a relaxed atomic word,
    /// a plain load or store on x86-64.
    @inlinable
    var sharedCount: Int {
        @inline(__always) get { atomicCount.load(ordering: .relaxed) }
        @inline(__always) nonmutating set { atomicCount.store(newValue, ordering: .relaxed) }
    }

    @inlinable
    var atomicCount: UnsafeAtomic<Int> {
        @inline(__always) get {
            UnsafeAtomic(at: UnsafeMutableRawPointer(head).assumingMemoryBound(to: Int.AtomicRepresentation.self))
        }
    }
}

/// Counts of every `CacheCounter`, summed over caches.
struct CacheTotals: Sendable, Equatable {
    private var values = [UInt64](repeating: 0, count: CacheCounter.allCases.count)

    subscript(counter: CacheCounter) -> UInt64 {
        get { values[counter.rawValue] }
        set { values[counter.rawValue] = newValue }
    }

    /// Adds every counter of `cache`.
    mutating func add(_ cache: ThreadCache) {
        for counter in CacheCounter.allCases { self[counter] &+= cache.read(counter) }
    }

    mutating func add(_ other: CacheTotals) {
        for counter in CacheCounter.allCases { self[counter] &+= other[counter] }
    }
}

/// The thread caches of one pool or heap: which are live, grouped (the heap groups its caches
/// by size class; the pools use one group), and the counts of those whose threads ended.
/// Snapshots, retire and write-off go through it. Its lock is made before the owner's other
/// locks, and is taken first where both are held.
final class CacheRegistry: Sendable {
    private let state = Locked(State())

    private struct State {
        var caches: [ThreadCache: Int] = [:]
        /// By group, the counters of caches whose threads ended or were written off.
        var retired: [Int: CacheTotals] = [:]
        /// Blocks (or objects) written off: held by threads that a fork did not copy.
        var writtenOff: UInt64 = 0
    }

    /// Adds a live cache to `group`.
    func insert(_ cache: ThreadCache, group: Int = 0) {
        state.withLock { $0.caches[cache] = group }
    }

    /// `cache`'s thread ended (or did not survive a fork, with `writtenOff` blocks lost): its
    /// counts join the retired totals and it leaves the registry. The caller frees it after.
    func remove(_ cache: ThreadCache, writtenOff: Int = 0) {
        state.withLock { state in
            guard let group = state.caches.removeValue(forKey: cache) else { return }
            state.retired[group, default: CacheTotals()].add(cache)
            state.writtenOff += UInt64(writtenOff)
        }
    }

    /// Every live cache, taken out of the registry (the owner's end).
    func removeAll() -> [ThreadCache] {
        state.withLock { state in
            defer { state.caches.removeAll() }
            return Array(state.caches.keys)
        }
    }

    /// Calls `body` for every live cache, with the registry locked, so that no cache is freed
    /// meanwhile.
    func forEach(_ body: (ThreadCache, Int) -> Void) {
        state.withLock { state in
            for (cache, group) in state.caches { body(cache, group) }
        }
    }

    /// The counters of every cache, live and retired, by group, read in `readPhase` order.
    func totals() -> (byGroup: [Int: CacheTotals], writtenOff: UInt64) {
        state.withLock { state in
            var byGroup = state.retired
            for phase in 0...2 {
                for (cache, group) in state.caches {
                    for counter in CacheCounter.allCases where counter.readPhase == phase {
                        byGroup[group, default: CacheTotals()][counter] &+= cache.read(counter)
                    }
                }
            }
            return (byGroup, state.writtenOff)
        }
    }

    /// The counters of every cache, live and retired, summed over groups.
    func total() -> (CacheTotals, writtenOff: UInt64) {
        let (byGroup, writtenOff) = totals()
        var sum = CacheTotals()
        for totals in byGroup.values { sum.add(totals) }
        return (sum, writtenOff)
    }
}
