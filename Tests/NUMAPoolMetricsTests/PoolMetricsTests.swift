import Foundation
import Logging
import NUMA
import NUMAPool
import NUMAPoolMetrics
import Prometheus
import ServiceLifecycle
import Testing

/// The exposition text parsed back: every sample's value by its name and labels.
struct Exposition {
    var samples: [String: Double] = [:]
    var types: [String: String] = [:]

    init(_ text: String) {
        for line in text.split(separator: "\n") {
            if line.hasPrefix("# TYPE ") {
                let parts = line.split(separator: " ")
                types[String(parts[2])] = String(parts[3])
            } else if !line.hasPrefix("#"), let space = line.lastIndex(of: " ") {
                samples[String(line[..<space])] = Double(line[line.index(after: space)...])
            }
        }
    }

    /// The value of `name{pool="P",node="N"[,state="S"]}`, the labels in that order.
    func value(_ name: String, pool: String, node: String, state: String? = nil) -> Double? {
        var labels = "pool=\"\(pool)\",node=\"\(node)\""
        if let state { labels += ",state=\"\(state)\"" }
        return samples["\(name){\(labels)}"]
    }
}

/// Runs `promtool check metrics` on `text`; returns its exit status and what it printed.
func promtool(_ text: String) throws -> (status: Int32, output: String) {
    let process = Process()
    process.executableURL = URL(fileURLWithPath: "/usr/bin/promtool")
    process.arguments = ["check", "metrics"]
    let input = Pipe(), output = Pipe()
    process.standardInput = input
    process.standardOutput = output
    process.standardError = output
    try process.run()
    input.fileHandleForWriting.write(Data(text.utf8))
    try input.fileHandleForWriting.close()
    let printed = output.fileHandleForReading.readDataToEndOfFile()
    process.waitUntilExit()
    return (process.terminationStatus, String(decoding: printed, as: UTF8.self))
}

@Suite("Pool metrics through swift-metrics, rendered by swift-prometheus")
struct PoolMetricsTests {
    let registry = PrometheusCollectorRegistry()
    var metrics: PoolMetrics { PoolMetrics(factory: PrometheusMetricsFactory(registry: registry)) }

    @Test("a local pool's counters and bytes reach the exposition text as its snapshot has them")
    func localPool() throws {
        let metrics = self.metrics
        let pool = try LocalPool(blockSize: 256, capacityPerNode: 8 << 20, name: "requests")
        metrics.add(pool)
        var blocks: [UnsafeMutableRawPointer] = []
        for _ in 0..<5000 { blocks.append(try pool.allocate()) }
        for block in blocks.prefix(3000) { pool.deallocate(block) }
        for _ in 0..<1000 { blocks.append(try pool.allocate()) }
        let reading = try #require(metrics.collect()["requests"])
        let stats = pool.statistics()
        let text = registry.emitToString()
        let parsed = Exposition(text)
        #expect(parsed.types["numapool_gets_total"] == "counter")
        #expect(parsed.types["numapool_bytes"] == "gauge")
        #expect(parsed.value("numapool_gets_total", pool: "requests", node: "all") == Double(stats.gets))
        #expect(parsed.value("numapool_gets_total", pool: "requests", node: "all") == 6000)
        #expect(parsed.value("numapool_puts_total", pool: "requests", node: "all") == 3000)
        #expect(parsed.value("numapool_hits_total", pool: "requests", node: "all") == Double(stats.hits))
        #expect(parsed.value("numapool_misses_total", pool: "requests", node: "all") == Double(stats.misses))
        #expect(parsed.value("numapool_bytes", pool: "requests", node: "all", state: "in_use") == Double(3000 * 256))
        for (node, split) in stats.perNode {
            #expect(parsed.value("numapool_bytes", pool: "requests", node: "\(node)", state: "reserved") == Double(split.bytesReserved))
            #expect(parsed.value("numapool_remote_returns_total", pool: "requests", node: "\(node)") == Double(split.remoteReturns))
        }
        #expect(reading.total(.gets) == 6000)
        // The study's rates over the interval: every get so far.
        let reuse = try #require(parsed.value("numapool_reuse_ratio", pool: "requests", node: "all"))
        #expect(abs(reuse - stats.reuseRate) < 1e-9)
        let fresh = try #require(parsed.value("numapool_fresh_ratio", pool: "requests", node: "all"))
        #expect(abs(fresh - stats.freshAllocationRate) < 1e-9)
        for block in blocks.suffix(3000) { pool.deallocate(block) }
        pool.trim()
        metrics.collect()
        let trimmed = Exposition(registry.emitToString())
        #expect(trimmed.value("numapool_trims_total", pool: "requests", node: "all") == 1)
        #expect(trimmed.value("numapool_flushes_total", pool: "requests", node: "all") ?? 0 >= 1, "the trim flushed this thread's cache")
        #expect(trimmed.value("numapool_bytes", pool: "requests", node: "all", state: "in_use") == 0)
    }

