import Foundation
@testable import MembenchKit
import NUMA
import NUMAPool
import Testing
import TestSupport

/// Runs in the `tiered` guest (scripts/numa-vm): nodes 0 and 1 with CPUs and DRAM, node 2 of
/// slower memory without CPUs, in a lower tier, and Linux 6.12. Asserts placement, weights and
/// order only; bandwidth in a TCG guest means nothing.
@Suite("Memory tiers and weighted interleave", .serialized,
       .enabled(if: Topology.current.tiers.count >= 2 && InterleaveWeights.isSupported && geteuid() == 0,
                "needs memory tiers, Linux 6.9+ and root"))
struct TieredTests {
    /// The slow node: memory without CPUs, in the lowest tier.
    static let slow = Topology.current.nodes.last { !$0.hasCPUs && $0.hasMemory }?.id ?? -1

    /// Runs `body`, then puts every node's weight back as it was, whatever `body` did.
    static func keepingWeights(_ body: () throws -> Void) throws {
        let before = try #require(InterleaveWeights.current())
        defer { _ = try? InterleaveWeights.set(before) }
        try body()
        #expect(InterleaveWeights.current() == before, "the run put the weights back")
    }

    @Test("the slow node is in a lower tier than the DRAM nodes, and fallback takes DRAM first")
    func tiers() throws {
        let topology = Topology.current
        let dram = try #require(topology.node(0)?.tier)
        #expect(topology.node(1)?.tier == dram)
        #expect(try #require(topology.node(Self.slow)?.tier) > dram)
        // The slow node is nearer to node 0 than node 1 is: distance alone would pick it.
        #expect(topology.nearest([1, Self.slow], to: 0) == [Self.slow, 1])
        #expect(topology.fallbackOrder([1, Self.slow], from: 0) == [1, Self.slow])
    }

    @Test("weighted interleave 3:1 over nodes 0 and the slow node puts 75% ±2 of 4 KiB pages on node 0")
    func threeToOne() throws {
        try Self.keepingWeights {
            let saved = try InterleaveWeights.set([0: 3, Self.slow: 1])
            defer { _ = try? InterleaveWeights.restore(saved) }
            let region = try MemoryRegion(size: 16 << 20, policy: .weightedInterleave([0, Self.slow]), pages: .base)
            region.faultIn()
            let pages = try region.nodeHistogram()
            let share = Double(pages[0] ?? 0) / Double(pages.values.reduce(0, +))
            #expect(abs(share - 0.75) <= 0.02, "\(pages)")
            #expect(Set(pages.keys) == [0, Self.slow])
        }
    }

    @Test("membench reports the 3:1 placement and the remote share from each CPU node, and restores the weights",
          arguments: [0, 1])
    func membenchPlacement(cpuNode: Int) throws {
        try Self.keepingWeights {
            let output = try CLI.run(["run", "--pool", "direct", "--weighted-interleave", "0:3,\(Self.slow):1", "--page-size", "4k",
                                      "--cpunodebind", String(cpuNode), "--size", "8MiB", "--samples", "5", "--warmup", "0",
                                      "--loads-per-sample", "256", "--json"])
            #expect(output.status == 0, "\(output.stderr)")
            let records = try #require(try JSONSerialization.jsonObject(with: Data(output.stdout.utf8)) as? [[String: Any]])
            let total = try #require(records.first { $0["scope"] as? String == "total" })
            #expect(total["interleave_weights"] as? String == "0:3,\(Self.slow):1")
            var pages: [Int: Int] = [:]
            for entry in (total["pages_per_node"] as? String ?? "").split(separator: ";") {
                let parts = entry.split(separator: ":").compactMap { Int($0) }
                if parts.count == 2 { pages[parts[0]] = parts[1] }
            }
            let all = Double(pages.values.reduce(0, +))
            #expect(abs(Double(pages[0] ?? 0) / all - 0.75) <= 0.02, "\(pages)")
            let remote = total["remote_share"] as? Double ?? -1
            #expect(abs(remote - (cpuNode == 0 ? 0.25 : 1.0)) <= 0.02, "remote share \(remote) from node \(cpuNode)")
        }
    }

    @Test("weights set for a run that fails part way are restored")
    func failedRun() throws {
        try Self.keepingWeights {
            let output = try CLI.run(["run", "--pool", "direct", "--weighted-interleave", "0:5,\(Self.slow):2", "--size", "4MiB",
                                      "--samples", "5", "--warmup", "0", "--loads-per-sample", "256", "--csv", "/dev/full"])
            #expect(output.status == 1, "\(output.stderr)")
            #expect(output.stderr.contains("/dev/full"), "\(output.stderr)")
        }
    }

    /// The real kernel's weights, in a guest; the host suite covers every signal on a copy.
    @Test("weights set for a run that is interrupted are restored before it ends by the signal", arguments: [SIGINT, SIGTERM, SIGUSR2, SIGQUIT])
    func interrupted(signal: Int32) throws {
        try Self.keepingWeights {
            let before = try #require(InterleaveWeights.current())
            let process = Process()
            process.executableURL = URL(fileURLWithPath: CLI.binary)
            process.arguments = ["run", "--pool", "direct", "--weighted-interleave", "0:7,\(Self.slow):2", "--size", "4MiB",
                                 "--duration", "60", "--warmup", "0"]
            let err = Pipe()
            process.standardError = err
            process.standardOutput = FileHandle.nullDevice
            try process.run()
            // Wait until the run has set its weights.
            var waited = 0
            while InterleaveWeights.current() == before && waited < 600 {
                usleep(50_000)
                waited += 1
            }
            #expect(InterleaveWeights.current()?[0] == 7, "the run set its weights")
            kill(process.processIdentifier, signal)
            let message = String(decoding: err.fileHandleForReading.readDataToEndOfFile(), as: UTF8.self)
            process.waitUntilExit()
            #expect(process.terminationReason == .uncaughtSignal && process.terminationStatus == signal, "\(message)")
            #expect(message.contains("ended the run; the interleave weights are back as they were"), "\(message)")
        }
    }

