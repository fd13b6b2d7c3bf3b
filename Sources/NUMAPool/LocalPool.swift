// Public: the inlined fast path reads the rseq CPU (CNuma).
public import CNuma
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
    @usableFromInline let fast: LocalPoolFastPath

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
        fast = LocalPoolFastPath(slot: core.slot, id: core.id, arenaOfCPU: core.arenaOfCPU, cpuCount: core.cpuCount,
                                 bounds: core.bounds, arenaCount: core.arenas.count, cacheCapacity: cacheCapacity)
    }

    deinit { PoolSlots.release(core.slot) }

    public var blockSize: Int { core.blockSize }
    /// The nodes that have an arena, in ascending order.
    public var nodes: [Int] { core.arenas.map(\.node) }

    /// The calling thread's cache state, made on first use.
    private func cacheState() -> UnsafeMutablePointer<CacheState> {
        if let state = fast.cache() { return state }
        return core.makeCache(in: ThreadCaches.current).state
    }

    /// The fast path, inlined into the caller: the thread's cache for this pool exists, the
    /// thread still runs on the cache's node, and the cache holds a block. Everything else is
    /// `allocateSlow()`.
    @inlinable
    public func allocate() throws(PoolError) -> UnsafeMutableRawPointer {
        if let state = fast.cache(), state.pointee.count > 0, state.pointee.cpu == CNuma_rseq_cpu() {
            return ThreadCache.pop(state)
        }
        return try allocateSlow()
    }

    /// First use, a CPU other than the one the cache last checked (perhaps of another node),
    /// an empty cache, or no rseq.
    @usableFromInline @inline(never)
    func allocateSlow() throws(PoolError) -> UnsafeMutableRawPointer {
        let state = cacheState()
        let cpu = CNuma_rseq_cpu()
        let arena = cpu >= 0 ? fast.arena(ofCPU: Int(cpu)) : fast.currentArena()
        if arena != state.pointee.arena { core.rebind(state, to: arena) }
        state.pointee.cpu = cpu
        if state.pointee.count > 0 { return ThreadCache.pop(state) }
        return try core.refill(state)
    }

    /// The fast path, inlined into the caller: the block belongs to the arena of the thread's
    /// cache, which has room. Everything else (a block of another node, a full cache, no cache
    /// yet, a foreign pointer) is `deallocateSlow(_:)`.
    @inlinable
    public func deallocate(_ block: UnsafeMutableRawPointer) {
        if let state = fast.cache(), UInt(bitPattern: block) &- state.pointee.arenaBase < state.pointee.arenaSize,
           state.pointee.count < fast.cacheCapacity {
            state.pointee.blocks[state.pointee.count] = block
            state.pointee.count &+= 1
            CacheCounter.puts.bump(state)
            return
        }
        deallocateSlow(block)
    }

    @usableFromInline @inline(never)
    func deallocateSlow(_ block: UnsafeMutableRawPointer) {
        guard let home = fast.arenaIndex(of: block) else {
            preconditionFailure("LocalPool.deallocate: \(block) was not allocated by this pool")
        }
        let state = cacheState()
        CacheCounter.puts.bump(state)
        // The cache's arena is the node this thread last allocated on; `allocate()` rebinds it
        // when the thread moves, so only blocks of the cache's own arena ever enter it.
        if state.pointee.arena < 0 { core.rebind(state, to: fast.currentArena()) }
        if home == state.pointee.arena {
            if state.pointee.count == core.cacheCapacity { core.spill(state) }
            state.pointee.blocks[state.pointee.count] = block
            state.pointee.count += 1
        } else {
            CacheCounter.remoteReturns.bump(state)
            core.sendHome(block, to: home, from: state)
        }
    }

    /// One partition per arena, in the order of `nodes`.
    public var partitionCount: Int { fast.arenaCount }

    public func currentPartition() -> Int { fast.currentArena() }

    public func partition(of block: UnsafeRawPointer) -> Int? { fast.arenaIndex(of: block) }

    public func homeNode(of block: UnsafeRawPointer) -> Int? {
        fast.arenaIndex(of: block).map { core.arenas[$0].node }
    }

    public func statistics() -> PoolStatistics { core.statistics() }

    public func trim() {
        if let state = fast.cache() { core.flush(state) }
        for arena in core.arenas { arena.trim() }
    }
}

/// What `LocalPool`'s inlined fast paths read, copied out of the core as plain values so that
/// they take no references: the pool's slot and id in the thread cache tables, the CPU→arena
/// table and the arenas' address ranges (both owned by the core, which outlives the pool's use).
@usableFromInline
struct LocalPoolFastPath: @unchecked Sendable {
    // @unchecked: the tables are written once when the pool is made and only read after.
    @usableFromInline let slot: Int
    @usableFromInline let id: UInt64
    @usableFromInline let arenaOfCPU: UnsafePointer<Int32>
    @usableFromInline let cpuCount: Int
    @usableFromInline let bounds: UnsafePointer<(base: UInt, size: UInt)>
    @usableFromInline let arenaCount: Int
    /// Blocks each thread's cache holds at most.
    @usableFromInline let cacheCapacity: Int

