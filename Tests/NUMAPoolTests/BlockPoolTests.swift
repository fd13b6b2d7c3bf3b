import NUMA
@testable import NUMAPool
import Testing
import TestSupport

enum Strategy: String, CaseIterable, CustomTestStringConvertible {
    case local, global
    var testDescription: String { rawValue }

    func make(blockSize: Int = 64, capacity: Int = 8 << 20) throws -> any BlockPool {
        switch self {
        case .local: try LocalPool(blockSize: blockSize, capacityPerNode: capacity)
        case .global: try GlobalPool(blockSize: blockSize, capacity: capacity)
        }
    }
}

@Suite("Block pools on one node")
struct BlockPoolTests {
    @Test("blocks are distinct, aligned, writable and on the thread's node", arguments: Strategy.allCases)
    func blocks(strategy: Strategy) throws {
        let pool = try strategy.make()
        var blocks: [UnsafeMutableRawPointer] = []
        for i in 0..<500 {
            let block = try pool.allocate()
            #expect(Int(bitPattern: block) % 16 == 0)
            block.storeBytes(of: UInt64(i), as: UInt64.self)
            blocks.append(block)
        }
        #expect(Set(blocks).count == 500)
        for (i, block) in blocks.enumerated() { #expect(block.load(as: UInt64.self) == UInt64(i)) }
        let node = Topology.currentNode
        let memoryNode = Topology.current.memoryNodes(nearestTo: node).first
        for block in blocks.prefix(20) {
            #expect(try nodeOfPage(block) == memoryNode)
            #expect(pool.homeNode(of: block) == memoryNode)
        }
        for block in blocks { pool.deallocate(block) }
    }

    @Test("partitions: one per arena for the local pool, one for the global pool", arguments: Strategy.allCases)
    func partitions(strategy: Strategy) throws {
        let pool = try strategy.make()
        let expected = strategy == .local ? (pool as! LocalPool).nodes.count : 1
        #expect(pool.partitionCount == expected)
        let block = try pool.allocate()
        defer { pool.deallocate(block) }
        #expect(pool.partition(of: block) == pool.currentPartition())
        #expect((0..<pool.partitionCount).contains(pool.currentPartition()))
        var outside = 0
        #expect(pool.partition(of: &outside) == nil)
    }

    @Test("statistics match the operations done", arguments: Strategy.allCases)
    func statistics(strategy: Strategy) throws {
        let pool = try strategy.make()
        let before = pool.statistics()
        var blocks: [UnsafeMutableRawPointer] = []
        for _ in 0..<300 { blocks.append(try pool.allocate()) }
        for block in blocks.prefix(200) { pool.deallocate(block) }
        for _ in 0..<150 { blocks.append(try pool.allocate()) }
        let stats = pool.statistics()
        #expect(stats.gets == 450)
        #expect(stats.puts == 200)
        #expect(stats.outstanding == 250)
        #expect(stats.hits + stats.misses == 450)
        #expect(stats.misses == 300, "the first 300 gets are fresh, the 150 after the returns reuse")
        #expect(stats.hits == 150)
        #expect(stats.bytesInUse == 250 * pool.blockSize)
        #expect(stats.bytesReserved >= stats.bytesInUse)
        #expect(stats.bytesPeak >= 300 * pool.blockSize)
        #expect(abs(stats.reuseRate - 150.0 / 450.0) < 1e-9)
        #expect(abs(stats.freshAllocationRate - 300.0 / 450.0) < 1e-9)
        #expect(stats.fragmentation >= 0 && stats.fragmentation < 1)
        #expect(stats.perNode.values.reduce(0) { $0 + $1.bytesReserved } == stats.bytesReserved)
        let rates = stats.rates(since: before)
        #expect(rates.seconds > 0 && rates.getsPerSecond > 0)
        for block in blocks.suffix(250) { pool.deallocate(block) }
        #expect(pool.statistics().bytesInUse == 0)
    }

    @Test("block sizes round up to 16 and bad sizes are refused", arguments: Strategy.allCases)
    func sizes(strategy: Strategy) throws {
        #expect(try strategy.make(blockSize: 24).blockSize == 32)
        #expect(throws: PoolError.self) { try strategy.make(blockSize: 0) }
        #expect(throws: PoolError.self) { try strategy.make(blockSize: 64, capacity: 32) }
        #expect(throws: PoolError.self) { try strategy.make(blockSize: 64, capacity: Int.max / 4) }
    }

    @Test("a strictly bound arena that is full throws and counts it")
    func exhaustedStrict() throws {
        let pool = try LocalPool(blockSize: 4096, capacityPerNode: 16 * 4096, nodes: [Topology.current.bindableNodes.ids[0]])
        var blocks: [UnsafeMutableRawPointer] = []
        for _ in 0..<16 { blocks.append(try pool.allocate()) }
        #expect { try pool.allocate() } throws: { error in
            if case .exhausted = error as? PoolError { return true }
            return false
        }
        #expect(pool.statistics().exhausted == 1)
        for block in blocks { pool.deallocate(block) }
        _ = try pool.allocate()
    }

