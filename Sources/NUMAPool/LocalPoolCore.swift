import Atomics
import CNuma
import NUMA

/// The shared state of a `LocalPool` and every slow path: arenas, the CPU table, the registry
/// of thread caches (`BlockCache`), statistics, and what happens when a thread ends, moves, or
/// did not survive a fork.
@usableFromInline
final class LocalPoolCore: SlotOwner, @unchecked Sendable {
    // @unchecked: `slot` is written once by LocalPool.init before the pool is shared and only
    // read after; every other stored property is immutable, or behind `registry` or an
    // arena's lock. A cache's memory belongs to its thread, but for its counters and `limit`
    // (atomics) and for retire/writeOff, which run when the thread cannot touch it.
    let name: String
    let blockSize: Int
    let cacheCapacity: Int
    /// Blocks of another arena a cache collects before it sends them home.
    let homeBatch = 32
    /// Blocks a refill moves from the arena into a cache.
    let refillBatch: Int
    let strict: Bool
    let arenas: [Arena]
    let blockGuard: BlockGuard
    /// This pool's entry in the slot tables.
    var slot = 0
    /// The arena index for each CPU id: its node's, or the first in fallback order.
    let arenaOfCPU: [Int]
    /// For each arena, the other arenas in fallback order (`Topology.fallbackOrder`).
    let fallbackOrder: [[Int]]
    // Made before the arenas' locks: it is taken first where both are held.
    private let registry = Locked(Registry())

    struct Registry {
        /// Every live thread cache.
        var caches: Set<UnsafeMutableRawPointer> = []
        /// The counters of caches whose threads ended (or were written off).
        var retired = Counters()
        var writtenOff: UInt64 = 0
    }

    struct Counters {
        var gets: UInt64 = 0, puts: UInt64 = 0, misses: UInt64 = 0
        var remoteReturns: UInt64 = 0, fallbacks: UInt64 = 0

        mutating func add(_ cache: UnsafeMutableRawPointer) {
            gets &+= BlockCache.read(cache, BlockCache.gets)
            puts &+= BlockCache.read(cache, BlockCache.puts)
            misses &+= BlockCache.read(cache, BlockCache.misses)
            remoteReturns &+= BlockCache.read(cache, BlockCache.remoteReturns)
            fallbacks &+= BlockCache.read(cache, BlockCache.fallbacks)
        }
    }

    private static let made = ManagedAtomic<Int>(0)

    init(blockSize: Int, capacity: Int, strict: Bool, nodes: [Int], cacheCapacity: Int, pages: PageMode,
         name: String?, topology: Topology) throws(PoolError) {
        let number = Self.made.wrappingIncrementThenLoad(ordering: .relaxed)
        self.name = name ?? "LocalPool #\(number) (\(blockSize)-byte blocks)"
        self.blockSize = blockSize
        self.cacheCapacity = cacheCapacity
        self.strict = strict
        refillBatch = LocalPool.refillBatch(cacheCapacity: cacheCapacity)
        blockGuard = BlockGuard(blockSize: blockSize)
        var arenas: [Arena] = []
        for node in nodes {
            do {
                arenas.append(try Arena(node: node, blockSize: blockSize, capacity: capacity, strict: strict,
                                        pages: pages, topology: topology))
            } catch {
                throw .numa(error)
            }
        }
        self.arenas = arenas
        let arenaNodes = arenas.map(\.node)
        func nearest(to node: Int) -> [Int] {
            topology.fallbackOrder(arenaNodes, from: node).compactMap { arenaNodes.firstIndex(of: $0) }
        }
        arenaOfCPU = topology.cpuToNode.map { node in node < 0 ? 0 : nearest(to: node).first ?? 0 }
        fallbackOrder = arenas.map { arena in nearest(to: arena.node).filter { arenas[$0].node != arena.node } }
    }

    deinit {
        // The slot is clear in every thread (ThreadSlots.release ran), so no thread can reach
        // these caches any more.
        for cache in registry.withLock({ $0.caches }) { cache.deallocate() }
    }

    // MARK: Finding arenas

    /// The arena of the node the calling thread runs on.
    func currentArena() -> Int {
        let cpu = Topology.currentCPU().cpu
        return cpu >= 0 && cpu < arenaOfCPU.count ? arenaOfCPU[cpu] : 0
    }

    /// The arena whose range holds `block`.
    func arenaIndex(of block: UnsafeRawPointer) -> Int? {
        let address = UInt(bitPattern: block)
        return arenas.firstIndex { address &- $0.base < UInt($0.capacity) }
    }

    // MARK: Thread caches

