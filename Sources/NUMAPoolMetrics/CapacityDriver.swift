import CoreMetrics
import Logging
import NUMA
import NUMAPool
import ServiceLifecycle

/// Applies a `CapacityPolicy` to a pool, one policy per partition (node), as a
/// swift-service-lifecycle `Service`: every window it reads the pool's signals, lets each
/// partition's policy decide, sets the partition's idle limit (`IdleCapacity`), logs the
/// decision with its inputs, and exports it as metrics:
/// - `numapool_capacity{pool,node}`, the capacity decided;
/// - `numapool_capacity_decisions_total{pool,node,decision}` (grow, shrink, hold, cooldown,
///   slo-veto, at-minimum).
///
/// A window's signals: gets and misses of the whole pool (a pool does not know a get's node),
/// the partition's idle low-water mark over `samplesPerWindow` samples, what came home to the
/// partition's node from other nodes, and p99 from the application's closure.
public final class CapacityDriver<Policy: CapacityPolicy>: Service {
    private struct State {
        var policies: [Policy]
        var capacities: [Int]
        var lowWater: [Int?]
        var last: PoolReading?
        var samples = 0
    }

    /// The pool's name in logs and metrics.
    public let name: String
    /// The length of a window.
    public let window: Duration
    /// Idle amounts sampled per window for the low-water mark.
    public let samplesPerWindow: Int
    private let target: any IdleCapacity
    private let reading: @Sendable () -> PoolReading
    private let p99: @Sendable () -> Duration?
    private let unitsPerReturn: Int
    private let unitsPerMiss: Int
    private let logger: Logger
    private let factory: any MetricsFactory
    private let started = ContinuousClock.now
    private let state: Locked<State>

    /// Drives `target`'s partitions with copies of `policy`, each from `capacity`.
    ///
    /// - Parameters:
    ///   - target: the pool whose partitions' idle limits are set.
    ///   - name: the pool's name in logs and metrics.
    ///   - policy: the policy each partition starts with a copy of.
    ///   - capacity: each partition's capacity before the first decision.
    ///   - window: the length of a window (10 s).
    ///   - samplesPerWindow: idle amounts sampled per window for the low-water mark (4).
    ///   - unitsPerReturn: the idle units one remote return stands for (1 object; a block's bytes).
    ///   - unitsPerMiss: the capacity one miss stands for (1 object; a block's bytes; 0 for the heap).
    ///   - p99: the p99 of request duration over the window just ended, or nil.
    ///   - reading: the pool's counters (a `PoolReading` of its statistics).
    ///   - logger: where each decision is logged, at info level.
    ///   - factory: the metrics backend (the bootstrapped one by default).
    public init(target: some IdleCapacity, name: String, policy: Policy, capacity: Int,
                window: Duration = .seconds(10), samplesPerWindow: Int = 4, unitsPerReturn: Int = 1, unitsPerMiss: Int = 1,
                p99: @escaping @Sendable () -> Duration? = { nil },
                reading: @escaping @Sendable () -> PoolReading,
                logger: Logger = Logger(label: "numapool.capacity"),
                factory: any MetricsFactory = MetricsSystem.factory) {
        precondition(window > .zero && samplesPerWindow >= 1, "a window must be positive and sampled at least once")
        self.target = target
        self.name = name
        self.window = window
        self.samplesPerWindow = samplesPerWindow
        self.unitsPerReturn = unitsPerReturn
        self.unitsPerMiss = unitsPerMiss
        self.p99 = p99
        self.reading = reading
        self.logger = logger
        self.factory = factory
        let partitions = target.idlePartitionCount
        // The first window counts from here, not from the pool's creation.
        state = Locked(State(policies: Array(repeating: policy, count: partitions),
                             capacities: Array(repeating: capacity, count: partitions),
                             lowWater: Array(repeating: nil, count: partitions), last: reading()))
    }

    /// The capacity each partition has now.
    public var capacities: [Int] { state.withLock { $0.capacities } }

    /// Samples each partition's idle amount into the window's low-water mark.
    public func sample() {
        let amounts = (0..<target.idlePartitionCount).map { target.idleAmount(partition: $0) }
        state.withLock { state in
            for (index, amount) in amounts.enumerated() { state.lowWater[index] = min(state.lowWater[index] ?? amount, amount) }
            state.samples += 1
        }
    }

