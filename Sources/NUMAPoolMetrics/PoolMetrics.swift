import CoreMetrics
import NUMA
import NUMAPool

/// Exports the health of pools, object pools and heaps through swift-metrics, to whatever
/// backend the process bootstrapped (or the factory given):
/// - a counter per `PoolCounter`, labelled `pool` and `node` (`node="all"` for figures of the
///   whole pool), increased by what the pool counted since the last collection;
/// - `numapool_bytes{pool,node,state}`, a gauge per `ByteState`;
/// - `numapool_fragmentation_ratio{pool,node="all"}`;
/// - the reference study's two health rates over the last interval:
///   `numapool_reuse_ratio` (hits / gets; its alert is under 0.85) and `numapool_fresh_ratio`
///   (misses / gets; over 0.15), with `node="all"`.
///
/// `collect()` takes every source's snapshot, off the pools' hot paths (a snapshot reads the
/// threads' counters without stopping them). `PoolMetricsCollector` calls it on an interval.
public final class PoolMetrics: Sendable {
    /// A source of readings, and what the last collection saw of it.
    private struct Source {
        let name: String
        let read: @Sendable () -> PoolReading
        var last: PoolReading?
    }

    private struct State {
        var sources: [Source] = []
        /// Collections begun, and the last whose readings were exported: a collection that
        /// overlapped a later one exports nothing.
        var begun = 0, exported = 0
        var counters: [String: Counter] = [:]
        var gauges: [String: Gauge] = [:]
    }

    private let factory: any MetricsFactory
    private let state = Locked(State())

    /// Exports through `factory`: by default the one `MetricsSystem.bootstrap` installed.
    public init(factory: any MetricsFactory = MetricsSystem.factory) {
        self.factory = factory
    }

    /// Adds a source read by `read`, exported with `pool="<name>"`.
    public func add(name: String, reading read: @escaping @Sendable () -> PoolReading) {
        state.withLock { $0.sources.append(Source(name: name, read: read, last: nil)) }
    }

    /// Adds a `LocalPool` or `GlobalPool`, under its name unless `name` is given.
    public func add(_ pool: some BlockPool, name: String? = nil) {
        add(name: name ?? pool.name) { PoolReading(pool.statistics()) }
    }

    /// Adds an object pool, under `name`.
    public func add<Object>(_ pool: ObjectPool<Object>, name: String) {
        add(name: name) { PoolReading(pool.statistics()) }
    }

    /// Adds a heap, under its name unless `name` is given.
    public func add(_ heap: NUMAHeap, name: String? = nil) {
        add(name: name ?? heap.name) { PoolReading(heap.statistics()) }
    }

    /// Reads every source and updates its metrics. Returns the readings, by pool name (none
    /// when a later collection, begun while this one read, has exported already).
    @discardableResult
    public func collect() -> [String: PoolReading] {
        // Read outside the lock: a snapshot takes the pool's own locks.
        let (generation, readers) = state.withLock { state in
            state.begun += 1
            return (state.begun, state.sources.map { ($0.name, $0.read) })
        }
        let readings = readers.map { ($0.0, $0.1()) }
        return state.withLock { state in
            var result: [String: PoolReading] = [:]
            guard generation > state.exported else { return result }
            state.exported = generation
            for (index, (name, reading)) in readings.enumerated() where index < state.sources.count {
                export(name, reading, since: state.sources[index].last, into: &state)
                state.sources[index].last = reading
                result[name] = reading
            }
            return result
        }
    }

