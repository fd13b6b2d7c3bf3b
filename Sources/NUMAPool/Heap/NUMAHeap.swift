// Public: the inlined fast paths read the thread's slot table and the class table (CNuma).
public import CNuma
public import NUMA

/// A NUMA-local allocator for any size: memory of the node the calling thread runs on, found
/// again from its address alone, given back to the kernel when it has been free for a while.
///
/// - **Size classes** from 16 bytes to 64 KiB, four per doubling (`SizeClasses`). A block of a
///   class lies in a 256 KiB chunk of its node's arena; larger allocations take whole chunks
///   of their own. `deallocate(_:)` needs no size: a byte per chunk gives the class.
/// - **Per node and per thread**: each node with memory has an arena bound to it (`strict`:
///   `MPOL_BIND`; `preferred`: `MPOL_PREFERRED`, and a full arena falls back on the nearest
///   one with room). Each thread has a cache per class, bounded in bytes
///   (`cacheBytesPerClass`); the whole heap takes one entry in the thread's slot table. A
///   block freed by a thread whose cache is on another node goes home in batches; it never
///   enters that thread's cache.
/// - **Safety**: a double free, a pointer into a block, an address the heap never handed out,
///   or memory of another allocator stops the program with a message naming the heap and the
///   address. A size of 0 or below, one beyond an arena, or an alignment that is not a power
///   of two or is over a page throws `PoolError`.
/// - **Giving memory back**: a chunk whose blocks are all free goes back to the kernel after
///   `decay` (`MADV_DONTNEED`); the purger thread, which the heap starts unless told not to,
///   does that while the process is idle, and makes threads that stopped calling the heap
///   flush their caches at their next call. `trim()` gives back every free chunk now and makes
///   every thread flush its cache at its next call.
/// - **Fork and thread exit** behave as for the pools: a thread's cache goes back when it ends;
///   in a fork child, the caches of threads that were not copied are written off.
public final class NUMAHeap: @unchecked Sendable {
    // @unchecked: every stored property is immutable; the core's shared state is behind its
    // locks and atomics (see HeapCore).
    @usableFromInline let core: HeapCore
    /// The heap's entry in every thread's slot table.
    @usableFromInline let slot: Int

    /// Bytes between the caches of two classes in a thread's heap cache.
    @inlinable static var classStride: Int { 512 }
    /// Chunks are 2^chunkShift bytes (256 KiB).
    @inlinable static var chunkShift: Int { 18 }
    /// Where the heap's header lies in a thread's heap cache (the stack area of class 0).
    @inlinable static var headerOffset: Int { 128 }

    /// Creates a heap with arenas of `capacityPerNode` bytes on `nodes` (by default every node
    /// with memory this process may use). Nothing is faulted in until blocks are handed out.
    ///
    /// - Parameters:
    ///   - capacityPerNode: bytes of each node's arena (address space; at least one 256 KiB chunk).
    ///   - binding: `.strict` keeps pages on the node and throws `PoolError.exhausted` when an
    ///     arena is full; `.preferred` falls back on another node's arena.
    ///   - cacheBytesPerClass: the bytes each thread's cache may hold of one class (at least one
    ///     block, at most 48).
    ///   - decay: how long a free chunk keeps its pages before they go back to the kernel.
    ///   - purger: whether a purger thread gives back decayed memory and idle threads' caches
    ///     while the process does not call the heap; `stopPurger()` ends it.
    ///   - nodes: the nodes that get an arena; by default every node with memory this process
    ///     may use.
    ///   - name: names the heap in statistics and in the message of a corruption stop.
    ///   - topology: the machine's topology.
    public init(capacityPerNode: Int = 1 << 30, binding: LocalPool.Binding = .preferred, nodes: NodeSet? = nil,
                cacheBytesPerClass: Int = 128 << 10, decay: Duration = .seconds(10), purger: Bool = true,
                name: String? = nil, topology: Topology = .current) throws(PoolError) {
        guard capacityPerNode >= HeapArena.chunkBytes else {
            throw .invalidArgument("capacity per node must be at least one chunk (\(HeapArena.chunkBytes) bytes), got \(capacityPerNode)")
        }
        guard cacheBytesPerClass >= 0 else {
            throw .invalidArgument("cache bytes per class must not be negative, got \(cacheBytesPerClass)")
        }
        guard decay >= .zero else { throw .invalidArgument("decay must not be negative, got \(decay)") }
        let chosen = nodes ?? topology.bindableNodes
        do {
            try topology.validate(chosen, operation: "NUMAHeap")
        } catch {
            throw .numa(error)
        }
        let core = try HeapCore(capacity: capacityPerNode, strict: binding == .strict, nodes: chosen.ids,
                                cacheBytes: cacheBytesPerClass, decay: decay, name: name, topology: topology)
        self.core = core
        slot = try ThreadSlots.claim(core)
        core.slot = slot
        if purger { core.startPurger() }
    }

    deinit {
        core.stopPurger()
        _ = ThreadSlots.release(slot)
    }

    /// The heap's name: the one given, or `NUMAHeap #N`.
    public var name: String { core.name }
    /// The nodes that have an arena, in ascending order.
    public var nodes: [Int] { core.arenas.map(\.node) }
    /// The largest size a size class serves; larger allocations take 256 KiB chunks of their own.
    public static var largestClassSize: Int { SizeClasses.largest }
    /// The bytes an allocation of `byteCount` bytes (aligned to 16) takes: its class's size, or
    /// whole 256 KiB chunks above `largestClassSize`; nil for a size that is not positive.
    public static func roundedSize(forRequest byteCount: Int) -> Int? {
        guard byteCount > 0 else { return nil }
        if let sizeClass = SizeClasses.sizeClass(for: byteCount, alignment: 16) { return SizeClasses.sizes[sizeClass] }
        let chunk = 1 << chunkShift
        return (byteCount + chunk - 1) / chunk * chunk
    }

