import Logging
import NUMA
import NUMAPool
import NUMAPoolMetrics
import Prometheus
import ServiceLifecycle
import Testing

/// Log records kept for a test to read.
final class LogRecords: Sendable {
    private let records = Locked<[(message: String, metadata: Logger.Metadata)]>([])
    var all: [(message: String, metadata: Logger.Metadata)] { records.withLock { $0 } }
    func append(_ message: String, _ metadata: Logger.Metadata) { records.withLock { $0.append((message, metadata)) } }

    func logger() -> Logger {
        Logger(label: "test") { _ in Handler(records: self) }
    }

    struct Handler: LogHandler {
        let records: LogRecords
        var metadata: Logger.Metadata = [:]
        var logLevel: Logger.Level = .trace
        subscript(metadataKey key: String) -> Logger.Metadata.Value? {
            get { metadata[key] }
            set { metadata[key] = newValue }
        }
        func log(event: LogEvent) {
            records.append(event.message.description, metadata.merging(event.metadata ?? [:]) { $1 })
        }
    }
}

@Suite("Elastic sizing: the driver applies, logs and exports each decision")
struct CapacityDriverTests {
    /// An object pool with `idle` objects in its partition's list.
    static func pool(idle: Int) throws -> ObjectPool<Int> {
        let backing = try LocalPool(blockSize: 64, capacityPerNode: 4 << 20)
        let pool = try ObjectPool(backing: backing, maxIdle: 10_000, cacheCapacity: 8, factory: { 0 }, reset: { $0 = 0 })
        func cycle(_ count: Int) throws {
            let lease = try pool.lease()
            if count > 1 { try cycle(count - 1) }
            lease.release()
        }
        try cycle(idle)
        pool.trim()
        return pool
    }

    @Test("idle objects shrink the capacity, the pool destroys what is over it, and the decision is logged and exported")
    func shrinkApplied() throws {
        let pool = try Self.pool(idle: 400)
        let records = LogRecords()
        let registry = PrometheusCollectorRegistry()
        let driver = CapacityDriver(objects: pool, name: "contexts",
                                    policy: DemandController(minimum: 50, maximum: 1000, shrinkAfter: 2),
                                    capacity: 400, logger: records.logger(),
                                    factory: PrometheusMetricsFactory(registry: registry))
        driver.sample()
        #expect(driver.endWindow(at: .seconds(10)).map(\.reason) == [.hold])
        driver.sample()
        let decisions = driver.endWindow(at: .seconds(20))
        #expect(decisions == [CapacityDecision(capacity: 300, reason: .shrink)])
        #expect(pool.idleAmount(partition: 0) == 300)
        #expect(driver.capacities == [300])
        let logged = records.all.last
        #expect(logged?.message == "capacity decision")
        #expect(logged?.metadata["decision"] == "shrink" && logged?.metadata["from"] == "400" && logged?.metadata["to"] == "300")
        #expect(logged?.metadata["idle_low_water"] == "400" && logged?.metadata["unit"] == "objects")
        let text = registry.emitToString()
        let node = pool.idleNode(ofPartition: 0).map(String.init) ?? "all"
        #expect(text.contains("numapool_capacity{pool=\"contexts\",node=\"\(node)\"} 300"), "\(text)")
        #expect(text.contains("numapool_capacity_decisions_total{pool=\"contexts\",node=\"\(node)\",decision=\"shrink\"} 1"))
        #expect(text.contains("numapool_capacity_decisions_total{pool=\"contexts\",node=\"\(node)\",decision=\"hold\"} 1"))
    }

    @Test("misses in two windows in a row grow the capacity; the window's gets and misses are the pool's own")
    func growFromMisses() throws {
        let pool = try Self.pool(idle: 10)
        let records = LogRecords()
        let driver = CapacityDriver(objects: pool, name: "grow", policy: DemandController(minimum: 10, maximum: 1000),
                                    capacity: 10, logger: records.logger(), factory: PrometheusMetricsFactory(registry: .init()))
        driver.endWindow(at: .seconds(10))  // the window that started before the driver
        func cycle(_ count: Int) throws {
            let lease = try pool.lease()
            if count > 1 { try cycle(count - 1) }
            lease.release()
        }
        for second in [20, 30] {
            try cycle(100)  // 10 idle objects reused, 90 made fresh
            driver.sample()
            let decisions = driver.endWindow(at: .seconds(second))
            #expect(records.all.last?.metadata["gets"] == "100")
            if second == 30 {
                let misses = Int(records.all.last?.metadata["misses"]?.description ?? "") ?? 0
                #expect(misses >= 80, "most of the hundred are made fresh")
                // Twice the capacity, or the capacity plus the window's misses if that is more.
                #expect(decisions == [CapacityDecision(capacity: max(20, 10 + misses), reason: .grow)])
            }
        }
    }

    @Test("as a Service it decides every window and stops on graceful shutdown")
    func runsAsService() async throws {
        let pool = try Self.pool(idle: 100)
        let records = LogRecords()
        let driver = CapacityDriver(objects: pool, name: "service", policy: SLORule(slo: .milliseconds(10), minimum: 5),
                                    capacity: 100, window: .milliseconds(40), p99: { .milliseconds(1) },
                                    logger: records.logger(), factory: PrometheusMetricsFactory(registry: .init()))
        let group = ServiceGroup(configuration: .init(services: [driver], logger: Logger(label: "group")))
        try await withThrowingTaskGroup(of: Void.self) { tasks in
            tasks.addTask { try await group.run() }
            // The study's rule shrinks after five windows under 0.7 × the SLO.
            for _ in 0..<500 where !driver.capacities.contains(97) { try await Task.sleep(for: .milliseconds(10)) }
            await group.triggerGracefulShutdown()
            try await tasks.waitForAll()
        }
        #expect(driver.capacities == [97])
        #expect(pool.idleAmount(partition: 0) <= 97)
        #expect(records.all.filter { $0.message == "capacity decision" }.count >= 5)
    }
}
