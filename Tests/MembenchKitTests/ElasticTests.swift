import Foundation
@testable import MembenchKit
import Testing
import TestSupport

@Suite("Elastic sizing: membench elastic", .serialized)
struct ElasticTests {
    static let quick = ["--phases", "ramp=0.4,burst=0.4,quiet=0.8,slow=0.8", "--window", "100ms", "--rate", "20000"]

    @Test("elastic runs every policy over the phases and records each window, the fixed policies holding their capacity")
    func series() throws {
        let csv = CLI.temporaryPath(".csv")
        defer { try? FileManager.default.removeItem(atPath: csv) }
        let output = try CLI.run(["elastic", "--csv", csv] + Self.quick)
        #expect(output.status == 0, "\(output.stderr)")
        for column in ["policy", "burst p99 ms", "quiet resident MiB", "slow phase adds MiB", "miss rate"] {
            #expect(output.stdout.contains(column))
        }
        let rows = try CLI.rows(csv)
        let policies = ["fixed-large", "fixed-small", "slo", "demand"]
        var order: [String] = []
        for row in rows where order.last != row["policy"] { order.append(row["policy"] ?? "") }
        #expect(order == policies, "one run per policy, in order")
        for policy in policies {
            let mine = rows.filter { $0["policy"] == policy }
            // 2.4 s of phases in windows of 100 ms.
            #expect(mine.count >= 20 && mine.count <= 26, "\(policy): \(mine.count) windows")
            #expect(Set(mine.compactMap { $0["phase"] }) == ["ramp", "burst", "quiet", "slow"])
            #expect(mine.allSatisfy { Int($0["resident_bytes"] ?? "") ?? 0 > 0 })
            let served = mine.filter { $0["phase"] == "burst" }.compactMap { Double($0["requests_per_s"] ?? "") }
            #expect(served.max() ?? 0 > 10_000, "\(policy) served \(served) requests per second in the burst")
        }
        #expect(rows.filter { $0["policy"] == "fixed-large" }.allSatisfy { $0["capacity"] == "4096" && $0["decision"] == "fixed" })
        #expect(rows.filter { $0["policy"] == "fixed-small" }.allSatisfy { $0["capacity"] == "16" })
        let decided = rows.filter { $0["policy"] == "demand" || $0["policy"] == "slo" }.compactMap { $0["decision"] }
        #expect(decided.allSatisfy { ["hold", "grow", "shrink", "cooldown", "slo-veto", "at-minimum"].contains($0) })
        // The slow phase's p99 carries the dependency's 10 ms.
        let slow = rows.filter { $0["phase"] == "slow" }.compactMap { Double($0["p99_s"] ?? "") }
        #expect(slow.count > 8 && slow.allSatisfy { $0 >= 0.010 })
    }

    @Test("the demand controller shrinks the idle contexts in the quiet phase; fixed-large keeps them")
    func quietShrinks() throws {
        let csv = CLI.temporaryPath(".csv")
        defer { try? FileManager.default.removeItem(atPath: csv) }
        // An SLO no window misses: its guard, which vetoes a shrink while p99 is over it, stays
        // out of the way on a loaded machine.
        let output = try CLI.run(["elastic", "--policy", "demand,fixed-large", "--csv", csv, "--phases", "burst=0.5,quiet=3",
                                  "--window", "100ms", "--rate", "40000", "--slo", "10s"])
        #expect(output.status == 0, "\(output.stderr)")
        let rows = try CLI.rows(csv)
        let demand = rows.filter { $0["policy"] == "demand" && $0["phase"] == "quiet" }
        let capacities = demand.compactMap { Int($0["capacity"] ?? "") }
        #expect(capacities.last ?? 0 < capacities.first ?? 0, "capacity in the quiet phase: \(capacities)")
        #expect(demand.contains { $0["decision"] == "shrink" })
        let retained = { (policy: String) in
            rows.filter { $0["policy"] == policy && $0["phase"] == "quiet" }.last.flatMap { Int($0["retained_bytes"] ?? "") } ?? 0
        }
        #expect(retained("demand") < retained("fixed-large"), "idle bytes at the end of the quiet phase")
    }

    @Test("elastic refuses bad input with one line naming the flag", arguments: [
        (["--policy", "bigger"], "--policy"),
        (["--rate", "0"], "--rate"),
        (["--rate", "1e9"], "--rate"),
        (["--slo", "0"], "--slo"),
        (["--service-time", "0"], "--service-time"),
        (["--phases", "burst=1,nap=2"], "--phases"),
        (["--window", "1ms"], "--window"),
        (["--threads", "0"], "--threads"),
        (["--rounds", "0"], "--rounds"),
        (["--sizes", "0"], "--sizes"),
    ])
    func usage(arguments: [String], flag: String) throws {
        try CLI.run(["elastic", "--phases", "burst=0.1"] + arguments).expectOneLineError(status: 64, mentioning: flag)
    }
}
