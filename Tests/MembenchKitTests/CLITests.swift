import CSV
import Foundation
@testable import MembenchKit
import NUMA
import Testing
import TestSupport

@Suite("membench end to end", .serialized)
struct CLITests {
    @Test("run writes a table, a CSV with one header and appended rows, and JSON")
    func csvAndJSON() throws {
        let csv = CLI.temporaryPath(".csv")
        defer { try? FileManager.default.removeItem(atPath: csv) }
        let first = try CLI.run(["run", "--pool", "local", "--csv", csv] + CLI.quick)
        #expect(first.status == 0, "\(first.stderr)")
        #expect(first.stdout.contains("remote"))
        #expect(first.stdout.contains("total"))
        let second = try CLI.run(["--pool=global", "--threads", "2", "--csv", csv] + CLI.quick)
        #expect(second.status == 0, "\(second.stderr)")
        let text = try String(contentsOfFile: csv, encoding: .utf8)
        #expect(text.components(separatedBy: "timestamp,command,strategy").count == 2, "one header")
        let rows = try CLI.rows(csv)
        #expect(rows.count == 2 + 3, "thread and total rows of both runs")
        #expect(rows.map { $0["strategy"] } == ["local", "local", "global", "global", "global"])
        #expect(rows.map { $0["thread"] } == ["0", "", "0", "1", ""])
        #expect(rows.map { $0["scope"] } == ["thread", "total", "thread", "thread", "total"])
        for row in rows {
            #expect(Double(row["mean_ns"] ?? "") ?? 0 > 0)
            #expect(row["remote_share"] == "0.0000" || Topology.current.nodeCount > 1)
            #expect(row["remote_source"] == "page-placement")
            #expect(row["size_bytes"] == String(8 << 20))
            #expect(row["kernel"]?.isEmpty == false && row["thp"]?.isEmpty == false)
            #expect(row["numa_balancing"]?.isEmpty == false)
            #expect(ISO8601DateFormatter().date(from: row["timestamp"] ?? "") != nil)
        }
        let json = try CLI.run(["run", "--pool", "direct", "--json"] + CLI.quick)
        #expect(json.status == 0)
        let records = try #require(JSONSerialization.jsonObject(with: Data(json.stdout.utf8)) as? [[String: Any]])
        #expect(records.count == 2)
        #expect(records[1]["scope"] as? String == "total")
        #expect(records[1]["thread"] is NSNull)
        #expect(records[0]["thread"] as? Int == 0)
        #expect((records[1]["mean_ns"] as? Double ?? 0) > 0)
        #expect(records[0]["strategy"] as? String == "direct")
    }

    @Test("compare prints the reference table for local, global and direct")
    func compare() throws {
        let output = try CLI.run(["compare", "--direct"] + CLI.quick)
        #expect(output.status == 0, "\(output.stderr)")
        for column in ["strategy", "mean", "deviation", "p99", "remote share", "relative to local"] {
            #expect(output.stdout.contains(column))
        }
        let lines = output.stdout.split(separator: "\n")
        for strategy in ["local", "global", "direct"] {
            #expect(lines.contains { $0.hasPrefix(strategy + " ") })
        }
        #expect(lines.contains { $0.hasPrefix("local ") && $0.hasSuffix("1.00x") })
        #expect(output.stdout.contains("Medians of 3 rounds"), "three rounds by default")
    }

    @Test("compare takes turns over rounds: each round's rows, every other round reversed")
    func compareRounds() throws {
        let csv = CLI.temporaryPath(".csv")
        defer { try? FileManager.default.removeItem(atPath: csv) }
        let output = try CLI.run(["compare", "--rounds", "2", "--csv", csv] + CLI.quick)
        #expect(output.status == 0, "\(output.stderr)")
        #expect(output.stdout.contains("min-max") && output.stdout.contains("Medians of 2 rounds"))
        let totals = try CLI.rows(csv).filter { $0["scope"] == "total" }
        #expect(totals.map { "\($0["strategy"] ?? "")/\($0["round"] ?? "")" } == ["local/0", "global/0", "global/1", "local/1"])
        try CLI.run(["compare", "--rounds", "0"] + CLI.quick).expectOneLineError(status: 64, mentioning: "--rounds")
    }

