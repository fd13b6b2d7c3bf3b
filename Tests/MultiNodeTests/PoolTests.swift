import CNuma
@testable import NUMA
#if canImport(Glibc)
import Glibc
#endif
@testable import NUMAPool
import Testing
import TestSupport

/// Runs in the emulated-NUMA guests (scripts/numa-vm); skipped on one-node hosts.
@Suite("MultiNode pools", .serialized, .multiNode, .everyCPUNodeHasMemory)
struct MultiNodePoolTests {
    /// Nodes that have both CPUs and memory.
    static let computeNodes = Topology.current.nodes.filter { $0.hasCPUs && $0.hasMemory }.map(\.id)

    @Test("a thread pinned to node k gets blocks on node k", arguments: computeNodes)
    func local(node: Int) throws {
        let pool = try LocalPool(blockSize: 128, capacityPerNode: 4 << 20)
        let thread = try PinnedThread(node: node) { () throws -> [Int?] in
            var nodes: [Int?] = []
            var blocks: [UnsafeMutableRawPointer] = []
            for _ in 0..<200 { blocks.append(try pool.allocate()) }
            for block in blocks {
                block.storeBytes(of: 1, as: UInt8.self)
                nodes.append(pool.homeNode(of: block))
            }
            for block in blocks.prefix(10) { nodes.append(try nodeOfPage(block)) }
            for block in blocks { pool.deallocate(block) }
            return nodes
        }
        let nodes = try thread.join()
        #expect(nodes.count == 210)
        #expect(nodes.allSatisfy { $0 == node })
        #expect(pool.statistics().perNode[node]?.gets ?? 0 >= 200)
    }

    @Test("a thread that moves to another node allocates from that node's arena, with a warm cache")
    func movingThread() throws {
        let first = try #require(Self.computeNodes.first), second = try #require(Self.computeNodes.last)
        try #require(first != second)
        let pool = try LocalPool(blockSize: 64, capacityPerNode: 1 << 20)
        let homes = try PinnedThread(node: first) { () throws -> [[Int?]] in
            var homes: [[Int?]] = []
            for node in [first, second, first] {
                try ThreadAffinity.bind(toNodes: NodeSet([node]))
                // A get+put pair leaves a block in the cache for the next get on this node.
                var got: [UnsafeMutableRawPointer] = []
                for _ in 0..<8 {
                    let block = try pool.allocate()
                    got.append(block)
                    pool.deallocate(block)
                    got.append(try pool.allocate())
                }
                homes.append(got.map { pool.homeNode(of: $0) })
                for block in got.enumerated().filter({ $0.offset % 2 == 1 }).map(\.element) { pool.deallocate(block) }
            }
            return homes
        }.join()
        #expect(homes.count == 3)
        for (homes, node) in zip(homes, [first, second, first]) {
            #expect(homes.allSatisfy { $0 == node }, "blocks got on node \(node): \(homes)")
        }
        #expect(pool.statistics().remoteReturns == 0)
    }

    @Test("a thread moved behind the pool's back gets its new node's blocks from its next refill on")
    func movedWithoutTelling() throws {
        let first = try #require(Self.computeNodes.first), second = try #require(Self.computeNodes.last)
        try #require(first != second)
        let capacity = 16
        let pool = try LocalPool(blockSize: 64, capacityPerNode: 1 << 20, cacheCapacity: capacity)
        let homes = try PinnedThread(node: first) { () throws -> [Int?] in
            // A warm cache on the first node: blocks in its stack and a run of fresh ones.
            var warm: [UnsafeMutableRawPointer] = []
            for _ in 0..<capacity { warm.append(try pool.allocate()) }
            for block in warm { pool.deallocate(block) }
            // sched_setaffinity(2) directly, not through ThreadAffinity: nothing tells the pool.
            var mask = try ThreadAffinity.cpus(ofNodes: [second]).words
            guard CNuma_setaffinity(&mask, mask.count) == 0 else { throw NUMAError(operation: "sched_setaffinity", errno: errno) }
            var got: [UnsafeMutableRawPointer] = []
            for _ in 0..<(3 * capacity + 64) { got.append(try pool.allocate()) }
            defer { for block in got { pool.deallocate(block) } }
            return got.map { pool.homeNode(of: $0) }
        }.join()
        // The old node's blocks last at most as long as the cache's stack and fresh run
        // (`capacity` and a refill of capacity / 2); everything after comes from the new node.
        let turnover = capacity + capacity / 2
        #expect(homes.dropFirst(turnover).allSatisfy { $0 == second }, "homes after the move: \(homes)")
    }

    @Test("a block freed on another node goes back to its home arena, not the freeing thread's cache")
    func remoteReturn() throws {
        let home = try #require(Self.computeNodes.last), away = try #require(Self.computeNodes.first)
        let pool = try LocalPool(blockSize: 64, capacityPerNode: 1 << 20)
        let address = try PinnedThread(node: home) { UInt(bitPattern: try pool.allocate()) }.join()
        let seenAway = try PinnedThread(node: away) { () throws -> [UInt] in
            pool.deallocate(UnsafeMutableRawPointer(bitPattern: address)!)
            var got: [UnsafeMutableRawPointer] = []
            for _ in 0..<100 { got.append(try pool.allocate()) }
            let addresses = got.map { UInt(bitPattern: $0) }
            for block in got { pool.deallocate(block) }
            pool.trim()
            return addresses
        }.join()
        #expect(!seenAway.contains(address), "the remote thread never reuses the block")
        let stats = pool.statistics()
        #expect(stats.remoteReturns == 1)
        #expect(stats.perNode[home]?.remoteReturns == 1)
        let again = try PinnedThread(node: home) { () throws -> Bool in
            var got: [UnsafeMutableRawPointer] = []
            for _ in 0..<64 { got.append(try pool.allocate()) }
            defer { for block in got { pool.deallocate(block) } }
            return got.contains { UInt(bitPattern: $0) == address }
        }.join()
        #expect(again, "the home node reuses its block")
    }

