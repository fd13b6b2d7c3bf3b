import Atomics
import CNuma
import NUMA
#if canImport(Glibc)
import Glibc
#endif

/// The shared state of a `NUMAHeap` and every slow path: arenas, the CPU table, the threads'
/// heap caches, the purger, statistics.
///
/// A thread's heap cache is one allocation that the heap's slot entry points at: one
/// `ThreadCache` per class at `NUMAHeap.classStride` bytes apart (class `c` at `c × stride`),
/// class 0 (large allocations: its head reads as empty, its counters count them) holding the
/// `HeapHeader` in its stack area; then, per arena, blocks waiting to go home.
@usableFromInline
final class HeapCore: SlotOwner, @unchecked Sendable {
    // @unchecked: `slot` is written once by NUMAHeap.init before the heap is shared; the
    // arenas, the registry and the purger's state are behind locks or atomic; a heap cache
    // belongs to its thread but for counters and counts (atomic) and retire/write-off.
    let name: String
    let arenas: [HeapArena]
    let strict: Bool
    let decay: Duration
    var slot = 0
    /// Per class: the stack's capacity, bounded by the cache's bytes.
    let capacities: [Int]
    /// Per class: the block arithmetic and marker.
    let guards: [BlockGuard?]
    /// Which arena serves a thread, and the fallback order of each.
    let routing: ArenaRouting
    /// The thread caches, grouped by class (group 0: large allocations).
    private let registry = CacheRegistry()
    /// Raised by `trim()`: every cache flushes at its owner's next slow path.
    private let epoch = ManagedAtomic<UInt64>(0)
    /// Raised by the purger at each period.
    private let tick = ManagedAtomic<UInt64>(0)
    private let counters = Locked(Counters())
    /// Per arena and class (index 0 unused), free blocks that move between thread caches in
    /// batches: a full cache parks half here and an empty one takes it back, under this lock
    /// only, never the arena's. The blocks stay taken from the arena's view until a trim or a
    /// purger period in which nobody touched them gives them back.
    private let transfers: [[Locked<Transfer>]]
    /// Pages of markers mapped in place of free pages of small classes; nil when the system
    /// gives no anonymous file.
    private let markerPages: MarkerPages?

    struct Transfer {
        var blocks: [UnsafeMutableRawPointer] = []
        /// Whether a cache put or took blocks since the last purger period.
        var touched = false
    }
    private let purger = Locked(PurgerState())

    struct Counters {
        var flushes: UInt64 = 0
        var trims: UInt64 = 0
        /// Caches of parked threads flushed by another thread.
        var reclaims: UInt64 = 0
    }

    struct PurgerState {
        var thread: pthread_t?
        var process: pid_t = 0
        var cpuSeconds = 0.0
    }

    private let stopping = ManagedAtomic<Bool>(false)

    private static let made = ManagedAtomic<Int>(0)

    /// Idle ticks after which a thread's cache is flushed at its next call.
    let idleTicks: UInt64 = 2

    init(capacity: Int, strict: Bool, nodes: [Int], cacheBytes: Int, decay: Duration, name: String?,
         topology: Topology) throws(PoolError) {
        _ = SizeClasses.tableFilled
        let number = Self.made.wrappingIncrementThenLoad(ordering: .relaxed)
        self.name = name ?? "NUMAHeap #\(number)"
        self.strict = strict
        self.decay = decay
        var arenas: [HeapArena] = []
        for node in nodes {
            do {
                arenas.append(try HeapArena(node: node, capacity: capacity, strict: strict, topology: topology))
            } catch {
                throw .numa(error)
            }
        }
        self.arenas = arenas
        let stackRoom = (NUMAHeap.classStride - ThreadCache.stackOffset) / 8
        capacities = SizeClasses.sizes.enumerated().map { c, size in
            c == 0 ? 0 : max(1, min(stackRoom, cacheBytes / size))
        }
        guards = SizeClasses.sizes.enumerated().map { c, size in c == 0 ? nil : BlockGuard(blockSize: size) }
        transfers = arenas.map { _ in SizeClasses.sizes.map { _ in Locked(Transfer()) } }
        markerPages = MarkerPages(kinds: SizeClasses.count + 1)
        routing = ArenaRouting(arenaNodes: arenas.map(\.node), topology: topology)
    }

