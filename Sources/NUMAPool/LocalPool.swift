// Public: the inlined fast paths read the thread's slot table (CNuma).
public import CNuma
import NUMA

/// The NUMA-aware strategy: one arena per node, bound to that node, and a bounded cache per
/// thread in front of them.
///
/// - A thread takes blocks from the arena of the node it runs on (getcpu(3) and a CPU→arena
///   table built once). A CPU whose node has no memory, or no arena, uses the first arena in
///   its fallback order (`Topology.fallbackOrder`: fastest memory tier first, then nearest).
/// - The thread's cache (`ThreadCache`) holds blocks of one arena only. A block freed by a thread whose cache
///   belongs to another node goes home to its own arena, found from its address, in batches of
///   32 (`HomeBatches`); it never enters that thread's cache.
/// - A thread that moves to another node is noticed when its cache next refills from an arena
///   or is given a block of another arena, and at once when it moves itself through
///   `ThreadAffinity` or `PinnedThread`; its cache then goes back to the old arena before it
///   takes blocks of the new one. (A spill does not look: it gives blocks to the cache's own
///   arena, which is where they belong.)
/// - When an arena is full: with `.strict` binding, `allocate()` throws `PoolError.exhausted`;
///   with `.preferred`, the block comes from the first arena in fallback order that has room,
///   counted in `fallbacks`: the fastest memory tier first, then by distance within a tier, so
///   a DRAM arena falls back on another node's DRAM before CXL memory the firmware puts nearer.
/// - A pointer given back that is not a live block of this pool (given back twice, pointing
///   into a block, never handed out, or foreign) stops the program with a message naming the
///   pool and the address (`BlockGuard`).
/// - After `fork()`, the child's pool works: its locks were held across the fork and are new
///   in the child, and the blocks cached by threads that were not copied are written off
///   (`PoolStatistics.writtenOff`), never handed out.
public final class LocalPool: BlockPool {
    /// How an arena's memory is tied to its node.
    public enum Binding: String, Sendable, CaseIterable {
        /// `MPOL_BIND`: pages only ever on the node; a full arena is an error.
        case strict
        /// `MPOL_PREFERRED`: pages on the node while it has room; a full arena falls back.
        case preferred
    }

    /// The most blocks a thread's cache may hold.
    public static let maximumCacheCapacity = 1 << 16

    @usableFromInline let core: LocalPoolCore
    /// This pool's entry in every thread's slot table.
    @usableFromInline let slot: Int

    /// The blocks a thread's cache takes from its arena at once when it runs empty, for a cache
    /// of `cacheCapacity` blocks: half of it, at most 64. An arena must hold that many blocks
    /// beyond what its threads keep.
    public static func refillBatch(cacheCapacity: Int) -> Int { max(1, min(cacheCapacity / 2, 64)) }

    /// Creates arenas of `capacityPerNode` bytes on `nodes` (by default every node with memory
    /// that this process may use), backed by `pages`. Nothing is faulted in until blocks are
    /// handed out. `blockSize` is rounded up to a multiple of 16; each thread's cache holds up
    /// to `cacheCapacity` blocks (2 to `maximumCacheCapacity`).
    public init(blockSize: Int, capacityPerNode: Int, binding: Binding = .strict, nodes: NodeSet? = nil,
                cacheCapacity: Int = 256, pages: PageMode = .base, name: String? = nil,
                topology: Topology = .current) throws(PoolError) {
        let size = try checkedBlockSize(blockSize, capacity: capacityPerNode)
        guard cacheCapacity >= 2 && cacheCapacity <= Self.maximumCacheCapacity else {
            throw .invalidArgument("cache capacity must be between 2 and \(Self.maximumCacheCapacity), got \(cacheCapacity)")
        }
        let chosen = nodes ?? topology.bindableNodes
        do {
            try topology.validate(chosen, operation: "LocalPool")
        } catch {
            throw .numa(error)
        }
        let core = try LocalPoolCore(blockSize: size, capacity: capacityPerNode, strict: binding == .strict,
                                     nodes: chosen.ids, cacheCapacity: cacheCapacity, pages: pages, name: name,
                                     topology: topology)
        self.core = core
        slot = try ThreadSlots.claim(core)
        core.slot = slot
    }

