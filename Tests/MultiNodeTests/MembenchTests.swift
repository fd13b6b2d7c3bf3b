import Foundation
@testable import MembenchKit
import NUMA
import Testing
import TestSupport

/// Runs in the emulated-NUMA guests (scripts/numa-vm); skipped on one-node hosts. Latency there
/// is emulated, so these tests assert shares and placement only.
@Suite("MultiNode membench", .serialized, .balancingOff, .multiNode, .everyCPUNodeHasMemory)
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
        let all = try Self.rows(["matrix"])
        let rows = all.filter { $0["scope"] == "thread" }
        let topology = Topology.current
        let cpuNodes = topology.nodes.filter(\.hasCPUs).map(\.id)
        let memoryNodes = topology.bindableNodes.ids
        #expect(rows.count == cpuNodes.count * memoryNodes.count)
        #expect(all.count == 2 * rows.count, "a total beside each cell's thread row, as run writes")
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

    // MARK: The reference study's commands

    /// Nodes 0 and 1 both have CPUs and memory (in `two` and in `four`).
    static let studyNodes = [0, 1].allSatisfy { id in Topology.current.nodes.contains { $0.id == id && $0.hasCPUs && $0.hasMemory } }

    /// The rows of `command` (membench's arguments after `$MEMBENCH`, under `prefix`) written to a CSV.
    static func rows(shell command: String, prefix: String = "") throws -> [[String: String]] {
        let csv = CLI.temporaryPath(".csv")
        defer { try? FileManager.default.removeItem(atPath: csv) }
        let output = try CLI.shell("\(prefix) $MEMBENCH \(command) --csv '\(csv)'")
        #expect(output.status == 0, "\(command): \(output.stderr)")
        return try CLI.rows(csv)
    }

    /// Pages per node of a `0:512;1:512` field.
    static func pages(_ text: String?) -> [Int: Int] {
        var pages: [Int: Int] = [:]
        for entry in (text ?? "").split(separator: ";") {
            let parts = entry.split(separator: ":")
            if parts.count == 2, let node = Int(parts[0]), let count = Int(parts[1]) { pages[node] = count }
        }
        return pages
    }

    @Test("the study's two commands, as written: the local pool 0% remote, the global pool about half",
          .enabled(if: studyNodes, "needs nodes 0 and 1 with CPUs and memory"))
    func studyCommands() throws {
        let quick = "--duration 0.3 --warmup 0 --loads-per-sample 256"
        let local = try Self.rows(shell: "--pool=local --size=16MB \(quick)", prefix: "numactl --membind=0 --cpunodebind=0")
        #expect(Self.share(Self.total(local)) == 0)
        #expect(Self.pages(Self.total(local)?["pages_per_node"]).keys.sorted() == [0])
        let global = try Self.rows(shell: "--pool=global --size=16MB \(quick)", prefix: "numactl --membind=0,1 --cpunodebind=0")
        let total = try #require(Self.total(global))
        #expect(abs(Self.share(total) - 0.5) <= 0.03, "remote share \(Self.share(total))")
        let pages = Self.pages(total["pages_per_node"])
        let onOne = Double(pages[1] ?? 0) / Double(pages.values.reduce(0, +))
        #expect(abs(onOne - 0.5) <= 0.03, "pages per node \(pages)")
        #expect(total["global_fill"] == "spread:0-1")
        #expect(total["policy"] == "bind:0-1 (inherited)")
        // compare under the same placement shows the same shares, in every round.
        let both = try Self.rows(shell: "compare --rounds 2 --size=16MB \(quick)", prefix: "numactl --membind=0,1 --cpunodebind=0")
        let totals = both.filter { $0["scope"] == "total" }
        #expect(totals.map { $0["strategy"] } == ["local", "global", "global", "local"])
        for row in totals where row["strategy"] == "local" { #expect(Self.share(row) == 0) }
        for row in totals where row["strategy"] == "global" { #expect(abs(Self.share(row) - 0.5) <= 0.03) }
    }

    @Test("a global pool over every node, or over a set with the memory-only node: the share the pages predict",
          .enabled(if: Topology.current.nodes.contains { !$0.hasCPUs && $0.hasMemory }, "needs a memory-only node"))
    func globalOverMemoryOnlyNode() throws {
        let topology = Topology.current
        let memoryOnly = try #require(topology.nodes.first { !$0.hasCPUs && $0.hasMemory }?.id)
        let all = topology.bindableNodes.ids
        for (membind, expected) in [("all", Double(all.count - 1) / Double(all.count)), ("0,1,\(memoryOnly)", 2.0 / 3.0)] {
            for form in ["--membind=\(membind) --cpunodebind=0", ""] {
                let prefix = form.isEmpty ? "numactl --membind=\(membind) --cpunodebind=0" : ""
                let rows = try Self.rows(shell: "run --pool=global --size=16MB --duration 0.3 --warmup 0 --loads-per-sample 256 \(form)",
                                         prefix: prefix)
                let total = try #require(Self.total(rows))
                let pages = Self.pages(total["pages_per_node"])
                let predicted = 1 - Double(pages[0] ?? 0) / Double(pages.values.reduce(0, +))
                #expect(abs(Self.share(total) - expected) <= 0.03, "\(membind) \(form): share \(Self.share(total)), expected \(expected)")
                #expect(abs(predicted - expected) <= 0.03, "\(membind) \(form): pages \(pages)")
                #expect(pages[memoryOnly] ?? 0 > 0, "the memory-only node gets its chunks: \(pages)")
            }
        }
    }

    @Test("each global fill places the pool as it promises", .enabled(if: studyNodes, "needs nodes 0 and 1 with CPUs and memory"))
    func fills() throws {
        func pool(_ fill: String) throws -> [Int: Int] {
            let rows = try Self.rows(["run", "--pool", "global", "--global-fill", fill, "--membind", "0,1", "--cpunodebind", "0"])
            #expect(Self.total(rows)?["global_fill"]?.hasPrefix(fill) == true)
            return Self.pages(Self.total(rows)?["pool_pages_per_node"])
        }
        let spread = try pool("spread")
        #expect(spread.keys.sorted() == [0, 1] && abs((spread[0] ?? 0) - (spread[1] ?? 0)) <= 512, "spread: \(spread)")
        let firstTouch = try pool("first-touch")
        #expect(firstTouch.keys.sorted() == [0], "first touch by a thread on node 0, which has room: \(firstTouch)")
        let interleave = try pool("interleave")
        #expect(interleave.keys.sorted() == [0, 1] && abs((interleave[0] ?? 0) - (interleave[1] ?? 0)) <= 1, "interleave: \(interleave)")
    }

    @Test("bandwidth: memory bound to another node is all remote; the matrix places every cell on its memory node")
    func bandwidthPlacement() throws {
        let csv = CLI.temporaryPath(".csv")
        defer { try? FileManager.default.removeItem(atPath: csv) }
        let bound = try CLI.run(["bandwidth", "--kernels", "read,nt-write", "--membind", "1", "--cpunodebind", "0",
                                 "--size", "4MiB", "--duration", "0.2", "--csv", csv])
        #expect(bound.status == 0, "\(bound.stderr)")
        for row in try CLI.rows(csv) {
            #expect(Self.share(row) == 1, "\(row)")
            #expect(row["pages_per_node"]?.hasPrefix("1:") == true && row["pages_per_node"]?.contains(";") == false, "\(row)")
        }
        let matrixCSV = CLI.temporaryPath(".csv")
        defer { try? FileManager.default.removeItem(atPath: matrixCSV) }
        let matrix = try CLI.run(["bandwidth", "--matrix", "--size", "4MiB", "--duration", "0.2", "--csv", matrixCSV])
        #expect(matrix.status == 0, "\(matrix.stderr)")
        let topology = Topology.current
        let cpuNodes = topology.nodes.map(\.id).filter { !topology.allowedCPUs(on: [$0]).isEmpty }
        let rows = try CLI.rows(matrixCSV)
        #expect(rows.count == cpuNodes.count * topology.bindableNodes.count)
        for row in rows {
            let memoryNode = try #require(row["memory_node"])
            #expect(Self.share(row) == (row["cpu_node"] == memoryNode ? 0 : 1), "\(row)")
            #expect(row["pages_per_node"] == "\(memoryNode):1024", "\(row)")
        }
    }

    @Test("c2c: pairs across nodes carry both nodes, and the summary has a row per node pair")
    func cacheToCacheNodes() throws {
        let csv = CLI.temporaryPath(".csv")
        defer { try? FileManager.default.removeItem(atPath: csv) }
        let output = try CLI.run(["c2c", "--repeats", "3", "--lines", "32", "--csv", csv])
        #expect(output.status == 0, "\(output.stderr)")
        let topology = Topology.current
        let rows = try CLI.rows(csv)
        var nodePairs = Set<String>()
        for row in rows {
            let holder = try #require(Int(row["holder_cpu"] ?? "")), reader = try #require(Int(row["reader_cpu"] ?? ""))
            #expect(row["holder_node"] == topology.node(ofCPU: holder).map(String.init))
            #expect(row["reader_node"] == topology.node(ofCPU: reader).map(String.init))
            if holder != reader { nodePairs.insert("\(row["holder_node"] ?? "")>\(row["reader_node"] ?? "")") }
        }
        let cpuNodes = Set(topology.allowedCPUs.compactMap { topology.node(ofCPU: $0) })
        #expect(nodePairs.count >= cpuNodes.count * (cpuNodes.count - 1), "every pair of CPU nodes: \(nodePairs)")
        let lines = output.stdout.split(separator: "\n")
        for pair in nodePairs {
            let nodes = pair.split(separator: ">")
            #expect(lines.contains { $0.split(separator: " ").prefix(2) == [nodes[0], nodes[1]] }, "row \(pair) in \(output.stdout)")
        }
    }

    @Test("loaded: the chase on node 0's memory while the load streams node 1's, and the other way round")
    func loadedPlacement() throws {
        for (chaseNode, loadNode) in [(0, 1), (1, 0)] {
            let csv = CLI.temporaryPath(".csv")
            defer { try? FileManager.default.removeItem(atPath: csv) }
            let output = try CLI.run(["loaded", "--cpunodebind", "0", "--membind", String(chaseNode), "--load-membind", String(loadNode),
                                      "--load-cpus", "1", "--delays", "0", "--size", "4MiB", "--duration", "0.2", "--csv", csv])
            #expect(output.status == 0, "\(output.stderr)")
            let rows = try CLI.rows(csv)
            #expect(rows.map { $0["delay"] } == ["0", ""], "the delay's row and the idle row")
            for row in rows {
                // The idle row runs no load: its load fields are empty.
                let loaded = row["delay"] != ""
                #expect(row["chase_node"] == "0" && row["load_cpus"] == (loaded ? "1" : ""), "\(row)")
                #expect(row["chase_pages_per_node"] == "\(chaseNode):1024", "\(row)")
                #expect(row["load_pages_per_node"] == (loaded ? "\(loadNode):1024" : ""), "\(row)")
                #expect(Double(row["chase_remote_share"] ?? "") == (chaseNode == 0 ? 0 : 1), "\(row)")
            }
        }
    }

    @Test("with NUMA balancing on, moved pages make membench warn and mark the share",
          .enabled(if: FileManager.default.fileExists(atPath: BalancingOff.debugfs + "/scan_delay_ms"), "needs the scheduler's NUMA balancing knobs in debugfs"),
          // The tiered guest's Linux 6.12 moved no page in three runs of 8 s; the 6.1 guests
          // move them within the first run.
          .enabled(if: InterleaveWeights.isSupported == false, "Linux 6.12 in the tiered guest does not move these pages in time"))
    func balancingOn() throws {
        // Scan at once and often, so that pages move within the run; everything is restored.
        let settings = ["/proc/sys/kernel/numa_balancing": "1", BalancingOff.debugfs + "/scan_delay_ms": "0",
                        BalancingOff.debugfs + "/scan_period_min_ms": "100", BalancingOff.debugfs + "/scan_period_max_ms": "200"]
        let saved = settings.keys.map { ($0, (try? String(contentsOfFile: $0, encoding: .utf8)) ?? "") }
        defer { for (path, value) in saved { try? value.write(toFile: path, atomically: false, encoding: .utf8) } }
        for (path, value) in settings { try value.write(toFile: path, atomically: false, encoding: .utf8) }
        // A pool spread by threads on both nodes under the default policy, chased from node 0:
        // balancing moves node 1's pages to node 0.
        var changed: (String, [String: String])?
        for _ in 0..<3 where changed == nil {
            let csv = CLI.temporaryPath(".csv")
            defer { try? FileManager.default.removeItem(atPath: csv) }
            let output = try CLI.run(["run", "--pool", "global", "--cpunodebind", "0", "--size", "16MiB", "--duration", "8",
                                      "--warmup", "0", "--csv", csv])
            #expect(output.status == 0, "\(output.stderr)")
            #expect(output.stderr.contains("NUMA balancing is on"))
            if let total = try Self.total(CLI.rows(csv)), total["placement_changed"] == "true" { changed = (output.stdout, total) }
        }
        let (table, total) = try #require(changed, "no page moved in three runs of 8 s")
        #expect(table.contains("page placement changed during the run; its remote share is not reliable"))
        #expect(total["remote_source"] == "page-placement, changed during the run")
    }
}

/// Turns NUMA balancing off around each test, where the kernel has it, and restores it: pages
/// that move during a run would change the shares the tests check. The numa-vm guests boot with
/// it off, so there it writes nothing (each write patches kernel text; see scripts/numa-vm).
struct BalancingOff: TestTrait, SuiteTrait, TestScoping {
    static let path = "/proc/sys/kernel/numa_balancing"
    static let debugfs = "/sys/kernel/debug/sched/numa_balancing"

    var isRecursive: Bool { true }

    func provideScope(for test: Test, testCase: Test.Case?, performing function: @Sendable () async throws -> Void) async throws {
        guard let saved = try? String(contentsOfFile: Self.path, encoding: .utf8), saved.trimmingCharacters(in: .whitespacesAndNewlines) != "0",
              (try? "0".write(toFile: Self.path, atomically: false, encoding: .utf8)) != nil else {
            return try await function()
        }
        defer { try? saved.write(toFile: Self.path, atomically: false, encoding: .utf8) }
        try await function()
    }
}

extension Trait where Self == BalancingOff {
    static var balancingOff: Self { BalancingOff() }
}
