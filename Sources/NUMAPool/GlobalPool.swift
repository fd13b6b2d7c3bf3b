import NUMA
#if canImport(Glibc)
import Glibc
#endif

/// The baseline strategy: one free list under one lock, over one region that knows nothing of
/// nodes. The region is placed when the pool is made: spread in chunks over a node set and
/// filled by threads there (as the pool of a service whose threads on every node created its
/// objects), on the creating thread's node, or interleaved page by page. Except for the
/// spread fill, pages are faulted in only as blocks are first handed out, so a new pool holds
/// only what it handed out. This is the pool shape that leaves a share of accesses remote.
///
/// Every call takes the lock; a pointer given back is checked under it (`BlockGuard`), and one
/// that is not a live block of this pool stops the program with a message naming the pool and
/// the address. The lock is held across fork(2) and new in the child.
public final class GlobalPool: BlockPool {
    /// How the region's pages are placed.
    public enum Placement: Hashable, Sendable, CustomStringConvertible {
        /// A pool that threads on every node filled: spread over these nodes in chunks taken in
        /// turn, as many per node, of at most `spreadChunk` bytes, faulted in when the pool is
        /// made. Each chunk is first touched by a thread running on its node, under the creating
        /// thread's policy (a thread inherits it), so NUMA balancing may move its pages as it
        /// would a service's; a node with no CPU this process may use (memory-only, or outside
        /// its affinity) gets its chunks bound to it (mbind(2)).
        case spread(NodeSet)
        /// Placed as if the creating thread touched every page: under that thread's policy, or,
        /// when it has none, on the node it runs on when the pool is made (`MPOL_PREFERRED`;
        /// left to first touch when that node has no memory).
        case firstTouch
        /// Spread page by page over these nodes (`MPOL_INTERLEAVE`).
        case interleave(NodeSet)

        /// The placement as text: `spread:0-1`, `first-touch` or `interleave:0-1`.
        public var description: String {
            switch self {
            case .spread(let nodes): "spread:\(nodes)"
            case .firstTouch: "first-touch"
            case .interleave(let nodes): "interleave:\(nodes)"
            }
        }
    }

    /// The largest chunk of a `.spread` placement: 2 MiB, or the page size if it is larger.
    public static func spreadChunk(pages: PageMode) -> Int { max(2 << 20, pages.placementGranule) }

    /// The pool's name: the one given, or `GlobalPool (N-byte blocks)`.
    public let name: String
    /// The size of every block, in bytes: the size asked for, rounded up to 16.
    public let blockSize: Int
    /// Bytes of blocks: the region, rounded up to whole pages, then down to whole blocks.
    public let capacity: Int
    /// How the region's pages were placed.
    public let placement: Placement
    private let region: MemoryRegion
    private let base: UInt
    private let blockGuard: BlockGuard
    /// Marker pages for free pages given back inside the region; nil for huge pages.
    private let markers: MarkerPages?
    private let topology: Topology
    private let state = Locked(State())

    struct State {
        var free: [UInt] = []
        /// Pages inside the region that only free blocks touched, given back by a trim.
        var released = ReleasedPages()
        /// Blocks handed out at some time; blocks past them never were.
        var carved = 0
        /// Bytes of the region's start that are faulted in, or that blocks handed out have
        /// reached (their pages are faulted in when first touched); less after a trim gave the
        /// free top back.
        var faulted = 0
        var gets: UInt64 = 0, puts: UInt64 = 0, hits: UInt64 = 0, misses: UInt64 = 0
        var exhausted: UInt64 = 0, trims: UInt64 = 0
        var outstanding = 0, peak = 0
    }

    /// Maps `capacity` bytes and places them as `placement` says: a `.spread` pool is filled
    /// now; the others fault a page in when a block on it is first handed out.
    public init(blockSize: Int, capacity: Int, placement: Placement = .firstTouch, pages: PageMode = .base,
                name: String? = nil, topology: Topology = .current) throws(PoolError) {
        self.blockSize = try checkedBlockSize(blockSize, capacity: capacity)
        self.placement = placement
        self.name = name ?? "GlobalPool (\(self.blockSize)-byte blocks)"
        blockGuard = BlockGuard(blockSize: self.blockSize)
        var filled = 0
        markers = pages == .base ? MarkerPages(kinds: 1) : nil
        self.topology = topology
        do {
            switch placement {
            case .spread(let nodes):
                try topology.validate(nodes, operation: "GlobalPool")
                region = try MemoryRegion(size: capacity, pages: pages, topology: topology)
                try Self.spread(address: region.baseAddress, length: region.size, over: nodes, pages: pages,
                                topology: topology)
                filled = region.size
            case .firstTouch:
                region = try MemoryRegion(size: capacity, policy: try Self.creatorPolicy(topology: topology),
                                          pages: pages, topology: topology)
            case .interleave(let nodes):
                region = try MemoryRegion(size: capacity, policy: .interleave(nodes), pages: pages, topology: topology)
            }
        } catch {
            throw .numa(error)
        }
        self.capacity = region.size / self.blockSize * self.blockSize
        base = UInt(bitPattern: region.baseAddress)
        state.withLock { $0.faulted = filled }
    }

