// Public import: ObjectPool's @inlinable fast paths count with relaxed atomics.
public import Atomics

/// The layout of one thread's cache for one `ObjectPool`, reached from the thread's slot table
/// like `BlockCache`: a bounded stack of idle objects (their blocks) of one partition of the
/// backing pool.
///
/// - Line 1: the stack's depth (read by `idleCount` from any thread, so atomic) and capacity,
///   and the address range of the cache's partition; then the partition's index.
/// - Line 2, counters: gets, puts, misses, escaped, rejected (hits are gets − misses).
/// - Then the stack.
///
/// The empty state's zeros read as a cache with nothing to lend, no room and no range.
@usableFromInline
enum ObjectCache {
    @inlinable static var countOffset: Int { 0 }
    @inlinable static var capacity: Int { 8 }
    @inlinable static var base: Int { 16 }
    @inlinable static var size: Int { 24 }
    static var partition: Int { 32 }
    @inlinable static var gets: Int { 64 }
    @inlinable static var puts: Int { 72 }
    @inlinable static var misses: Int { 80 }
    static var escaped: Int { 88 }
    static var rejected: Int { 96 }
    @inlinable static var stack: Int { 128 }

    static func size(capacity: Int) -> Int { stack + capacity * 8 }

    @inlinable @inline(__always)
    static func atomic(_ cache: UnsafeMutableRawPointer, _ offset: Int) -> UnsafeAtomic<UInt64> {
        UnsafeAtomic(at: (cache + offset).assumingMemoryBound(to: UInt64.AtomicRepresentation.self))
    }

    @inlinable @inline(__always)
    static func count(_ cache: UnsafeMutableRawPointer) -> Int {
        Int(truncatingIfNeeded: atomic(cache, countOffset).load(ordering: .relaxed))
    }

    @inlinable @inline(__always)
    static func setCount(_ cache: UnsafeMutableRawPointer, _ count: Int) {
        atomic(cache, countOffset).store(UInt64(truncatingIfNeeded: count), ordering: .relaxed)
    }

    /// As `BlockCache.bump`.
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

    static func read(_ cache: UnsafeMutableRawPointer, _ offset: Int) -> UInt64 {
        atomic(cache, offset).load(ordering: .acquiring)
    }

    @inlinable @inline(__always)
    static func object(_ cache: UnsafeMutableRawPointer, at index: Int) -> UnsafeMutableRawPointer {
        cache.load(fromByteOffset: stack &+ index &* 8, as: UnsafeMutableRawPointer.self)
    }

    @inlinable @inline(__always)
    static func setObject(_ cache: UnsafeMutableRawPointer, at index: Int, _ object: UnsafeMutableRawPointer) {
        cache.storeBytes(of: object, toByteOffset: stack &+ index &* 8, as: UnsafeMutableRawPointer.self)
    }
}