    deinit {
        for state in Set(registry.removeAll().map { cacheBase($0) }) { state.deallocate() }
    }

    // MARK: Finding arenas

    /// The arena of the node the calling thread runs on.
    func currentArena() -> Int { routing.currentArena() }

    func arena(of address: UInt) -> Int? { arenas.firstIndex { $0.contains(address) } }

    // MARK: Heap caches

    private var cacheBytes: Int {
        NUMAHeap.classStride * (SizeClasses.count + 1) + HomeBatches.bytes(arenas: arenas.count)
    }

    private func classCache(_ state: UnsafeMutableRawPointer, _ sizeClass: Int) -> ThreadCache {
        ThreadCache(state + sizeClass * NUMAHeap.classStride)
    }

    private func header(_ state: UnsafeMutableRawPointer) -> UnsafeMutablePointer<HeapHeader> {
        (state + NUMAHeap.headerOffset).assumingMemoryBound(to: HeapHeader.self)
    }

    /// The heap cache a class cache lies in.
    private func cacheBase(_ cache: ThreadCache) -> UnsafeMutableRawPointer {
        let sizeClass = Int(cache.head.pointee.home)
        return cache.raw - sizeClass * NUMAHeap.classStride
    }

    /// The heap cache's batches of blocks waiting to go home (after the class caches).
    private func homes(_ state: UnsafeMutableRawPointer) -> HomeBatches {
        HomeBatches(memory: state + NUMAHeap.classStride * (SizeClasses.count + 1), arenas: arenas.count)
    }

    /// The calling thread's heap cache, made on first use, with the thread's states claimed
    /// (`leave` ends the claim), and active. A trim's epoch or a long idle time makes it flush
    /// first.
    private func enter() -> UnsafeMutableRawPointer {
        ThreadSlots.enter()
        guard let state = ThreadSlots.homeState(slot) else { return makeCache() }
        ThreadSlots.activate(slot)
        let header = header(state)
        let now = tick.load(ordering: .relaxed)
        let current = epoch.load(ordering: .acquiring)
        if header.pointee.epoch != current || now &- header.pointee.tick > idleTicks {
            flushAll(state)
            header.pointee.epoch = current
        }
        header.pointee.tick = now
        return state
    }

    private func makeCache() -> UnsafeMutableRawPointer {
        let bytes = cacheBytes
        let state = UnsafeMutableRawPointer.allocate(byteCount: bytes, alignment: 64)
        state.initializeMemory(as: UInt8.self, repeating: 0, count: bytes)
        for sizeClass in 0...SizeClasses.count {
            let cache = ThreadCache.initialize(state + sizeClass * NUMAHeap.classStride, capacity: capacities[sizeClass])
            cache.head.pointee.home = sizeClass
            if let guardOfClass = guards[sizeClass] {
                cache.head.pointee.inverse = guardOfClass.inverse
                cache.head.pointee.marker = guardOfClass.marker
                cache.head.pointee.limit = UInt64(HeapArena.chunkBytes / SizeClasses.sizes[sizeClass])
            }
            registry.insert(cache, group: sizeClass)
        }
        let header = (state + NUMAHeap.headerOffset).bindMemory(to: HeapHeader.self, capacity: 1)
        header.initialize(to: HeapHeader(base: 0, chunks: 0, cacheOffsetOfChunk: arenas[0].cacheOffsetOfChunk, arena: -1,
                                         epoch: epoch.load(ordering: .acquiring), tick: tick.load(ordering: .relaxed)))
        HomeBatches.bind(state + NUMAHeap.classStride * (SizeClasses.count + 1), arenas: arenas.count)
        bind(state, to: currentArena())
        ThreadSlots.install(state, slot: slot)
        return state
    }

    /// Points the heap cache at `arena`: the range and chunk classes its fast path checks.
    private func bind(_ state: UnsafeMutableRawPointer, to arena: Int) {
        header(state).pointee.arena = arena
        header(state).pointee.base = arenas[arena].base
        header(state).pointee.cacheOffsetOfChunk = arenas[arena].cacheOffsetOfChunk
        header(state).pointee.chunks = UInt(arenas[arena].chunkCount)
    }