    /// The policy under which the calling thread's first touch would place pages: its own
    /// (get_mempolicy(2)), or a preference for the node it runs on; nil when that node has no
    /// memory (first touch then decides).
    static func creatorPolicy(topology: Topology) throws(NUMAError) -> MemoryPolicy? {
        let policy = try MemoryPolicy.currentThread()
        guard policy == .local else { return policy }
        let node = Topology.currentNode
        return topology.bindableNodes.contains(node) ? .preferred(node) : nil
    }

    deinit {
        // The region goes with the pool; so do its marker mappings.
        state.withLock { $0.released.forget() }
    }

    /// Places `[address, address + length)` in chunks over `nodes`, in turn: a thread on each
    /// node's allowed CPUs touches its chunks; a node without such CPUs has its chunks bound.
    static func spread(address: UnsafeMutableRawPointer, length: Int, over nodes: NodeSet, pages: PageMode,
                       topology: Topology) throws(NUMAError) {
        let ids = nodes.ids
        let granule = pages.placementGranule
        // Whole pages, at most `spreadChunk`, and as many per node (the last may be short), so
        // that every node gets its share whatever the length.
        let perNode = max(1, (length + ids.count * spreadChunk(pages: pages) - 1) / (ids.count * spreadChunk(pages: pages)))
        let chunk = max(granule, length / (ids.count * perNode) / granule * granule)
        let chunks = (length + chunk - 1) / chunk
        let start = UInt(bitPattern: address)
        func offsets(_ index: Int) -> [Int] { stride(from: index, to: chunks, by: ids.count).map { $0 * chunk } }
        // Bound chunks first, so that a failed bind leaves no toucher thread running.
        for (index, node) in ids.enumerated() where topology.allowedCPUs(on: [node]).isEmpty {
            for offset in offsets(index) {
                try MemoryPolicy.bind([node]).apply(to: address + offset, length: min(chunk, length - offset))
                MemoryRegion.faultIn(address: address + offset, length: min(chunk, length - offset))
            }
        }
        var touchers: [PinnedThread<Void>] = []
        for (index, node) in ids.enumerated() {
            let cpus = topology.allowedCPUs(on: [node])
            guard !cpus.isEmpty else { continue }
            let mine = offsets(index)
            do {
                touchers.append(try PinnedThread(cpus: cpus) {
                    for offset in mine {
                        MemoryRegion.faultIn(address: UnsafeMutableRawPointer(bitPattern: start + UInt(offset))!,
                                             length: min(chunk, length - offset))
                    }
                })
            } catch {
                // The touchers already started finish before the error goes up.
                for toucher in touchers { _ = try? toucher.join() }
                throw error
            }
        }
        for toucher in touchers {
            do {
                try toucher.join()
            } catch let error as NUMAError {
                throw error
            } catch {
                throw NUMAError(operation: "GlobalPool spread", errno: EINVAL, message: "\(error)")
            }
        }
    }

    /// Hands out a block under the lock: the last one given back, or else the next block never
    /// handed out. Throws `PoolError.globalExhausted` when every block is out.
    public func allocate() throws(PoolError) -> UnsafeMutableRawPointer {
        let address: UInt? = state.withLock { state in
            let address: UInt
            if state.free.isEmpty && !state.released.isEmpty {
                // The free blocks behind pages a trim gave back come back with their pages.
                state.released.restore(base: base, blockSize: blockSize, topology: topology,
                                       marker: blockGuard.marker) { state.free.append(UInt(bitPattern: $0)) }
            }
            if let reused = state.free.popLast() {
                state.hits += 1
                address = reused
            } else if (state.carved + 1) * blockSize <= capacity {
                state.misses += 1
                address = base + UInt(state.carved * blockSize)
                state.carved += 1
                if state.carved * blockSize > state.faulted {
                    // The block's pages are faulted in when the caller touches them.
                    let page = PagePlacement.basePageSize
                    state.faulted = min(region.size, (state.carved * blockSize + page - 1) / page * page)
                }
            } else {
                state.exhausted += 1
                return nil
            }
            state.gets += 1
            state.outstanding += 1
            state.peak = max(state.peak, state.outstanding)
            return address
        }
        guard let address else { throw .globalExhausted(capacity: capacity) }
        let block = UnsafeMutableRawPointer(bitPattern: address)!
        block.storeBytes(of: 0, as: UInt64.self)
        return block
    }

