/// A snapshot of a pool's counters. Counters are kept per thread or per node and merged when
/// the snapshot is taken; rates come from the difference of two snapshots.
public struct PoolStatistics: Sendable, Equatable {
    /// Blocks handed out.
    public var gets: UInt64 = 0
    /// Blocks taken back.
    public var puts: UInt64 = 0
    /// Gets served by a block that had been used before.
    public var hits: UInt64 = 0
    /// Gets served by fresh memory, never handed out before.
    public var misses: UInt64 = 0
    /// Blocks returned by a thread on another node than the block's home; they go home.
    public var remoteReturns: UInt64 = 0
    /// Gets refused because a strictly bound arena was full.
    public var exhausted: UInt64 = 0
    /// Gets served by another node's arena because the local one was full (preferred binding).
    public var fallbacks: UInt64 = 0
    /// Objects dropped on return because something else still referenced them (`ObjectPool`).
    public var escaped: UInt64 = 0
    /// Objects dropped before reuse because validation rejected them (`ObjectPool`).
    public var rejected: UInt64 = 0
    /// Blocks (or objects) that sat in the caches of threads that were not copied into this
    /// process by fork(2): written off, never handed out again.
    public var writtenOff: UInt64 = 0
    /// Thread caches flushed whole (a trim, a thread that moved or ended, a parked thread's).
    public var flushes: UInt64 = 0
    /// Calls of `trim()`.
    public var trims: UInt64 = 0
    /// Bytes of memory faulted in for blocks.
    public var bytesReserved: Int = 0
    /// Bytes in blocks that callers hold now: (gets − puts) × block size. While threads run, a
    /// snapshot is not one instant: this is then bounded by what the arenas have handed out.
    public var bytesInUse: Int = 0
    /// The most bytes ever handed out by the arenas at once, blocks parked in thread caches
    /// included, so an upper bound of the callers' peak.
    public var bytesPeak: Int = 0
    /// The same figures by node.
    public var perNode: [Int: NodeStatistics] = [:]
    /// When the snapshot was taken.
    public var taken: ContinuousClock.Instant = .now

    /// A snapshot with every counter at zero, taken now.
    public init() {}

    /// hits / gets.
    public var reuseRate: Double { gets == 0 ? 0 : Double(hits) / Double(gets) }
    /// misses / gets.
    public var freshAllocationRate: Double { gets == 0 ? 0 : Double(misses) / Double(gets) }
    /// 1 − inUse / reserved: the share of reserved memory that callers do not hold.
    public var fragmentation: Double { bytesReserved == 0 ? 0 : 1 - Double(bytesInUse) / Double(bytesReserved) }
    /// Blocks that callers hold now.
    public var outstanding: Int64 { Int64(bitPattern: gets &- puts) }

    /// Per-second rates of the counters between an earlier snapshot and this one.
    public func rates(since earlier: PoolStatistics) -> PoolRates {
        let seconds = max(1e-9, Double((taken - earlier.taken).components.attoseconds) / 1e18
            + Double((taken - earlier.taken).components.seconds))
        func rate(_ a: UInt64, _ b: UInt64) -> Double { Double(a &- b) / seconds }
        return PoolRates(seconds: seconds, getsPerSecond: rate(gets, earlier.gets), putsPerSecond: rate(puts, earlier.puts),
                         missesPerSecond: rate(misses, earlier.misses),
                         remoteReturnsPerSecond: rate(remoteReturns, earlier.remoteReturns))
    }
}

/// One node's share of a pool.
public struct NodeStatistics: Sendable, Equatable {
    /// Blocks handed out by this node's arena (to callers or thread caches).
    public var gets: UInt64 = 0
    /// Blocks given back to this node's arena.
    public var puts: UInt64 = 0
    /// Blocks that came home from threads on other nodes.
    public var remoteReturns: UInt64 = 0
    /// Gets refused because the arena was full.
    public var exhausted: UInt64 = 0
    /// Bytes faulted in on this node.
    public var bytesReserved: Int = 0
    /// Bytes handed out by the arena now, thread caches included.
    public var bytesOutstanding: Int = 0

    /// A share with every figure at zero.
    public init() {}
}

/// Counter rates between two snapshots.
public struct PoolRates: Sendable, Equatable {
    /// The time between the two snapshots, in seconds.
    public var seconds: Double
    /// Gets per second.
    public var getsPerSecond: Double
    /// Puts per second.
    public var putsPerSecond: Double
    /// Misses (gets served by fresh memory) per second.
    public var missesPerSecond: Double
    /// Remote returns per second.
    public var remoteReturnsPerSecond: Double
}
