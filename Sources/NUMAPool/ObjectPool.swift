// Public: the inlined fast paths read the thread's slot table (CNuma).
public import CNuma
import NUMA

/// A typed pool of reusable objects, stored in the blocks of a `BlockPool` of either strategy.
///
/// Each thread keeps a small cache of idle objects (a `ThreadCache`) of one partition of the
/// backing pool (its node's, for a `LocalPool`), reached like `LocalPool`'s block cache: a
/// lease or a return that the cache can serve takes no lock. Behind the caches, idle objects
/// are kept per partition, so a lease reuses an object of the calling thread's node and a
/// returned object goes back to its own node's list: reuse keeps the backing pool's locality.
///
/// It is built so that the usual ways of misusing a pool cannot happen or are caught:
/// - Using an object after giving it back: a `Lease` is `~Copyable`, `release()` consumes it and
///   its `deinit` returns the object, so a use after release or a second release does not
///   compile.
/// - Reuse without reset: `reset` is required and runs on every return.
/// - Mixing types: the pool is generic over one `Object` type.
/// - A factory that fails with nil: the factory returns a non-optional `Object`.
/// - Unsynchronised sharing: the pool is `Sendable`; an object has one owner at a time.
/// - Returning a broken object: `validate`, if given, runs before reuse; rejected objects are
///   dropped and counted.
/// - Keeping a reference after return: a class object still referenced elsewhere when it comes
///   back (`isKnownUniquelyReferenced`, checked before anything else) is dropped untouched (no
///   reset) and counted as escaped, never reused.
/// - A lease that outlives its pool: a lease holds the pool without counting a reference (that
///   would cost two atomic operations per lease), so the pool must outlive its leases; a pool
///   that ends while leases are out stops the program with a message, as a collection would
///   for an index it never gave.
public final class ObjectPool<Object>: @unchecked Sendable {
    // @unchecked: `Object` need not be Sendable. An object moves between threads only through
    // a partition's lock or a lease, and a lease gives one thread sole use of it, so each
    // object has one owner at a time (the transfer that `sending` describes); escaped class
    // objects are never reused. The stored closures are @Sendable.
    @usableFromInline let core: ObjectPoolCore
    /// This pool's entry in every thread's slot table.
    @usableFromInline let slot: Int
    @usableFromInline let reset: @Sendable (inout Object) -> Void
    @usableFromInline let validate: (@Sendable (borrowing Object) -> Bool)?
    @usableFromInline let factory: @Sendable () -> Object
    /// Whether `Object` is a class, whose escapes are checked on return; decided once, since
    /// the dynamic cast costs more than the rest of a return.
    @usableFromInline let isClass: Bool

    /// The most objects a thread's cache may hold.
    public static var maximumCacheCapacity: Int { 1 << 16 }

    /// Creates a pool whose objects live in the blocks of `backing`, and claims the pool's entry
    /// in the threads' slot tables. Throws `PoolError.invalidArgument` when an `Object` does not
    /// fit a block (or needs an alignment over 16) or an argument is out of range, and
    /// `PoolError.tooManyPools` when every slot is taken.
    ///
    /// - Parameters:
    ///   - backing: where objects live; its block size must hold one `Object`.
    ///   - maxIdle: idle objects kept for reuse per partition of `backing`, behind the threads'
    ///     caches; more are destroyed on return.
    ///   - cacheCapacity: idle objects each thread keeps (1 to `maximumCacheCapacity`).
    ///   - factory: makes a fresh object.
    ///   - reset: clears an object's state; runs on every return of an object not escaped.
    ///   - validate: checks an idle object before reuse; false drops it.
    public init(backing: any BlockPool, maxIdle: Int = 1024, cacheCapacity: Int = 64,
                factory: @escaping @Sendable () -> Object,
                reset: @escaping @Sendable (inout Object) -> Void,
                validate: (@Sendable (borrowing Object) -> Bool)? = nil) throws(PoolError) {
        guard MemoryLayout<Object>.stride <= backing.blockSize, MemoryLayout<Object>.alignment <= 16 else {
            throw .invalidArgument("\(Object.self) (\(MemoryLayout<Object>.stride) bytes) does not fit the backing pool's \(backing.blockSize)-byte blocks")
        }
        guard maxIdle >= 0 else { throw .invalidArgument("maxIdle must not be negative, got \(maxIdle)") }
        guard cacheCapacity >= 1 && cacheCapacity <= Self.maximumCacheCapacity else {
            throw .invalidArgument("cache capacity must be between 1 and \(Self.maximumCacheCapacity), got \(cacheCapacity)")
        }
        self.factory = factory
        self.reset = reset
        self.validate = validate
        isClass = Object.self is AnyObject.Type
        let core = ObjectPoolCore(backing: backing, maxIdle: maxIdle, cacheCapacity: cacheCapacity) { raw in
            raw.assumingMemoryBound(to: Object.self).deinitialize(count: 1)
            backing.deallocate(raw)
        }
        self.core = core
        slot = try ThreadSlots.claim(core)
        core.slot = slot
    }