    deinit {
        // The slot is cleared in every thread before the core (and its caches) can end; the
        // owner reference comes back here and goes after the registry lock is let go.
        _ = ThreadSlots.release(slot)
    }

    /// The pool's name: the one given, or `LocalPool #N (M-byte blocks)`.
    public var name: String { core.name }
    /// The size of every block, in bytes: the size asked for, rounded up to 16.
    public var blockSize: Int { core.blockSize }
    /// The nodes that have an arena, in ascending order.
    public var nodes: [Int] { core.arenas.map(\.node) }

    /// The fast path, inlined into the caller: the thread's cache for this pool holds a block.
    /// One thread-local load, a pop, the free marker cleared, a counter. Everything else (no
    /// cache yet, an empty cache) is `allocateSlow()`.
    @inlinable @inline(__always)
    public func allocate() throws(PoolError) -> UnsafeMutableRawPointer {
        let cache = ThreadCache(CNuma_slot(slot))
        let head = cache.head
        let (top, empty) = UInt(bitPattern: head.pointee.count).subtractingReportingOverflow(1)
        if _fastPath(!empty) {
            head.pointee.count = Int(bitPattern: top)
            let block = cache.stack[Int(bitPattern: top)]
            block.storeBytes(of: 0, as: UInt64.self)
            cache.bump(.gets)
            return block
        }
        return try core.allocateSlow()
    }

    /// The fast path, inlined into the caller: the block is a block of the cache's arena that
    /// the cache knows was carved (one multiplication, one rotation, one comparison, which
    /// also refuses an address inside a block), it is not marked free (a double free), and
    /// the cache has room. Everything else goes to `deallocateSlow(_:)`, which checks again
    /// and stops the program for a pointer that is not a live block of this pool.
    @inlinable @inline(__always)
    public func deallocate(_ block: UnsafeMutableRawPointer) {
        let cache = ThreadCache(CNuma_slot(slot))
        let head = cache.head
        let marker = head.pointee.marker
        let index = BlockGuard.index(of: UInt(bitPattern: block), base: head.pointee.base, inverse: head.pointee.inverse,
                                     shift: marker)
        let count = head.pointee.count
        if _fastPath(index < head.pointee.limit && count < head.pointee.capacity && block.load(as: UInt64.self) != marker) {
            block.storeBytes(of: marker, as: UInt64.self)
            cache.stack[count] = block
            // Read again rather than reuse `count`: after the two stores the compiler cannot
            // assume it unchanged, so the load, add and store become one `inc` of memory.
            head.pointee.count = head.pointee.count &+ 1
            cache.bumpReleasing(.puts)
            return
        }
        core.deallocateSlow(block)
    }

    /// One partition per arena, in the order of `nodes`.
    public var partitionCount: Int { core.arenas.count }

    /// The index of the arena that serves the calling thread: its node's (getcpu(3)), or the
    /// first in that node's fallback order.
    public func currentPartition() -> Int { core.currentArena() }

    /// The index of the arena whose range holds `block`, or nil for an address of no arena.
    public func partition(of block: UnsafeRawPointer) -> Int? { core.arenaIndex(of: block) }

    /// The addresses of arena `index`'s blocks.
    public func addressRange(ofPartition index: Int) -> Range<UInt> { core.arenas[index].range }

    /// The node of the arena that holds `block`, found from its address, or nil if no arena
    /// holds it.
    public func homeNode(of block: UnsafeRawPointer) -> Int? {
        core.arenaIndex(of: block).map { core.arenas[$0].node }
    }

    /// A snapshot of the counters of every thread, merged, and of every arena (the per-node
    /// split), consistent while threads run: never more puts or misses than gets.
    public func statistics() -> PoolStatistics { core.statistics() }

    /// Gives the calling thread's cache and pending remote returns back to the arenas, then
    /// returns to the kernel (`MADV_DONTNEED`) each arena's pages past its highest block that is
    /// still out (held by a caller or another thread's cache): all of an arena with nothing
    /// out, the free top of one whose lower blocks are live. When an arena was trimmed, the
    /// other threads' caches are deactivated, so that each looks at its arena again before it
    /// accepts a block.
    public func trim() { core.trim() }
}