    @Test("alloc reports throughput and pool statistics for every allocator")
    func alloc() throws {
        let csv = CLI.temporaryPath(".csv")
        defer { try? FileManager.default.removeItem(atPath: csv) }
        let output = try CLI.run(["alloc", "--duration", "0.2", "--threads", "1,2", "--csv", csv])
        #expect(output.status == 0, "\(output.stderr)")
        let rows = try CLI.rows(csv)
        #expect(rows.count == 10)
        #expect(Set(rows.compactMap { $0["strategy"] }) == ["local", "global", "object", "malloc", "heap"])
        #expect(rows.compactMap { $0["threads"] }.sorted() == ["1", "1", "1", "1", "1", "2", "2", "2", "2", "2"])
        for row in rows {
            #expect(Double(row["pairs_per_s"] ?? "") ?? 0 > 0)
            guard row["strategy"] != "malloc" else { continue }
            #expect(Double(row["reuse_rate"] ?? "") ?? 0 > 0.9)
            // The statistics are read while every thread holds one batch of 32 64-byte blocks (the
            // object pool: 32 leases, each object in a block of its backing pool; the heap: 32
            // blocks of its 64-byte class).
            let threads = try #require(Int(row["threads"] ?? ""))
            let inUse = try #require(Int(row["bytes_in_use"] ?? "")), reserved = try #require(Int(row["bytes_reserved"] ?? ""))
            #expect(inUse == threads * 32 * 64)
            #expect(reserved >= inUse)
            let fragmentation = try #require(Double(row["fragmentation"] ?? ""))
            #expect(abs(fragmentation - (1 - Double(inUse) / Double(reserved))) < 1e-4)  // the CSV keeps 4 decimals
        }
    }

