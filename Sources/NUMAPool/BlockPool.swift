import NUMA

/// A pool of fixed-size blocks. Both strategies, `LocalPool` and `GlobalPool`, implement it,
/// and `ObjectPool` sits on either.
///
/// One pool serves one block size; a program that needs several sizes keeps one pool per size.
public protocol BlockPool: AnyObject, Sendable {
    /// The size of every block, in bytes (a multiple of 16).
    var blockSize: Int { get }
    /// Hands out a block of `blockSize` bytes, aligned to 16.
    func allocate() throws(PoolError) -> UnsafeMutableRawPointer
    /// Takes back a block that `allocate()` of this pool handed out. A pointer from elsewhere
    /// is a programmer error and traps.
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
    /// The merged counters of every thread and node.
    func statistics() -> PoolStatistics
    /// Returns what the calling thread holds back (its cache, its pending remote returns) to the
    /// arenas, and gives wholly free memory back to the kernel.
    func trim()
}

/// Why a pool could not hand out a block.
public enum PoolError: Error, Sendable, Equatable, CustomStringConvertible {
    /// The arena of `node` is full and the pool's binding allows no fallback.
    case exhausted(node: Int, capacity: Int)
    /// The shared pool of the global strategy is full.
    case globalExhausted(capacity: Int)
    /// A bad argument or a failed call of the NUMA layer.
    case numa(NUMAError)
    /// An argument the pool cannot accept.
    case invalidArgument(String)

    public var description: String {
        switch self {
        case .exhausted(let node, let capacity): "the arena of node \(node) is full (\(capacity) bytes, strict binding)"
        case .globalExhausted(let capacity): "the global pool is full (\(capacity) bytes)"
        case .numa(let error): error.description
        case .invalidArgument(let message): message
        }
    }
}

/// Rounds a requested block size up to the pools' 16-byte granule, or refuses it.
func checkedBlockSize(_ size: Int, capacity: Int) throws(PoolError) -> Int {
    guard size > 0 else { throw .invalidArgument("block size must be positive, got \(size)") }
    let rounded = (size + 15) & ~15
    guard rounded <= capacity else {
        throw .invalidArgument("block size \(size) is larger than the capacity \(capacity)")
    }
    return rounded
}
