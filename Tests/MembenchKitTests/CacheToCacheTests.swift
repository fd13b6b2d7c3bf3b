import Foundation
@testable import MembenchKit
import NUMA
import Testing
import TestSupport

@Suite("membench c2c", .serialized)
struct CacheToCacheCLITests {
    @Test("every ordered CPU pair in every state, with each CPU's node, and the node-pair summary",
          .enabled(if: Topology.current.allowedCPUs.count >= 2, "needs two CPUs"))
    func everyPair() throws {
        let output = try CLI.run(["c2c", "--repeats", "5", "--lines", "64", "--json"])
        #expect(output.status == 0, "\(output.stderr)")
        let records = try #require(try JSONSerialization.jsonObject(with: Data(output.stdout.utf8)) as? [[String: Any]])
        let topology = Topology.current
        let cpus = Array(topology.allowedCPUs).sorted()
        let states = CacheToCache.states.map(\.rawValue)
        #expect(records.count == cpus.count * cpus.count * states.count)
        var seen = Set<String>()
        for record in records {
            let holder = try #require(record["holder_cpu"] as? Int), reader = try #require(record["reader_cpu"] as? Int)
            #expect(record["holder_node"] as? Int == topology.node(ofCPU: holder))
            #expect(record["reader_node"] as? Int == topology.node(ofCPU: reader))
            let median = try #require((record["median_ns"] as? NSNumber)?.doubleValue)
            let minimum = try #require((record["min_ns"] as? NSNumber)?.doubleValue)
            #expect(minimum > 0 && minimum <= median, "\(record)")
            seen.insert("\(holder)>\(reader):\(record["state"] as? String ?? "")")
        }
        #expect(seen.count == records.count, "each pair and state once")
        let table = try CLI.run(["c2c", "--repeats", "3", "--lines", "32"])
        #expect(table.stdout.contains("modified: holder \\ reader") && table.stdout.contains("by node pair"), "\(table.stdout)")
    }

    @Test("bad input is one line naming the flag, exit 64", arguments: [
        (["--lines", "8"], "--lines"), (["--lines", "x"], "--lines"), (["--repeats", "0"], "--repeats"),
        (["--membind", "0"], "--membind"), (["--physcpubind", "99999"], "--physcpubind"), (["--bogus"], "--bogus"),
    ])
    func usage(arguments: [String], flag: String) throws {
        try CLI.run(["c2c"] + arguments).expectOneLineError(status: 64, mentioning: flag)
    }

    @Test("a CPU list of one CPU is bad input, exit 64, and says so (not what the process may use)")
    func oneCPU() throws {
        let cpu = try #require(Topology.current.allowedCPUs.first)
        for list in [String(cpu), "\(cpu),\(cpu)"] {
            try CLI.run(["c2c", "--physcpubind", list])
                .expectOneLineError(status: 64, mentioning: "--physcpubind: c2c needs two CPUs, and the list names 1")
        }
    }
}
