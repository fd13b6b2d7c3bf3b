import NUMA
#if canImport(Glibc)
import Glibc
#endif

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
    // The fast path's facts, copied out of `core` as plain values so that it takes no
    // references: the pthread key, this pool's slot and id, the CPU→arena table and the
    // arenas' address ranges (both owned by `core`).
    private let key: pthread_key_t
    private let slot: Int
    private let id: UInt64
    // nonisolated(unsafe): the tables are written once in init and only read after.
    private nonisolated(unsafe) let arenaOfCPU: UnsafePointer<Int32>
    private let cpuCount: Int
    private nonisolated(unsafe) let bounds: UnsafePointer<(base: UInt, size: UInt)>
    private let arenaCount: Int

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
        key = ThreadCaches.key
        slot = core.slot
        id = core.id
        arenaOfCPU = UnsafePointer(core.arenaOfCPU)
        cpuCount = core.cpuCount
        bounds = UnsafePointer(core.bounds)
        arenaCount = core.arenas.count
    }

    deinit { PoolSlots.release(core.slot) }

    public var blockSize: Int { core.blockSize }
    /// The nodes that have an arena, in ascending order.
    public var nodes: [Int] { core.arenas.map(\.node) }

    /// The calling thread's cache, made on first use; the thread's `ThreadCaches` owns it.
    @inline(__always)
    private func cache() -> Unmanaged<ThreadCache> {
        if let cache = ThreadCaches.lookup(key: key, slot: slot, id: id) { return cache }
        return Unmanaged.passUnretained(core.makeCache(in: ThreadCaches.current))
    }

    /// The arena of the node the calling thread runs on (sched_getcpu(3) and the CPU table).
    @inline(__always)
    private func currentArena() -> Int {
        let cpu = currentCPUIndex()
        return cpu < cpuCount ? Int(arenaOfCPU[cpu]) : 0
    }

    /// The arena whose range holds `block`.
    @inline(__always)
    private func arenaIndex(of block: UnsafeRawPointer) -> Int? {
        let address = UInt(bitPattern: block)
        for index in 0..<arenaCount where address &- bounds[index].base < bounds[index].size { return index }
        return nil
    }

    public func allocate() throws(PoolError) -> UnsafeMutableRawPointer {
        let cache = cache()
        let arena = currentArena()
        let hit: UnsafeMutableRawPointer? = cache._withUnsafeGuaranteedRef { cache in
            let state = cache.state
            if arena != state.pointee.arena { core.rebind(cache, to: arena) }
            return state.pointee.count > 0 ? cache.pop() : nil
        }
        if let hit { return hit }
        return try core.refill(cache.takeUnretainedValue())
    }

    public func deallocate(_ block: UnsafeMutableRawPointer) {
        guard let home = arenaIndex(of: block) else {
            preconditionFailure("LocalPool.deallocate: \(block) was not allocated by this pool")
        }
        cache()._withUnsafeGuaranteedRef { cache in
            let state = cache.state
            ThreadCache.bump(cache.puts)
            // The cache's arena is the node this thread last allocated on; `allocate()` rebinds
            // it when the thread moves, so only blocks of the cache's own arena ever enter it.
            if state.pointee.arena < 0 { core.rebind(cache, to: currentArena()) }
            let arena = state.pointee.arena
            if home == arena {
                if state.pointee.count == state.pointee.capacity { core.spill(cache) }
                state.pointee.blocks[state.pointee.count] = block
                state.pointee.count += 1
            } else {
                ThreadCache.bump(cache.remoteReturns)
                cache.homebound[home].append(block)
                if cache.homebound[home].count >= core.homeBatch { core.sendHome(cache, home) }
            }
        }
    }

    public func homeNode(of block: UnsafeRawPointer) -> Int? {
        arenaIndex(of: block).map { core.arenas[$0].node }
    }

    public func statistics() -> PoolStatistics { core.statistics() }

    public func trim() {
        if let cache = ThreadCaches.lookup(key: key, slot: slot, id: id) {
            core.flush(cache.takeUnretainedValue())
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
    // nonisolated(unsafe): both tables are written once in init and only read after.
    /// The arena index for each CPU id.
    nonisolated(unsafe) let arenaOfCPU: UnsafeMutablePointer<Int32>
    let cpuCount: Int
    /// Each arena's address range.
    nonisolated(unsafe) let bounds: UnsafeMutablePointer<(base: UInt, size: UInt)>
    /// For each arena, the other arenas nearest first (the fallback order).
    let fallbackOrder: [[Int]]
    private let registry = Locked(Registry())

    struct Registry {
        var caches: [ObjectIdentifier: ThreadCache] = [:]
        var retired = Counters()
    }

    struct Counters {
        var gets: UInt64 = 0, puts: UInt64 = 0, misses: UInt64 = 0
        var remoteReturns: UInt64 = 0, fallbacks: UInt64 = 0

        mutating func add(_ cache: ThreadCache) {
            gets &+= cache.gets.load(ordering: .relaxed)
            puts &+= cache.puts.load(ordering: .relaxed)
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
        let table = topology.cpuToNode.map { node in Int32(node < 0 ? 0 : nearest(to: node).first ?? 0) }
        cpuCount = table.count
        arenaOfCPU = .allocate(capacity: max(1, table.count))
        arenaOfCPU.initialize(from: table, count: table.count)
        bounds = .allocate(capacity: max(1, arenas.count))
        for (index, arena) in arenas.enumerated() { (bounds + index).initialize(to: (arena.base, UInt(arena.capacity))) }
        fallbackOrder = arenas.map { arena in nearest(to: arena.node).filter { arenas[$0].node != arena.node } }
    }

    deinit {
        arenaOfCPU.deallocate()
        bounds.deallocate()
    }

    func makeCache(in caches: ThreadCaches) -> ThreadCache {
        let cache = ThreadCache(poolID: id, core: self, capacity: cacheCapacity, arenas: arenas.count)
        registry.withLock { $0.caches[ObjectIdentifier(cache)] = cache }
        if let stale = caches.install(cache, in: slot) { stale.core?.retire(stale) }
        return cache
    }

    /// The thread now runs on another arena's node: its cached blocks go home first.
    func rebind(_ cache: ThreadCache, to arena: Int) {
        let state = cache.state
        if state.pointee.arena >= 0 && state.pointee.count > 0 {
            arenas[state.pointee.arena].give(UnsafeBufferPointer(start: state.pointee.blocks, count: state.pointee.count),
                                             remote: false)
        }
        state.pointee.count = 0
        state.pointee.freshBelow = 0
        state.pointee.arena = arena
    }

    /// The cache is empty: take a batch from the local arena, or fall back.
    func refill(_ cache: ThreadCache) throws(PoolError) -> UnsafeMutableRawPointer {
        var taken: [UnsafeMutableRawPointer] = []
        taken.reserveCapacity(refillBatch)
        let state = cache.state
        let arena = arenas[state.pointee.arena]
        if let fresh = arena.take(refillBatch, into: &taken) {
            for (i, block) in taken.enumerated() { state.pointee.blocks[i] = block }
            state.pointee.count = taken.count
            state.pointee.freshBelow = fresh
            return cache.pop()
        }
        if !strict {
            for other in fallbackOrder[state.pointee.arena] {
                taken.removeAll(keepingCapacity: true)
                if let fresh = arenas[other].take(1, into: &taken) {
                    ThreadCache.bump(cache.gets)
                    if fresh > 0 { ThreadCache.bump(cache.misses) }
                    ThreadCache.bump(cache.fallbacks)
                    return taken[0]
                }
            }
        }
        throw .exhausted(node: arena.node, capacity: arena.capacity)
    }

    /// The cache is full: the older half goes back to the arena.
    func spill(_ cache: ThreadCache) {
        let state = cache.state
        let half = state.pointee.count / 2
        let blocks = state.pointee.blocks
        arenas[state.pointee.arena].give(UnsafeBufferPointer(start: blocks, count: half), remote: false)
        blocks.update(from: blocks + half, count: state.pointee.count - half)
        state.pointee.count -= half
        state.pointee.freshBelow = max(0, state.pointee.freshBelow - half)
    }

    func sendHome(_ cache: ThreadCache, _ home: Int) {
        arenas[home].give(cache.homebound[home], remote: true)
        cache.homebound[home].removeAll(keepingCapacity: true)
    }

    /// Everything the cache holds goes back to the arenas.
    func flush(_ cache: ThreadCache) {
        if cache.state.pointee.arena >= 0 { rebind(cache, to: cache.state.pointee.arena) }
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
        stats.hits = counters.gets &- counters.misses
        stats.misses = counters.misses
        stats.remoteReturns = counters.remoteReturns
        stats.fallbacks = counters.fallbacks
        stats.bytesInUse = Int(counters.gets &- counters.puts) * blockSize
        return stats
    }
}