    @Test("counters rise by what happened between collections, and the rates cover the last interval only")
    func intervals() throws {
        let metrics = self.metrics
        let pool = try LocalPool(blockSize: 64, capacityPerNode: 4 << 20, name: "intervals")
        metrics.add(pool)
        var blocks: [UnsafeMutableRawPointer] = []
        for _ in 0..<1000 { blocks.append(try pool.allocate()) }  // fresh
        metrics.collect()
        let first = pool.statistics()
        for block in blocks { pool.deallocate(block) }
        blocks.removeAll()
        for _ in 0..<1000 { blocks.append(try pool.allocate()) }  // mostly reused
        let before = Exposition(registry.emitToString())
        metrics.collect()
        let second = pool.statistics()
        let after = Exposition(registry.emitToString())
        #expect(before.value("numapool_gets_total", pool: "intervals", node: "all") == 1000)
        #expect(after.value("numapool_gets_total", pool: "intervals", node: "all") == 2000)
        #expect(after.value("numapool_puts_total", pool: "intervals", node: "all") == 1000)
        #expect(before.value("numapool_fresh_ratio", pool: "intervals", node: "all") == 1)
        // The second interval's rates: its own hits and misses over its own gets.
        let reuse = Double(second.hits - first.hits) / 1000, fresh = Double(second.misses - first.misses) / 1000
        #expect(reuse > 0.9, "most of the second thousand are reused")
        #expect(after.value("numapool_reuse_ratio", pool: "intervals", node: "all") == reuse)
        #expect(after.value("numapool_fresh_ratio", pool: "intervals", node: "all") == fresh)
        for block in blocks { pool.deallocate(block) }
    }

    @Test("an object pool's escapes and a global pool's figures are exported under the names given")
    func objectAndGlobal() throws {
        let metrics = self.metrics
        let global = try GlobalPool(blockSize: 64, capacity: 1 << 20, name: "shared")
        final class Box: @unchecked Sendable { var value = 0 }  // @unchecked: used by one thread
        let objects = try ObjectPool(backing: global, factory: { Box() }, reset: { $0.value = 0 })
        metrics.add(global)
        metrics.add(objects, name: "contexts")
        var kept: [Box] = []
        for _ in 0..<10 {
            let lease = try objects.lease()
            kept.append(lease.value)  // escapes: still referenced when it comes back
            lease.release()
        }
        metrics.collect()
        let parsed = Exposition(registry.emitToString())
        #expect(parsed.value("numapool_escaped_total", pool: "contexts", node: "all") == 10)
        #expect(parsed.value("numapool_gets_total", pool: "contexts", node: "all") == 10)
        let stats = global.statistics()
        #expect(parsed.value("numapool_gets_total", pool: "shared", node: "all") == Double(stats.gets))
        #expect(parsed.value("numapool_bytes", pool: "shared", node: "all", state: "reserved") == Double(stats.bytesReserved))
        #expect(kept.count == 10)
        // Trimmed empty, the pool's pages show on no node: their gauges read 0, not what they were.
        let nodes = stats.perNode.keys
        #expect(!nodes.isEmpty)
        global.trim()
        metrics.collect()
        let trimmed = Exposition(registry.emitToString())
        for node in nodes {
            #expect(trimmed.value("numapool_bytes", pool: "shared", node: "\(node)", state: "reserved") == 0)
        }
    }

