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