    /// Every class cache and home batch goes back to the arenas.
    private func flushAll(_ state: UnsafeMutableRawPointer) {
        let arena = header(state).pointee.arena
        var flushed = false
        if arena >= 0 {
            for sizeClass in 1...SizeClasses.count {
                let cache = classCache(state, sizeClass)
                let count = cache.sharedCount
                guard count > 0 else { continue }
                arenas[arena].give(UnsafeBufferPointer(start: cache.stack, count: count), remote: false)
                cache.sharedCount = 0
                flushed = true
            }
        }
        for other in arenas.indices where homes(state).count(other).pointee > 0 {
            sendHome(state, other)
            flushed = true
        }
        if flushed { counters.withLock { $0.flushes += 1 } }
    }

    private func sendHome(_ state: UnsafeMutableRawPointer, _ arena: Int) {
        arenas[arena].give(homes(state).take(arena), remote: true)
    }

    /// The thread runs on another arena's node now: its caches go back first.
    private func followThread(_ state: UnsafeMutableRawPointer) -> Int {
        let current = currentArena()
        if header(state).pointee.arena != current {
            flushAll(state)
            bind(state, to: current)
        }
        return current
    }

    // MARK: Slow paths

    /// Everything the fast path of `allocate` did not serve: checks the arguments, then a
    /// refill of the class's cache from the arena of the thread's node (or `node`'s arena, for
    /// an explicit node, without the cache), a large run, or a fallback.
    @usableFromInline @inline(never)
    func allocateSlow(byteCount: Int, alignment: Int, node: Int?) throws(PoolError) -> UnsafeMutableRawPointer {
        guard byteCount > 0 else { throw .invalidArgument("\(name): size must be positive, got \(byteCount)") }
        guard alignment > 0 && alignment & (alignment - 1) == 0 && alignment <= PagePlacement.basePageSize else {
            throw .invalidArgument("\(name): alignment must be a power of two of at most \(PagePlacement.basePageSize) bytes, got \(alignment)")
        }
        guard byteCount <= arenas[0].capacity else {
            throw .invalidArgument("\(name): size \(byteCount) is larger than an arena (\(arenas[0].capacity) bytes)")
        }
        ThreadSlots.reapIfForked()
        let state = enter()
        defer { ThreadSlots.leave() }
        let sizeClass = SizeClasses.sizeClass(for: byteCount, alignment: alignment)
        var target: Int
        if let node {
            guard let index = arenas.firstIndex(where: { $0.node == node }) else {
                throw .invalidArgument("\(name): no arena on node \(node) (arenas on \(arenas.map(\.node)))")
            }
            target = index
        } else {
            target = followThread(state)
        }
        guard let sizeClass else {
            let run = try large(byteCount, from: target, state: state)
            classCache(state, 0).bump(.gets)
            classCache(state, 0).bumpReleasing(.misses)
            return run
        }
        let cache = classCache(state, sizeClass)
        if node == nil && alignment <= 16 {
            var count = cache.sharedCount
            if count == 0 {
                let batch = max(1, (capacities[sizeClass] + 1) / 2)
                count = takeTransfer(target, sizeClass, batch, into: cache.stack)
                if count == 0 {
                    count = arenas[target].take(batch, of: sizeClass, marker: guards[sizeClass]!.marker, into: cache.stack)
                }
                if count == 0 && makeRoom(state) {
                    count = arenas[target].take(batch, of: sizeClass, marker: guards[sizeClass]!.marker, into: cache.stack)
                }
                if count > 0 {
                    cache.sharedCount = count - 1
                    defer { cache.bumpReleasing(.misses) }  // after the get, as every miss is counted
                    return handOut(cache.stack[count - 1], cache)
                }
                return try fallback(sizeClass, from: target, cache: cache)
            }
            cache.sharedCount = count - 1
            return handOut(cache.stack[count - 1], cache)
        }
        // An explicit node or a larger alignment: one block straight from the arena.
        var one = UnsafeMutableRawPointer(bitPattern: 16)!
        if arenas[target].take(1, of: sizeClass, marker: guards[sizeClass]!.marker, into: &one) == 1 {
            defer { cache.bumpReleasing(.misses) }
            return handOut(one, cache)
        }
        return try fallback(sizeClass, from: target, cache: cache)
    }

