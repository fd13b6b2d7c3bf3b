import NUMA

/// A typed pool of reusable objects, stored in the blocks of a `BlockPool` of either strategy.
///
/// Idle objects are kept per partition of the backing pool (per node for `LocalPool`, one list
/// for `GlobalPool`): a lease takes an object of the calling thread's partition, and a returned
/// object goes back to the partition its memory belongs to, so reuse keeps the backing pool's
/// locality. Each partition's list and counters sit behind a lock of their own; the counters
/// are merged when a snapshot is taken.
///
/// It is built so that the usual ways of misusing a pool cannot happen or are caught:
/// - Using an object after giving it back: a `Lease` is `~Copyable`, `release()` consumes it and
///   its `deinit` returns the object, so a use after release or a second release does not
///   compile.
/// - Reuse without reset: `reset` is required and runs on every return.
/// - Mixing types: the pool is generic over one `Object` type.
/// - A factory that fails with nil: the factory returns a non-optional `Object`.
/// - Unsynchronised sharing: the pool is `Sendable`; its state sits behind locks.
/// - Returning a broken object: `validate`, if given, runs before reuse; rejected objects are
///   dropped and counted.
/// - Keeping a reference after return: a class object still referenced elsewhere when it comes
///   back (`isKnownUniquelyReferenced`) is dropped and counted as escaped, never reused.
public final class ObjectPool<Object>: @unchecked Sendable {
    // @unchecked: `Object` need not be Sendable. An object moves between threads only through
    // a partition's lock, and a lease gives one thread sole use of it, so each object has one
    // owner at a time (the transfer that `sending` describes); escaped class objects are never
    // reused.
    private let backing: any BlockPool
    private let factory: () -> Object
    private let reset: (inout Object) -> Void
    private let validate: ((borrowing Object) -> Bool)?
    private let maxIdle: Int
    /// One per partition of the backing pool.
    private let partitions: [Locked<ObjectPartition>]
    /// Whether `Object` is a class, whose escapes are checked on return; decided once, since
    /// the dynamic cast costs more than the rest of a return.
    private let isClass: Bool

    /// - Parameters:
    ///   - backing: where objects live; its block size must hold one `Object`.
    ///   - maxIdle: idle objects kept for reuse per partition of `backing`; more are destroyed
    ///     on return.
    ///   - factory: makes a fresh object.
    ///   - reset: clears an object's state; runs on every return.
    ///   - validate: checks an idle object before reuse; false drops it.
    public init(backing: any BlockPool, maxIdle: Int = 1024,
                factory: @escaping @Sendable () -> Object,
                reset: @escaping @Sendable (inout Object) -> Void,
                validate: (@Sendable (borrowing Object) -> Bool)? = nil) throws(PoolError) {
        guard MemoryLayout<Object>.stride <= backing.blockSize, MemoryLayout<Object>.alignment <= 16 else {
            throw .invalidArgument("\(Object.self) (\(MemoryLayout<Object>.stride) bytes) does not fit the backing pool's \(backing.blockSize)-byte blocks")
        }
        guard maxIdle >= 0 else { throw .invalidArgument("maxIdle must not be negative, got \(maxIdle)") }
        self.backing = backing
        self.maxIdle = maxIdle
        self.factory = factory
        self.reset = reset
        self.validate = validate
        partitions = (0..<max(1, backing.partitionCount)).map { _ in Locked(ObjectPartition()) }
        isClass = Object.self is AnyObject.Type
    }

    deinit {
        for partition in partitions {
            for block in partition.withLock({ $0.idle }) { destroy(block.assumingMemoryBound(to: Object.self)) }
        }
    }

    /// The partition serving the calling thread.
    private var local: Locked<ObjectPartition> { partition(backing.currentPartition()) }

    /// Partition `index` of the backing pool (the last one if the pool reports more than it
    /// had when this pool was made).
    private func partition(_ index: Int) -> Locked<ObjectPartition> { partitions[min(index, partitions.count - 1)] }

