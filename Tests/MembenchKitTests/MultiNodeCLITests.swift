import Foundation
@testable import MembenchKit
import NUMA
import Testing

/// Runs in the emulated-NUMA guests (scripts/numa-vm); skipped on one-node hosts. Latency there
/// is emulated, so these tests assert shares and placement only.
@Suite("MultiNode membench", .serialized,
       .enabled(if: Topology.current.nodeCount > 1, "needs two or more NUMA nodes"))
struct MultiNodeCLITests {
    static let quick = ["--size", "4MiB", "--duration", "0.3", "--warmup", "0", "--loads-per-sample", "256"]

    /// Runs membench with a CSV and returns its rows.
    static func rows(_ arguments: [String]) throws -> [[String: String]] {
        let csv = CLI.temporaryPath(".csv")
        defer { try? FileManager.default.removeItem(atPath: csv) }
        let output = try CLI.run(arguments + quick + ["--csv", csv])
        #expect(output.status == 0, "\(output.stderr)")
        return try CLI.rows(csv)
    }

    static func share(_ row: [String: String]?) -> Double { Double(row?["remote_share"] ?? "") ?? -1 }
    static func total(_ rows: [[String: String]]) -> [String: String]? { rows.first { $0["scope"] == "total" } }

    /// The share the page placement predicts for one thread row: pages not on its node.
    static func predicted(_ row: [String: String]) -> (remote: Int, total: Int) {
        let node = row["node"] ?? ""
        var remote = 0, total = 0
        for entry in (row["pages_per_node"] ?? "").split(separator: ";") {
            let parts = entry.split(separator: ":")
            guard parts.count == 2, let pages = Int(parts[1]) else { continue }
            total += pages
            if String(parts[0]) != node { remote += pages }
        }
        return (remote, total)
    }

    @Test("local pools on both nodes with a thread each: 0% remote")
    func localIsLocal() throws {
        let rows = try Self.rows(["run", "--pool", "local", "--cpunodebind", "0,1", "--threads", "2"])
        #expect(rows.count == 3)
        #expect(Set(rows.filter { $0["scope"] != "total" }.compactMap { $0["node"] }) == ["0", "1"])
        for row in rows { #expect(Self.share(row) == 0) }
    }

    @Test("a global pool placed on node 1, read from node 0: 100% remote")
    func globalRemote() throws {
        let rows = try Self.rows(["run", "--pool", "global", "--membind", "1", "--cpunodebind", "0"])
        #expect(Self.share(Self.total(rows)) == 1)
        #expect(rows.first?["pages_per_node"]?.hasPrefix("1:") == true)
    }

    @Test("a global pool over both nodes, read from both: the share the placement predicts")
    func globalMixed() throws {
        let rows = try Self.rows(["run", "--pool", "global", "--membind", "0,1", "--cpunodebind", "0,1", "--threads", "2"])
        let threads = rows.filter { $0["scope"] != "total" }
        #expect(threads.count == 2)
        var weighted = 0.0, accesses = 0.0
        for row in threads {
            let (remote, total) = Self.predicted(row)
            #expect(abs(Self.share(row) - Double(remote) / Double(total)) < 0.001)
            let count = Double(row["accesses"] ?? "") ?? 0
            weighted += Double(remote) / Double(total) * count
            accesses += count
        }
        let share = Self.share(Self.total(rows))
        #expect(share > 0 && share < 1)
        #expect(abs(share - weighted / accesses) < 0.001, "the total weights each thread by its accesses")
    }

    @Test("direct memory interleaved over two nodes: 50% ±2% remote")
    func interleaved() throws {
        let rows = try Self.rows(["run", "--pool", "direct", "--interleave", "0,1", "--cpunodebind", "0"])
        #expect(abs(Self.share(Self.total(rows)) - 0.5) <= 0.02)
    }

    @Test("memory bound to the memory-only node, read from node 0: 100% remote",
          .enabled(if: Topology.current.nodes.contains { !$0.hasCPUs && $0.hasMemory }, "needs a memory-only node"))
    func memoryOnlyNode() throws {
        let node = try #require(Topology.current.nodes.first { !$0.hasCPUs && $0.hasMemory }?.id)
        let rows = try Self.rows(["run", "--pool", "direct", "--membind", String(node), "--cpunodebind", "0"])
        #expect(Self.share(Self.total(rows)) == 1)
        #expect(rows.first?["pages_per_node"]?.hasPrefix("\(node):") == true)
        let local = try Self.rows(["run", "--pool", "local", "--membind", String(node), "--cpunodebind", "0"])
        #expect(Self.share(Self.total(local)) == 1, "the local pool's only arena is on the memory-only node")
    }

    @Test("matrix covers every CPU node and every memory node")
    func matrix() throws {
        let rows = try Self.rows(["matrix"])
        let topology = Topology.current
        let cpuNodes = topology.nodes.filter(\.hasCPUs).map(\.id)
        let memoryNodes = topology.bindableNodes.ids
        #expect(rows.count == cpuNodes.count * memoryNodes.count)
        var cells = Set<String>()
        for row in rows {
            cells.insert("\(row["node"] ?? "")>\(row["membind"] ?? "")")
            let local = row["node"] == row["membind"]
            #expect(Self.share(row) == (local ? 0 : 1))
        }
        #expect(cells.count == rows.count)
    }

    @Test("a node that is not there, or a CPU-less node for threads, is refused by the CLI")
    func badNodes() throws {
        let missing = (Topology.current.nodes.map(\.id).max() ?? 0) + 1
        try CLI.run(["run", "--membind", String(missing)] + Self.quick).expectOneLineError(status: 64, mentioning: "--membind")
        if let memoryOnly = Topology.current.nodes.first(where: { !$0.hasCPUs }) {
            let refused = try CLI.run(["run", "--cpunodebind", String(memoryOnly.id)] + Self.quick)
            #expect(refused.status != 0)
            #expect(refused.stderr.contains("--cpunodebind"))
        }
    }
}
