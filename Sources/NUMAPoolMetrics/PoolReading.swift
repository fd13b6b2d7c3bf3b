import NUMAPool

/// One reading of a pool, an object pool or a heap, in the shape its metrics take: counters and
/// byte gauges, each for one node or for the whole pool (`node` nil, exported as `node="all"`).
public struct PoolReading: Sendable, Equatable {
    /// A counter of the reading: which one, and for which node.
    public struct CounterKey: Hashable, Sendable {
        /// The counter.
        public var counter: PoolCounter
        /// Its node, or nil for the whole pool.
        public var node: Int?
        /// The key of `counter` for `node` (nil: the whole pool).
        public init(_ counter: PoolCounter, node: Int? = nil) {
            self.counter = counter
            self.node = node
        }
    }

    /// A byte gauge of the reading: which state, and for which node.
    public struct BytesKey: Hashable, Sendable {
        /// The state of the bytes.
        public var state: ByteState
        /// Their node, or nil for the whole pool.
        public var node: Int?
        /// The key of `state` for `node` (nil: the whole pool).
        public init(_ state: ByteState, node: Int? = nil) {
            self.state = state
            self.node = node
        }
    }

    /// Counters since the pool was made.
    public var counters: [CounterKey: UInt64] = [:]
    /// Bytes by state.
    public var bytes: [BytesKey: Int] = [:]
    /// 1 − in use / reserved (or resident, for the heap) over the whole pool.
    public var fragmentation: Double = 0

    /// An empty reading.
    public init() {}

    /// A reading of a `LocalPool`'s, `GlobalPool`'s or `ObjectPool`'s statistics: gets, puts,
    /// hits, misses, fallbacks, exhausted gets, escapes, rejections, flushes and trims for the
    /// pool; remote returns, and bytes reserved, out of
    /// the arena (in use or cached) and free, for each node. In use and cached are for the
    /// whole pool: a block's node is not known once callers hold it.
    public init(_ statistics: PoolStatistics) {
        for (counter, value) in [(PoolCounter.gets, statistics.gets), (.puts, statistics.puts), (.hits, statistics.hits),
                                 (.misses, statistics.misses), (.fallbacks, statistics.fallbacks),
                                 (.exhausted, statistics.exhausted), (.escaped, statistics.escaped),
                                 (.rejected, statistics.rejected), (.writtenOff, statistics.writtenOff),
                                 (.flushes, statistics.flushes), (.trims, statistics.trims)] {
            counters[CounterKey(counter)] = value
        }
        var out = 0
        for (node, split) in statistics.perNode {
            counters[CounterKey(.remoteReturns, node: node)] = split.remoteReturns
            bytes[BytesKey(.reserved, node: node)] = split.bytesReserved
            bytes[BytesKey(.free, node: node)] = max(0, split.bytesReserved - split.bytesOutstanding)
            out += split.bytesOutstanding
        }
        bytes[BytesKey(.reserved)] = statistics.bytesReserved
        bytes[BytesKey(.inUse)] = statistics.bytesInUse
        bytes[BytesKey(.cached)] = max(0, out - statistics.bytesInUse)
        fragmentation = statistics.fragmentation
    }

