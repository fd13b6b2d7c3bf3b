import Atomics
import CNuma
import NUMA

/// The part of an `ObjectPool` that does not depend on its type: the per-partition lists of
/// idle objects, the registry of thread caches, the slow paths and statistics. It destroys
/// objects through `destroy`, made by the typed pool.
@usableFromInline
final class ObjectPoolCore: SlotOwner, @unchecked Sendable {
    // @unchecked: `slot` is written once by ObjectPool.init before the pool is shared and only
    // read after; the lists and the registry sit behind locks; a cache's memory belongs to its
    // thread but for its atomic count and counters.
    let backing: any BlockPool
    let maxIdle: Int
    let cacheCapacity: Int
    /// Deinitialises an object and gives its block back.
    let destroy: @Sendable (UnsafeMutableRawPointer) -> Void
    var slot = 0
    // Made before the partitions' locks, which are never held with it.
    private let registry = Locked(Registry())
    /// The idle objects of each partition of the backing pool.
    private let partitions: [Locked<[UnsafeMutableRawPointer]>]

    struct Registry {
        var caches: Set<UnsafeMutableRawPointer> = []
        var retired = Counters()
    }

    struct Counters {
        var gets: UInt64 = 0, puts: UInt64 = 0, misses: UInt64 = 0, escaped: UInt64 = 0, rejected: UInt64 = 0
        var writtenOff: UInt64 = 0

        mutating func add(_ cache: UnsafeMutableRawPointer) {
            gets &+= ObjectCache.read(cache, ObjectCache.gets)
            puts &+= ObjectCache.read(cache, ObjectCache.puts)
            misses &+= ObjectCache.read(cache, ObjectCache.misses)
            escaped &+= ObjectCache.read(cache, ObjectCache.escaped)
            rejected &+= ObjectCache.read(cache, ObjectCache.rejected)
        }
    }

    init(backing: any BlockPool, maxIdle: Int, cacheCapacity: Int,
         destroy: @escaping @Sendable (UnsafeMutableRawPointer) -> Void) {
        self.backing = backing
        self.maxIdle = maxIdle
        self.cacheCapacity = cacheCapacity
        self.destroy = destroy
        partitions = (0..<max(1, backing.partitionCount)).map { _ in Locked([]) }
    }

    deinit {
        // The slot is clear in every thread, and no lease is out (ObjectPool.deinit checked).
        for cache in registry.withLock({ $0.caches }) {
            for i in 0..<ObjectCache.count(cache) { destroy(ObjectCache.object(cache, at: i)) }
            cache.deallocate()
        }
        for partition in partitions {
            for object in partition.withLock({ $0 }) { destroy(object) }
        }
    }

    /// Partition `index` of the backing pool (the last one if the pool reports more than it
    /// had when this pool was made).
    private func partition(_ index: Int) -> Locked<[UnsafeMutableRawPointer]> { partitions[min(index, partitions.count - 1)] }

    // MARK: Thread caches

    /// The calling thread's cache, made on first use for the partition the thread is on.
    private func ownCache() -> UnsafeMutableRawPointer {
        if let cache = ThreadSlots.ownState(slot) { return cache }
        let bytes = ObjectCache.size(capacity: cacheCapacity)
        let made = UnsafeMutableRawPointer.allocate(byteCount: bytes, alignment: 64)
        made.initializeMemory(as: UInt8.self, repeating: 0, count: bytes)
        for offset in [ObjectCache.countOffset] + Array(stride(from: ObjectCache.gets, to: ObjectCache.gets + 64, by: 8)) {
            (made + offset).bindMemory(to: UInt64.AtomicRepresentation.self, capacity: 1)
        }
        made.storeBytes(of: cacheCapacity, toByteOffset: ObjectCache.capacity, as: Int.self)
        bind(made, to: backing.currentPartition())
        registry.withLock { _ = $0.caches.insert(made) }
        ThreadSlots.install(made, slot: slot)
        return made
    }

    private func bind(_ cache: UnsafeMutableRawPointer, to partition: Int) {
        let range = backing.addressRange(ofPartition: min(partition, partitions.count - 1))
        cache.storeBytes(of: partition, toByteOffset: ObjectCache.partition, as: Int.self)
        cache.storeBytes(of: range.lowerBound, toByteOffset: ObjectCache.base, as: UInt.self)
        cache.storeBytes(of: UInt(range.count), toByteOffset: ObjectCache.size, as: UInt.self)
    }

    private func partition(of cache: UnsafeMutableRawPointer) -> Int {
        cache.load(fromByteOffset: ObjectCache.partition, as: Int.self)
    }

    /// Gives the cache's objects to its partition's list, keeping at most `maxIdle` there;
    /// the rest are destroyed (outside every lock of this pool: destroying gives a block back
    /// to the backing pool, whose locks come first).
    private func flush(_ cache: UnsafeMutableRawPointer, keeping kept: Int = 0) {
        let count = ObjectCache.count(cache)
        guard count > kept else { return }
        let moving = (kept..<count).map { ObjectCache.object(cache, at: $0) }
        ObjectCache.setCount(cache, kept)
        let extra = partition(partition(of: cache)).withLock { idle -> ArraySlice<UnsafeMutableRawPointer> in
            let room = max(0, maxIdle - idle.count)
            idle.append(contentsOf: moving.prefix(room))
            return moving.dropFirst(room)
        }
        for object in extra { destroy(object) }
    }