    private func handOut(_ block: UnsafeMutableRawPointer, _ cache: ThreadCache) -> UnsafeMutableRawPointer {
        block.storeBytes(of: 0, as: UInt64.self)
        cache.bump(.gets)
        return block
    }

    /// The arena is full: the calling thread's cache and the caches of parked threads go back
    /// (other threads' caches at their next call). Returns true, for the caller to try again.
    private func makeRoom(_ state: UnsafeMutableRawPointer) -> Bool {
        flushAll(state)
        epoch.wrappingIncrement(ordering: .releasing)
        header(state).pointee.epoch = epoch.load(ordering: .acquiring)
        reclaimParked(idleOnly: false)
        drainTransfers(idleOnly: false)
        return true
    }

    private func large(_ bytes: Int, from arena: Int, state: UnsafeMutableRawPointer) throws(PoolError) -> UnsafeMutableRawPointer {
        if let run = arenas[arena].takeLarge(bytes) { return run }
        if makeRoom(state), let run = arenas[arena].takeLarge(bytes) { return run }
        if !strict {
            for other in routing.fallbackOrder[arena] {
                if let run = arenas[other].takeLarge(bytes) {
                    classCache(state, 0).bump(.fallbacks)
                    return run
                }
            }
        }
        arenas[arena].countExhausted()
        throw .exhausted(node: arenas[arena].node, capacity: arenas[arena].capacity)
    }

    /// The arena is full: under preferred binding, a block from the nearest arena with room.
    private func fallback(_ sizeClass: Int, from arena: Int, cache: ThreadCache) throws(PoolError) -> UnsafeMutableRawPointer {
        if !strict {
            var one = UnsafeMutableRawPointer(bitPattern: 16)!
            for other in routing.fallbackOrder[arena]
            where arenas[other].take(1, of: sizeClass, marker: guards[sizeClass]!.marker, into: &one) == 1 {
                defer {
                    cache.bump(.fallbacks)
                    cache.bumpReleasing(.misses)
                }
                return handOut(one, cache)
            }
        }
        arenas[arena].countExhausted()
        throw .exhausted(node: arenas[arena].node, capacity: arenas[arena].capacity)
    }

    /// The block and its class, checked: the program stops when `block` is not a live block
    /// or large run of this heap.
    private func check(_ block: UnsafeRawPointer) -> (arena: Int, sizeClass: Int) {
        let address = UInt(bitPattern: block)
        guard let arena = arena(of: address) else { corruption(name, block, "is not memory of this heap") }
        let chunk = arenas[arena].chunkIndex(address)
        let sizeClass = arenas[arena].sizeClass(ofChunk: chunk)
        if sizeClass == 0 {
            switch arenas[arena].lookupLarge(address) {
            case .run: return (arena, 0)
            case .inside(let start):
                corruption(name, block, "points \(address - start) bytes into the block at 0x\(String(start, radix: 16))")
            case .notHandedOut:
                corruption(name, block, "is not a block this heap has handed out (never handed out, or already given back)")
            }
        }
        let size = UInt(SizeClasses.sizes[sizeClass])
        let offset = address - arenas[arena].chunkStart(chunk)
        if offset % size != 0 {
            let start = address - offset % size
            corruption(name, block, "points \(offset % size) bytes into the block at 0x\(String(start, radix: 16))")
        }
        if offset / size >= UInt(HeapArena.chunkBytes) / size {
            corruption(name, block, "is not a block this heap has handed out")
        }
        if guards[sizeClass]!.isMarkedFree(block) {
            corruption(name, block, "was already given back (double free), or was never handed out")
        }
        return (arena, sizeClass)
    }