    @Test("alloc rounds take turns and export every round")
    func allocRounds() throws {
        let csv = CLI.temporaryPath(".csv")
        defer { try? FileManager.default.removeItem(atPath: csv) }
        let output = try CLI.run(["alloc", "--allocators", "local,malloc", "--threads", "1,2", "--rounds", "2",
                                  "--batch", "1", "--duration", "0.1", "--csv", csv])
        #expect(output.status == 0, "\(output.stderr)")
        #expect(output.stdout.contains("min-max") && output.stdout.contains("Medians of 2 rounds"))
        let rows = try CLI.rows(csv)
        #expect(rows.count == 8)
        // Round 1 runs in the reverse order of round 0.
        let order = rows.map { "\($0["strategy"] ?? "")/\($0["threads"] ?? "")/\($0["round"] ?? "")" }
        #expect(order == ["local/1/0", "local/2/0", "malloc/1/0", "malloc/2/0",
                          "malloc/2/1", "malloc/1/1", "local/2/1", "local/1/1"])
        // Every row carries its group's summary: the median of its rounds and the ratios.
        for group in Dictionary(grouping: rows, by: { "\($0["strategy"] ?? "")/\($0["threads"] ?? "")" }).values {
            let times = group.compactMap { Double($0["ns_per_pair"] ?? "") }.sorted()
            let medians = Set(group.compactMap { $0["median_ns_per_pair"] })
            #expect(medians.count == 1 && abs((Double(medians.first ?? "") ?? 0) - (times[0] + times[1]) / 2) < 1e-3,
                    "\(group)")
            #expect(group.allSatisfy { $0["rounds"] == "2" && Double($0["min_ns_per_pair"] ?? "") == times.first })
        }
        #expect(rows.filter { $0["strategy"] == "malloc" }.allSatisfy { $0["vs_malloc"].flatMap(Double.init) == 1 })
    }

    @Test("alloc builds its pools as run does: --binding and --global-fill are used and recorded")
    func allocPoolFlags() throws {
        let csv = CLI.temporaryPath(".csv")
        defer { try? FileManager.default.removeItem(atPath: csv) }
        let output = try CLI.run(["alloc", "--allocators", "local,global", "--binding", "preferred", "--global-fill", "interleave",
                                  "--duration", "0.1", "--csv", csv])
        #expect(output.status == 0, "\(output.stderr)")
        let rows = try CLI.rows(csv)
        #expect(rows.count == 2)
        #expect(rows.allSatisfy { $0["binding"] == "preferred" && $0["global_fill"] == "interleave" }, "\(rows)")
        try CLI.run(["alloc", "--binding", "loose", "--duration", "0.1"]).expectOneLineError(status: 64, mentioning: "--binding")
        try CLI.run(["alloc", "--threads", "0", "--duration", "0.1"]).expectOneLineError(status: 64, mentioning: "--threads")
    }

    @Test("alloc measures the heap on a mix of sizes with remote frees, and records sizes, frees and the classes' fit")
    func allocHeapMix() throws {
        let csv = CLI.temporaryPath(".csv")
        defer { try? FileManager.default.removeItem(atPath: csv) }
        let output = try CLI.run(["alloc", "--allocators", "heap,malloc", "--sizes", "service", "--frees", "remote",
                                  "--threads", "2", "--duration", "0.2", "--csv", csv])
        #expect(output.status == 0, "\(output.stderr)")
        #expect(output.stdout.contains("Sizes service, frees remote"))
        let rows = try CLI.rows(csv)
        #expect(rows.count == 2)
        #expect(rows.allSatisfy { $0["sizes"] == "service" && $0["frees"] == "remote" && $0["block_bytes"] == "" }, "\(rows)")
        for row in rows { #expect(Double(row["pairs_per_s"] ?? "") ?? 0 > 0) }
        let heap = try #require(rows.first { $0["strategy"] == "heap" })
        let fit = try #require(Double(heap["size_fit"] ?? ""))
        #expect(fit >= 0.85 && fit <= 1)
        #expect(Double(heap["reuse_rate"] ?? "") ?? 0 > 0.5)
        let range = try CLI.run(["alloc", "--allocators", "heap", "--sizes", "16-4096", "--batch", "1", "--duration", "0.1"])
        #expect(range.status == 0, "\(range.stderr)")
        #expect(range.stdout.contains("Sizes 16-4096, frees local"))
    }

    @Test("alloc refuses bad input with one line naming the flag", arguments: [
        (["--sizes", "0"], "--sizes"),
        (["--sizes", "4096-16"], "--sizes"),
        (["--sizes", "lots"], "--sizes"),
        (["--sizes", "2GiB"], "--sizes"),
        (["--sizes", "service", "--allocators", "heap,local"], "--sizes"),
        (["--sizes", "64", "--block-size", "64"], "--sizes"),
        (["--frees", "remote", "--allocators", "heap"], "--frees"),
        (["--frees", "remote", "--threads", "3", "--allocators", "heap"], "--frees"),
        (["--frees", "remote", "--threads", "2", "--allocators", "object"], "--frees"),
        (["--frees", "sideways"], "--frees"),
        (["--rounds", "0"], "--rounds"),
        (["--allocators", "local,magic"], "--allocators"),
        (["--threads", "1,x"], "--threads"),
        (["--batch", "0"], "--batch"),
    ])
    func allocUsage(arguments: [String], flag: String) throws {
        try CLI.run(["alloc", "--duration", "0.1"] + arguments).expectOneLineError(status: 64, mentioning: flag)
    }

    @Test("a pool that fills up during alloc is a refused run, exit 1; with two threads neither waits forever",
          arguments: ["local", "global"])
    func allocExhausted(allocator: String) throws {
        // 1024 blocks: one thread's batch of 700 fits, two do not, so at least one thread fails,
        // often while the other runs on to its deadline (the case that must not hang); a few
        // runs make that case likely.
        for _ in 0..<4 {
            try CLI.run(["alloc", "--allocators", allocator, "--threads", "2", "--capacity", "64KiB",
                         "--batch", "700", "--duration", "0.3"], timeout: 30)
                .expectOneLineError(status: 1, mentioning: "full")
        }
    }

    @Test("matrix covers every CPU node and memory node")
    func matrix() throws {
        let output = try CLI.run(["matrix"] + CLI.quick)
        #expect(output.status == 0, "\(output.stderr)")
        let topology = Topology.current
        for node in topology.bindableNodes { #expect(output.stdout.contains("node \(node)")) }
        #expect(output.stdout.contains("kernel distances"))
    }

    @Test("bad input gets one line naming the flag and exit code 64", arguments: [
        (["--size", "1QB"], "--size"),
        (["--size=-1"], "--size"),
        (["--size", "-1"], "--size"),
        (["--threads", "-2"], "--threads"),
        (["--membind", "0-"], "--membind"),
        (["--membind", "3-1"], "--membind"),
        (["--membind", "4000"], "--membind"),
        (["--cpunodebind", "4000"], "--cpunodebind"),
        (["--interleave", "a"], "--interleave"),
        (["--threads", "0"], "--threads"),
        (["--threads", "100000"], "--threads"),
        (["--membind", "0", "--interleave", "0"], "--membind"),
        (["--cpunodebind", "0", "--physcpubind", "0"], "--cpunodebind"),
        (["--stride", "12"], "--stride"),
        (["--pool", "magic"], "--pool"),
        (["--page-size", "3k"], "--page-size"),
        (["--slot-offsets", "middle"], "--slot-offsets"),
        (["--window", "0s"], "--window"),
        (["--window", "half"], "--window"),
        (["--bogus"], "--bogus"),
    ])
    func usage(arguments: [String], flag: String) throws {
        try CLI.run(["run"] + arguments + CLI.quick(besides: arguments)).expectOneLineError(status: 64, mentioning: flag)
    }

    @Test("durations take units: 300ms, 0.3s and 0.3 are the same", arguments: ["300ms", "0.3s", "0.3"])
    func durationUnits(text: String) throws {
        let output = try CLI.run(["run", "--pool", "direct", "--size", "4MiB", "--duration", text, "--warmup", "50ms", "--json"])
        #expect(output.status == 0, "\(output.stderr)")
        let records = try #require(try JSONSerialization.jsonObject(with: Data(output.stdout.utf8)) as? [[String: Any]])
        let first = try #require(records.first)
        #expect(abs(((first["duration_s"] as? NSNumber)?.doubleValue ?? 0) - 0.3) < 1e-9, "\(first)")
        #expect(abs(((first["warmup_s"] as? NSNumber)?.doubleValue ?? 0) - 0.05) < 1e-9, "\(first)")
        let alloc = try CLI.run(["alloc", "--allocators", "malloc", "--duration", text])
        #expect(alloc.status == 0, "\(alloc.stderr)")
    }

    @Test("a malformed duration is one line naming the flag, exit 64", arguments: [
        (["run", "--duration", "2x"], "--duration"), (["run", "--duration", "ms"], "--duration"),
        (["run", "--duration", "-1s"], "--duration"), (["run", "--duration", "0s"], "--duration"),
        (["run", "--duration", "1e999"], "--duration"), (["run", "--warmup", "soon"], "--warmup"),
        (["alloc", "--duration", "1..5s"], "--duration"), (["alloc", "--duration", "0ms"], "--duration"),
    ])
    func badDuration(arguments: [String], flag: String) throws {
        try CLI.run(arguments).expectOneLineError(status: 64, mentioning: flag)
    }

    @Test("the slot layout is recorded, and both layouts place the same pages", arguments: ["random", "zero"])
    func slotOffsets(layout: String) throws {
        let output = try CLI.run(["run", "--pool", "direct", "--size", "4MiB", "--slot-offsets", layout, "--duration", "0.2",
                                  "--warmup", "0", "--json"])
        #expect(output.status == 0, "\(output.stderr)")
        let records = try #require(try JSONSerialization.jsonObject(with: Data(output.stdout.utf8)) as? [[String: Any]])
        let total = try #require(records.first { $0["scope"] as? String == "total" })
        #expect(total["slot_offsets"] as? String == layout)
        #expect(total["pages_per_node"] as? String == "\(Topology.current.node(ofCPU: (total["cpu"] as? Int) ?? 0) ?? 0):1024"
                || Topology.current.nodeCount > 1, "\(total)")
    }

    @Test("the window statistic: windows of --window each, best no more than median, in the table and the records")
    func windowStatistic() throws {
        let output = try CLI.run(["run", "--pool", "direct", "--size", "4MiB", "--duration", "1.2", "--window", "300ms",
                                  "--warmup", "0", "--json"])
        #expect(output.status == 0, "\(output.stderr)")
        let records = try #require(try JSONSerialization.jsonObject(with: Data(output.stdout.utf8)) as? [[String: Any]])
        for record in records {
            // 1.2 s of samples in 0.3 s windows, the last counted from half its length: 4, or 3
            // when the thread was held off its CPU mid-sample long enough to stretch a window.
            #expect((3...4).contains((record["windows"] as? Int) ?? 0), "\(record)")
            #expect((record["window_s"] as? NSNumber)?.doubleValue == 0.3)
            let best = try #require((record["best_window_ns"] as? NSNumber)?.doubleValue)
            let median = try #require((record["median_window_ns"] as? NSNumber)?.doubleValue)
            #expect(best > 0 && best <= median, "\(record)")
        }
        let table = try CLI.run(["run", "--pool", "direct", "--size", "4MiB", "--duration", "0.3", "--warmup", "0"])
        #expect(table.stdout.contains("best win") && table.stdout.contains("sd: of 1024-load sample means"), "\(table.stdout)")
    }

    @Test("with transparent huge pages every slot is counted once, none unplaced, and the share after the run is recorded",
          .enabled(if: (try? String(contentsOfFile: "/sys/kernel/mm/transparent_hugepage/enabled", encoding: .utf8))?.contains("[never]") == false,
                   "transparent huge pages are off"))
    func transparentHugePages() throws {
        let output = try CLI.run(["run", "--pool", "direct", "--size", "16MiB", "--page-size", "thp", "--duration", "0.2",
                                  "--warmup", "0", "--json"])
        #expect(output.status == 0, "\(output.stderr)")
        let records = try #require(try JSONSerialization.jsonObject(with: Data(output.stdout.utf8)) as? [[String: Any]])
        let total = try #require(records.first { $0["scope"] as? String == "total" })
        #expect(total["page_mode"] as? String == "thp")
        #expect(total["unplaced_slots"] as? Int == 0, "\(total)")
        let pages = ((total["pages_per_node"] as? String) ?? "").split(separator: ";")
            .compactMap { $0.split(separator: ":").last.flatMap { Int($0) } }.reduce(0, +)
        #expect(pages == (16 << 20) / 4096, "every 4 KiB page of the buffer counted once: \(total)")
        let before = try #require((total["remote_share"] as? NSNumber)?.doubleValue)
        let after = try #require((total["remote_share_after"] as? NSNumber)?.doubleValue)
        #expect(Topology.current.nodeCount > 1 || (before == 0 && after == 0))
    }

    @Test("a size beyond free memory is refused with exit code 1")
    func tooLarge() throws {
        try CLI.run(["run", "--size", "64TiB", "--duration", "0.1"]).expectOneLineError(status: 1, mentioning: "--size")
    }

    @Test("on one node every global fill gives 0% remote and the same pages per node",
          .enabled(if: Topology.current.nodeCount == 1, "one node"))
    func fillsOnOneNode() throws {
        var pools: [String] = []
        for fill in ["spread", "first-touch", "interleave"] {
            let csv = CLI.temporaryPath(".csv")
            defer { try? FileManager.default.removeItem(atPath: csv) }
            let output = try CLI.run(["run", "--pool", "global", "--global-fill", fill, "--csv", csv] + CLI.quick)
            #expect(output.status == 0, "\(output.stderr)")
            #expect(output.stdout.contains("global pool filled \(fill)"))
            let total = try #require(try CLI.rows(csv).last)
            #expect(total["remote_share"] == "0.0000")
            #expect(total["global_fill"]?.hasPrefix(fill) == true)
            pools.append(total["pool_pages_per_node"] ?? "")
        }
        #expect(Set(pools).count == 1, "\(pools)")
    }

    @Test("a CSV path that cannot be created is refused before the run")
    func unwritable() throws {
        let output = try CLI.run(["run", "--csv", "/nonexistent-dir/out.csv"] + CLI.quick)
        output.expectOneLineError(status: 1, mentioning: "/nonexistent-dir/out.csv cannot be created")
    }

    @Test("a CSV with other columns is not appended to")
    func mismatchedHeader() throws {
        let csv = CLI.temporaryPath(".csv")
        defer { try? FileManager.default.removeItem(atPath: csv) }
        try "a,b\n1,2\n".write(toFile: csv, atomically: true, encoding: .utf8)
        let output = try CLI.run(["run", "--csv", csv] + CLI.quick)
        #expect(output.status == 1)
        #expect(try String(contentsOfFile: csv, encoding: .utf8) == "a,b\n1,2\n")
    }

    @Test("fields with commas and quotes are quoted so the CSV reads back")
    func quoting() throws {
        let csv = CLI.temporaryPath(".csv")
        defer { try? FileManager.default.removeItem(atPath: csv) }
        let record = Record([("name", .string("a, \"b\"")), ("value", .double(1.5))])
        let destination = try CSVDestination(path: csv)
        try destination.append([record])
        try destination.append([record])
        let rows = try CLI.rows(csv)
        #expect(rows.count == 2)
        #expect(rows.allSatisfy { $0["name"] == "a, \"b\"" && $0["value"] == "1.5000" })
    }
}

