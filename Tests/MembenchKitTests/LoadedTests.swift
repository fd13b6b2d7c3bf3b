import Foundation
@testable import MembenchKit
import NUMA
import Testing
import TestSupport

@Suite("membench loaded", .serialized)
struct LoadedCLITests {
    static let quick = ["--size", "4MiB", "--duration", "0.1"]

    @Test("one row per delay and an idle row: load while loaded, none when idle",
          .enabled(if: Topology.current.allowedCPUs.count >= 2, "needs two CPUs"))
    func sweep() throws {
        let output = try CLI.run(["loaded", "--delays", "0,1000", "--json"] + Self.quick)
        #expect(output.status == 0, "\(output.stderr)")
        let records = try #require(try JSONSerialization.jsonObject(with: Data(output.stdout.utf8)) as? [[String: Any]])
        #expect(records.map { $0["delay"] as? Int } == [0, 1000, nil])
        let loads = records.map { ($0["load_gb_per_s"] as? NSNumber)?.doubleValue ?? -1 }
        #expect(loads[0] > 0 && loads[1] > 0 && records[2]["load_gb_per_s"] is NSNull, "\(loads)")
        #expect(loads[0] > loads[1], "no delay loads more than a delay of 1000: \(loads)")
        for record in records {
            #expect(((record["mean_ns"] as? NSNumber)?.doubleValue ?? 0) > 0)
            #expect(record["load_threads"] as? Int == (record["delay"] is NSNull ? nil : Topology.current.allowedCPUs.count - 1))
            #expect(Topology.current.nodeCount > 1 || (record["chase_remote_share"] as? NSNumber)?.doubleValue == 0)
        }
        let table = try CLI.run(["loaded", "--delays", "0"] + Self.quick)
        #expect(table.stdout.contains("load GB/s") && table.stdout.contains("idle"), "\(table.stdout)")
    }

    @Test("bad input is one line naming the flag, exit 64", arguments: [
        (["--delays", "-1"], "--delays"), (["--delays", "x"], "--delays"), (["--delays", "0,0"], "--delays"),
        (["--load-threads", "0"], "--load-threads"), (["--load-threads", "100000"], "--load-threads"),
        (["--load-membind", "9999"], "--load-membind"), (["--load-cpus", "x"], "--load-cpus"),
        (["--load", "scan"], "--load"), (["--size", "1KiB"], "--size"), (["--duration", "0s"], "--duration"),
        // A copy load between 256 and 512 KiB had empty halves and copied lines onto themselves.
        (["--load", "copy", "--size", "300KiB"], "--size: must be at least 512KiB"),
        (["--bogus"], "--bogus"),
    ])
    func usage(arguments: [String], flag: String) throws {
        // A flag is given once: --size replaces the quick run's.
        let base = arguments.contains("--size") ? ["--duration", "0.1"] : Self.quick
        try CLI.run(["loaded"] + base + arguments).expectOneLineError(status: 64, mentioning: flag)
    }

    @Test("load CPUs that include the chase's are refused", .enabled(if: Topology.current.allowedCPUs.count >= 2, "needs two CPUs"))
    func loadOnChase() throws {
        let cpu = try #require(Topology.current.allowedCPUs.first)
        try CLI.run(["loaded", "--physcpubind", String(cpu), "--load-cpus", String(cpu)] + Self.quick)
            .expectOneLineError(status: 64, mentioning: "--load-cpus")
    }
}
