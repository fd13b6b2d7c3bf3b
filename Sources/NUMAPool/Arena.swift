import Atomics
import NUMA

/// One node's memory for `LocalPool`: a region bound to the node, carved into blocks in runs.
/// Pages are faulted in a chunk at a time by the thread that carves them, which runs on the
/// arena's node.
///
/// Blocks given back wait in `free` for reuse. Blocks carved but never handed out (a run a
/// cache gave back when its thread moved) wait in `freshRuns`, so that handing them out later
/// still counts as fresh. Every block in either list carries the pool's free marker. A trim
/// gives back the pages that hold only free blocks (`ReleasedPages`); the free blocks on them
/// come back to `free` when it runs dry.
final class Arena: Sendable {
    let node: Int
    let blockSize: Int
    /// Bytes of blocks: the region rounded down to whole blocks.
    let capacity: Int
    let blockCount: Int
    let chunkBytes: Int
    let base: UInt
    private let region: MemoryRegion
    /// The pool's free marker, written into blocks whose pages come back.
    private let marker: UInt64
    /// Whether pages inside the arena may go back alone (base pages).
    private let releasesInside: Bool
    private let topology: Topology
    /// How many blocks have been carved (handed to caches at some time): blocks at or past it
    /// were never handed out. Written under the lock, read without it by the slow paths.
    private let carved = ManagedAtomic<Int>(0)
    private let state = Locked(State())

    struct State {
        var free: [UInt] = []
        var freshRuns: [(start: UInt, count: Int)] = []
        var carved = 0
        /// Bytes faulted in so far.
        var faulted = 0
        var stats = NodeStatistics()
        var released = ReleasedPages()
        /// Blocks out of the arena: in thread caches or held by callers.
        var outstanding = 0
        var peakOutstanding = 0
    }

    init(node: Int, blockSize: Int, capacity: Int, strict: Bool, pages: PageMode, marker: UInt64,
         topology: Topology) throws(NUMAError) {
        self.node = node
        self.blockSize = blockSize
        self.marker = marker
        releasesInside = pages == .base
        self.topology = topology
        region = try MemoryRegion(size: capacity, policy: strict ? .bind([node]) : .preferred(node), pages: pages,
                                  topology: topology)
        blockCount = region.size / blockSize
        self.capacity = blockCount * blockSize
        base = UInt(bitPattern: region.baseAddress)
        chunkBytes = max(64 << 10, blockSize * 64)
    }

    deinit {
        // The region goes with the arena; so do its marker mappings.
        state.withLock { $0.released.forget() }
    }

    /// Blocks carved so far (see `carved`).
    var carvedBlocks: Int { carved.load(ordering: .acquiring) }

    /// The address range of the arena's blocks.
    var range: Range<UInt> { base..<(base + UInt(capacity)) }

    /// Moves up to `count` blocks given back before into `out`; returns how many. (Index loops
    /// rather than generic algorithms here and below: a fork child runs this code, and in an
    /// unspecialised build a generic algorithm may need the Swift runtime's lazy set-up, whose
    /// lock a thread that was not copied may hold.)
    func takeReused(_ count: Int, into out: UnsafeMutablePointer<UnsafeMutableRawPointer>) -> Int {
        state.withLock { state in
            if state.free.isEmpty && !state.released.isEmpty { restore(&state) }
            let taken = min(count, state.free.count)
            guard taken > 0 else { return 0 }
            let first = state.free.count - taken
            var i = 0
            while i < taken {
                out[i] = UnsafeMutableRawPointer(bitPattern: state.free[first + i])!
                i += 1
            }
            state.free.removeSubrange(first...)
            state.took(taken)
            return taken
        }
    }

    /// Carves a run of up to `count` fresh blocks, faulted in and marked free by the calling
    /// thread (on the arena's node, so first touch agrees with the binding). Nil when full.
    func carve(_ count: Int, guard: BlockGuard) -> (start: UnsafeMutableRawPointer, count: Int)? {
        let carving: (start: UInt, count: Int, new: Bool, fault: Range<Int>?)? = state.withLock { state in
            if let run = state.freshRuns.popLast() {
                state.took(run.count)
                return (run.start, run.count, false, nil)
            }
            let blocks = min(count, blockCount - state.carved)
            guard blocks > 0 else { return nil }
            let start = base + UInt(state.carved * blockSize)
            state.carved += blocks
            carved.store(state.carved, ordering: .releasing)
            var fault: Range<Int>?
            let end = state.carved * blockSize
            if end > state.faulted {
                let target = min(capacity, max(end, state.faulted + chunkBytes))
                fault = state.faulted..<target
                state.stats.bytesReserved += target - state.faulted
                state.faulted = target
            }
            state.took(blocks)
            return (start, blocks, true, fault)
        }
        guard let carving else { return nil }
        if let fault = carving.fault { region.faultIn(offset: fault.lowerBound, length: fault.count) }
        let start = UnsafeMutableRawPointer(bitPattern: carving.start)!
        if carving.new { `guard`.markFree(run: start, count: carving.count) }
        return (start, carving.count)
    }

