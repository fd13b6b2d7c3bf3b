// Public import: LocalPool's @inlinable fast paths count with relaxed atomics.
public import Atomics

/// The layout of one thread's cache for one `LocalPool`: plain memory reached from the thread's
/// slot table, so that the fast paths take no reference, no lock and no call.
///
/// - Line 1, what the fast paths read: the stack's depth and capacity, the base address of the
///   cache's arena, the pool's block arithmetic (`BlockGuard`) and free marker, and `limit`,
///   the number of the arena's blocks this cache knows to be carved (blocks past it go to the
///   slow path, which looks again). The pool's constants are copied into every cache so that
///   a fast path reads them as memory operands off the one register that holds the cache
///   (kept in the pool object, a caller's loop spills them). Only the owning thread touches
///   line 1: a trim on another thread, which makes `limit` stale, deactivates the cache's slot
///   entry instead (`CNuma_slot_deactivate`), and the owner's slow path refreshes it.
/// - Line 2, the counters (relaxed atomic stores by the owner; snapshots read them from any
///   thread): gets and puts on every call, misses, fallbacks and remote returns on the slow
///   paths. Hits are gets − misses.
/// - Line 3, slow-path state: the arena index, the run of fresh blocks not yet handed out, and
///   the batches of blocks waiting to go home to other arenas.
/// - Then the stack of blocks (all of the cache's arena, all marked free), and the home batches.
///
/// A slot entry that holds no cache points at `CNuma_empty_state`, whose zeros read as a
/// cache with no blocks, no room and nothing known to be carved: every call takes the slow
/// path.
@usableFromInline
enum BlockCache {
    // Line 1.
    @inlinable static var count: Int { 0 }
    @inlinable static var capacity: Int { 8 }
    @inlinable static var base: Int { 16 }
    @inlinable static var inverse: Int { 24 }
    @inlinable static var limit: Int { 32 }
    @inlinable static var marker: Int { 40 }
    // Line 2.
    @inlinable static var gets: Int { 64 }
    @inlinable static var puts: Int { 72 }
    static var misses: Int { 80 }
    static var fallbacks: Int { 88 }
    static var remoteReturns: Int { 96 }
    // Line 3.
    static var arena: Int { 128 }
    static var freshNext: Int { 136 }
    static var freshEnd: Int { 144 }
    @inlinable static var stack: Int { 192 }

    /// Bytes of a cache with `capacity` stack entries and home batches of `batch` blocks for
    /// each of `arenas` arenas.
    static func size(capacity: Int, arenas: Int, batch: Int) -> Int {
        stack + capacity * 8 + arenas * 8 + arenas * batch * 8
    }

    @inlinable @inline(__always)
    static func atomic(_ cache: UnsafeMutableRawPointer, _ offset: Int) -> UnsafeAtomic<UInt64> {
        UnsafeAtomic(at: (cache + offset).assumingMemoryBound(to: UInt64.AtomicRepresentation.self))
    }

    /// Adds to a counter that only the owning thread writes: a relaxed load and a store (no
    /// read-modify-write), one memory add on x86-64. With `.releasing`, a snapshot that reads
    /// the new value with acquiring ordering also sees every count the thread made before it:
    /// puts and misses are counted so, and read before gets, so that no snapshot shows more
    /// puts or misses than gets.
    @inlinable @inline(__always)
    static func bump(_ cache: UnsafeMutableRawPointer, _ offset: Int, by n: UInt64 = 1) {
        let cell = atomic(cache, offset)
        cell.store(cell.load(ordering: .relaxed) &+ n, ordering: .relaxed)
    }

    @inlinable @inline(__always)
    static func bumpReleasing(_ cache: UnsafeMutableRawPointer, _ offset: Int, by n: UInt64 = 1) {
        let cell = atomic(cache, offset)
        cell.store(cell.load(ordering: .relaxed) &+ n, ordering: .releasing)
    }

    /// Reads a counter from any thread.
    static func read(_ cache: UnsafeMutableRawPointer, _ offset: Int) -> UInt64 {
        atomic(cache, offset).load(ordering: .acquiring)
    }

    @inlinable @inline(__always)
    static func block(_ cache: UnsafeMutableRawPointer, at index: Int) -> UnsafeMutableRawPointer {
        cache.load(fromByteOffset: stack &+ index &* 8, as: UnsafeMutableRawPointer.self)
    }

    @inlinable @inline(__always)
    static func setBlock(_ cache: UnsafeMutableRawPointer, at index: Int, _ block: UnsafeMutableRawPointer) {
        cache.storeBytes(of: block, toByteOffset: stack &+ index &* 8, as: UnsafeMutableRawPointer.self)
    }

    @inline(__always)
    static func int(_ cache: UnsafeMutableRawPointer, _ offset: Int) -> Int { cache.load(fromByteOffset: offset, as: Int.self) }

    @inline(__always)
    static func setInt(_ cache: UnsafeMutableRawPointer, _ offset: Int, _ value: Int) {
        cache.storeBytes(of: value, toByteOffset: offset, as: Int.self)
    }
}