    @Test("a full global pool throws")
    func exhaustedGlobal() throws {
        let pool = try GlobalPool(blockSize: 4096, capacity: 4 * 4096)
        for _ in 0..<4 { _ = try pool.allocate() }
        #expect(throws: PoolError.globalExhausted(capacity: 4 * 4096)) { try pool.allocate() }
    }

    @Test("trim with one block of 100,000 still live gives back the free top of the arena; the live block keeps its contents",
          arguments: Strategy.allCases)
    func partialTrim(strategy: Strategy) throws {
        let pool: any BlockPool = strategy == .local
            ? try LocalPool(blockSize: 256, capacityPerNode: 32 << 20)
            : try GlobalPool(blockSize: 256, capacity: 32 << 20)
        var blocks: [UnsafeMutableRawPointer] = []
        for i in 0..<100_000 {
            let block = try pool.allocate()
            block.storeBytes(of: UInt64(i), toByteOffset: 8, as: UInt64.self)
            blocks.append(block)
        }
        let kept = blocks.min { UInt(bitPattern: $0) < UInt(bitPattern: $1) }!
        for block in blocks where block != kept { pool.deallocate(block) }
        let before = pool.statistics().bytesReserved
        pool.trim()
        let after = pool.statistics().bytesReserved
        #expect(before >= 24 << 20)
        #expect(after <= 64 << 10, "reserved after trim: \(after)")
        #expect(kept.load(fromByteOffset: 8, as: UInt64.self) == 0)
        // What went back is handed out again, and works.
        var again: [UnsafeMutableRawPointer] = []
        for _ in 0..<10_000 {
            let block = try pool.allocate()
            block.initializeMemory(as: UInt8.self, repeating: 7, count: 256)
            again.append(block)
        }
        #expect(Set(again).count == again.count && !again.contains(kept))
        for block in again + [kept] { pool.deallocate(block) }
        #expect(pool.statistics().outstanding == 0)
    }

    @Test("trim with live blocks scattered over the arena gives back the pages between them; the live blocks keep their contents and the free ones come back",
          arguments: Strategy.allCases)
    func scatteredTrim(strategy: Strategy) throws {
        let pool: any BlockPool = strategy == .local
            ? try LocalPool(blockSize: 256, capacityPerNode: 32 << 20)
            : try GlobalPool(blockSize: 256, capacity: 32 << 20)
        var blocks: [UnsafeMutableRawPointer] = []
        for i in 0..<100_000 {
            let block = try pool.allocate()
            block.storeBytes(of: UInt64(i), toByteOffset: 8, as: UInt64.self)
            blocks.append(block)
        }
        blocks.sort { UInt(bitPattern: $0) < UInt(bitPattern: $1) }
        let kept = stride(from: 0, to: blocks.count, by: 1000).map { blocks[$0] }
        let values = kept.map { $0.load(fromByteOffset: 8, as: UInt64.self) }
        let keptSet = Set(kept)
        for block in blocks where !keptSet.contains(block) { pool.deallocate(block) }
        let range = pool.addressRange(ofPartition: pool.partition(of: kept[0])!)
        let before = try anonymousBytes(in: range)
        pool.trim()
        let after = try anonymousBytes(in: range)
        #expect(before >= 24 << 20, "resident before trim: \(before)")
        // The 100 live blocks' pages stay, and little else.
        #expect(after <= 1 << 20, "resident after trim: \(after)")
        #expect(pool.statistics().bytesReserved <= 1 << 20, "reserved after trim: \(pool.statistics().bytesReserved)")
        #expect(kept.map { $0.load(fromByteOffset: 8, as: UInt64.self) } == values)
        // Every free block is handed out again, and can be written whole.
        var again: [UnsafeMutableRawPointer] = []
        for _ in 0..<(blocks.count - kept.count) {
            let block = try pool.allocate()
            block.initializeMemory(as: UInt8.self, repeating: 7, count: 256)
            again.append(block)
        }
        #expect(Set(again).count == again.count && keptSet.isDisjoint(with: again))
        #expect(kept.map { $0.load(fromByteOffset: 8, as: UInt64.self) } == values)
        for block in again + kept { pool.deallocate(block) }
        #expect(pool.statistics().outstanding == 0)
        pool.trim()
        #expect(try anonymousBytes(in: range) == 0)
    }

