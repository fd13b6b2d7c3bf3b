@testable import NUMA
#if canImport(Glibc)
import Glibc
#endif
@testable import NUMAPool
import Testing
import TestSupport

/// Runs in the emulated-NUMA guests (scripts/numa-vm); skipped on one-node hosts. Placement and
/// counts only: latency in such a guest means nothing.
@Suite("MultiNode heap", .serialized, .multiNode, .everyCPUNodeHasMemory)
struct MultiNodeHeapTests {
    static let computeNodes = Topology.current.nodes.filter { $0.hasCPUs && $0.hasMemory }.map(\.id)

    @Test("a thread on node k gets blocks and large runs whose pages are on node k", arguments: computeNodes)
    func placement(node: Int) throws {
        let heap = try NUMAHeap(capacityPerNode: 32 << 20, purger: false)
        let nodes = try PinnedThread(node: node) { () throws -> [Int?] in
            var nodes: [Int?] = []
            var blocks: [UnsafeMutableRawPointer] = []
            for size in [16, 100, 1000, 5000, 40_000, 300_000, 1 << 20] {
                let block = try heap.allocate(byteCount: size)
                memset(block, 1, size)
                blocks.append(block)
                nodes.append(heap.homeNode(of: block))
                nodes.append(try nodeOfPage(block))
                nodes.append(try nodeOfPage(block + (size - 1)))
            }
            for block in blocks { heap.deallocate(block) }
            return nodes
        }.join()
        #expect(nodes.count == 21)
        #expect(nodes.allSatisfy { $0 == node }, "\(nodes)")
    }

    @Test("allocate(byteCount:on:) places on the node asked for, whatever node the thread is on")
    func explicitNode() throws {
        let first = try #require(Self.computeNodes.first), second = try #require(Self.computeNodes.last)
        try #require(first != second)
        let heap = try NUMAHeap(capacityPerNode: 16 << 20, purger: false)
        let found = try PinnedThread(node: first) { () throws -> [Int?] in
            let small = try heap.allocate(byteCount: 200, on: second)
            let large = try heap.allocate(byteCount: 500_000, on: second)
            memset(small, 1, 200)
            memset(large, 1, 500_000)
            defer { heap.deallocate(small); heap.deallocate(large) }
            return [heap.homeNode(of: small), try nodeOfPage(small), heap.homeNode(of: large), try nodeOfPage(large + 499_999)]
        }.join()
        #expect(found == [second, second, second, second])
    }

    @Test("a block freed on node 0 that belongs to node 1 goes home to node 1, never into the freeing thread's cache")
    func remoteFreeGoesHome() throws {
        let first = try #require(Self.computeNodes.first), second = try #require(Self.computeNodes.last)
        try #require(first != second)
        let heap = try NUMAHeap(capacityPerNode: 16 << 20, purger: false)
        let count = 100
        let blocks = try PinnedThread(node: second) { () throws -> [UInt] in
            try (0..<count).map { _ in UInt(bitPattern: try heap.allocate(byteCount: 256)) }
        }.join()
        let reused = try PinnedThread(node: first) { () throws -> [Int?] in
            for address in blocks { heap.deallocate(UnsafeMutableRawPointer(bitPattern: address)!) }
            // The freeing thread's next blocks of the class are its own node's.
            var got: [UnsafeMutableRawPointer] = []
            for _ in 0..<count { got.append(try heap.allocate(byteCount: 256)) }
            defer { for block in got { heap.deallocate(block) } }
            return got.map { heap.homeNode(of: $0) }
        }.join()
        #expect(reused.allSatisfy { $0 == first }, "\(reused)")
        let stats = heap.statistics()
        #expect(stats.remoteFrees == UInt64(count))
        #expect(stats.perNode[second]?.remoteFrees == UInt64(count))
        // All came home: node `second` holds nothing for callers.
        #expect(stats.perNode[second]?.bytesInUse == 0)
    }

    @Test("decayed pages are really gone, and come back on the right node when reused")
    func decayedPagesComeBack() throws {
        let second = try #require(Self.computeNodes.last)
        let heap = try NUMAHeap(capacityPerNode: 16 << 20, decay: .milliseconds(50))
        let resident = try PinnedThread(node: second) { () throws -> (before: Int, after: Int, nodes: [Int?]) in
            var blocks = try (0..<64).map { _ in try heap.allocate(byteCount: 40_000) }
            for block in blocks { memset(block, 1, 40_000) }
            let before = heap.statistics().perNode[second]?.bytesResident ?? 0
            for block in blocks { heap.deallocate(block) }
            heap.trim()  // this thread's cache too: everything is free now
            usleep(300_000)
            let after = heap.statistics().perNode[second]?.bytesResident ?? 0
            blocks = try (0..<64).map { _ in try heap.allocate(byteCount: 40_000) }
            for block in blocks { memset(block, 2, 40_000) }
            defer { for block in blocks { heap.deallocate(block) } }
            return (before, after, try blocks.prefix(16).map { try nodeOfPage($0 + 20_000) })
        }.join()
        #expect(resident.before >= 2 << 20)
        #expect(resident.after < resident.before / 4, "resident after decay: \(resident.after) of \(resident.before)")
        #expect(resident.nodes.allSatisfy { $0 == second }, "\(resident.nodes)")
    }
}
