import NUMA

/// The NUMA-aware strategy: one arena per node, bound to that node, and a bounded cache per
/// thread in front of them.
///
/// - A thread allocates from the arena of the node it runs on (sched_getcpu(3) and a CPU→node
///   table built once). A CPU whose node has no memory, or no arena, uses the nearest arena.
/// - A block freed by a thread on another node is sent to its home arena, found from its
///   address, in batches of `homeBatch`; it never enters that thread's cache.
/// - When a thread moves to another node, its cache goes back to the old arena before it
///   allocates again, so a cache only ever serves its own node's memory.
/// - When an arena is full: with `.strict` binding, `allocate()` throws `PoolError.exhausted`;
///   with `.preferred`, the block comes from the nearest arena that has room, counted in
///   `fallbacks`.
public final class LocalPool: BlockPool {
    /// How an arena's memory is tied to its node.
    public enum Binding: String, Sendable, CaseIterable {
        /// `MPOL_BIND`: pages only ever on the node; a full arena is an error.
        case strict
        /// `MPOL_PREFERRED`: pages on the node while it has room; a full arena falls back.
        case preferred
    }

    let core: LocalPoolCore

    /// Creates arenas of `capacityPerNode` bytes on `nodes` (by default every node with memory
    /// that this process may use), backed by `pages`. Nothing is faulted in until blocks are
    /// handed out.
    public init(blockSize: Int, capacityPerNode: Int, binding: Binding = .strict, nodes: NodeSet? = nil,
                cacheCapacity: Int = 256, pages: PageMode = .base, topology: Topology = .current) throws(PoolError) {
        let size = try checkedBlockSize(blockSize, capacity: capacityPerNode)
        guard cacheCapacity >= 2 else { throw .invalidArgument("cache capacity must be at least 2, got \(cacheCapacity)") }
        let chosen = nodes ?? topology.bindableNodes
        do {
            try topology.validate(chosen, operation: "LocalPool")
        } catch {
            throw .numa(error)
        }
        core = try LocalPoolCore(blockSize: size, capacity: capacityPerNode, strict: binding == .strict,
                                 nodes: chosen.ids, cacheCapacity: cacheCapacity, pages: pages, topology: topology)
    }

    deinit { PoolSlots.release(core.slot) }

    public var blockSize: Int { core.blockSize }
    /// The nodes that have an arena, in ascending order.
    public var nodes: [Int] { core.arenas.map(\.node) }

    @inline(__always)
    private func cache() -> ThreadCache {
        let caches = ThreadCaches.current
        if core.slot < caches.slots.count, let cache = caches.slots[core.slot], cache.poolID == core.id {
            return cache
        }
        return core.makeCache(in: caches)
    }

    public func allocate() throws(PoolError) -> UnsafeMutableRawPointer {
        let cache = cache()
        let arena = core.arenaOfCurrentCPU()
        if arena != cache.arena { core.rebind(cache, to: arena) }
        if cache.count > 0 {
            cache.count -= 1
            ThreadCache.bump(cache.gets)
            if cache.count < cache.freshBelow {
                cache.freshBelow = cache.count
                ThreadCache.bump(cache.misses)
            } else {
                ThreadCache.bump(cache.hits)
            }
            return cache.blocks[cache.count]
        }
        return try core.refill(cache)
    }

    public func deallocate(_ block: UnsafeMutableRawPointer) {
        let cache = cache()
        guard let home = core.arenaIndex(of: block) else {
            preconditionFailure("LocalPool.deallocate: \(block) was not allocated by this pool")
        }
        ThreadCache.bump(cache.puts)
        let arena = core.arenaOfCurrentCPU()
        if arena != cache.arena { core.rebind(cache, to: arena) }
        if home == arena {
            if cache.count == cache.capacity { core.spill(cache) }
            cache.blocks[cache.count] = block
            cache.count += 1
        } else {
            ThreadCache.bump(cache.remoteReturns)
            cache.homebound[home].append(block)
            if cache.homebound[home].count >= core.homeBatch { core.sendHome(cache, home) }
        }
    }