    deinit {
        let core = self.core
        let outstanding = core.outstanding()
        if outstanding > 0 {
            fatalError("ObjectPool<\(Object.self)> ends while \(outstanding) lease(s) are still out: a pool must outlive its leases")
        }
        _ = ThreadSlots.release(slot)
    }

    /// Lends an object: a reused one of the calling thread's partition that passes validation,
    /// or a fresh one from the factory. The fast path, inlined into the caller, pops the
    /// thread's cache.
    @inlinable @inline(__always)
    public func lease() throws(PoolError) -> Lease<Object> {
        let cache = ThreadCache(CNuma_slot(slot))
        let count = cache.sharedCount
        if _fastPath(count != 0 && validate == nil) {
            let top = count &- 1
            cache.sharedCount = top
            let object = cache.stack[top]
            cache.bump(.gets)
            return Lease(pool: self, slot: object.assumingMemoryBound(to: Object.self))
        }
        return try leaseSlow()
    }

    @usableFromInline @inline(never)
    func leaseSlow() throws(PoolError) -> Lease<Object> {
        ThreadSlots.enter()
        defer { ThreadSlots.leave() }
        let cache = core.prepareLease()
        while let object = core.popIdle(cache) {
            let slot = object.assumingMemoryBound(to: Object.self)
            if let validate, !validate(slot.pointee) {
                core.reject(cache, object)
                continue
            }
            cache.bump(.gets)
            return Lease(pool: self, slot: slot)
        }
        let block = try core.backing.allocate()
        let slot = block.bindMemory(to: Object.self, capacity: 1)
        slot.initialize(to: factory())
        cache.bump(.gets)
        cache.bumpReleasing(.misses)
        return Lease(pool: self, slot: slot)
    }

    /// Lends an object for the length of `body`, then takes it back.
    public func withObject<R>(_ body: (inout Object) throws -> R) throws -> R {
        let lease = try lease()
        return try body(&lease.slot.pointee)
    }

    /// Counts of this pool (gets, puts, hits, misses, escaped, rejected, written off), merged
    /// over its threads, and, for bytes and the per-node split, of the backing pool.
    public func statistics() -> PoolStatistics { core.statistics() }

    /// The node whose memory holds the leased object: its block's home in the backing pool.
    public func homeNode(of lease: borrowing Lease<Object>) -> Int? {
        core.backing.homeNode(of: UnsafeRawPointer(lease.slot))
    }

    /// Gives the calling thread's idle objects, and those of threads parked now (blocked in a
    /// system call), to their partitions' lists; what a list holds over `maxIdle` is destroyed.
    public func trim() { core.trim() }

    /// Objects idle in the pool now, in the threads' caches and the partitions' lists.
    public var idleCount: Int { core.idleCount() }

    /// A returned object: an escaped class object is dropped untouched; anything else is
    /// reset, then kept by the thread's cache if it is of the cache's partition and the cache
    /// has room (the fast path), or else by its partition's list.
    @inlinable @inline(__always)
    func put(_ object: UnsafeMutablePointer<Object>) {
        let raw = UnsafeMutableRawPointer(object)
        if isClass {
            // The slot holds one strong reference; its count is read through a stand-in class
            // type, without opening an existential (which would retain it).
            let unique = raw.withMemoryRebound(to: UniquenessProbe.self, capacity: 1) {
                isKnownUniquelyReferenced(&$0.pointee)
            }
            if !unique { return core.escape(raw) }
        }
        reset(&object.pointee)
        let cache = ThreadCache(CNuma_slot(slot))
        let head = cache.head
        let count = cache.sharedCount
        if _fastPath(UInt(bitPattern: raw) &- head.pointee.base < UInt(truncatingIfNeeded: head.pointee.limit)
                     && count < head.pointee.capacity) {
            cache.stack[count] = raw
            cache.sharedCount = count &+ 1
            cache.bumpReleasing(.puts)
            return
        }
        core.putSlow(raw)
    }
}

/// A stand-in class type for reading the reference count of a class object held generically.
@usableFromInline
final class UniquenessProbe {}

/// An object lent by an `ObjectPool`. It cannot be copied; `release()` consumes it, and
/// dropping it returns the object too, so each object goes back exactly once and cannot be
/// touched after. The pool must outlive it.
public struct Lease<Object>: ~Copyable {
    /// The pool, not retained: a reference count per lease would cost two atomic operations.
    @usableFromInline let pool: Unmanaged<ObjectPool<Object>>
    @usableFromInline let slot: UnsafeMutablePointer<Object>

    @inlinable
    init(pool: ObjectPool<Object>, slot: UnsafeMutablePointer<Object>) {
        self.pool = Unmanaged.passUnretained(pool)
        self.slot = slot
    }

    /// The object, readable and writable while the lease lasts.
    @inlinable
    public var value: Object {
        get { slot.pointee }
        nonmutating _modify { yield &slot.pointee }
    }

    /// Gives the object back now: reset runs, and the lease is gone.
    @inlinable
    public consuming func release() {}

    @inlinable
    deinit { pool._withUnsafeGuaranteedRef { $0.put(slot) } }
}