    /// Takes one block, reused or fresh, for a caller on another node (preferred binding).
    /// Returns it with whether it is fresh; nil when the arena is full.
    func takeOne(guard: BlockGuard) -> (block: UnsafeMutableRawPointer, fresh: Bool)? {
        var one = UnsafeMutableRawPointer(bitPattern: 16)!
        if takeReused(1, into: &one) == 1 { return (one, false) }
        guard let run = carve(1, guard: `guard`) else { return nil }
        return (run.start, true)
    }

    /// Gives blocks back. `remote` marks blocks sent home by a thread on another node.
    func give(_ blocks: UnsafeBufferPointer<UnsafeMutableRawPointer>, remote: Bool) {
        guard !blocks.isEmpty else { return }
        state.withLock { state in
            var i = 0
            while i < blocks.count {
                state.free.append(UInt(bitPattern: blocks[i]))
                i += 1
            }
            state.stats.puts += UInt64(blocks.count)
            if remote { state.stats.remoteReturns += UInt64(blocks.count) }
            state.outstanding -= blocks.count
        }
    }

    /// Gives back a run of fresh blocks that a cache carved but never handed out.
    func giveFresh(start: UInt, count: Int) {
        guard count > 0 else { return }
        state.withLock { state in
            state.freshRuns.append((start, count))
            state.outstanding -= count
        }
    }

    /// Counts a get refused because the arena is full.
    func countExhausted() { state.withLock { $0.stats.exhausted += 1 } }

    /// Gives back to the kernel the pages that hold no block out of the arena (held by a
    /// caller or a thread's cache), while the blocks out stay live:
    /// - past the highest block out, the free top (`MADV_DONTNEED`). The blocks there count as
    ///   never carved again, so that no fast path accepts one (their pages read as zero,
    ///   without the free marker);
    /// - below it, every page that only free blocks touch (`ReleasedPages`, for base pages),
    ///   with the marker pages at `markers` in their place.
    /// Returns whether it gave anything back.
    func trim(markers: (fd: Int32, offset: Int)?) -> Bool {
        state.withLock { state in
            guard state.faulted > 0 else { return false }
            var top = 0
            if state.outstanding == 0 {
                // Nothing is out: the marker pages go with the rest.
                state.stats.bytesReserved += state.released.discard(base: base, topology: topology)
            }
            if state.outstanding > 0 {
                var free = [Bool](repeating: false, count: state.carved)
                for address in state.free { free[Int((address - base) / UInt(blockSize))] = true }
                for run in state.freshRuns {
                    let first = Int((run.start - base) / UInt(blockSize))
                    for index in first..<(first + run.count) { free[index] = true }
                }
                top = state.carved
                while top > 0 && free[top - 1] { top -= 1 }
            }
            // Released pages stay below the top: a fresh block could not be written there.
            top = max(top, state.released.blocksBelowReleased(blockSize: blockSize))
            let page = PagePlacement.basePageSize
            let keep = (top * blockSize + page - 1) / page * page
            var gave = false
            if keep < state.faulted {
                region.release(offset: keep, length: state.faulted - keep)
                state.stats.bytesReserved -= state.faulted - keep
                state.faulted = keep
                let limit = base + UInt(top * blockSize)
                state.free.removeAll { $0 >= limit }
                state.freshRuns = state.freshRuns.compactMap { run in
                    run.start >= limit ? nil : (run.start, min(run.count, Int((limit - run.start) / UInt(blockSize))))
                }
                state.carved = top
                carved.store(top, ordering: .releasing)
                gave = true
            }
            if let markers, releasesInside, state.outstanding > 0, releaseInside(&state, markers: markers) { gave = true }
            return gave
        }
    }

    /// Gives back the pages below the top that only free blocks touch (blocks in fresh runs
    /// count as taken: a carve hands them out without looking).
    private func releaseInside(_ state: inout State, markers: (fd: Int32, offset: Int)) -> Bool {
        var free = [Bool](repeating: false, count: state.carved)
        var i = 0
        while i < state.free.count {
            free[Int((state.free[i] - base) / UInt(blockSize))] = true
            i += 1
        }
        let bytes = state.released.release(base: base, blockSize: blockSize, free: free, carved: state.carved,
                                           markers: markers)
        guard bytes > 0 else { return false }
        let released = state.released, size = blockSize, start = base
        state.free.removeAll { released.holds(block: Int(($0 - start) / UInt(size)), blockSize: size) }
        state.stats.bytesReserved -= bytes
        return true
    }

    /// Brings back the pages given back inside the arena, and their free blocks to `free`.
    private func restore(_ state: inout State) {
        var blocks: [UInt] = []
        let bytes = state.released.restore(base: base, blockSize: blockSize, topology: topology, marker: marker) {
            blocks.append(UInt(bitPattern: $0))
        }
        state.free.append(contentsOf: blocks.reversed())
        state.stats.bytesReserved += bytes
    }

    /// This node's figures, the blocks out of the arena now and at most.
    func snapshot() -> (stats: NodeStatistics, outstanding: Int, peak: Int) {
        state.withLock { state in
            var stats = state.stats
            stats.bytesOutstanding = state.outstanding * blockSize
            return (stats, state.outstanding, state.peakOutstanding)
        }
    }
}

extension Arena.State {
    /// `count` blocks leave the arena.
    mutating func took(_ count: Int) {
        stats.gets += UInt64(count)
        outstanding += count
        peakOutstanding = max(peakOutstanding, outstanding)
    }
}