    init(slot: Int, id: UInt64, arenaOfCPU: UnsafeMutablePointer<Int32>, cpuCount: Int,
         bounds: UnsafeMutablePointer<(base: UInt, size: UInt)>, arenaCount: Int, cacheCapacity: Int) {
        self.cacheCapacity = cacheCapacity
        self.slot = slot
        self.id = id
        self.arenaOfCPU = UnsafePointer(arenaOfCPU)
        self.cpuCount = cpuCount
        self.bounds = UnsafePointer(bounds)
        self.arenaCount = arenaCount
    }

    /// The calling thread's cache for this pool, or nil before its first use.
    @inlinable @inline(__always)
    func cache() -> UnsafeMutablePointer<CacheState>? { ThreadCaches.lookup(slot: slot, id: id) }

    /// The arena of the node the calling thread runs on (the CPU from rseq or
    /// sched_getcpu(3), then the CPU table).
    @inlinable @inline(__always)
    func currentArena() -> Int { arena(ofCPU: currentCPUIndex()) }

    /// The arena of the node of CPU `cpu`.
    @inlinable @inline(__always)
    func arena(ofCPU cpu: Int) -> Int { cpu >= 0 && cpu < cpuCount ? Int(arenaOfCPU[cpu]) : 0 }

    /// The arena whose range holds `block`.
    @inlinable @inline(__always)
    func arenaIndex(of block: UnsafeRawPointer) -> Int? {
        let address = UInt(bitPattern: block)
        for index in 0..<arenaCount where address &- bounds[index].base < bounds[index].size { return index }
        return nil
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
            gets &+= cache.read(.gets)
            puts &+= cache.read(.puts)
            misses &+= cache.read(.misses)
            remoteReturns &+= cache.read(.remoteReturns)
            fallbacks &+= cache.read(.fallbacks)
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
    func rebind(_ state: UnsafeMutablePointer<CacheState>, to arena: Int) {
        if state.pointee.arena >= 0 && state.pointee.count > 0 {
            arenas[state.pointee.arena].give(UnsafeBufferPointer(start: state.pointee.blocks, count: state.pointee.count),
                                             remote: false)
        }
        state.pointee.count = 0
        state.pointee.freshBelow = 0
        state.pointee.arenaIndex = Int32(arena)
        (state.pointee.arenaBase, state.pointee.arenaSize) = arena >= 0 ? bounds[arena] : (0, 0)
        state.pointee.cpu = -1
    }

    /// The cache is empty: take a batch from the local arena, or fall back.
    func refill(_ state: UnsafeMutablePointer<CacheState>) throws(PoolError) -> UnsafeMutableRawPointer {
        var taken: [UnsafeMutableRawPointer] = []
        taken.reserveCapacity(refillBatch)
        let arena = arenas[state.pointee.arena]
        if let fresh = arena.take(refillBatch, into: &taken) {
            for (i, block) in taken.enumerated() { state.pointee.blocks[i] = block }
            state.pointee.count = taken.count
            state.pointee.freshBelow = fresh
            return ThreadCache.pop(state)
        }
        if !strict {
            for other in fallbackOrder[state.pointee.arena] {
                taken.removeAll(keepingCapacity: true)
                if let fresh = arenas[other].take(1, into: &taken) {
                    CacheCounter.gets.bump(state)
                    if fresh > 0 { CacheCounter.misses.bump(state) }
                    CacheCounter.fallbacks.bump(state)
                    return taken[0]
                }
            }
        }
        throw .exhausted(node: arena.node, capacity: arena.capacity)
    }

    /// The cache is full: the older half goes back to the arena.
    func spill(_ state: UnsafeMutablePointer<CacheState>) {
        let half = state.pointee.count / 2
        let blocks = state.pointee.blocks
        arenas[state.pointee.arena].give(UnsafeBufferPointer(start: blocks, count: half), remote: false)
        blocks.update(from: blocks + half, count: state.pointee.count - half)
        state.pointee.count -= half
        state.pointee.freshBelow = max(0, state.pointee.freshBelow - half)
    }

    /// A block of arena `home` freed on another node joins that arena's batch, which goes home
    /// when it reaches `homeBatch`.
    func sendHome(_ block: UnsafeMutableRawPointer, to home: Int, from state: UnsafeMutablePointer<CacheState>) {
        let cache = state.pointee.owner.takeUnretainedValue()
        cache.homebound[home].append(block)
        if cache.homebound[home].count >= homeBatch { sendHome(cache, home) }
    }

    func sendHome(_ cache: ThreadCache, _ home: Int) {
        arenas[home].give(cache.homebound[home], remote: true)
        cache.homebound[home].removeAll(keepingCapacity: true)
    }

    /// Everything the cache holds goes back to the arenas.
    func flush(_ state: UnsafeMutablePointer<CacheState>) {
        if state.pointee.arena >= 0 { rebind(state, to: state.pointee.arena) }
        let cache = state.pointee.owner.takeUnretainedValue()
        for home in cache.homebound.indices where !cache.homebound[home].isEmpty { sendHome(cache, home) }
    }

    /// A thread exits (or its slot is reused): its blocks and counters go back to the pool.
    func retire(_ cache: ThreadCache) {
        flush(cache.state)
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