    /// Everything the fast path of `deallocate` did not take.
    @usableFromInline @inline(never)
    func deallocateSlow(_ block: UnsafeMutableRawPointer) {
        ThreadSlots.reapIfForked()
        let (home, sizeClass) = check(block)
        let state = enter()
        defer { ThreadSlots.leave() }
        if sizeClass == 0 {
            _ = arenas[home].giveLarge(UInt(bitPattern: block))
            classCache(state, 0).bumpReleasing(.puts)
            return
        }
        let cache = classCache(state, sizeClass)
        var own = header(state).pointee.arena
        if own != home { own = followThread(state) }
        guards[sizeClass]!.markFree(block)
        if home == own {
            if cache.sharedCount >= capacities[sizeClass] { spill(cache, arena: own) }
            cache.stack[cache.sharedCount] = block
            cache.sharedCount += 1
        } else {
            cache.bump(.remoteReturns)
            if homes(state).add(block, to: home) { sendHome(state, home) }
        }
        cache.bumpReleasing(.puts)
    }

    /// The most blocks a transfer holds: 1 MiB of the class, at least two caches' worth.
    private func transferLimit(_ sizeClass: Int) -> Int {
        max(2 * capacities[sizeClass], (1 << 20) / SizeClasses.sizes[sizeClass])
    }

    /// Up to `count` blocks from the transfer of `arena` and `sizeClass` into `out`.
    private func takeTransfer(_ arena: Int, _ sizeClass: Int, _ count: Int,
                              into out: UnsafeMutablePointer<UnsafeMutableRawPointer>) -> Int {
        transfers[arena][sizeClass].withLock { transfer in
            let taken = min(count, transfer.blocks.count)
            guard taken > 0 else { return 0 }
            let first = transfer.blocks.count - taken
            for i in 0..<taken { out[i] = transfer.blocks[first + i] }
            transfer.blocks.removeLast(taken)
            transfer.touched = true
            return taken
        }
    }

    /// Parks `blocks` in the transfer of `arena` and `sizeClass`; false when it is full.
    private func putTransfer(_ arena: Int, _ sizeClass: Int, _ blocks: UnsafeBufferPointer<UnsafeMutableRawPointer>) -> Bool {
        let limit = transferLimit(sizeClass)
        return transfers[arena][sizeClass].withLock { transfer in
            guard transfer.blocks.count + blocks.count <= limit else { return false }
            transfer.blocks.append(contentsOf: blocks)
            transfer.touched = true
            return true
        }
    }

    /// Gives the transfers' blocks back to their arenas: all of them, or with `idleOnly` those
    /// of transfers nobody touched since the last call.
    private func drainTransfers(idleOnly: Bool) {
        for (arena, byClass) in transfers.enumerated() {
            for transfer in byClass.dropFirst() {
                let blocks = transfer.withLock { transfer -> [UnsafeMutableRawPointer] in
                    if idleOnly && transfer.touched {
                        transfer.touched = false
                        return []
                    }
                    defer { transfer.blocks.removeAll() }
                    return transfer.blocks
                }
                blocks.withUnsafeBufferPointer { arenas[arena].give($0, remote: false) }
            }
        }
    }

    /// A full class cache: the older half goes to the class's transfer, or back to the arena
    /// when that is full.
    private func spill(_ cache: ThreadCache, arena: Int) {
        let count = cache.sharedCount
        let half = max(1, count / 2)
        let older = UnsafeBufferPointer(start: cache.stack, count: half)
        if !putTransfer(arena, cache.head.pointee.home, older) { arenas[arena].give(older, remote: false) }
        cache.stack.update(from: cache.stack + half, count: count - half)
        cache.sharedCount = count - half
    }

    func usableSize(of pointer: UnsafeRawPointer) -> Int {
        let (arena, sizeClass) = check(pointer)
        if sizeClass > 0 { return SizeClasses.sizes[sizeClass] }
        guard case .run(let chunks) = arenas[arena].lookupLarge(UInt(bitPattern: pointer)) else { return 0 }
        return chunks * HeapArena.chunkBytes
    }

    // MARK: Giving memory back