    /// The sizes of the classes, ascending.
    public static var classSizes: [Int] { Array(SizeClasses.sizes.dropFirst()) }

    /// Memory for `byteCount` bytes, aligned to 16, from the arena of the node the calling
    /// thread runs on. The fast path, inlined into the caller: the size's class (as its cache's offset) from a table,
    /// a pop from the thread's cache of that class, the free marker cleared, a counter.
    @inlinable @inline(__always)
    public func allocate(byteCount: Int) throws(PoolError) -> UnsafeMutableRawPointer {
        let state = CNuma_slot(slot)
        let index = UInt(bitPattern: byteCount &+ 15) &>> 4
        if _fastPath(index < UInt(CNUMA_HEAP_CLASS_TABLE)) {
            let cache = ThreadCache(state + Int(CNuma_heap_cache_offset(index)))
            let (top, empty) = UInt(bitPattern: cache.sharedCount).subtractingReportingOverflow(1)
            if _fastPath(!empty) {
                cache.sharedCount = Int(bitPattern: top)
                let block = cache.stack[Int(bitPattern: top)]
                block.storeBytes(of: 0, as: UInt64.self)
                cache.bump(.gets)
                return block
            }
        }
        return try core.allocateSlow(byteCount: byteCount, alignment: 16, node: nil)
    }

    /// Memory for `byteCount` bytes aligned to `alignment` (a power of two, at most a page).
    @inlinable @inline(__always)
    public func allocate(byteCount: Int, alignment: Int) throws(PoolError) -> UnsafeMutableRawPointer {
        if _fastPath(UInt(bitPattern: alignment) &- 1 < 16 && alignment & (alignment &- 1) == 0) {
            return try allocate(byteCount: byteCount)
        }
        return try core.allocateSlow(byteCount: byteCount, alignment: alignment, node: nil)
    }

    /// Memory for `byteCount` bytes from the arena of `node`, whichever node the thread runs
    /// on (no thread cache: every call takes the arena's lock). Throws when the heap has no
    /// arena on `node`.
    public func allocate(byteCount: Int, on node: Int) throws(PoolError) -> UnsafeMutableRawPointer {
        try core.allocateSlow(byteCount: byteCount, alignment: 16, node: node)
    }

    /// Gives back memory that `allocate` handed out; the size is found from the address. The
    /// fast path, inlined into the caller: the block lies in a chunk of the thread's node that
    /// holds a class, starts a block of it (a multiplication and a rotation), is not marked
    /// free, and the class's cache has room. Everything else goes to the slow path, which
    /// stops the program for a pointer that is not a live block of this heap.
    @inlinable @inline(__always)
    public func deallocate(_ block: UnsafeMutableRawPointer) {
        let state = CNuma_slot(slot)
        let header = (state + Self.headerOffset).assumingMemoryBound(to: HeapHeader.self)
        let offset = UInt(bitPattern: block) &- header.pointee.base
        let chunk = offset &>> UInt(Self.chunkShift)
        if _fastPath(chunk < header.pointee.chunks) {
            let cache = ThreadCache(state + Int(header.pointee.cacheOffsetOfChunk[Int(bitPattern: chunk)]))
            let head = cache.head
            let marker = head.pointee.marker
            let index = BlockGuard.index(of: offset & (1 &<< UInt(Self.chunkShift) &- 1), base: 0, inverse: head.pointee.inverse, shift: marker)
            let count = cache.sharedCount
            if _fastPath(index < head.pointee.limit && count < head.pointee.capacity && block.load(as: UInt64.self) != marker) {
                block.storeBytes(of: marker, as: UInt64.self)
                cache.stack[count] = block
                cache.sharedCount = count &+ 1
                cache.bumpReleasing(.puts)
                return
            }
        }
        core.deallocateSlow(block)
    }

    /// The node whose arena holds `pointer`, or nil if it is not memory of this heap.
    public func homeNode(of pointer: UnsafeRawPointer) -> Int? {
        core.arena(of: UInt(bitPattern: pointer)).map { core.arenas[$0].node }
    }

    /// The bytes usable at `pointer`, a live allocation of this heap: its class's size, or the
    /// whole chunks of a large allocation. Stops the program for any other pointer.
    public func usableSize(of pointer: UnsafeRawPointer) -> Int { core.usableSize(of: pointer) }

    /// Gives back every free chunk's pages now, flushes the calling thread's cache, and makes
    /// every other thread flush its cache at its next call.
    public func trim() { core.trim() }

    /// Ends the purger thread, if it runs; decay then happens only at `trim()`.
    public func stopPurger() { core.stopPurger() }

    /// A snapshot while threads run: counters merged over threads, every node's memory.
    public func statistics() -> HeapStatistics { core.statistics() }
}

/// What a heap's fast paths read in a thread's heap cache besides the class caches: the range
/// and chunk classes of the arena the thread's caches belong to. Zero in the empty state, so
/// that every deallocation takes the slow path there.
@frozen @usableFromInline
struct HeapHeader {
    @usableFromInline var base: UInt
    @usableFromInline var chunks: UInt
    @usableFromInline var cacheOffsetOfChunk: UnsafeMutablePointer<UInt16>
    /// The arena index, or -1 before the cache has one.
    @usableFromInline var arena: Int
    /// The heap's flush epoch the cache last honoured.
    @usableFromInline var epoch: UInt64
    /// The purger's tick at the thread's last slow path.
    @usableFromInline var tick: UInt64
}