    /// The calling thread's cache, made and installed on first use. If a trim deactivated it,
    /// it is active again and looks at its arena again (after the activation, so that a trim
    /// that comes between is seen by the next call).
    func ownCache() -> UnsafeMutableRawPointer {
        guard let cache = ThreadSlots.ownState(slot) else { return makeCache() }
        let arena = arena(of: cache)
        if arena >= 0 { refreshLimit(cache, arena: arena) }
        return cache
    }

    private func makeCache() -> UnsafeMutableRawPointer {
        let bytes = BlockCache.size(capacity: cacheCapacity, arenas: arenas.count, batch: homeBatch)
        let cache = UnsafeMutableRawPointer.allocate(byteCount: bytes, alignment: 64)
        cache.initializeMemory(as: UInt8.self, repeating: 0, count: bytes)
        for offset in stride(from: BlockCache.gets, to: BlockCache.gets + 64, by: 8) {
            (cache + offset).bindMemory(to: UInt64.AtomicRepresentation.self, capacity: 1)
        }
        BlockCache.setInt(cache, BlockCache.capacity, cacheCapacity)
        cache.storeBytes(of: blockGuard.inverse, toByteOffset: BlockCache.inverse, as: UInt64.self)
        cache.storeBytes(of: blockGuard.marker, toByteOffset: BlockCache.marker, as: UInt64.self)
        BlockCache.setInt(cache, BlockCache.arena, -1)
        registry.withLock { _ = $0.caches.insert(cache) }
        ThreadSlots.install(cache, slot: slot)
        return cache
    }

    /// The cache's arena, or -1 before it has one.
    private func arena(of cache: UnsafeMutableRawPointer) -> Int { BlockCache.int(cache, BlockCache.arena) }

    /// Points the cache at `arena`: its range for the fast path, and what it knows is carved.
    private func bind(_ cache: UnsafeMutableRawPointer, to arena: Int) {
        BlockCache.setInt(cache, BlockCache.arena, arena)
        cache.storeBytes(of: arenas[arena].base, toByteOffset: BlockCache.base, as: UInt.self)
        refreshLimit(cache, arena: arena)
    }

    private func refreshLimit(_ cache: UnsafeMutableRawPointer, arena: Int) {
        cache.storeBytes(of: UInt64(arenas[arena].carvedBlocks), toByteOffset: BlockCache.limit, as: UInt64.self)
    }

    /// Gives everything the cache holds of its arena back to it: the stack and the fresh run.
    private func empty(_ cache: UnsafeMutableRawPointer) {
        let arena = arena(of: cache)
        guard arena >= 0 else { return }
        let count = BlockCache.int(cache, BlockCache.count)
        let stack = (cache + BlockCache.stack).assumingMemoryBound(to: UnsafeMutableRawPointer.self)
        arenas[arena].give(UnsafeBufferPointer(start: stack, count: count), remote: false)
        BlockCache.setInt(cache, BlockCache.count, 0)
        let (next, end) = (BlockCache.int(cache, BlockCache.freshNext), BlockCache.int(cache, BlockCache.freshEnd))
        arenas[arena].giveFresh(start: UInt(next), count: (end - next) / blockSize)
        BlockCache.setInt(cache, BlockCache.freshNext, 0)
        BlockCache.setInt(cache, BlockCache.freshEnd, 0)
    }

    /// The thread now runs on another arena's node: its blocks go home first.
    private func rebind(_ cache: UnsafeMutableRawPointer, to arena: Int) {
        empty(cache)
        bind(cache, to: arena)
    }

    /// The home batches: per arena a count, then per arena `homeBatch` blocks.
    private func homeCount(_ cache: UnsafeMutableRawPointer, _ arena: Int) -> UnsafeMutablePointer<Int> {
        (cache + BlockCache.stack + cacheCapacity * 8 + arena * 8).assumingMemoryBound(to: Int.self)
    }

    private func homeBlocks(_ cache: UnsafeMutableRawPointer, _ arena: Int) -> UnsafeMutablePointer<UnsafeMutableRawPointer> {
        (cache + BlockCache.stack + cacheCapacity * 8 + arenas.count * 8 + arena * homeBatch * 8)
            .assumingMemoryBound(to: UnsafeMutableRawPointer.self)
    }

    private func sendHome(_ cache: UnsafeMutableRawPointer, _ arena: Int) {
        let count = homeCount(cache, arena)
        arenas[arena].give(UnsafeBufferPointer(start: homeBlocks(cache, arena), count: count.pointee), remote: true)
        count.pointee = 0
    }

