import NUMA

/// A pool of fixed-size blocks. Both strategies, `LocalPool` and `GlobalPool`, implement it,
/// and `ObjectPool` sits on either.
///
/// One pool serves one block size; a program that needs several sizes keeps one pool per size.
public protocol BlockPool: AnyObject, Sendable {
    /// The pool's name, used in statistics and in the message of a corruption stop.
    var name: String { get }
    /// The size of every block, in bytes (a multiple of 16).
    var blockSize: Int { get }
    /// Hands out a block of `blockSize` bytes, aligned to 16.
    func allocate() throws(PoolError) -> UnsafeMutableRawPointer
    /// Takes back a block that `allocate()` of this pool handed out. Anything else (a block
    /// given back twice, a pointer into a block, an address the pool never handed out, memory
    /// of another pool) is memory corruption: the program stops with a message naming the
    /// pool and the address, as it does for an index out of range.
    func deallocate(_ block: UnsafeMutableRawPointer)
    /// The node whose memory holds the block, or nil if it is not from this pool.
    func homeNode(of block: UnsafeRawPointer) -> Int?
    /// How many partitions the pool's memory has: `LocalPool` has one per arena (per node),
    /// `GlobalPool` one. Layers above a pool (`ObjectPool`) keep their own state per partition
    /// so that they keep the pool's locality.
    var partitionCount: Int { get }
    /// The partition that serves the calling thread: for `LocalPool` the arena of the node it
    /// runs on.
    func currentPartition() -> Int
    /// The partition whose memory holds `block`, or nil if it is not from this pool.
    func partition(of block: UnsafeRawPointer) -> Int?
    /// The addresses of partition `index`: every block of it lies in this range.
    func addressRange(ofPartition index: Int) -> Range<UInt>
    /// The merged counters of every thread and node.
    func statistics() -> PoolStatistics
    /// Returns what the calling thread holds back (its cache, its pending remote returns) to the
    /// arenas, and gives wholly free memory back to the kernel.
    func trim()
}