    /// Takes a block back under the lock. A pointer that is not a live block of this pool stops
    /// the program with a message naming the pool and the address.
    public func deallocate(_ block: UnsafeMutableRawPointer) {
        state.withLock { state in
            _ = blockGuard.check(block, base: base, blockCount: capacity / blockSize, carved: state.carved, pool: name)
            blockGuard.markFree(block)
            state.free.append(UInt(bitPattern: block))
            state.puts += 1
            state.outstanding -= 1
        }
    }

    /// One partition: the strategy knows nothing of nodes.
    public var partitionCount: Int { 1 }

    /// Always 0, the one partition.
    public func currentPartition() -> Int { 0 }

    /// 0 for a block in the pool's region, nil for any other address.
    public func partition(of block: UnsafeRawPointer) -> Int? { holds(block) ? 0 : nil }

    /// The region's blocks, whatever `index` is.
    public func addressRange(ofPartition index: Int) -> Range<UInt> { base..<(base + UInt(capacity)) }

    /// Whether `block` lies in the pool's region.
    @inline(__always)
    private func holds(_ block: UnsafeRawPointer) -> Bool { UInt(bitPattern: block) &- base < UInt(capacity) }

    /// The node of the block's page (move_pages(2) on one page).
    public func homeNode(of block: UnsafeRawPointer) -> Int? {
        guard holds(block) else { return nil }
        return (try? PagePlacement(address: block, length: 1))?.nodes.first.flatMap { $0 >= 0 ? Int($0) : nil }
    }

    /// The pool's counters, read under its lock, with the pages faulted in per node
    /// (`placementHistogram`). Remote returns and fallbacks are always 0: the pool knows no home
    /// node.
    public func statistics() -> PoolStatistics {
        var stats = PoolStatistics()
        let faulted = state.withLock { state in
            stats.gets = state.gets
            stats.puts = state.puts
            stats.hits = state.hits
            stats.misses = state.misses
            stats.exhausted = state.exhausted
            stats.trims = state.trims
            stats.bytesInUse = state.outstanding * blockSize
            stats.bytesPeak = state.peak * blockSize
            stats.bytesReserved = state.faulted - state.released.pageCount * PagePlacement.basePageSize
            return state.faulted
        }
        let page = PagePlacement.basePageSize
        for (node, pages) in histogram(length: faulted) {
            var split = NodeStatistics()
            split.bytesReserved = pages * page
            stats.perNode[node] = split
        }
        return stats
    }

    /// Gives back to the kernel the pages that hold no block out, while the blocks out stay
    /// live: the free top of the region (`MADV_DONTNEED`; the blocks there count as never
    /// handed out), and, for base pages, every page below it that only free blocks touch
    /// (`ReleasedPages`). Pages come back when their blocks are handed out again: placed as
    /// before, except a spread pool's, which the thread that first touches them places. There
    /// is no per-thread state.
    public func trim() {
        // Found before the pool's lock is taken: `MarkerPages` has a lock of its own.
        let markers = markers.flatMap { file in file.offset(of: 0, marker: blockGuard.marker).map { (file.fd, $0) } }
        state.withLock { state in
            state.trims += 1
            var free: [Bool]
            var top = 0
            if state.outstanding == 0 {
                // Nothing is out: the marker pages go with the rest, and the blocks they held
                // count as never handed out with every other.
                state.released.discard(base: base, topology: topology)
            } else {
                free = [Bool](repeating: false, count: state.carved)
                for address in state.free { free[Int((address - base) / UInt(blockSize))] = true }
                top = state.carved
                while top > 0 && free[top - 1] { top -= 1 }
            }
            // Released pages stay below the top: a fresh block could not be written there.
            top = max(top, state.released.blocksBelowReleased(blockSize: blockSize))
            let page = PagePlacement.basePageSize
            let keep = (top * blockSize + page - 1) / page * page
            if keep < state.faulted {
                region.release(offset: keep, length: state.faulted - keep)
                state.faulted = keep
                let limit = base + UInt(top * blockSize)
                state.free.removeAll { $0 >= limit }
                state.carved = top
            }
            guard let markers, state.outstanding > 0 else { return }
            free = [Bool](repeating: false, count: state.carved)
            for address in state.free { free[Int((address - base) / UInt(blockSize))] = true }
            let bytes = state.released.release(base: base, blockSize: blockSize, free: free, carved: state.carved,
                                               markers: markers)
            guard bytes > 0 else { return }
            let released = state.released, size = blockSize, start = base
            state.free.removeAll { released.holds(block: Int(($0 - start) / UInt(size)), blockSize: size) }
        }
    }

    /// The pages per node of the part of the region that blocks have reached so far
    /// (move_pages(2)); pages not yet touched count nowhere.
    public var placementHistogram: [Int: Int] { histogram(length: state.withLock { $0.faulted }) }

    private func histogram(length: Int) -> [Int: Int] {
        guard length > 0 else { return [:] }
        return (try? PagePlacement(address: region.baseAddress, length: length).histogram) ?? [:]
    }
}