    public func homeNode(of block: UnsafeRawPointer) -> Int? {
        core.arenaIndex(of: block).map { core.arenas[$0].node }
    }

    public func statistics() -> PoolStatistics { core.statistics() }

    public func trim() {
        let caches = ThreadCaches.current
        if core.slot < caches.slots.count, let cache = caches.slots[core.slot], cache.poolID == core.id {
            core.flush(cache)
        }
        for arena in core.arenas { arena.trim() }
    }
}

/// The shared state of a `LocalPool`: arenas, the CPU table and the registry of thread caches.
final class LocalPoolCore: Sendable {
    let id: UInt64
    let slot: Int
    let blockSize: Int
    let cacheCapacity: Int
    let homeBatch = 32
    let refillBatch: Int
    let strict: Bool
    let arenas: [Arena]
    /// The arena index for each CPU id.
    let arenaOfCPU: [Int]
    /// For each arena, the other arenas nearest first (the fallback order).
    let fallbackOrder: [[Int]]
    private let registry = Locked(Registry())

    struct Registry {
        var caches: [ObjectIdentifier: ThreadCache] = [:]
        var retired = Counters()
    }

    struct Counters {
        var gets: UInt64 = 0, puts: UInt64 = 0, hits: UInt64 = 0, misses: UInt64 = 0
        var remoteReturns: UInt64 = 0, fallbacks: UInt64 = 0

        mutating func add(_ cache: ThreadCache) {
            gets &+= cache.gets.load(ordering: .relaxed)
            puts &+= cache.puts.load(ordering: .relaxed)
            hits &+= cache.hits.load(ordering: .relaxed)
            misses &+= cache.misses.load(ordering: .relaxed)
            remoteReturns &+= cache.remoteReturns.load(ordering: .relaxed)
            fallbacks &+= cache.fallbacks.load(ordering: .relaxed)
        }
    }

    init(blockSize: Int, capacity: Int, strict: Bool, nodes: [Int], cacheCapacity: Int, pages: PageMode,
         topology: Topology) throws(PoolError) {
        (id, slot) = PoolSlots.claim()
        self.blockSize = blockSize
        self.cacheCapacity = cacheCapacity
        self.strict = strict
        refillBatch = max(1, min(cacheCapacity / 2, 64))
        var arenas: [Arena] = []
        for node in nodes {
            do {
                arenas.append(try Arena(node: node, blockSize: blockSize, capacity: capacity, strict: strict,
                                        pages: pages, topology: topology))
            } catch {
                PoolSlots.release(slot)
                throw .numa(error)
            }
        }
        self.arenas = arenas
        func nearest(to node: Int) -> [Int] {
            arenas.indices.sorted {
                (topology.distance(from: node, to: arenas[$0].node) ?? Int.max, arenas[$0].node)
                    < (topology.distance(from: node, to: arenas[$1].node) ?? Int.max, arenas[$1].node)
            }
        }
        arenaOfCPU = topology.cpuToNode.map { node in node < 0 ? 0 : nearest(to: node).first ?? 0 }
        fallbackOrder = arenas.map { arena in nearest(to: arena.node).filter { arenas[$0].node != arena.node } }
    }

    @inline(__always)
    func arenaOfCurrentCPU() -> Int {
        let cpu = currentCPUIndex()
        return cpu < arenaOfCPU.count ? arenaOfCPU[cpu] : 0
    }

    @inline(__always)
    func arenaIndex(of block: UnsafeRawPointer) -> Int? {
        for index in arenas.indices where arenas[index].contains(block) { return index }
        return nil
    }

    func makeCache(in caches: ThreadCaches) -> ThreadCache {
        let cache = ThreadCache(poolID: id, core: self, capacity: cacheCapacity, arenas: arenas.count)
        if slot >= caches.slots.count {
            caches.slots.append(contentsOf: repeatElement(nil, count: slot - caches.slots.count + 1))
        }
        if let stale = caches.slots[slot] { stale.core?.retire(stale) }
        caches.slots[slot] = cache
        registry.withLock { $0.caches[ObjectIdentifier(cache)] = cache }
        return cache
    }