    // MARK: Slow paths

    /// Before a lease the cache cannot serve: after a fork, dead threads are written off; a
    /// thread on another partition than its cache's moves its cache there.
    func prepareLease() -> UnsafeMutableRawPointer {
        ThreadSlots.reapIfForked()
        let cache = ownCache()
        let current = min(backing.currentPartition(), partitions.count - 1)
        if current != partition(of: cache) {
            flush(cache)
            bind(cache, to: current)
        }
        return cache
    }

    /// The next idle object for the cache's thread: from the cache, or a refill from its
    /// partition's list; nil when both are empty.
    func popIdle(_ cache: UnsafeMutableRawPointer) -> UnsafeMutableRawPointer? {
        var count = ObjectCache.count(cache)
        if count == 0 {
            let batch = max(1, cacheCapacity / 2)
            let taken = partition(partition(of: cache)).withLock { idle -> [UnsafeMutableRawPointer] in
                let taken = Array(idle.suffix(batch))
                idle.removeLast(taken.count)
                return taken
            }
            for (i, object) in taken.enumerated() { ObjectCache.setObject(cache, at: i, object) }
            count = taken.count
            guard count > 0 else { return nil }
        }
        ObjectCache.setCount(cache, count - 1)
        return ObjectCache.object(cache, at: count - 1)
    }

    /// `validate` refused an idle object: it is destroyed and counted.
    func reject(_ cache: UnsafeMutableRawPointer, _ object: UnsafeMutableRawPointer) {
        destroy(object)
        ObjectCache.bump(cache, ObjectCache.rejected)
    }

    /// A class object still referenced elsewhere came back: the pool drops its own reference
    /// and the block, and never touches the object.
    @usableFromInline @inline(never)
    func escape(_ object: UnsafeMutableRawPointer) {
        ThreadSlots.reapIfForked()
        let cache = ownCache()
        destroy(object)
        ObjectCache.bump(cache, ObjectCache.escaped)
        ObjectCache.bumpReleasing(cache, ObjectCache.puts)
    }

    /// A reset object the fast path did not keep: the cache is full (half goes to the
    /// partition's list), or the object belongs to another partition (it goes to that
    /// partition's list), or the thread has no cache yet.
    @usableFromInline @inline(never)
    func putSlow(_ object: UnsafeMutableRawPointer) {
        ThreadSlots.reapIfForked()
        let cache = ownCache()
        let home = min(backing.partition(of: object) ?? 0, partitions.count - 1)
        if home == partition(of: cache) {
            if ObjectCache.count(cache) == cacheCapacity { flush(cache, keeping: cacheCapacity / 2) }
            let count = ObjectCache.count(cache)
            ObjectCache.setObject(cache, at: count, object)
            ObjectCache.setCount(cache, count + 1)
        } else {
            let kept = partition(home).withLock { idle -> Bool in
                guard idle.count < maxIdle else { return false }
                idle.append(object)
                return true
            }
            if !kept { destroy(object) }
        }
        ObjectCache.bumpReleasing(cache, ObjectCache.puts)
    }

    // MARK: SlotOwner

    func retire(_ state: UnsafeMutableRawPointer) {
        flush(state)
        registry.withLock { registry in
            registry.retired.add(state)
            registry.caches.remove(state)
        }
        state.deallocate()
    }

    func writeOff(_ state: UnsafeMutableRawPointer) {
        let lost = UInt64(ObjectCache.count(state))
        registry.withLock { registry in
            registry.retired.add(state)
            registry.retired.writtenOff += lost
            registry.caches.remove(state)
        }
        state.deallocate()
    }

    func threadMoved(_ state: UnsafeMutableRawPointer) {
        let current = min(backing.currentPartition(), partitions.count - 1)
        guard current != partition(of: state) else { return }
        flush(state)
        bind(state, to: current)
    }

    // MARK: Statistics

    /// The counters of every thread, read puts first and gets last, as `LocalPool` does.
    private func counters() -> Counters {
        registry.withLock { registry in
            var total = registry.retired
            for cache in registry.caches {
                total.puts &+= ObjectCache.read(cache, ObjectCache.puts)
                total.escaped &+= ObjectCache.read(cache, ObjectCache.escaped)
            }
            for cache in registry.caches {
                total.misses &+= ObjectCache.read(cache, ObjectCache.misses)
                total.rejected &+= ObjectCache.read(cache, ObjectCache.rejected)
            }
            for cache in registry.caches { total.gets &+= ObjectCache.read(cache, ObjectCache.gets) }
            return total
        }
    }

    func statistics() -> PoolStatistics {
        ThreadSlots.reapIfForked()
        let own = counters()
        var stats = backing.statistics()
        stats.gets = own.gets
        stats.puts = own.puts
        stats.misses = own.misses
        stats.hits = own.gets - own.misses
        stats.escaped = own.escaped
        stats.rejected = own.rejected
        stats.writtenOff = own.writtenOff
        return stats
    }

    /// Leases not yet returned.
    func outstanding() -> Int {
        let own = counters()
        return Int(own.gets) - Int(own.puts)
    }

    func idleCount() -> Int {
        let cached = registry.withLock { $0.caches.reduce(0) { $0 + ObjectCache.count($1) } }
        return cached + partitions.reduce(0) { $0 + $1.withLock { $0.count } }
    }
}