    @Test("tiers proposes a weight for every node, and --apply writes them")
    func tiersApply() throws {
        let before = try #require(InterleaveWeights.current())
        defer { _ = try? InterleaveWeights.set(before) }  // --apply keeps the weights it writes
        do {
            let output = try CLI.run(["tiers", "--cpu-node", "0", "--size", "8MiB", "--duration", "0.2", "--apply", "--json"])
            #expect(output.status == 0, "\(output.stderr)")
            let records = try #require(try JSONSerialization.jsonObject(with: Data(output.stdout.utf8)) as? [[String: Any]])
            let proposed = Dictionary(uniqueKeysWithValues: records.compactMap { record -> (Int, Int)? in
                guard let node = record["memory_node"] as? Int, let weight = record["weight"] as? Int else { return nil }
                return (node, weight)
            })
            #expect(Set(proposed.keys) == Set(Topology.current.bindableNodes.ids))
            #expect(proposed.values.allSatisfy { (1...255).contains($0) })
            let now = try #require(InterleaveWeights.current())
            #expect(proposed.allSatisfy { now[$0.key] == $0.value }, "written \(now), proposed \(proposed)")
            #expect(records.first { $0["memory_node"] as? Int == Self.slow }?["tier"] as? Int == Topology.current.node(Self.slow)?.tier)
        }
    }

    @Test("matrix and bandwidth --matrix show the firmware's figures beside the measured ones")
    func firmwareBeside() throws {
        let output = try CLI.run(["matrix", "--size", "4MiB", "--duration", "0.2", "--warmup", "0", "--loads-per-sample", "256", "--json"])
        #expect(output.status == 0, "\(output.stderr)")
        let records = try #require(try JSONSerialization.jsonObject(with: Data(output.stdout.utf8)) as? [[String: Any]])
        #expect(records.count == 2 * 2 * Topology.current.bindableNodes.count, "two CPU nodes, a thread and a total record per cell")
        for record in records {
            let cpuNode = try #require(record["cpu_node"] as? Int), memoryNode = try #require(record["memory_node"] as? Int)
            let firmware = Topology.current.firmwareAccess(from: cpuNode, to: memoryNode)
            #expect(record["firmware_read_latency_ns"] as? Int == firmware?.readLatency, "\(cpuNode)>\(memoryNode)")
            #expect(record["firmware_read_bandwidth_mb_per_s"] as? Int == firmware?.readBandwidth, "\(cpuNode)>\(memoryNode)")
        }
        // Node 2's best initiator is node 0: the firmware names 0>2 and leaves 1>2 unknown.
        #expect(records.contains { $0["cpu_node"] as? Int == 0 && $0["memory_node"] as? Int == Self.slow && $0["firmware_read_latency_ns"] is Int })
        let table = try CLI.run(["matrix", "--size", "4MiB", "--duration", "0.2", "--warmup", "0", "--loads-per-sample", "256"])
        #expect(table.stdout.contains("firmware read latency (ns, ACPI HMAT)") && table.stdout.contains("firmware read bandwidth (MB/s, ACPI HMAT)"))
        let bandwidth = try CLI.run(["bandwidth", "--matrix", "--size", "1MiB", "--duration", "0.1"])
        #expect(bandwidth.status == 0, "\(bandwidth.stderr)")
        #expect(bandwidth.stdout.contains("firmware read bandwidth (GB/s, ACPI HMAT"), "\(bandwidth.stdout)")
    }

    @Test("a LocalPool arena on node 0 that runs out under preferred binding falls back on node 1's DRAM, not the nearer slow node")
    func poolFallback() throws {
        let pool = try LocalPool(blockSize: 4096, capacityPerNode: 8 * 4096, binding: .preferred)
        let homes = try PinnedThread(node: 0) { () throws -> [Int?] in
            var blocks: [UnsafeMutableRawPointer] = []
            for _ in 0..<12 { blocks.append(try pool.allocate()) }
            defer { for block in blocks { pool.deallocate(block) } }
            return blocks.map { pool.homeNode(of: $0) }
        }.join()
        #expect(homes.prefix(8).allSatisfy { $0 == 0 })
        #expect(homes.suffix(4).allSatisfy { $0 == 1 }, "\(homes)")
    }
}

/// Runs in the guests with Debian's 6.1 kernel, which has no weighted interleave.
@Suite("Weighted interleave on a kernel without it", .serialized,
       .enabled(if: Topology.current.nodeCount > 1 && !InterleaveWeights.isSupported, "needs a multi-node kernel before 6.9"))
struct OldKernelTests {
    @Test("--weighted-interleave fails with one line naming the kernel needed, exit 1, and writes nothing", arguments: ["0,1", "0:3,1:1"])
    func refused(nodes: String) throws {
        let csv = CLI.temporaryPath(".csv")
        defer { try? FileManager.default.removeItem(atPath: csv) }
        try CLI.run(["run", "--weighted-interleave", nodes, "--size", "4MiB", "--duration", "0.1", "--csv", csv])
            .expectOneLineError(status: 1, mentioning: "--weighted-interleave: weighted interleave needs Linux 6.9 or later; this kernel is 6.1")
        #expect(!FileManager.default.fileExists(atPath: csv))
        #expect(!FileManager.default.fileExists(atPath: "/sys/kernel/mm/mempolicy/weighted_interleave"))
    }
}
