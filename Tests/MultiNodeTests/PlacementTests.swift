import Testing
@testable import NUMA
import TestSupport

/// Runs in the emulated-NUMA guests (scripts/numa-vm); skipped on one-node hosts.
@Suite("MultiNode placement", .serialized, .multiNode)
struct MultiNodePlacementTests {
    static let pageSize = PagePlacement.basePageSize
    static let memoryNodes = Topology.current.bindableNodes.ids
    static let cpuNodes = Topology.current.nodesWithCPUs.ids

    @Test("preferred places pages on the preferred node while it has room", arguments: memoryNodes)
    func preferred(node: Int) throws {
        let region = try MemoryRegion(size: 32 * Self.pageSize, policy: .preferred(node))
        region.faultIn()
        #expect(try region.nodeHistogram() == [node: 32])
    }

    @Test("migration moves every page to the target node",
          .enabled(if: memoryNodes.count > 1, "needs two nodes with memory"))
    func migrate() throws {
        let from = try #require(Self.memoryNodes.first), to = try #require(Self.memoryNodes.last)
        let region = try MemoryRegion(size: 48 * Self.pageSize, policy: .bind([from]))
        region.faultIn()
        #expect(try region.nodeHistogram() == [from: 48])
        try region.migrate(to: [to])
        #expect(try region.nodeHistogram() == [to: 48])
    }

    @Test("first touch by a thread pinned to a node places the pages there",
          arguments: cpuNodes.filter { Topology.current.node($0)?.hasMemory == true })
    func firstTouch(node: Int) throws {
        let thread = try PinnedThread(node: node) { () throws -> [Int: Int] in
            let region = try MemoryRegion(size: 16 * Self.pageSize)
            region.faultIn()
            return try region.nodeHistogram()
        }
        #expect(try thread.join() == [node: 16])
    }

    @Test("interleaving over two nodes puts half the pages on each",
          .enabled(if: memoryNodes.count > 1, "needs two nodes with memory"))
    func interleavePair() throws {
        let pair = NodeSet(Self.memoryNodes.prefix(2))
        let region = try MemoryRegion(size: 101 * Self.pageSize, policy: .interleave(pair))
        region.faultIn()
        let histogram = try region.nodeHistogram()
        for node in pair { #expect(abs(histogram[node, default: 0] - 50) <= 1) }
    }

    @Test("a memory-only node takes bound memory but no threads")
    func memoryOnly() throws {
        let topology = Topology.current
        for node in topology.nodes where !node.hasCPUs && node.hasMemory {
            let region = try MemoryRegion(size: 8 * Self.pageSize, policy: .bind([node.id]))
            region.faultIn()
            #expect(try region.nodeHistogram() == [node.id: 8])
            #expect(throws: NUMAError.self) { try PinnedThread(node: node.id) { 0 } }
        }
    }

    @Test("binding to a node outside the allowed set gives the typed error")
    func outside() throws {
        let topology = Topology.current
        let outside = (topology.nodes.map(\.id).max() ?? 0) + 1
        #expect(throws: NUMAError.self) { _ = try MemoryRegion(size: Self.pageSize, policy: .bind([outside])) }
        #expect(throws: NUMAError.self) { try MemoryPolicy.bind([0, outside]).applyToCurrentThread() }
        for node in topology.nodes where !node.hasMemory {
            #expect { _ = try MemoryRegion(size: Self.pageSize, policy: .bind([node.id])) } throws: { error in
                (error as? NUMAError)?.message.contains("has no memory") == true
            }
        }
    }
}