    /// Blocks the cache holds: the stack, the fresh run, the home batches. Plain loops only: it
    /// runs in a fork child, where code that needs the Swift runtime's lazy set-up (generic
    /// algorithms in an unspecialised build) could wait on a lock of a thread that is gone.
    private func heldBlocks(_ cache: UnsafeMutableRawPointer) -> Int {
        let fresh = (BlockCache.int(cache, BlockCache.freshEnd) - BlockCache.int(cache, BlockCache.freshNext)) / blockSize
        var held = BlockCache.int(cache, BlockCache.count) + fresh
        var arena = 0
        while arena < arenas.count {
            held += homeCount(cache, arena).pointee
            arena += 1
        }
        return held
    }

    // MARK: Slow paths

    /// First use, or an empty cache: a fresh block of the cache's run, or a refill from the
    /// arena of the node the thread runs on now, or a fallback, or `exhausted`.
    @usableFromInline @inline(never)
    func allocateSlow() throws(PoolError) -> UnsafeMutableRawPointer {
        ThreadSlots.reapIfForked()
        let cache = ownCache()
        var count = BlockCache.int(cache, BlockCache.count)
        if count == 0, let fresh = takeFresh(cache) { return fresh }
        if count == 0 {
            let current = currentArena()
            if current != arena(of: cache) { rebind(cache, to: current) }
            let stack = (cache + BlockCache.stack).assumingMemoryBound(to: UnsafeMutableRawPointer.self)
            count = arenas[current].takeReused(refillBatch, into: stack)
            BlockCache.setInt(cache, BlockCache.count, count)
            if count == 0 {
                if let run = arenas[current].carve(refillBatch, guard: blockGuard) {
                    BlockCache.setInt(cache, BlockCache.freshNext, Int(bitPattern: UInt(bitPattern: run.start)))
                    BlockCache.setInt(cache, BlockCache.freshEnd, Int(bitPattern: UInt(bitPattern: run.start + run.count * blockSize)))
                    refreshLimit(cache, arena: current)
                    return takeFresh(cache)!
                }
                return try fallback(cache, from: current)
            }
        }
        let top = count - 1
        BlockCache.setInt(cache, BlockCache.count, top)
        let block = BlockCache.block(cache, at: top)
        block.storeBytes(of: 0, as: UInt64.self)
        BlockCache.bump(cache, BlockCache.gets)
        return block
    }

    /// The next block of the cache's fresh run, counted as a get and a miss.
    private func takeFresh(_ cache: UnsafeMutableRawPointer) -> UnsafeMutableRawPointer? {
        let next = BlockCache.int(cache, BlockCache.freshNext)
        guard next < BlockCache.int(cache, BlockCache.freshEnd) else { return nil }
        BlockCache.setInt(cache, BlockCache.freshNext, next + blockSize)
        let block = UnsafeMutableRawPointer(bitPattern: next)!
        block.storeBytes(of: 0, as: UInt64.self)
        BlockCache.bump(cache, BlockCache.gets)
        BlockCache.bumpReleasing(cache, BlockCache.misses)
        return block
    }

    /// The local arena is full: under preferred binding, one block from the first arena in
    /// fallback order with room; under strict binding, `exhausted`.
    private func fallback(_ cache: UnsafeMutableRawPointer, from arena: Int) throws(PoolError) -> UnsafeMutableRawPointer {
        if !strict {
            for other in fallbackOrder[arena] {
                guard let (block, fresh) = arenas[other].takeOne(guard: blockGuard) else { continue }
                block.storeBytes(of: 0, as: UInt64.self)
                BlockCache.bump(cache, BlockCache.gets)
                if fresh { BlockCache.bumpReleasing(cache, BlockCache.misses) }
                BlockCache.bump(cache, BlockCache.fallbacks)
                return block
            }
        }
        arenas[arena].countExhausted()
        throw .exhausted(node: arenas[arena].node, capacity: arenas[arena].capacity)
    }

    /// Everything the fast path of `deallocate` did not take: the block is checked (the
    /// program stops if it is not a live block of this pool), then it joins the cache (after a
    /// spill if the cache is full), or goes to its home arena's batch if it belongs to another
    /// node than the one the thread runs on.
    @usableFromInline @inline(never)
    func deallocateSlow(_ block: UnsafeMutableRawPointer) {
        ThreadSlots.reapIfForked()
        guard let home = arenaIndex(of: block) else { corruption(name, block, "is not memory of this pool") }
        let arena = arenas[home]
        _ = blockGuard.check(block, base: arena.base, blockCount: arena.blockCount, carved: arena.carvedBlocks, pool: name)
        let cache = ownCache()
        var own = self.arena(of: cache)
        if own != home {
            // A block of another arena: if the thread has moved, its cache moves first.
            let current = currentArena()
            if current != own {
                if own < 0 { bind(cache, to: current) } else { rebind(cache, to: current) }
                own = current
            }
        }
        blockGuard.markFree(block)
        if home == own {
            var count = BlockCache.int(cache, BlockCache.count)
            if count == cacheCapacity {
                spill(cache)
                count = BlockCache.int(cache, BlockCache.count)
            }
            BlockCache.setBlock(cache, at: count, block)
            BlockCache.setInt(cache, BlockCache.count, count + 1)
            refreshLimit(cache, arena: home)
        } else {
            let count = homeCount(cache, home)
            homeBlocks(cache, home)[count.pointee] = block
            count.pointee += 1
            BlockCache.bump(cache, BlockCache.remoteReturns)
            if count.pointee == homeBatch { sendHome(cache, home) }
        }
        BlockCache.bumpReleasing(cache, BlockCache.puts)
    }