    private func export(_ pool: String, _ reading: PoolReading, since last: PoolReading?, into state: inout State) {
        for (key, value) in reading.counters {
            let before = last?.counters[key] ?? 0
            let counter = counter(key.counter.rawValue, pool: pool, node: key.node, in: &state)
            // A counter only rises; a pool made again under the same name starts over.
            counter.increment(by: Int64(clamping: value >= before ? value - before : value))
        }
        for (key, value) in reading.bytes {
            gauge("numapool_bytes", pool: pool, node: key.node, state: key.state.rawValue, in: &state)
                .record(Double(value))
        }
        // A node that no longer shows (a trimmed global pool's pages) holds nothing now.
        for key in (last?.bytes ?? [:]).keys where reading.bytes[key] == nil {
            gauge("numapool_bytes", pool: pool, node: key.node, state: key.state.rawValue, in: &state).record(0)
        }
        gauge("numapool_fragmentation_ratio", pool: pool, node: nil, in: &state).record(reading.fragmentation)
        let gets = reading.total(.gets) &- (last?.total(.gets) ?? 0)
        if gets > 0 && gets <= reading.total(.gets) {
            let hits = reading.total(.hits) &- (last?.total(.hits) ?? 0)
            let misses = reading.total(.misses) &- (last?.total(.misses) ?? 0)
            gauge("numapool_reuse_ratio", pool: pool, node: nil, in: &state).record(Double(hits) / Double(gets))
            gauge("numapool_fresh_ratio", pool: pool, node: nil, in: &state).record(Double(misses) / Double(gets))
        }
    }

    private func dimensions(pool: String, node: Int?, state: String?) -> [(String, String)] {
        var dimensions = [("pool", pool), ("node", node.map(String.init) ?? "all")]
        if let state { dimensions.append(("state", state)) }
        return dimensions
    }

    private func counter(_ label: String, pool: String, node: Int?, in state: inout State) -> Counter {
        let key = "\(label)\u{0}\(pool)\u{0}\(node ?? -1)"
        if let counter = state.counters[key] { return counter }
        let counter = Counter(label: label, dimensions: dimensions(pool: pool, node: node, state: nil), factory: factory)
        state.counters[key] = counter
        return counter
    }

    private func gauge(_ label: String, pool: String, node: Int?, state byteState: String? = nil,
                       in state: inout State) -> Gauge {
        let key = "\(label)\u{0}\(pool)\u{0}\(node ?? -1)\u{0}\(byteState ?? "")"
        if let gauge = state.gauges[key] { return gauge }
        let gauge = Gauge(label: label, dimensions: dimensions(pool: pool, node: node, state: byteState), factory: factory)
        state.gauges[key] = gauge
        return gauge
    }

    /// The `# HELP` text of every metric this exports, by name.
    public static let help: [String: String] = {
        var help = Dictionary(uniqueKeysWithValues: PoolCounter.allCases.map { ($0.rawValue, $0.help) })
        help["numapool_bytes"] = "Bytes of pool memory by node and state (reserved, in_use, cached, free, returned, resident)."
        help["numapool_fragmentation_ratio"] = "1 - bytes in use / bytes reserved (resident, for a heap)."
        help["numapool_reuse_ratio"] = "Hits / gets over the last collection interval (the study's ReusedRate; alert under 0.85)."
        help["numapool_fresh_ratio"] = "Misses / gets over the last collection interval (the study's AllocRate; alert over 0.15)."
        return help
    }()

    /// `exposition` (Prometheus text format) with a `# HELP` line before the `# TYPE` line of
    /// each metric this exports that has none. swift-metrics carries no help text to a backend,
    /// and Prometheus's linter (`promtool check metrics`) asks for one.
    public static func addingHelp(to exposition: String) -> String {
        var lines: [Substring] = []
        var helped = Set<Substring>()
        for line in exposition.split(separator: "\n", omittingEmptySubsequences: false) {
            if line.hasPrefix("# HELP ") {
                helped.insert(line.dropFirst(7).prefix { $0 != " " })
            } else if line.hasPrefix("# TYPE ") {
                let name = line.dropFirst(7).prefix { $0 != " " }
                if !helped.contains(name), let text = help[String(name)] {
                    lines.append("# HELP \(name) \(text)")
                    helped.insert(name)
                }
            }
            lines.append(line)
        }
        return lines.joined(separator: "\n")
    }
}
