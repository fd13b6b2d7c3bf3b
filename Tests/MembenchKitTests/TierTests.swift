import Foundation
@testable import MembenchKit
import NUMA
import Testing
import TestSupport

@Suite("Interleave weights from bandwidth")
struct TierWeightTests {
    @Test("weights are the bandwidth ratios as small integers, within 10%")
    func propose() {
        #expect(TierWeights.propose([0: 20, 2: 5]).weights == [0: 4, 2: 1])
        #expect(TierWeights.propose([0: 20, 1: 18.4, 2: 5]).weights == [0: 4, 1: 4, 2: 1])
        #expect(TierWeights.propose([0: 20, 1: 17, 2: 5]).weights == [0: 8, 1: 7, 2: 2])
        #expect(TierWeights.propose([0: 20, 1: 19.8]).weights == [0: 1, 1: 1])
        #expect(TierWeights.propose([0: 25, 2: 10]).weights == [0: 5, 2: 2])
        #expect(TierWeights.propose([0: 12.6]).weights == [0: 1])
        // Nothing measured: every node gets the kernel's default weight.
        #expect(TierWeights.propose([0: 0, 1: 0]).weights == [0: 1, 1: 1])
        // Very uneven rates stay within the kernel's largest weight.
        let uneven = TierWeights.propose([0: 1000, 1: 1]).weights
        #expect(uneven[0] == InterleaveWeights.maximum && uneven[1] == 1)
        for (rates, _) in [([0: 7.3, 1: 3.1, 2: 1.0], ()), ([0: 20.1, 1: 5.2], ())] {
            let (weights, scale, _) = TierWeights.propose(rates)
            #expect(scale >= 1 && scale <= TierWeights.largestScale)
            let slowest = rates.values.min()!
            for (node, rate) in rates {
                // Every weight, before the common divisor, within 10% of its exact ratio.
                let divisor = Double(weights.values.reduce(0) { TierWeights.gcd($0, $1) })
                #expect(abs(Double(weights[node]!) * divisor / (rate / slowest * Double(scale)) - 1) <= 0.1, "\(rates)")
            }
        }
    }

    @Test("node lists and node:weight pairs parse; mixed or malformed text does not")
    func parse() {
        #expect(InterleaveWeights.parse("0,2")?.nodes == [0, 2])
        #expect(InterleaveWeights.parse("0,2")?.weights == nil)
        #expect(InterleaveWeights.parse("0:3,2:1")?.nodes == [0, 2])
        #expect(InterleaveWeights.parse("0:3,2:1")?.weights == [0: 3, 2: 1])
        for bad in ["0:3,2", "0:x", ":1", "0:3,0:2", "a", "0:3:1", "0:3,,2:1"] {
            #expect(InterleaveWeights.parse(bad) == nil, "\(bad)")
        }
        #expect(InterleaveWeights.text([2: 1, 0: 3]) == "0:3,2:1")
    }
}

@Suite("membench tiers and --weighted-interleave on this host", .serialized)
struct TierCLITests {
    static let missing = (Topology.current.nodes.map(\.id).max() ?? 0) + 5

    @Test("bad --weighted-interleave input is one line and exit 64")
    func badWeights() throws {
        let run = ["run", "--size", "4MiB", "--duration", "0.1"]
        try CLI.run(run + ["--weighted-interleave", "0:3,1"]).expectOneLineError(status: 64, mentioning: "--weighted-interleave: '0:3,1' is neither")
        try CLI.run(run + ["--weighted-interleave", "0:0"]).expectOneLineError(status: 64, mentioning: "weight 0 for node 0 is not between 1 and 255")
        try CLI.run(run + ["--weighted-interleave", "0:256"]).expectOneLineError(status: 64, mentioning: "weight 256 for node 0")
        try CLI.run(run + ["--weighted-interleave", "0", "--membind", "0"])
            .expectOneLineError(status: 64, mentioning: "--membind: conflicts with --weighted-interleave")
        if InterleaveWeights.isSupported {
            try CLI.run(run + ["--weighted-interleave", "\(Self.missing)"])
                .expectOneLineError(status: 64, mentioning: "--weighted-interleave: node \(Self.missing) does not exist")
        }
        try CLI.run(["c2c", "--weighted-interleave", "0", "--lines", "16", "--repeats", "1"])
            .expectOneLineError(status: 64, mentioning: "--weighted-interleave: not a flag of this command")
    }

