import Foundation
import NUMA
import Testing
import TestSupport

@Suite("TopologyAgreement CLI: membench topology")
struct TopologyAgreementCLITests {
    @Test("topology --json matches the library's topology, node for node")
    func json() throws {
        let output = try CLI.run(["topology", "--json"])
        #expect(output.status == 0)
        let decoded = try JSONDecoder().decode(Topology.self, from: Data(output.stdout.utf8))
        let topology = Topology.reload()
        #expect(decoded.nodes.map(\.id) == topology.nodes.map(\.id))
        #expect(decoded.nodes.map(\.cpus) == topology.nodes.map(\.cpus))
        #expect(decoded.nodes.map(\.distances) == topology.nodes.map(\.distances))
        #expect(decoded.nodes.map(\.memoryTotal) == topology.nodes.map(\.memoryTotal))
        #expect(decoded.allowedNodes == topology.allowedNodes && decoded.allowedCPUs == topology.allowedCPUs)
    }

    @Test("binding memory to a node without memory is refused with one line, exit 1",
          .enabled(if: Topology.current.nodes.contains { !$0.hasMemory }, "needs a node without memory"))
    func memorylessNode() throws {
        let node = try #require(Topology.current.nodes.first { !$0.hasMemory }?.id)
        for flag in ["--membind", "--interleave", "--preferred"] {
            let output = try CLI.run(["run", flag, String(node), "--size", "4MiB", "--duration", "0.1"])
            #expect(output.status == 1)
            #expect(output.stderr == "membench: error: \(flag): node \(node) has no memory\n")
        }
    }

    @Test("the text view has numactl's lines plus the cache and allowed sets")
    func text() throws {
        let output = try CLI.run(["topology"])
        #expect(output.status == 0)
        #expect(output.stdout.hasPrefix("available: \(Topology.current.nodeCount) nodes"))
        #expect(output.stdout.contains("node distances:"))
        #expect(output.stdout.contains("last-level cache: L"))
        #expect(output.stdout.contains("allowed cpus: \(Topology.current.allowedCPUs)"))
    }
}