@Suite("membench churn")
struct ChurnCLITests {
    @Test("churn records a time series per node; the heap gives memory back during the idle phase with no call")
    func heapSeries() throws {
        let csv = CLI.temporaryPath(".csv")
        defer { try? FileManager.default.removeItem(atPath: csv) }
        let output = try CLI.run(["churn", "--working-set", "32MiB", "--phases", "grow=0.5,shrink=0.3,idle=2,back=0.5",
                                  "--decay", "200ms", "--interval", "100ms", "--csv", csv])
        #expect(output.status == 0, "\(output.stderr)")
        #expect(output.stdout.contains("End of the idle phase"))
        let rows = try CLI.rows(csv)
        #expect(Set(rows.compactMap { $0["phase"] }) == ["grow", "shrink", "idle", "back"])
        let times = rows.compactMap { Double($0["t_s"] ?? "") }
        #expect(times == times.sorted() && times.count == rows.count)
        for field in ["in_use_bytes", "cached_bytes", "free_bytes", "returned_bytes", "rss_bytes", "held_bytes"] {
            #expect(rows.allSatisfy { Int($0[field] ?? "") != nil }, "\(field) in every row")
        }
        let grown = try #require(rows.last { $0["phase"] == "grow" })
        let idle = try #require(rows.last { $0["phase"] == "idle" })
        let returned = try #require(Int(idle["returned_bytes"] ?? ""))
        #expect(returned >= 8 << 20, "returned at the end of the idle phase: \(returned)")
        // The heap's own resident bytes (mincore of its arenas): the process's RSS also holds
        // what a sanitizer's runtime keeps.
        #expect(try #require(Int(idle["resident_bytes"] ?? "")) < (try #require(Int(grown["resident_bytes"] ?? ""))) / 2)
        let back = try #require(rows.last { $0["phase"] == "back" })
        #expect(try #require(Int(back["held_bytes"] ?? "")) >= 32 << 20)
        // The purger ran and its CPU time is counted.
        #expect(try #require(Double(back["purger_cpu_s"] ?? "")) > 0)
        #expect(output.stdout.contains("purger thread used"))
    }