    /// A reading of a `NUMAHeap`'s statistics: its counters for the heap, remote frees and
    /// exhausted allocations for each node, and every byte state for each node.
    public init(_ statistics: HeapStatistics) {
        for (counter, value) in [(PoolCounter.gets, statistics.gets), (.puts, statistics.puts), (.hits, statistics.hits),
                                 (.misses, statistics.misses), (.flushes, statistics.flushes),
                                 (.trims, statistics.trims), (.parkedReclaims, statistics.parkedReclaims),
                                 (.writtenOff, statistics.writtenOff)] {
            counters[CounterKey(counter)] = value
        }
        for (node, split) in statistics.perNode {
            counters[CounterKey(.remoteReturns, node: node)] = split.remoteFrees
            counters[CounterKey(.exhausted, node: node)] = split.exhausted
            counters[CounterKey(.pagesDecayed, node: node)] = split.pagesDecayed
            bytes[BytesKey(.inUse, node: node)] = split.bytesInUse
            bytes[BytesKey(.cached, node: node)] = split.bytesCached
            bytes[BytesKey(.free, node: node)] = split.bytesFree
            bytes[BytesKey(.returned, node: node)] = split.bytesReturned
            bytes[BytesKey(.resident, node: node)] = split.bytesResident
        }
        let resident = statistics.bytesResident
        fragmentation = resident == 0 ? 0 : max(0, 1 - Double(statistics.bytesInUse) / Double(resident))
    }

    /// A counter's value for the whole pool: its own figure, or the sum over nodes.
    public func total(_ counter: PoolCounter) -> UInt64 {
        if let value = counters[CounterKey(counter)] { return value }
        return counters.reduce(0) { $1.key.counter == counter ? $0 + $1.value : $0 }
    }
}

/// The counters a reading may hold, by their Prometheus names.
public enum PoolCounter: String, CaseIterable, Sendable {
    /// Blocks or objects handed out.
    case gets = "numapool_gets_total"
    /// Blocks or objects given back.
    case puts = "numapool_puts_total"
    /// Gets served by memory used before.
    case hits = "numapool_hits_total"
    /// Gets served by fresh memory or an arena refill.
    case misses = "numapool_misses_total"
    /// Blocks given back by a thread on another node than their home.
    case remoteReturns = "numapool_remote_returns_total"
    /// Gets served by another node's arena.
    case fallbacks = "numapool_fallbacks_total"
    /// Gets refused because the memory was full.
    case exhausted = "numapool_exhausted_total"
    /// Objects dropped on return because something else still referenced them.
    case escaped = "numapool_escaped_total"
    /// Idle objects that validation rejected.
    case rejected = "numapool_rejected_total"
    /// Thread caches flushed whole.
    case flushes = "numapool_flushes_total"
    /// Calls of `trim()`.
    case trims = "numapool_trims_total"
    /// Parked threads' caches taken back.
    case parkedReclaims = "numapool_parked_reclaims_total"
    /// Blocks written off after fork(2).
    case writtenOff = "numapool_written_off_total"
    /// Pages given back after the decay time.
    case pagesDecayed = "numapool_pages_decayed_total"

    /// What the counter counts, for the exposition's `# HELP` line.
    public var help: String {
        switch self {
        case .gets: "Blocks or objects handed out."
        case .puts: "Blocks or objects given back."
        case .hits: "Gets served by memory used before (a cache or free list)."
        case .misses: "Gets served by fresh memory or an arena refill."
        case .remoteReturns: "Blocks given back by a thread on another node than their home; they went home."
        case .fallbacks: "Gets served by another node's arena because the local one was full."
        case .exhausted: "Gets refused because the memory was full."
        case .escaped: "Objects dropped on return because something else still referenced them."
        case .rejected: "Idle objects dropped because validation rejected them."
        case .flushes: "Thread caches flushed whole (a trim, an idle thread, a move)."
        case .trims: "Calls of trim()."
        case .parkedReclaims: "Caches of parked threads taken back."
        case .writtenOff: "Blocks held by threads that fork(2) did not copy, never handed out again."
        case .pagesDecayed: "Pages given back to the kernel after the decay time."
        }
    }
}

/// The states of `numapool_bytes`.
public enum ByteState: String, CaseIterable, Sendable {
    /// Faulted in for the pool (pools).
    case reserved
    /// Held by callers.
    case inUse = "in_use"
    /// Held by threads' caches.
    case cached
    /// Free in the arenas, still resident.
    case free
    /// Given back to the kernel (heap).
    case returned
    /// Resident in memory, by mincore(2) (heap).
    case resident
}