    /// The thread now runs on another arena's node: its cached blocks go home first.
    func rebind(_ cache: ThreadCache, to arena: Int) {
        if cache.arena >= 0 && cache.count > 0 {
            arenas[cache.arena].give(UnsafeBufferPointer(start: cache.blocks, count: cache.count), remote: false)
        }
        cache.count = 0
        cache.freshBelow = 0
        cache.arena = arena
    }

    /// The cache is empty: take a batch from the local arena, or fall back.
    func refill(_ cache: ThreadCache) throws(PoolError) -> UnsafeMutableRawPointer {
        var taken: [UnsafeMutableRawPointer] = []
        taken.reserveCapacity(refillBatch)
        let arena = arenas[cache.arena]
        if let fresh = arena.take(refillBatch, into: &taken) {
            for (i, block) in taken.enumerated() { cache.blocks[i] = block }
            cache.count = taken.count
            cache.freshBelow = fresh
            cache.count -= 1
            ThreadCache.bump(cache.gets)
            if cache.count < cache.freshBelow {
                cache.freshBelow = cache.count
                ThreadCache.bump(cache.misses)
            } else {
                ThreadCache.bump(cache.hits)
            }
            return cache.blocks[cache.count]
        }
        if !strict {
            for other in fallbackOrder[cache.arena] {
                taken.removeAll(keepingCapacity: true)
                if let fresh = arenas[other].take(1, into: &taken) {
                    ThreadCache.bump(cache.gets)
                    if fresh > 0 { ThreadCache.bump(cache.misses) } else { ThreadCache.bump(cache.hits) }
                    ThreadCache.bump(cache.fallbacks)
                    return taken[0]
                }
            }
        }
        throw .exhausted(node: arena.node, capacity: arena.capacity)
    }

    /// The cache is full: the older half goes back to the arena.
    func spill(_ cache: ThreadCache) {
        let half = cache.count / 2
        arenas[cache.arena].give(UnsafeBufferPointer(start: cache.blocks, count: half), remote: false)
        (cache.blocks).update(from: cache.blocks + half, count: cache.count - half)
        cache.count -= half
        cache.freshBelow = max(0, cache.freshBelow - half)
    }

    func sendHome(_ cache: ThreadCache, _ home: Int) {
        arenas[home].give(cache.homebound[home], remote: true)
        cache.homebound[home].removeAll(keepingCapacity: true)
    }

    /// Everything the cache holds goes back to the arenas.
    func flush(_ cache: ThreadCache) {
        if cache.arena >= 0 { rebind(cache, to: cache.arena) }
        for home in cache.homebound.indices where !cache.homebound[home].isEmpty { sendHome(cache, home) }
    }

    /// A thread exits (or its slot is reused): its blocks and counters go back to the pool.
    func retire(_ cache: ThreadCache) {
        flush(cache)
        registry.withLock { registry in
            registry.retired.add(cache)
            registry.caches[ObjectIdentifier(cache)] = nil
        }
    }

    func statistics() -> PoolStatistics {
        var counters = registry.withLock { registry in
            var total = registry.retired
            for cache in registry.caches.values { total.add(cache) }
            return total
        }
        var stats = PoolStatistics()
        for arena in arenas {
            let (node, peak) = arena.snapshot()
            stats.perNode[arena.node] = node
            stats.bytesReserved += node.bytesReserved
            stats.bytesPeak += peak
            stats.exhausted += node.exhausted
        }
        if counters.puts > counters.gets { counters.puts = counters.gets }
        stats.gets = counters.gets
        stats.puts = counters.puts
        stats.hits = counters.hits
        stats.misses = counters.misses
        stats.remoteReturns = counters.remoteReturns
        stats.fallbacks = counters.fallbacks
        stats.bytesInUse = Int(counters.gets &- counters.puts) * blockSize
        return stats
    }
}