    @Test("churn watches malloc and the local pool too")
    func otherAllocators() throws {
        for arguments in [["--allocator", "malloc"], ["--allocator", "local", "--sizes", "1KiB"]] {
            let output = try CLI.run(["churn", "--working-set", "8MiB", "--phases", "grow=0.2,idle=0.2,back=0.2",
                                      "--interval", "100ms"] + arguments)
            #expect(output.status == 0, "\(arguments): \(output.stderr)")
            #expect(output.stdout.contains("idle"))
        }
    }

    @Test("churn refuses bad input with one line naming the flag", arguments: [
        (["--allocator", "slab"], "--allocator"),
        (["--working-set", "100"], "--working-set"),
        (["--working-set", "1PiB"], "--working-set"),
        (["--keep", "2"], "--keep"),
        (["--phases", "grow=1,nap=2"], "--phases"),
        (["--phases", "grow=-1"], "--phases"),
        (["--interval", "0"], "--interval"),
        (["--allocator", "local"], "--sizes"),
        (["--sizes", "0"], "--sizes"),
        (["--threads", "0"], "--threads"),
    ])
    func usage(arguments: [String], flag: String) throws {
        try CLI.run(["churn", "--phases", "grow=0.1"] + arguments.filter { _ in true }).expectOneLineError(status: 64, mentioning: flag)
    }
}