    @Test("a heap's bytes by node and state match its snapshot")
    func heap() throws {
        let metrics = self.metrics
        let heap = try NUMAHeap(capacityPerNode: 64 << 20, name: "buffers")
        defer { heap.stopPurger() }
        metrics.add(heap)
        var blocks: [UnsafeMutableRawPointer] = []
        for size in [24, 100, 1000, 5000, 40_000, 300_000] {
            for _ in 0..<20 { blocks.append(try heap.allocate(byteCount: size)) }
        }
        let reading = try #require(metrics.collect()["buffers"])
        let parsed = Exposition(registry.emitToString())
        #expect(parsed.value("numapool_gets_total", pool: "buffers", node: "all") == 120)
        for (key, value) in reading.bytes {
            let node = key.node.map(String.init) ?? "all"
            #expect(parsed.value("numapool_bytes", pool: "buffers", node: node, state: key.state.rawValue) == Double(value))
        }
        let inUse = reading.bytes.filter { $0.key.state == .inUse }.values.reduce(0, +)
        #expect(inUse >= (24 + 100 + 1000 + 5000 + 40_000 + 300_000) * 20)
        for block in blocks { heap.deallocate(block) }
    }

    @Test("the exposition text passes promtool check metrics once each metric has its help line")
    func promtoolCheck() throws {
        let metrics = self.metrics
        let pool = try LocalPool(blockSize: 128, capacityPerNode: 4 << 20, name: "checked")
        let heap = try NUMAHeap(capacityPerNode: 16 << 20, name: "checked heap")
        defer { heap.stopPurger() }
        metrics.add(pool)
        metrics.add(heap)
        let block = try pool.allocate(), buffer = try heap.allocate(byteCount: 4000)
        metrics.collect()
        pool.deallocate(block)
        heap.deallocate(buffer)
        metrics.collect()
        let raw = registry.emitToString()
        // Without help lines the linter's only complaint is the missing help.
        let plain = try promtool(raw)
        #expect(plain.status != 0)
        let complaints = plain.output.split(separator: "\n").filter { !$0.hasSuffix("no help text") }
        #expect(complaints.isEmpty, "\(plain.output)")
        let helped = PoolMetrics.addingHelp(to: raw)
        let checked = try promtool(helped)
        #expect(checked.status == 0, "\(checked.output)")
        #expect(Exposition(helped).samples == Exposition(raw).samples)
    }

    @Test("the collector collects on its interval and stops on graceful shutdown")
    func collector() async throws {
        let metrics = self.metrics
        let pool = try LocalPool(blockSize: 64, capacityPerNode: 1 << 20, name: "collected")
        metrics.add(pool)
        let collector = PoolMetricsCollector(metrics: metrics, interval: .milliseconds(20))
        let group = ServiceGroup(configuration: .init(services: [collector], logger: Logger(label: "test")))
        let registry = self.registry
        try await withThrowingTaskGroup(of: Void.self) { tasks in
            tasks.addTask { try await group.run() }
            let block = try pool.allocate()
            pool.deallocate(block)
            // Collected within a few intervals, with no call from here.
            var seen: Double?
            for _ in 0..<200 where seen != 1 {
                try await Task.sleep(for: .milliseconds(10))
                seen = Exposition(registry.emitToString()).value("numapool_gets_total", pool: "collected", node: "all")
            }
            #expect(seen == 1)
            await group.triggerGracefulShutdown()
            try await tasks.waitForAll()
        }
    }
}
