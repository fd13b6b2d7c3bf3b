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
    /// Caches flushed whole, and trims (pool-wide: a flush may run on another thread than the
    /// cache's owner).
    private let flushes = ManagedAtomic<UInt64>(0), trims = ManagedAtomic<UInt64>(0)
    /// Objects destroyed because their partition's list was full, since the last idle limit
    /// was set: their blocks wait in the backing pool until it is trimmed.
    private let overflowed = ManagedAtomic<Int>(0)
    /// The most idle objects each partition's list keeps (`setIdleLimit`).
    private let idleLimits: [ManagedAtomic<Int>]
    let cacheCapacity: Int
    /// Deinitialises an object and gives its block back.
    let destroy: @Sendable (UnsafeMutableRawPointer) -> Void
    var slot = 0
    /// The thread caches, made before the partitions' locks, which are never held with it.
    private let registry = CacheRegistry()
    /// The idle objects of each partition of the backing pool.
    private let partitions: [Locked<[UnsafeMutableRawPointer]>]

    init(backing: any BlockPool, maxIdle: Int, cacheCapacity: Int,
         destroy: @escaping @Sendable (UnsafeMutableRawPointer) -> Void) {
        self.backing = backing
        self.cacheCapacity = cacheCapacity
        self.destroy = destroy
        partitions = (0..<max(1, backing.partitionCount)).map { _ in Locked([]) }
        idleLimits = partitions.map { _ in ManagedAtomic(maxIdle) }
    }

    deinit {
        // The slot is clear in every thread, and no lease is out (ObjectPool.deinit checked).
        for cache in registry.removeAll() {
            for i in 0..<cache.sharedCount { destroy(cache.stack[i]) }
            cache.free()
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
    private func ownCache() -> ThreadCache {
        if let raw = ThreadSlots.ownState(slot) { return ThreadCache(raw) }
        let made = ThreadCache.make(capacity: cacheCapacity)
        bind(made, to: backing.currentPartition())
        registry.insert(made)
        ThreadSlots.install(made.raw, slot: slot)
        return made
    }

    /// Points the cache at `partition`: its home, and the address range of its objects.
    private func bind(_ cache: ThreadCache, to partition: Int) {
        let range = backing.addressRange(ofPartition: min(partition, partitions.count - 1))
        cache.head.pointee.home = partition
        cache.head.pointee.base = range.lowerBound
        cache.head.pointee.limit = UInt64(range.count)
    }

    private func count(_ cache: ThreadCache) -> Int { cache.sharedCount }

    private func setCount(_ cache: ThreadCache, _ count: Int) { cache.sharedCount = count }

    /// Gives the cache's objects to its partition's list, keeping at most its idle limit there;
    /// the rest are destroyed (outside every lock of this pool: destroying gives a block back
    /// to the backing pool, whose locks come first).
    private func flush(_ cache: ThreadCache, keeping kept: Int = 0) {
        let count = count(cache)
        guard count > kept else { return }
        if kept == 0 { flushes.wrappingIncrement(ordering: .relaxed) }
        let moving = (kept..<count).map { cache.stack[$0] }
        setCount(cache, kept)
        let home = cache.head.pointee.home
        let limit = idleLimit(home)
        let extra = partition(home).withLock { idle -> ArraySlice<UnsafeMutableRawPointer> in
            let room = max(0, limit - idle.count)
            idle.append(contentsOf: moving.prefix(room))
            return moving.dropFirst(room)
        }
        for object in extra { destroy(object) }
        if !extra.isEmpty { overflowed.wrappingIncrement(by: extra.count, ordering: .relaxed) }
    }

    // MARK: Slow paths

    /// Before a lease the cache cannot serve: after a fork, dead threads are written off; a
    /// thread on another partition than its cache's moves its cache there.
    func prepareLease() -> ThreadCache {
        ThreadSlots.reapIfForked()
        let cache = ownCache()
        let current = min(backing.currentPartition(), partitions.count - 1)
        if current != cache.head.pointee.home {
            flush(cache)
            bind(cache, to: current)
        }
        return cache
    }

    /// The next idle object for the cache's thread: from the cache, or a refill from its
    /// partition's list; nil when both are empty.
    func popIdle(_ cache: ThreadCache) -> UnsafeMutableRawPointer? {
        var count = count(cache)
        if count == 0 {
            let batch = max(1, cacheCapacity / 2)
            let taken = partition(cache.head.pointee.home).withLock { idle -> [UnsafeMutableRawPointer] in
                let taken = Array(idle.suffix(batch))
                idle.removeLast(taken.count)
                return taken
            }
            for (i, object) in taken.enumerated() { cache.stack[i] = object }
            count = taken.count
            guard count > 0 else { return nil }
        }
        setCount(cache, count - 1)
        return cache.stack[count - 1]
    }

    /// `validate` refused an idle object: it is destroyed and counted.
    func reject(_ cache: ThreadCache, _ object: UnsafeMutableRawPointer) {
        destroy(object)
        cache.bump(.rejected)
    }

    /// A class object still referenced elsewhere came back: the pool drops its own reference
    /// and the block, and never touches the object.
    @usableFromInline @inline(never)
    func escape(_ object: UnsafeMutableRawPointer) {
        ThreadSlots.reapIfForked()
        ThreadSlots.enter()
        defer { ThreadSlots.leave() }
        let cache = ownCache()
        destroy(object)
        cache.bump(.escaped)
        cache.bumpReleasing(.puts)
    }

    /// A reset object the fast path did not keep: the cache is full (half goes to the
    /// partition's list), or the object belongs to another partition (it goes to that
    /// partition's list), or the thread has no cache yet.
    @usableFromInline @inline(never)
    func putSlow(_ object: UnsafeMutableRawPointer) {
        ThreadSlots.reapIfForked()
        ThreadSlots.enter()
        defer { ThreadSlots.leave() }
        let cache = ownCache()
        let home = min(backing.partition(of: object) ?? 0, partitions.count - 1)
        if home == cache.head.pointee.home {
            if count(cache) == cacheCapacity { flush(cache, keeping: cacheCapacity / 2) }
            let count = count(cache)
            cache.stack[count] = object
            setCount(cache, count + 1)
        } else {
            let limit = idleLimit(home)
            let kept = partition(home).withLock { idle -> Bool in
                guard idle.count < limit else { return false }
                idle.append(object)
                return true
            }
            if !kept {
                destroy(object)
                overflowed.wrappingIncrement(ordering: .relaxed)
            }
        }
        cache.bumpReleasing(.puts)
    }

    // MARK: SlotOwner

    func retire(_ state: UnsafeMutableRawPointer) {
        let cache = ThreadCache(state)
        flush(cache)
        registry.remove(cache)
        cache.free()
    }

    func writeOff(_ state: UnsafeMutableRawPointer) {
        let cache = ThreadCache(state)
        registry.remove(cache, writtenOff: count(cache))
        cache.free()
    }

    func wantsReclaim(_ state: UnsafeMutableRawPointer, idleOnly: Bool) -> Bool {
        !idleOnly && count(ThreadCache(state)) > 0
    }

    func reclaim(_ state: UnsafeMutableRawPointer) { flush(ThreadCache(state)) }

    /// The calling thread's cache goes to its partition's list, and so do the caches of parked
    /// threads (`ThreadSlots.reclaimParked`); objects over a partition's idle limit are destroyed.
    func trim() {
        trims.wrappingIncrement(ordering: .relaxed)
        ThreadSlots.reapIfForked()
        ThreadSlots.claimed {
            if let raw = ThreadSlots.ownState(slot) { flush(ThreadCache(raw)) }
        }
        ThreadSlots.reclaimParked(slot, idleOnly: false)
    }

    func threadMoved(_ state: UnsafeMutableRawPointer) {
        let cache = ThreadCache(state)
        let current = min(backing.currentPartition(), partitions.count - 1)
        guard current != cache.head.pointee.home else { return }
        flush(cache)
        bind(cache, to: current)
    }

    // MARK: Statistics

    func statistics() -> PoolStatistics {
        ThreadSlots.reapIfForked()
        let (own, writtenOff) = registry.total()
        var stats = backing.statistics()
        stats.gets = own[.gets]
        stats.puts = own[.puts]
        stats.misses = own[.misses]
        stats.hits = own[.gets] - own[.misses]
        stats.escaped = own[.escaped]
        stats.rejected = own[.rejected]
        stats.writtenOff = writtenOff
        stats.flushes = flushes.load(ordering: .relaxed)
        stats.trims = trims.load(ordering: .relaxed)
        return stats
    }

    // MARK: Idle capacity

    var partitionCount: Int { partitions.count }

    func idleLimit(_ partition: Int) -> Int { idleLimits[min(partition, partitions.count - 1)].load(ordering: .relaxed) }

    /// Idle objects in `partition`'s list (behind the threads' caches, which hold at most
    /// `cacheCapacity` each).
    func listedCount(partition index: Int) -> Int { partitions[index].withLock { $0.count } }

    /// Sets the most idle objects `partition`'s list keeps, and destroys what it holds over
    /// that now (outside its lock, as `flush` does).
    func setIdleLimit(_ limit: Int, partition index: Int) {
        idleLimits[index].store(limit, ordering: .relaxed)
        let extra = partitions[index].withLock { idle -> [UnsafeMutableRawPointer] in
            guard idle.count > limit else { return [] }
            let extra = Array(idle[limit...])
            idle.removeLast(idle.count - limit)
            return extra
        }
        for object in extra { destroy(object) }
        // The blocks of objects destroyed now, or since the last limit because a list was full,
        // go back to the kernel with the backing pool's free pages.
        let overflowedSince = overflowed.exchange(0, ordering: .relaxed)
        if !extra.isEmpty || overflowedSince > 0 { backing.trim() }
    }

    /// Leases not yet returned.
    func outstanding() -> Int {
        let (own, _) = registry.total()
        return Int(own[.gets]) - Int(own[.puts])
    }

    func idleCount() -> Int {
        var cached = 0
        registry.forEach { cache, _ in cached += count(cache) }
        return cached + partitions.reduce(0) { $0 + $1.withLock { $0.count } }
    }
}
