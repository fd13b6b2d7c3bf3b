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

/// Why a pool could not be made or could not hand out a block.
public enum PoolError: Error, Sendable, Equatable, CustomStringConvertible {
    /// The arena of `node` is full and the pool's binding allows no fallback.
    case exhausted(node: Int, capacity: Int)
    /// The shared pool of the global strategy is full.
    case globalExhausted(capacity: Int)
    /// A bad argument or a failed call of the NUMA layer.
    case numa(NUMAError)
    /// An argument the pool cannot accept.
    case invalidArgument(String)
    /// Every per-thread slot is taken by a live pool (`limit` pools with per-thread state may
    /// live at once).
    case tooManyPools(limit: Int)

    /// A sentence that says what failed, naming the node, the capacity or the limit.
    public var description: String {
        switch self {
        case .exhausted(let node, let capacity): "the arena of node \(node) is full (\(capacity) bytes, strict binding)"
        case .globalExhausted(let capacity): "the global pool is full (\(capacity) bytes)"
        case .numa(let error): error.description
        case .invalidArgument(let message): message
        case .tooManyPools(let limit): "too many pools alive at once (at most \(limit) local and object pools)"
        }
    }
}

/// The block sizes the pools serve, for callers that size memory for a pool.
public enum BlockSize {
    /// The largest block a pool serves: 1 GiB.
    public static let maximum = 1 << 30
    /// Blocks are whole granules of this many bytes.
    public static let granule = 16

    /// The bytes a block asked for as `size` takes in a pool: `size` rounded up to the granule.
    public static func rounded(_ size: Int) -> Int { (size + granule - 1) & ~(granule - 1) }
}

/// Rounds a requested block size up to the pools' granule, or refuses it: a size must be
/// positive, at most `BlockSize.maximum`, and fit the pool's capacity.
func checkedBlockSize(_ size: Int, capacity: Int) throws(PoolError) -> Int {
    guard size > 0 else { throw .invalidArgument("block size must be positive, got \(size)") }
    guard size <= BlockSize.maximum else {
        throw .invalidArgument("block size \(size) is larger than the largest the pools serve (\(BlockSize.maximum) bytes)")
    }
    guard capacity > 0 else { throw .invalidArgument("capacity must be positive, got \(capacity)") }
    let rounded = BlockSize.rounded(size)
    guard rounded <= capacity else {
        throw .invalidArgument("block size \(size) is larger than the capacity \(capacity)")
    }
    return rounded
}
