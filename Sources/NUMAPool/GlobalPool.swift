import NUMA

/// The baseline strategy: one free list under one lock, over one region that knows nothing of
/// nodes. The region is placed when the pool is made, either by first touch (every page lands
/// where the creating thread's policy puts it, normally that thread's node) or interleaved over
/// a node set. This is the pool shape that leaves a share of accesses remote.
///
/// Every call takes the lock; a pointer given back is checked under it (`BlockGuard`), and one
/// that is not a live block of this pool stops the program with a message naming the pool and
/// the address. The lock is held across fork(2) and new in the child.
public final class GlobalPool: BlockPool {
    /// How the region's pages are placed.
    public enum Placement: Hashable, Sendable, CustomStringConvertible {
        /// Faulted in by the thread that creates the pool, under that thread's policy.
        case firstTouch
        /// Spread page by page over these nodes (`MPOL_INTERLEAVE`).
        case interleave(NodeSet)

        public var description: String {
            switch self {
            case .firstTouch: "first-touch"
            case .interleave(let nodes): "interleave:\(nodes)"
            }
        }
    }

    public let name: String
    public let blockSize: Int
    public let capacity: Int
    public let placement: Placement
    private let region: MemoryRegion
    private let base: UInt
    private let blockGuard: BlockGuard
    /// Pages per node after the fill, read once with move_pages(2).
    private let pagesPerNode: [Int: Int]
    private let state = Locked(State())

    struct State {
        var free: [UInt] = []
        /// Blocks handed out at some time; blocks past them never were.
        var carved = 0
        var gets: UInt64 = 0, puts: UInt64 = 0, hits: UInt64 = 0, misses: UInt64 = 0
        var exhausted: UInt64 = 0
        var outstanding = 0, peak = 0
    }

    /// Maps `capacity` bytes, places them as `placement` says and faults them all in from the
    /// calling thread.
    public init(blockSize: Int, capacity: Int, placement: Placement = .firstTouch, pages: PageMode = .base,
                name: String? = nil, topology: Topology = .current) throws(PoolError) {
        self.blockSize = try checkedBlockSize(blockSize, capacity: capacity)
        self.placement = placement
        self.name = name ?? "GlobalPool (\(self.blockSize)-byte blocks)"
        blockGuard = BlockGuard(blockSize: self.blockSize)
        do {
            switch placement {
            case .firstTouch: region = try MemoryRegion(size: capacity, pages: pages, topology: topology)
            case .interleave(let nodes):
                region = try MemoryRegion(size: capacity, policy: .interleave(nodes), pages: pages, topology: topology)
            }
            region.faultIn()
            pagesPerNode = try region.nodeHistogram()
        } catch {
            throw .numa(error)
        }
        self.capacity = region.size / self.blockSize * self.blockSize
        base = UInt(bitPattern: region.baseAddress)
    }

    public func allocate() throws(PoolError) -> UnsafeMutableRawPointer {
        let address: UInt? = state.withLock { state in
            let address: UInt
            if let reused = state.free.popLast() {
                state.hits += 1
                address = reused
            } else if (state.carved + 1) * blockSize <= capacity {
                state.misses += 1
                address = base + UInt(state.carved * blockSize)
                state.carved += 1
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

    public func currentPartition() -> Int { 0 }

    public func partition(of block: UnsafeRawPointer) -> Int? { holds(block) ? 0 : nil }

    public func addressRange(ofPartition index: Int) -> Range<UInt> { base..<(base + UInt(capacity)) }

    /// Whether `block` lies in the pool's region.
    @inline(__always)
    private func holds(_ block: UnsafeRawPointer) -> Bool { UInt(bitPattern: block) &- base < UInt(capacity) }

    /// The node of the block's page (move_pages(2) on one page).
    public func homeNode(of block: UnsafeRawPointer) -> Int? {
        guard holds(block) else { return nil }
        return (try? PagePlacement(address: block, length: 1))?.nodes.first.flatMap { $0 >= 0 ? Int($0) : nil }
    }

    public func statistics() -> PoolStatistics {
        var stats = PoolStatistics()
        state.withLock { state in
            stats.gets = state.gets
            stats.puts = state.puts
            stats.hits = state.hits
            stats.misses = state.misses
            stats.exhausted = state.exhausted
            stats.bytesInUse = state.outstanding * blockSize
            stats.bytesPeak = state.peak * blockSize
        }
        stats.bytesReserved = region.size
        let page = PagePlacement.basePageSize
        for (node, pages) in pagesPerNode {
            var split = NodeStatistics()
            split.bytesReserved = pages * page
            stats.perNode[node] = split
        }
        return stats
    }

    /// The global pool keeps its region faulted in; there is no per-thread state to return.
    public func trim() {}

    /// The region's pages per node as placed when the pool was made.
    public var placementHistogram: [Int: Int] { pagesPerNode }
}
