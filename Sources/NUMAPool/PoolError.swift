import NUMA

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