    @Test("an object pool on a local pool reuses objects on their own node only")
    func objectPoolLocality() throws {
        let home = try #require(Self.computeNodes.last), away = try #require(Self.computeNodes.first)
        let backing = try LocalPool(blockSize: 64, capacityPerNode: 1 << 20)
        let objects = try ObjectPool(backing: backing, factory: { [UInt8]() }, reset: { $0.removeAll() })
        // Leased on the home node, given back on the other one (the lease moves between the
        // threads in a box).
        final class Box: @unchecked Sendable {
            // @unchecked: the threads that touch `lease` run one after the other (join).
            var lease: Lease<[UInt8]>?
        }
        let box = Box()
        let address = try PinnedThread(node: home) { () throws -> UInt in
            let lease = try objects.lease()
            let address = UInt(bitPattern: lease.slot)
            box.lease = consume lease
            return address
        }.join()
        #expect(backing.homeNode(of: UnsafeRawPointer(bitPattern: address)!) == home)
        let reusedAway = try PinnedThread(node: away) { () throws -> Bool in
            box.lease = nil
            let lease = try objects.lease()
            return UInt(bitPattern: lease.slot) == address
        }.join()
        #expect(!reusedAway, "a thread on another node gets a fresh object of its own node")
        let reusedHome = try PinnedThread(node: home) { () throws -> Bool in
            let lease = try objects.lease()
            return UInt(bitPattern: lease.slot) == address
        }.join()
        #expect(reusedHome, "the home node reuses its object")
        let stats = objects.statistics()
        #expect(stats.gets == 3 && stats.hits == 1 && stats.misses == 2 && stats.puts == 3)
    }

    @Test("a global pool made on one node places its pages there, whoever touches them first")
    func globalFirstTouch() throws {
        let filler = try #require(Self.computeNodes.last), reader = try #require(Self.computeNodes.first)
        let pool = try PinnedThread(node: filler) { try GlobalPool(blockSize: 256, capacity: 2 << 20) }.join()
        #expect(pool.placementHistogram.isEmpty, "no page is faulted in before a block is handed out")
        let nodes = try PinnedThread(node: reader) { () throws -> [Int?] in
            var blocks: [UnsafeMutableRawPointer] = []
            for _ in 0..<50 { blocks.append(try pool.allocate()) }
            defer { for block in blocks { pool.deallocate(block) } }
            return try blocks.map { try nodeOfPage($0) }
        }.join()
        #expect(nodes.allSatisfy { $0 == filler })
        #expect(pool.placementHistogram.keys.sorted() == [filler])
    }

    @Test("an interleaved global pool spreads its pages evenly")
    func globalInterleave() throws {
        let nodes = Topology.current.bindableNodes
        let pages = 64 * nodes.count
        let pool = try GlobalPool(blockSize: 4096, capacity: pages * PagePlacement.basePageSize, placement: .interleave(nodes))
        var blocks: [UnsafeMutableRawPointer] = []
        for _ in 0..<pages { blocks.append(try pool.allocate()) }
        defer { for block in blocks { pool.deallocate(block) } }
        let histogram = pool.placementHistogram
        #expect(Set(histogram.keys) == Set(nodes.ids))
        for node in nodes { #expect(abs(histogram[node, default: 0] - 64) <= 1) }
        #expect(pool.statistics().perNode.count == nodes.count)
    }

    @Test("a spread global pool places each chunk on its node")
    func globalSpread() throws {
        let nodes = Topology.current.bindableNodes
        let chunk = GlobalPool.spreadChunk(pages: .base)
        let pool = try GlobalPool(blockSize: 4096, capacity: 2 * nodes.count * chunk, placement: .spread(nodes))
        var blocks: [UnsafeMutableRawPointer] = []
        for _ in 0..<(pool.capacity / 4096) { blocks.append(try pool.allocate()) }
        defer { for block in blocks { pool.deallocate(block) } }
        let histogram = pool.placementHistogram
        let share = chunk / PagePlacement.basePageSize * 2
        for node in nodes { #expect(histogram[node, default: 0] == share, "\(histogram)") }
    }

    @Test("under preferred binding a full arena falls back to the nearest node and counts it")
    func fallback() throws {
        let node = try #require(Self.computeNodes.first)
        let pool = try LocalPool(blockSize: 4096, capacityPerNode: 8 * 4096, binding: .preferred)
        let homes = try PinnedThread(node: node) { () throws -> [Int?] in
            var blocks: [UnsafeMutableRawPointer] = []
            for _ in 0..<12 { blocks.append(try pool.allocate()) }
            defer { for block in blocks { pool.deallocate(block) } }
            return blocks.map { pool.homeNode(of: $0) }
        }.join()
        #expect(homes.prefix(8).allSatisfy { $0 == node })
        let nearest = Topology.current.memoryNodes(nearestTo: node).dropFirst().first
        #expect(homes.suffix(4).allSatisfy { $0 == nearest })
        #expect(pool.statistics().fallbacks == 4)
    }
}
