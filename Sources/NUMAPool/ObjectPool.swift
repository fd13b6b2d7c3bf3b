import NUMA

/// A typed pool of reusable objects, stored in the blocks of a `BlockPool` of either strategy.
///
/// It is built so that the usual ways of misusing a pool cannot happen or are caught:
/// - Using an object after giving it back: a `Lease` is `~Copyable`, `release()` consumes it and
///   its `deinit` returns the object, so a use after release or a second release does not
///   compile.
/// - Reuse without reset: `reset` is required and runs on every return.
/// - Mixing types: the pool is generic over one `Object` type.
/// - A factory that fails with nil: the factory returns a non-optional `Object`.
/// - Unsynchronised sharing: the pool is `Sendable`; its state sits behind one lock.
/// - Returning a broken object: `validate`, if given, runs before reuse; rejected objects are
///   dropped and counted.
/// - Keeping a reference after return: a class object still referenced elsewhere when it comes
///   back (`isKnownUniquelyReferenced`) is dropped and counted as escaped, never reused.
public final class ObjectPool<Object>: @unchecked Sendable {
    // @unchecked: `Object` need not be Sendable. An object moves between threads only through
    // the lock, and a lease gives one thread sole use of it, so each object has one owner at a
    // time (the transfer that `sending` describes); escaped class objects are never reused.
    private let backing: any BlockPool
    private let factory: () -> Object
    private let reset: (inout Object) -> Void
    private let validate: ((borrowing Object) -> Bool)?
    private let maxIdle: Int
    private let state = Locked(State())

    struct State {
        var idle: [UInt] = []
        var counters = PoolStatistics()
    }

    /// - Parameters:
    ///   - backing: where objects live; its block size must hold one `Object`.
    ///   - maxIdle: idle objects kept for reuse; more are destroyed on return.
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
    }

    deinit {
        let idle = state.withLock { $0.idle }
        for address in idle { destroy(UnsafeMutablePointer(bitPattern: address)!) }
    }

    /// Lends an object: a reused one that passes validation, or a fresh one from the factory.
    public func lease() throws(PoolError) -> Lease<Object> {
        while true {
            let address: UInt? = state.withLock { $0.idle.popLast() }
            guard let address else { break }
            let slot = UnsafeMutablePointer<Object>(bitPattern: address)!
            if let validate, !validate(slot.pointee) {
                destroy(slot)
                state.withLock { $0.counters.rejected += 1 }
                continue
            }
            state.withLock { $0.counters.gets += 1; $0.counters.hits += 1 }
            return Lease(pool: self, slot: slot)
        }
        let block = try backing.allocate()
        let slot = block.bindMemory(to: Object.self, capacity: 1)
        slot.initialize(to: factory())
        state.withLock { $0.counters.gets += 1; $0.counters.misses += 1 }
        return Lease(pool: self, slot: slot)
    }

    /// Lends an object for the length of `body`, then takes it back.
    public func withObject<R>(_ body: (inout Object) throws -> R) throws -> R {
        let lease = try lease()
        return try body(&lease.slot.pointee)
    }

    /// Counts of this pool (gets, puts, hits, misses, escaped, rejected) and, for bytes, of the
    /// backing pool.
    public func statistics() -> PoolStatistics {
        var stats = backing.statistics()
        let own = state.withLock { $0.counters }
        stats.gets = own.gets
        stats.puts = own.puts
        stats.hits = own.hits
        stats.misses = own.misses
        stats.escaped = own.escaped
        stats.rejected = own.rejected
        return stats
    }

    /// Objects idle in the pool now.
    public var idleCount: Int { state.withLock { $0.idle.count } }

    func put(_ slot: UnsafeMutablePointer<Object>) {
        reset(&slot.pointee)
        if Object.self is AnyObject.Type {
            // The slot holds one strong reference; its reference count is read through a
            // stand-in class type, without opening an existential (which would retain it).
            let unique = UnsafeMutableRawPointer(slot).withMemoryRebound(to: UniquenessProbe.self, capacity: 1) {
                isKnownUniquelyReferenced(&$0.pointee)
            }
            if !unique {
                destroy(slot)
                state.withLock { $0.counters.puts += 1; $0.counters.escaped += 1 }
                return
            }
        }
        let kept = state.withLock { state in
            state.counters.puts += 1
            guard state.idle.count < maxIdle else { return false }
            state.idle.append(UInt(bitPattern: slot))
            return true
        }
        if !kept { destroy(slot) }
    }

    private func destroy(_ slot: UnsafeMutablePointer<Object>) {
        slot.deinitialize(count: 1)
        backing.deallocate(UnsafeMutableRawPointer(slot))
    }
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