    /// Ends a window at `end` (by default, the time since the driver was made): each
    /// partition's policy decides, and the decision is applied, logged and exported.
    @discardableResult
    public func endWindow(at end: Duration? = nil) -> [CapacityDecision] {
        let end = end ?? (ContinuousClock.now - started)
        let now = reading()
        let p99 = self.p99()
        let nodes = (0..<target.idlePartitionCount).map { target.idleNode(ofPartition: $0) }
        var applied: [(Int, CapacityWindow, Int, CapacityDecision)] = []
        state.withLock { state in
            let gets = now.total(.gets) &- (state.last?.total(.gets) ?? 0)
            let misses = now.total(.misses) &- (state.last?.total(.misses) ?? 0)
            for partition in state.policies.indices {
                let key = PoolReading.CounterKey(.remoteReturns, node: nodes[partition])
                let returns = (now.counters[key] ?? 0) &- (state.last?.counters[key] ?? 0)
                let window = CapacityWindow(end: end, p99: p99, gets: gets, misses: misses, unitsPerMiss: unitsPerMiss,
                                            idleLowWater: state.lowWater[partition] ?? 0,
                                            remoteReturns: Int(clamping: returns) * unitsPerReturn)
                let before = state.capacities[partition]
                let decision = state.policies[partition].decide(after: window, capacity: before)
                state.capacities[partition] = decision.capacity
                state.lowWater[partition] = nil
                applied.append((partition, window, before, decision))
            }
            state.last = now
            state.samples = 0
        }
        // Applied outside the lock: a limit may trim, which takes the pool's locks.
        for (partition, window, before, decision) in applied {
            target.setIdleLimit(decision.capacity, partition: partition)
            let node = nodes[partition].map(String.init) ?? "all"
            logger.info("capacity decision", metadata: [
                "pool": "\(name)", "node": "\(node)", "policy": "\(Policy.self)", "decision": "\(decision.reason.rawValue)",
                "from": "\(before)", "to": "\(decision.capacity)", "unit": "\(target.idleUnit.rawValue)",
                "p99_ms": "\(window.p99.map { String($0 / .milliseconds(1)) } ?? "none")", "gets": "\(window.gets)",
                "misses": "\(window.misses)", "idle_low_water": "\(window.idleLowWater)",
                "remote_returns": "\(window.remoteReturns)",
            ])
            Gauge(label: "numapool_capacity", dimensions: [("pool", name), ("node", node)], factory: factory)
                .record(Double(decision.capacity))
            Counter(label: "numapool_capacity_decisions_total",
                    dimensions: [("pool", name), ("node", node), ("decision", decision.reason.rawValue)], factory: factory)
                .increment()
        }
        return applied.map(\.3)
    }

    /// Samples and decides until the task is cancelled or a graceful shutdown begins.
    public func run() async throws {
        let tick = window / samplesPerWindow
        // Sleeping is all that throws, and only when the loop is cancelled.
        try? await cancelWhenGracefulShutdown {
            while !Task.isCancelled {
                for _ in 0..<self.samplesPerWindow {
                    try await Task.sleep(for: tick)
                    self.sample()
                }
                self.endWindow()
            }
        }
    }
}

extension CapacityDriver {
    /// Drives an object pool: capacities in idle objects per partition.
    public convenience init<Object>(objects pool: ObjectPool<Object>, name: String, policy: Policy, capacity: Int,
                                    window: Duration = .seconds(10), p99: @escaping @Sendable () -> Duration? = { nil },
                                    logger: Logger = Logger(label: "numapool.capacity"),
                                    factory: any MetricsFactory = MetricsSystem.factory) {
        self.init(target: pool, name: name, policy: policy, capacity: capacity, window: window, p99: p99,
                  reading: { PoolReading(pool.statistics()) }, logger: logger, factory: factory)
    }

    /// Drives a `LocalPool`: capacities in idle bytes per node.
    public convenience init(pool: LocalPool, policy: Policy, capacity: Int, window: Duration = .seconds(10),
                            p99: @escaping @Sendable () -> Duration? = { nil },
                            logger: Logger = Logger(label: "numapool.capacity"),
                            factory: any MetricsFactory = MetricsSystem.factory) {
        self.init(target: pool, name: pool.name, policy: policy, capacity: capacity, window: window,
                  unitsPerReturn: pool.blockSize, unitsPerMiss: pool.blockSize, p99: p99,
                  reading: { PoolReading(pool.statistics()) },
                  logger: logger, factory: factory)
    }

    /// Drives a `NUMAHeap`: capacities in idle bytes per node. Remote frees are not
    /// subtracted from the idle low-water mark, and growth is by the factor alone (the sizes
    /// of frees and misses vary).
    public convenience init(heap: NUMAHeap, policy: Policy, capacity: Int, window: Duration = .seconds(10),
                            p99: @escaping @Sendable () -> Duration? = { nil },
                            logger: Logger = Logger(label: "numapool.capacity"),
                            factory: any MetricsFactory = MetricsSystem.factory) {
        self.init(target: heap, name: heap.name, policy: policy, capacity: capacity, window: window,
                  unitsPerReturn: 0, unitsPerMiss: 0, p99: p99, reading: { PoolReading(heap.statistics()) },
                  logger: logger, factory: factory)
    }
}