    @Test("a weighted-interleave run records its nodes and the kernel's weights for them",
          .enabled(if: InterleaveWeights.isSupported, "needs Linux 6.9 or later"))
    func recorded() throws {
        let nodes = Topology.current.bindableNodes
        let output = try CLI.run(["run", "--pool", "direct", "--weighted-interleave", "all", "--size", "4MiB",
                                  "--samples", "5", "--warmup", "0", "--json"])
        #expect(output.status == 0, "\(output.stderr)")
        let records = try #require(try JSONSerialization.jsonObject(with: Data(output.stdout.utf8)) as? [[String: Any]])
        let total = try #require(records.first { $0["scope"] as? String == "total" })
        #expect(total["weighted_interleave"] as? String == "\(nodes)")
        let kernel = InterleaveWeights.current()!.filter { nodes.contains($0.key) }
        #expect(total["interleave_weights"] as? String == InterleaveWeights.text(kernel))
        #expect(total["policy"] as? String == "weighted-interleave:\(nodes)")
    }

    @Test("bad input is refused before any weight is set",
          .enabled(if: InterleaveWeights.isSupported, "needs Linux 6.9 or later"))
    func refusedBeforeWeights() throws {
        let before = InterleaveWeights.current()
        let automatic = InterleaveWeights.isAutomatic
        try CLI.run(["bandwidth", "--weighted-interleave", "0:3", "--threads", "0", "--size", "1MiB"])
            .expectOneLineError(status: 64, mentioning: "--threads")
        try CLI.run(["bandwidth", "--matrix", "--weighted-interleave", "0:3", "--size", "1MiB"])
            .expectOneLineError(status: 64, mentioning: "--matrix")
        try CLI.run(["alloc", "--weighted-interleave", "0:3", "--block-size", "2GiB"])
            .expectOneLineError(status: 64, mentioning: "--block-size")
        try CLI.run(["run", "--weighted-interleave", "0:3", "--stride", "12", "--size", "1MiB"])
            .expectOneLineError(status: 64, mentioning: "--stride")
        #expect(InterleaveWeights.current() == before)
        #expect(InterleaveWeights.isAutomatic == automatic)
    }

    @Test("tiers refuses bad input with one line")
    func badTiers() throws {
        try CLI.run(["tiers", "--cpu-node", "\(Self.missing)"]).expectOneLineError(status: 64, mentioning: "--cpu-node: node \(Self.missing) does not exist")
        try CLI.run(["tiers", "--nodes", "\(Self.missing)", "--size", "1MiB"]).expectOneLineError(status: 64, mentioning: "--nodes: node \(Self.missing) does not exist")
        try CLI.run(["tiers", "--duration", "0"]).expectOneLineError(status: 64, mentioning: "--duration")
        try CLI.run(["tiers", "--kernel", "bogus"]).expectOneLineError(status: 64, mentioning: "bogus")
    }

    @Test("tiers measures every memory node and proposes a weight for each")
    func tiers() throws {
        let output = try CLI.run(["tiers", "--size", "8MiB", "--duration", "0.2", "--json"])
        #expect(output.status == 0, "\(output.stderr)")
        let records = try #require(try JSONSerialization.jsonObject(with: Data(output.stdout.utf8)) as? [[String: Any]])
        #expect(records.compactMap { $0["memory_node"] as? Int } == Topology.current.bindableNodes.ids)
        for record in records {
            #expect((record["bytes_per_s"] as? Double ?? 0) > 0)
            #expect((1...255).contains(record["weight"] as? Int ?? 0))
            #expect(record["tier"] as? Int == Topology.current.node(record["memory_node"] as? Int ?? -1)?.tier)
        }
        let table = try CLI.run(["tiers", "--size", "8MiB", "--duration", "0.2"])
        #expect(table.stdout.contains("proposed: --weighted-interleave "), "\(table.stdout)")
    }

    @Test("topology shows tiers, firmware figures and weights, or says there are none")
    func topology() throws {
        let text = try CLI.run(["topology"]).stdout
        #expect(text.contains("memory tiers: "))
        #expect(text.contains("firmware access figures (ACPI HMAT)"))
        #expect(text.contains("interleave weights: "))
        let json = try CLI.run(["topology", "--json"]).stdout
        let object = try #require(try JSONSerialization.jsonObject(with: Data(json.utf8)) as? [String: Any])
        #expect(object.keys.contains("interleaveWeights"))
        #expect((object["tiers"] as? [Any])?.count == Topology.current.tiers.count)
    }
}