    /// The calling thread's cache goes back; every other thread's cache goes back now if the
    /// thread is parked (`reclaimParked`), else at its next call (the epoch, and its slot entry
    /// deactivated so that the call takes the slow path); then every free chunk's pages go back
    /// to the kernel (with `only`, just that arena's).
    func trim(only: Int? = nil) {
        ThreadSlots.reapIfForked()
        epoch.wrappingIncrement(ordering: .releasing)
        ThreadSlots.deactivateOthers(slot)
        ThreadSlots.claimed {
            if let state = ThreadSlots.homeState(slot) {
                ThreadSlots.activate(slot)
                flushAll(state)
                header(state).pointee.epoch = epoch.load(ordering: .acquiring)
            }
        }
        reclaimParked(idleOnly: false)
        drainTransfers(idleOnly: false)
        for (index, arena) in arenas.enumerated() where only == nil || only == index {
            arena.release(freeFor: nil, markers: markerPages, marker: { self.guards[$0]!.marker })
        }
        counters.withLock { $0.trims += 1 }
    }

    /// One period of the purger: a tick (every entry is deactivated, so that each thread's next
    /// call records the tick; a thread idle for `idleTicks` flushes at that call), the caches
    /// of threads idle that long and parked now go back, then decayed chunks go back to the
    /// kernel.
    func purge() {
        tick.wrappingIncrement(ordering: .relaxed)
        ThreadSlots.deactivateOthers(slot)
        reclaimParked(idleOnly: true)
        drainTransfers(idleOnly: true)
        for arena in arenas { arena.release(freeFor: decay, markers: markerPages, marker: { self.guards[$0]!.marker }) }
    }

    /// Flushes the caches of other threads that are parked now (`ThreadSlots.reclaimParked`);
    /// with `idleOnly`, only of those that have not called the heap for `idleTicks` periods.
    @discardableResult
    func reclaimParked(idleOnly: Bool) -> Int {
        let reclaimed = ThreadSlots.reclaimParked(slot, idleOnly: idleOnly)
        if reclaimed > 0 { counters.withLock { $0.reclaims += UInt64(reclaimed) } }
        return reclaimed
    }

    /// Whether any class cache or home batch of `state` holds a block.
    private func holdsBlocks(_ state: UnsafeMutableRawPointer) -> Bool {
        for sizeClass in 1...SizeClasses.count where classCache(state, sizeClass).sharedCount > 0 { return true }
        return homes(state).held > 0
    }

    /// Starts the purger thread: `purge()` every quarter of the decay time (at least 10 ms,
    /// at most 1 s).
    func startPurger() {
        purger.withLock { purger in
            guard purger.thread == nil else { return }
            stopping.store(false, ordering: .relaxed)
            let context = Unmanaged.passRetained(self).toOpaque()
            var thread = pthread_t()
            let rc = pthread_create(&thread, nil, { context in
                let core = Unmanaged<HeapCore>.fromOpaque(context!).takeRetainedValue()
                core.runPurger()
                return nil
            }, context)
            if rc == 0 {
                purger.thread = thread
                purger.process = getpid()
            } else {
                Unmanaged<HeapCore>.fromOpaque(context).release()
            }
        }
    }

    private func runPurger() {
        let period = min(max(decay / 4, .milliseconds(10)), .seconds(1))
        let slice = Duration.milliseconds(10)
        var start = timespec()
        clock_gettime(CLOCK_THREAD_CPUTIME_ID, &start)
        while !stopping.load(ordering: .acquiring) {
            var waited = Duration.zero
            while waited < period && !stopping.load(ordering: .acquiring) {
                usleep(UInt32(slice.components.attoseconds / 1_000_000_000_000))
                waited += slice
            }
            if stopping.load(ordering: .acquiring) { break }
            purge()
            var now = timespec()
            clock_gettime(CLOCK_THREAD_CPUTIME_ID, &now)
            let seconds = Double(now.tv_sec - start.tv_sec) + Double(now.tv_nsec - start.tv_nsec) / 1e9
            purger.withLock { $0.cpuSeconds = seconds }
        }
    }

    /// Ends the purger thread and waits for it (not in a fork child, where it does not exist).
    func stopPurger() {
        let thread = purger.withLock { purger -> pthread_t? in
            defer { purger.thread = nil }
            return purger.process == getpid() ? purger.thread : nil
        }
        guard let thread else { return }
        stopping.store(true, ordering: .releasing)
        pthread_join(thread, nil)
    }

    // MARK: SlotOwner

