import Foundation
import NUMA
import Testing
import TestSupport

@Suite("membench: figures that say what was measured")
struct MeasuredFigureTests {
    static func json(_ arguments: [String]) throws -> [[String: Any]] {
        let output = try CLI.run(arguments + ["--json"])
        #expect(output.status == 0, "\(output.stderr)")
        return try #require(try JSONSerialization.jsonObject(with: Data(output.stdout.utf8)) as? [[String: Any]])
    }

    /// 20000 bytes hold one array of 78 blocks of 256 bytes, two of 23 after the 8 KiB gap, or
    /// three of 4 after two gaps; size_bytes said 20000 for all.
    @Test("bandwidth records the bytes each kernel streams, not the --size given")
    func bandwidthStreamed() throws {
        let records = try Self.json(["bandwidth", "--size", "20000B", "--kernels", "read,copy,triad", "--duration", "0.05", "--threads", "1"])
        var streamed: [String: Int] = [:]
        for record in records where record["scope"] as? String == "total" {
            streamed[try #require(record["bandwidth_kernel"] as? String)] = record["size_bytes"] as? Int
        }
        #expect(streamed == ["read": 78 * 256, "copy": 2 * 23 * 256, "triad": 3 * 4 * 256])
    }

    /// A load thread looked at the step and counted its bytes once per 256 KiB chunk: with a
    /// long delay between lines one step took minutes.
    @Test("a loaded step lasts its --duration whatever the delay")
    func loadedOnTime() throws {
        let start = Date()
        let records = try Self.json(["loaded", "--delays", "100000000", "--duration", "200ms", "--size", "1MiB"])
        #expect(Date().timeIntervalSince(start) < 10, "two steps of 0.2 s and the settling")
        #expect(records.count == 2)
        // A line takes some tens of milliseconds here, more on a loaded host, so a step of 0.2 s
        // may see none: that the lines are counted is the next test's, at a delay short enough.
        #expect((records.first?["load_gb_per_s"] as? Double).map { $0 >= 0 } == true, "\(records.first ?? [:])")
    }

    /// A million turns between lines is some hundreds of lines a second: a 256 KiB chunk took
    /// seconds, so a step of 0.1 s counted none.
    @Test("the load's bytes are counted line by line: a slow load's rate is not rounded to nothing")
    func loadedCountsLines() throws {
        let records = try Self.json(["loaded", "--delays", "1000000", "--duration", "100ms", "--size", "1MiB", "--load-threads", "1"])
        let rate = try #require(records.first?["load_gb_per_s"] as? Double)
        #expect(rate > 0)
    }

    @Test("loaded's idle row has no load: its load fields are null")
    func idleRowNulls() throws {
        let records = try Self.json(["loaded", "--delays", "0", "--duration", "100ms", "--size", "1MiB"])
        let idle = try #require(records.last)
        #expect(idle["delay"] is NSNull)
        for field in ["load_kind", "load_threads", "load_cpus", "load_pages_per_node", "load_gb_per_s"] {
            #expect(idle[field] is NSNull, "\(field): \(idle[field] ?? "missing")")
        }
        #expect(records.first?["load_threads"] as? Int == Topology.current.allowedCPUs.count - 1)
    }

    @Test("matrix --json writes a total beside each cell's thread record, as run does")
    func matrixTotals() throws {
        let records = try Self.json(["matrix"] + CLI.quick)
        let scopes = records.map { $0["scope"] as? String }
        #expect(scopes.filter { $0 == "total" }.count == scopes.filter { $0 == "thread" }.count)
        #expect(scopes.contains("total"))
    }
}