    /// The cache is full: the older half goes back to the arena.
    private func spill(_ cache: UnsafeMutableRawPointer) {
        let count = BlockCache.int(cache, BlockCache.count)
        let half = count / 2
        let stack = (cache + BlockCache.stack).assumingMemoryBound(to: UnsafeMutableRawPointer.self)
        arenas[arena(of: cache)].give(UnsafeBufferPointer(start: stack, count: half), remote: false)
        stack.update(from: stack + half, count: count - half)
        BlockCache.setInt(cache, BlockCache.count, count - half)
    }

    /// Everything the cache holds goes back to the arenas.
    private func flush(_ cache: UnsafeMutableRawPointer) {
        empty(cache)
        for arena in arenas.indices where homeCount(cache, arena).pointee > 0 { sendHome(cache, arena) }
    }

    /// The calling thread's cache goes back, then every arena with nothing out gives its
    /// memory back to the kernel. What the caches knew to be carved is then stale: this
    /// thread's cache forgets it, and every other thread's cache is deactivated, so that its
    /// next call looks at the arena again before it accepts a block.
    func trim() {
        ThreadSlots.reapIfForked()
        let cache = ThreadSlots.ownState(slot)
        if let cache { flush(cache) }
        var trimmed = false
        for arena in arenas where arena.trim() { trimmed = true }
        if trimmed {
            if let cache { cache.storeBytes(of: 0, toByteOffset: BlockCache.limit, as: UInt64.self) }
            ThreadSlots.deactivateOthers(slot)
        }
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
        let lost = heldBlocks(state)
        registry.withLock { registry in
            registry.retired.add(state)
            registry.writtenOff += UInt64(lost)
            registry.caches.remove(state)
        }
        state.deallocate()
    }

    func threadMoved(_ state: UnsafeMutableRawPointer) {
        let current = currentArena()
        if arena(of: state) >= 0 && arena(of: state) != current { rebind(state, to: current) }
    }

    // MARK: Statistics

    /// A snapshot taken while threads run. Counters are read in the order that keeps it
    /// consistent: every cache's puts, then misses, then gets (each thread counts a put or a
    /// miss after the get it follows, with release ordering), then the arenas under their
    /// locks. So puts ≤ gets and misses ≤ gets in every snapshot; bytes in use, (gets − puts)
    /// × block size, is bounded by the blocks the arenas have out, which never exceed what
    /// they reserved.
    func statistics() -> PoolStatistics {
        ThreadSlots.reapIfForked()
        var stats = PoolStatistics()
        let counters = registry.withLock { registry in
            var total = registry.retired
            for cache in registry.caches {
                total.puts &+= BlockCache.read(cache, BlockCache.puts)
                total.remoteReturns &+= BlockCache.read(cache, BlockCache.remoteReturns)
            }
            for cache in registry.caches {
                total.misses &+= BlockCache.read(cache, BlockCache.misses)
                total.fallbacks &+= BlockCache.read(cache, BlockCache.fallbacks)
            }
            for cache in registry.caches { total.gets &+= BlockCache.read(cache, BlockCache.gets) }
            stats.writtenOff = registry.writtenOff
            return total
        }
        var out = 0
        for arena in arenas {
            let (node, outstanding, peak) = arena.snapshot()
            stats.perNode[arena.node] = node
            stats.bytesReserved += node.bytesReserved
            stats.bytesPeak += peak * blockSize
            stats.exhausted += node.exhausted
            out += outstanding
        }
        stats.gets = counters.gets
        stats.puts = counters.puts
        stats.misses = counters.misses
        stats.hits = counters.gets - counters.misses
        stats.remoteReturns = counters.remoteReturns
        stats.fallbacks = counters.fallbacks
        stats.bytesInUse = min(Int(counters.gets - counters.puts), out) * blockSize
        return stats
    }
}