    func wantsReclaim(_ state: UnsafeMutableRawPointer, idleOnly: Bool) -> Bool {
        guard holdsBlocks(state) else { return false }
        return !idleOnly || tick.load(ordering: .relaxed) &- header(state).pointee.tick > idleTicks
    }

    func reclaim(_ state: UnsafeMutableRawPointer) { flushAll(state) }

    func retire(_ state: UnsafeMutableRawPointer) {
        flushAll(state)
        for sizeClass in 0...SizeClasses.count { registry.remove(classCache(state, sizeClass)) }
        state.deallocate()
    }

    func writeOff(_ state: UnsafeMutableRawPointer) {
        var lost = 0
        var sizeClass = 1
        while sizeClass <= SizeClasses.count {
            lost += classCache(state, sizeClass).sharedCount
            sizeClass += 1
        }
        lost += homes(state).held
        for sizeClass in 0...SizeClasses.count {
            registry.remove(classCache(state, sizeClass), writtenOff: sizeClass == 0 ? lost : 0)
        }
        state.deallocate()
    }

    func threadMoved(_ state: UnsafeMutableRawPointer) { _ = followThread(state) }

    // MARK: Statistics

    func statistics() -> HeapStatistics {
        ThreadSlots.reapIfForked()
        var stats = HeapStatistics()
        let (byClass, writtenOff) = registry.totals()
        // Blocks in caches per arena and class: counts read atomically, home batches by class.
        var cached = [[Int]](repeating: [Int](repeating: 0, count: SizeClasses.count + 1), count: arenas.count)
        registry.forEach { cache, sizeClass in
            guard sizeClass > 0 else { return }
            let arena = header(cacheBase(cache)).pointee.arena
            if arena >= 0 { cached[arena][sizeClass] += cache.sharedCount * SizeClasses.sizes[sizeClass] }
        }
        for (index, arena) in arenas.enumerated() {
            var node = arena.snapshot()
            var inCaches = cached[index].reduce(0, +)
            for (sizeClass, transfer) in transfers[index].enumerated() {
                inCaches += transfer.withLock { $0.blocks.count } * SizeClasses.sizes[sizeClass]
            }
            node.bytesCached = min(inCaches, node.bytesOut)
            node.bytesInUse = node.bytesOut - node.bytesCached
            stats.perNode[arena.node] = node
        }
        for sizeClass in 0...SizeClasses.count {
            let totals = byClass[sizeClass] ?? CacheTotals()
            var entry = HeapClassStatistics()
            entry.size = SizeClasses.sizes[sizeClass]
            entry.gets = totals[.gets]
            entry.puts = totals[.puts]
            entry.misses = totals[.misses]
            entry.hits = totals[.gets] &- min(totals[.misses], totals[.gets])
            entry.bytesInUse = sizeClass == 0
                ? stats.perNode.values.reduce(0) { $0 + $1.bytesInUseByClass[0] }
                : max(0, Int(totals[.gets]) - Int(totals[.puts])) * entry.size
            stats.gets &+= entry.gets
            stats.puts &+= entry.puts
            stats.misses &+= entry.misses
            stats.remoteFrees &+= totals[.remoteReturns]
            if sizeClass > 0 { stats.perClass.append(entry) }
            if sizeClass == SizeClasses.count { stats.perClass.append(byClassLarge(byClass, stats)) }
        }
        stats.hits = stats.gets &- min(stats.misses, stats.gets)
        stats.writtenOff = writtenOff
        let (flushes, trims, reclaims) = counters.withLock { ($0.flushes, $0.trims, $0.reclaims) }
        stats.flushes = flushes
        stats.trims = trims
        stats.parkedReclaims = reclaims
        stats.purgerCPUSeconds = purger.withLock { $0.cpuSeconds }
        return stats
    }

    private func byClassLarge(_ byClass: [Int: CacheTotals], _ stats: HeapStatistics) -> HeapClassStatistics {
        let totals = byClass[0] ?? CacheTotals()
        var entry = HeapClassStatistics()
        entry.gets = totals[.gets]
        entry.puts = totals[.puts]
        entry.misses = totals[.misses]
        entry.bytesInUse = stats.perNode.values.reduce(0) { $0 + $1.bytesInUseByClass[0] }
        return entry
    }
}
