import Atomics
import CNuma
import NUMA

/// The shared state of a `LocalPool` and every slow path: arenas, the CPU table, the registry
/// of thread caches (`ThreadCache`), statistics, and what happens when a thread ends, moves, or
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
    /// Blocks a refill moves from the arena into a cache.
    let refillBatch: Int
    let strict: Bool
    let arenas: [Arena]
    let blockGuard: BlockGuard
    /// This pool's entry in the slot tables.
    var slot = 0
    /// Which arena serves a thread, and the fallback order of each.
    let routing: ArenaRouting
    /// The thread caches (`ThreadCache`), made before the arenas' locks: it is taken first
    /// where both are held.
    private let registry = CacheRegistry()
    /// The marker pages a trim maps over free pages inside the arenas; nil for huge pages.
    private let markers: MarkerPages?

    private static let made = ManagedAtomic<Int>(0)
    /// Caches flushed whole, and trims (pool-wide: a flush may run on another thread than the
    /// cache's owner).
    private let flushes = ManagedAtomic<UInt64>(0), trims = ManagedAtomic<UInt64>(0)

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
                                        pages: pages, marker: blockGuard.marker, topology: topology))
            } catch {
                throw .numa(error)
            }
        }
        self.arenas = arenas
        markers = pages == .base ? MarkerPages(kinds: 1) : nil
        routing = ArenaRouting(arenaNodes: arenas.map(\.node), topology: topology)
    }

    deinit {
        // The slot is clear in every thread (ThreadSlots.release ran), so no thread can reach
        // these caches any more.
        for cache in registry.removeAll() { cache.free() }
    }

    // MARK: Finding arenas

    /// The arena of the node the calling thread runs on.
    func currentArena() -> Int { routing.currentArena() }

    /// The arena whose range holds `block`.
    func arenaIndex(of block: UnsafeRawPointer) -> Int? {
        let address = UInt(bitPattern: block)
        return arenas.firstIndex { address &- $0.base < UInt($0.capacity) }
    }

    // MARK: Thread caches

    /// What a `LocalPool` cache keeps after its stack (`ThreadCache.extra`): the run of fresh
    /// blocks not yet handed out; after it, per arena the count of blocks waiting to go home,
    /// then per arena a batch of those blocks (`HomeBatches`).
    private struct Pending {
        var freshNext: UInt
        var freshEnd: UInt
    }

    private func pending(_ cache: ThreadCache) -> UnsafeMutablePointer<Pending> {
        cache.extra(capacity: cacheCapacity).assumingMemoryBound(to: Pending.self)
    }

    /// The calling thread's cache, made and installed on first use. If a trim deactivated it,
    /// it is active again and looks at its arena again (after the activation, so that a trim
    /// that comes between is seen by the next call).
    func ownCache() -> ThreadCache {
        guard let raw = ThreadSlots.ownState(slot) else { return makeCache() }
        let cache = ThreadCache(raw)
        let arena = cache.head.pointee.home
        if arena >= 0 { refreshLimit(cache, arena: arena) }
        return cache
    }

    private func makeCache() -> ThreadCache {
        let extra = MemoryLayout<Pending>.stride + HomeBatches.bytes(arenas: arenas.count)
        let cache = ThreadCache.make(capacity: cacheCapacity, extra: extra)
        let memory = cache.extra(capacity: cacheCapacity)
        memory.bindMemory(to: Pending.self, capacity: 1)
        HomeBatches.bind(memory + MemoryLayout<Pending>.stride, arenas: arenas.count)
        cache.head.pointee.inverse = blockGuard.inverse
        cache.head.pointee.marker = blockGuard.marker
        registry.insert(cache)
        ThreadSlots.install(cache.raw, slot: slot)
        return cache
    }

    /// Points the cache at `arena`: its range for the fast path, and what it knows is carved.
    private func bind(_ cache: ThreadCache, to arena: Int) {
        cache.head.pointee.home = arena
        cache.head.pointee.base = arenas[arena].base
        refreshLimit(cache, arena: arena)
    }

    private func refreshLimit(_ cache: ThreadCache, arena: Int) {
        cache.head.pointee.limit = UInt64(arenas[arena].carvedBlocks)
    }

    /// Gives everything the cache holds of its arena back to it: the stack and the fresh run.
    private func empty(_ cache: ThreadCache) {
        let arena = cache.head.pointee.home
        guard arena >= 0 else { return }
        arenas[arena].give(UnsafeBufferPointer(start: cache.stack, count: cache.head.pointee.count), remote: false)
        cache.head.pointee.count = 0
        let run = pending(cache)
        arenas[arena].giveFresh(start: run.pointee.freshNext,
                                count: Int(run.pointee.freshEnd - run.pointee.freshNext) / blockSize)
        run.pointee = Pending(freshNext: 0, freshEnd: 0)
    }

    /// The thread now runs on another arena's node: its blocks go home first.
    private func rebind(_ cache: ThreadCache, to arena: Int) {
        empty(cache)
        bind(cache, to: arena)
    }

    /// The cache's batches of blocks waiting to go home (after `Pending`).
    private func homes(_ cache: ThreadCache) -> HomeBatches {
        HomeBatches(memory: cache.extra(capacity: cacheCapacity) + MemoryLayout<Pending>.stride, arenas: arenas.count)
    }

    private func sendHome(_ cache: ThreadCache, _ arena: Int) {
        arenas[arena].give(homes(cache).take(arena), remote: true)
    }

    /// Blocks the cache holds: the stack, the fresh run, the home batches. Plain loops only: it
    /// runs in a fork child, where code that needs the Swift runtime's lazy set-up (generic
    /// algorithms in an unspecialised build) could wait on a lock of a thread that is gone.
    private func heldBlocks(_ cache: ThreadCache) -> Int {
        let run = pending(cache).pointee
        return cache.head.pointee.count + Int(run.freshEnd - run.freshNext) / blockSize + homes(cache).held
    }

    // MARK: Slow paths

    /// First use, or an empty cache: a fresh block of the cache's run, or a refill from the
    /// arena of the node the thread runs on now, or a fallback, or `exhausted`.
    @usableFromInline @inline(never)
    func allocateSlow() throws(PoolError) -> UnsafeMutableRawPointer {
        ThreadSlots.reapIfForked()
        ThreadSlots.enter()
        defer { ThreadSlots.leave() }
        let cache = ownCache()
        let head = cache.head
        if head.pointee.count == 0, let fresh = takeFresh(cache) { return fresh }
        if head.pointee.count == 0 {
            let current = currentArena()
            if current != head.pointee.home { rebind(cache, to: current) }
            head.pointee.count = arenas[current].takeReused(refillBatch, into: cache.stack)
            if head.pointee.count == 0 {
                if let run = arenas[current].carve(refillBatch, guard: blockGuard) {
                    let start = UInt(bitPattern: run.start)
                    pending(cache).pointee = Pending(freshNext: start, freshEnd: start + UInt(run.count * blockSize))
                    refreshLimit(cache, arena: current)
                    return takeFresh(cache)!
                }
                return try fallback(cache, from: current)
            }
        }
        head.pointee.count -= 1
        let block = cache.stack[head.pointee.count]
        block.storeBytes(of: 0, as: UInt64.self)
        cache.bump(.gets)
        return block
    }

    /// The next block of the cache's fresh run, counted as a get and a miss.
    private func takeFresh(_ cache: ThreadCache) -> UnsafeMutableRawPointer? {
        let run = pending(cache)
        guard run.pointee.freshNext < run.pointee.freshEnd else { return nil }
        let block = UnsafeMutableRawPointer(bitPattern: run.pointee.freshNext)!
        run.pointee.freshNext += UInt(blockSize)
        block.storeBytes(of: 0, as: UInt64.self)
        cache.bump(.gets)
        cache.bumpReleasing(.misses)
        return block
    }

    /// The local arena is full: under preferred binding, one block from the first arena in
    /// fallback order with room; under strict binding, `exhausted`.
    private func fallback(_ cache: ThreadCache, from arena: Int) throws(PoolError) -> UnsafeMutableRawPointer {
        if !strict {
            for other in routing.fallbackOrder[arena] {
                guard let (block, fresh) = arenas[other].takeOne(guard: blockGuard) else { continue }
                block.storeBytes(of: 0, as: UInt64.self)
                cache.bump(.gets)
                if fresh { cache.bumpReleasing(.misses) }
                cache.bump(.fallbacks)
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
        ThreadSlots.enter()
        defer { ThreadSlots.leave() }
        let cache = ownCache()
        let head = cache.head
        var own = head.pointee.home
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
            if head.pointee.count == cacheCapacity { spill(cache) }
            cache.stack[head.pointee.count] = block
            head.pointee.count += 1
            refreshLimit(cache, arena: home)
        } else {
            cache.bump(.remoteReturns)
            if homes(cache).add(block, to: home) { sendHome(cache, home) }
        }
        cache.bumpReleasing(.puts)
    }

    /// The cache is full: the older half goes back to the arena.
    private func spill(_ cache: ThreadCache) {
        let count = cache.head.pointee.count
        let half = count / 2
        arenas[cache.head.pointee.home].give(UnsafeBufferPointer(start: cache.stack, count: half), remote: false)
        cache.stack.update(from: cache.stack + half, count: count - half)
        cache.head.pointee.count = count - half
    }

    /// Everything the cache holds goes back to the arenas.
    private func flush(_ cache: ThreadCache) {
        flushes.wrappingIncrement(ordering: .relaxed)
        empty(cache)
        for arena in arenas.indices where homes(cache).count(arena).pointee > 0 { sendHome(cache, arena) }
    }

    /// The calling thread's cache goes back, and the caches of parked threads
    /// (`ThreadSlots.reclaimParked`); then every arena gives back the pages that hold no block
    /// out (`Arena.trim`). What the caches knew to be carved is then stale: this
    /// thread's cache forgets it, and every other thread's cache is deactivated, so that its
    /// next call looks at the arena again before it accepts a block. With `only`, just that
    /// arena gives memory back.
    func trim(only: Int? = nil) {
        trims.wrappingIncrement(ordering: .relaxed)
        ThreadSlots.reapIfForked()
        ThreadSlots.enter()
        defer { ThreadSlots.leave() }
        let cache = ThreadSlots.ownState(slot).map(ThreadCache.init)
        if let cache { flush(cache) }
        ThreadSlots.reclaimParked(slot, idleOnly: false)
        var trimmed = false
        // Found before any arena's lock is taken: `MarkerPages` has a lock of its own.
        let markers = markers.flatMap { file in file.offset(of: 0, marker: blockGuard.marker).map { (file.fd, $0) } }
        for (index, arena) in arenas.enumerated() where only == nil || only == index {
            if arena.trim(markers: markers) { trimmed = true }
        }
        if trimmed {
            cache?.head.pointee.limit = 0
            ThreadSlots.deactivateOthers(slot)
        }
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
        registry.remove(cache, writtenOff: heldBlocks(cache))
        cache.free()
    }

    func wantsReclaim(_ state: UnsafeMutableRawPointer, idleOnly: Bool) -> Bool {
        !idleOnly && heldBlocks(ThreadCache(state)) > 0
    }

    func reclaim(_ state: UnsafeMutableRawPointer) { flush(ThreadCache(state)) }

    func threadMoved(_ state: UnsafeMutableRawPointer) {
        let cache = ThreadCache(state)
        let current = currentArena()
        let arena = cache.head.pointee.home
        if arena >= 0 && arena != current { rebind(cache, to: current) }
    }

    // MARK: Statistics

    /// A snapshot taken while threads run. The caches' counters are read in the order that
    /// keeps it consistent (`CacheCounter.readPhase`), then the arenas under their locks. So
    /// puts ≤ gets and misses ≤ gets in every snapshot; bytes in use, (gets − puts) × block
    /// size, is bounded by the blocks the arenas have out, which never exceed what they
    /// reserved.
    func statistics() -> PoolStatistics {
        ThreadSlots.reapIfForked()
        var stats = PoolStatistics()
        let (counters, writtenOff) = registry.total()
        var out = 0
        for arena in arenas {
            let (node, outstanding, peak) = arena.snapshot()
            stats.perNode[arena.node] = node
            stats.bytesReserved += node.bytesReserved
            stats.bytesPeak += peak * blockSize
            stats.exhausted += node.exhausted
            out += outstanding
        }
        stats.gets = counters[.gets]
        stats.puts = counters[.puts]
        stats.misses = counters[.misses]
        stats.hits = counters[.gets] - counters[.misses]
        stats.remoteReturns = counters[.remoteReturns]
        stats.fallbacks = counters[.fallbacks]
        stats.writtenOff = writtenOff
        stats.flushes = flushes.load(ordering: .relaxed)
        stats.trims = trims.load(ordering: .relaxed)
        stats.bytesInUse = min(Int(counters[.gets] - counters[.puts]), out) * blockSize
        return stats
    }
}