    @Test("a global pool trimmed while a block between live ones was free, then trimmed empty, hands out every block again")
    func globalTrimTwice() throws {
        let pool = try GlobalPool(blockSize: 4096, capacity: 4 * 4096)
        let a = try pool.allocate(), b = try pool.allocate(), c = try pool.allocate()
        pool.deallocate(b)
        pool.trim()  // b's page goes back inside the region
        pool.deallocate(a)
        pool.deallocate(c)
        pool.trim()  // nothing is out: everything goes
        #expect(pool.statistics().bytesReserved == 0)
        var blocks: [UnsafeMutableRawPointer] = []
        for _ in 0..<4 { blocks.append(try pool.allocate()) }
        for block in blocks {
            block.initializeMemory(as: UInt8.self, repeating: 1, count: 4096)
            pool.deallocate(block)
        }
    }

    @Test("a global pool faults no page in until a block on it is handed out")
    func globalFaultsLazily() throws {
        let pool = try GlobalPool(blockSize: 256, capacity: 64 << 20)
        let range = pool.addressRange(ofPartition: 0)
        #expect(try anonymousBytes(in: range) == 0)
        #expect(pool.statistics().bytesReserved == 0)
        #expect(pool.placementHistogram.isEmpty)
        let block = try pool.allocate()
        #expect(try anonymousBytes(in: range) == page)
        #expect(pool.placementHistogram.values.reduce(0, +) == 1)
        pool.deallocate(block)
    }

    @Test("trim returns the thread's cache and gives idle memory back")
    func trim() throws {
        let pool = try LocalPool(blockSize: 256, capacityPerNode: 4 << 20)
        var blocks: [UnsafeMutableRawPointer] = []
        for _ in 0..<1000 { blocks.append(try pool.allocate()) }
        #expect(pool.statistics().bytesReserved > 0)
        for block in blocks { pool.deallocate(block) }
        pool.trim()
        let stats = pool.statistics()
        #expect(stats.bytesReserved == 0)
        #expect(stats.perNode.values.allSatisfy { $0.bytesOutstanding == 0 })
        _ = try pool.allocate()
    }

    @Test("a pool can end while other threads still hold its caches")
    func poolEndsFirst() throws {
        let gate = LiveSet()
        let thread = try PinnedThread(cpus: Topology.current.allowedCPUs) { () throws -> Int in
            let pool = try LocalPool(blockSize: 64, capacityPerNode: 1 << 20)
            let block = try pool.allocate()
            _ = gate.insert(block)
            pool.deallocate(block)
            return pool.statistics().puts == 1 ? 1 : 0
        }
        #expect(try thread.join() == 1)
        let pool = try LocalPool(blockSize: 64, capacityPerNode: 1 << 20)
        let block = try pool.allocate()
        pool.deallocate(block)
        #expect(pool.statistics().gets == 1)
    }
}

@Suite("Pool accounting under concurrent stress")
struct StressTests {
    @Test("no block is handed out twice or lost", arguments: Strategy.allCases)
    func stress(strategy: Strategy) throws {
        let pool = try strategy.make(blockSize: 48, capacity: 16 << 20)
        let live = LiveSet()
        let threads = 4, operations = 4000
        let workers = try (0..<threads).map { index in
            try PinnedThread(cpus: Topology.current.allowedCPUs) { () throws -> (gets: Int, puts: Int, errors: Int) in
                var random = SystemRandomNumberGenerator()
                var held: [UnsafeMutableRawPointer] = []
                var gets = 0, puts = 0, errors = 0
                for _ in 0..<operations {
                    switch random.next() % 10 {
                    case 0..<5:
                        let block = try pool.allocate()
                        if !live.insert(block) { errors += 1 }
                        block.storeBytes(of: UInt64(index), as: UInt64.self)
                        held.append(block)
                        gets += 1
                    case 5..<9 where !held.isEmpty:
                        let block = held.remove(at: Int(random.next() % UInt64(held.count)))
                        if block.load(as: UInt64.self) != UInt64(index) { errors += 1 }
                        if !live.remove(block) { errors += 1 }
                        pool.deallocate(block)
                        puts += 1
                    case 9:
                        pool.trim()
                    default:
                        break
                    }
                }
                // Hand half of what is left to the main thread through `live`; return the rest.
                for block in held.suffix(held.count / 2) {
                    _ = live.remove(block)
                    pool.deallocate(block)
                    puts += 1
                }
                return (gets, puts, errors)
            }
        }
        var gets = 0, puts = 0
        for worker in workers {
            let result = try worker.join()
            #expect(result.errors == 0)
            gets += result.gets
            puts += result.puts
        }
        let stats = pool.statistics()
        #expect(stats.gets == UInt64(gets))
        #expect(stats.puts == UInt64(puts))
        #expect(stats.outstanding == Int64(live.count))
        #expect(stats.bytesInUse == live.count * pool.blockSize)
    }
}