    /// Lends an object: a reused one of the calling thread's partition that passes validation,
    /// or a fresh one from the factory.
    public func lease() throws(PoolError) -> Lease<Object> {
        let partition = local
        while let block = partition.withLock({ partition -> UnsafeMutableRawPointer? in
            guard let block = partition.idle.popLast() else { return nil }
            partition.gets += 1
            partition.hits += 1
            return block
        }) {
            let slot = block.assumingMemoryBound(to: Object.self)
            if let validate, !validate(slot.pointee) {
                destroy(slot)
                partition.withLock { $0.gets -= 1; $0.hits -= 1; $0.rejected += 1 }
                continue
            }
            return Lease(pool: self, slot: slot)
        }
        let block = try backing.allocate()
        let slot = block.bindMemory(to: Object.self, capacity: 1)
        slot.initialize(to: factory())
        partition.withLock { $0.gets += 1; $0.misses += 1 }
        return Lease(pool: self, slot: slot)
    }

    /// Lends an object for the length of `body`, then takes it back.
    public func withObject<R>(_ body: (inout Object) throws -> R) throws -> R {
        let lease = try lease()
        return try body(&lease.slot.pointee)
    }

    /// Counts of this pool (gets, puts, hits, misses, escaped, rejected), merged over its
    /// partitions, and, for bytes and the per-node split, of the backing pool.
    public func statistics() -> PoolStatistics {
        var stats = backing.statistics()
        stats.gets = 0
        stats.puts = 0
        stats.hits = 0
        stats.misses = 0
        stats.escaped = 0
        stats.rejected = 0
        for partition in partitions {
            partition.withLock { own in
                stats.gets += own.gets
                stats.puts += own.puts
                stats.hits += own.hits
                stats.misses += own.misses
                stats.escaped += own.escaped
                stats.rejected += own.rejected
            }
        }
        return stats
    }

    /// Objects idle in the pool now, over all partitions.
    public var idleCount: Int { partitions.reduce(0) { $0 + $1.withLock { $0.idle.count } } }

    func put(_ slot: UnsafeMutablePointer<Object>) {
        reset(&slot.pointee)
        let block = UnsafeMutableRawPointer(slot)
        let partition = partition(backing.partition(of: block) ?? 0)
        if isClass {
            // The slot holds one strong reference; its reference count is read through a
            // stand-in class type, without opening an existential (which would retain it).
            let unique = block.withMemoryRebound(to: UniquenessProbe.self, capacity: 1) {
                isKnownUniquelyReferenced(&$0.pointee)
            }
            if !unique {
                destroy(slot)
                partition.withLock { $0.puts += 1; $0.escaped += 1 }
                return
            }
        }
        let kept = partition.withLock { partition in
            partition.puts += 1
            guard partition.idle.count < maxIdle else { return false }
            partition.idle.append(block)
            return true
        }
        if !kept { destroy(slot) }
    }

    private func destroy(_ slot: UnsafeMutablePointer<Object>) {
        slot.deinitialize(count: 1)
        backing.deallocate(UnsafeMutableRawPointer(slot))
    }
}

/// The idle objects and counters of one partition of an `ObjectPool`. Not nested in the
/// generic pool, so that it needs no generic metadata at run time.
struct ObjectPartition {
    var idle: [UnsafeMutableRawPointer] = []
    var gets: UInt64 = 0, puts: UInt64 = 0, hits: UInt64 = 0, misses: UInt64 = 0
    var escaped: UInt64 = 0, rejected: UInt64 = 0
}

/// A stand-in class type for reading the reference count of a class object held generically.
private final class UniquenessProbe {}

/// An object lent by an `ObjectPool`. It cannot be copied; `release()` consumes it, and
/// dropping it returns the object too, so each object goes back exactly once and cannot be
/// touched after.
public struct Lease<Object>: ~Copyable {
    let pool: ObjectPool<Object>
    let slot: UnsafeMutablePointer<Object>

    init(pool: ObjectPool<Object>, slot: UnsafeMutablePointer<Object>) {
        self.pool = pool
        self.slot = slot
    }

    /// The object, readable and writable while the lease lasts.
    public var value: Object {
        get { slot.pointee }
        nonmutating _modify { yield &slot.pointee }
    }

    /// Gives the object back now: reset runs, and the lease is gone.
    public consuming func release() {}

    deinit { pool.put(slot) }
}
