import Foundation
import NUMA
import Testing
@testable import NUMAPool

@Suite("NUMAHeap")
struct HeapTests {
    @Test("size classes: 16 B to 64 KiB, four per doubling above 64 B, at most 20% over the size there")
    func sizeClasses() {
        let sizes = NUMAHeap.classSizes
        #expect(sizes.first == 16 && sizes.last == 64 << 10)
        #expect(sizes.count == 4 + 4 * 10)
        for (smaller, larger) in zip(sizes, sizes.dropFirst()) where smaller >= 64 {
            #expect(Double(larger - smaller) / Double(larger) <= 0.2, "\(smaller) → \(larger)")
        }
        #expect(sizes.allSatisfy { $0 % 16 == 0 })
    }

    @Test("every size gets a block of its class, aligned, on the thread's node, that keeps its contents")
    func sizes() throws {
        let heap = try NUMAHeap(capacityPerNode: 64 << 20, purger: false)
        var blocks: [(UnsafeMutableRawPointer, Int)] = []
        for size in [1, 15, 16, 17, 100, 1000, 4096, 5000, 40_000, 65_536, 65_537, 300_000] {
            let block = try heap.allocate(byteCount: size)
            #expect(UInt(bitPattern: block) % 16 == 0)
            #expect(heap.usableSize(of: block) >= size)
            if size <= NUMAHeap.largestClassSize {
                #expect(Double(size) / Double(heap.usableSize(of: block)) > (size > 64 ? 0.8 : 0))
            }
            #expect(heap.homeNode(of: block) == heap.nodes.first)
            memset(block, Int32(size & 0xff), size)
            blocks.append((block, size))
        }
        for (block, size) in blocks {
            let bytes = UnsafeRawBufferPointer(start: block, count: size)
            #expect(bytes.allSatisfy { $0 == UInt8(size & 0xff) }, "contents of the \(size)-byte block")
            heap.deallocate(block)
        }
        let stats = heap.statistics()
        #expect(stats.gets == UInt64(blocks.count) && stats.puts == UInt64(blocks.count))
        #expect(stats.bytesInUse == 0)
    }

    @Test("alignment up to a page", arguments: [16, 32, 64, 256, 4096])
    func alignment(_ alignment: Int) throws {
        let heap = try NUMAHeap(capacityPerNode: 16 << 20, purger: false)
        for size in [1, 48, 100, 3000, 70_000] {
            let block = try heap.allocate(byteCount: size, alignment: alignment)
            #expect(Int(bitPattern: block) % alignment == 0, "\(size) bytes at \(alignment)")
            heap.deallocate(block)
        }
    }

    @Test("impossible input throws, and the heap still serves")
    func impossibleInput() throws {
        let heap = try NUMAHeap(capacityPerNode: 4 << 20, purger: false)
        for size in [0, -1, Int.min, Int.max, 8 << 20] {
            #expect(throws: PoolError.self, "size \(size)") { _ = try heap.allocate(byteCount: size) }
        }
        for alignment in [0, 3, 24, 8192, -16] {
            #expect(throws: PoolError.self, "alignment \(alignment)") { _ = try heap.allocate(byteCount: 64, alignment: alignment) }
        }
        #expect(throws: PoolError.self) { _ = try heap.allocate(byteCount: 64, on: 4095) }
        #expect(throws: PoolError.self) { _ = try NUMAHeap(capacityPerNode: 1000) }
        #expect(throws: PoolError.self) { _ = try NUMAHeap(cacheBytesPerClass: -1) }
        heap.deallocate(try heap.allocate(byteCount: 64))
    }

    @Test("a strict arena that is full throws exhausted; freeing makes room again")
    func exhaustion() throws {
        let heap = try NUMAHeap(capacityPerNode: 1 << 20, binding: .strict, purger: false)
        var blocks: [UnsafeMutableRawPointer] = []
        #expect(throws: PoolError.self) {
            while true { blocks.append(try heap.allocate(byteCount: 60_000)) }
        }
        #expect(blocks.count >= 12)  // 4 chunks of 4 blocks, less what thread caches hold
        for block in blocks { heap.deallocate(block) }
        heap.trim()
        let again = try heap.allocate(byteCount: 200_000)
        heap.deallocate(again)
    }

    @Test("stress: random sizes on several threads, no block handed out twice or lost, each aligned")
    func stress() async throws {
        let heap = try NUMAHeap(capacityPerNode: 256 << 20, purger: false)
        let live = LiveSet()
        let threads = 4, rounds = underThreadSanitizer ? 2_000 : 20_000
        await withTaskGroup(of: Void.self) { group in
            for t in 0..<threads {
                group.addTask {
                    var generator = SystemRandomNumberGenerator()
                    var held: [(UnsafeMutableRawPointer, Int, UInt8)] = []
                    for i in 0..<rounds {
                        if held.count < 64 && (held.isEmpty || Bool.random(using: &generator)) {
                            let size = Int.random(in: 1...(i % 50 == 0 ? 200_000 : 4096), using: &generator)
                            let alignment = [16, 16, 16, 64, 4096].randomElement(using: &generator)!
                            guard let block = try? heap.allocate(byteCount: size, alignment: alignment) else {
                                Issue.record("allocate \(size) failed")
                                return
                            }
                            if Int(bitPattern: block) % alignment != 0 { Issue.record("misaligned block") }
                            if !live.insert(block) { Issue.record("a block handed out twice") }
                            let tag = UInt8(truncatingIfNeeded: t * 31 + i)
                            memset(block, Int32(tag), min(size, 64))
                            held.append((block, size, tag))
                        } else {
                            let (block, size, tag) = held.remove(at: Int.random(in: 0..<held.count, using: &generator))
                            let bytes = UnsafeRawBufferPointer(start: block, count: min(size, 64))
                            if !bytes.allSatisfy({ $0 == tag }) { Issue.record("a live block was overwritten") }
                            if !live.remove(block) { Issue.record("a block given back that was not live") }
                            heap.deallocate(block)
                        }
                    }
                    for (block, _, _) in held {
                        _ = live.remove(block)
                        heap.deallocate(block)
                    }
                }
            }
        }
        #expect(live.count == 0)
        let stats = heap.statistics()
        #expect(stats.gets == stats.puts)
        #expect(stats.bytesInUse == 0)
    }

    @Test("blocks freed by another thread: producer and consumer")
    func producerConsumer() async throws {
        let heap = try NUMAHeap(capacityPerNode: 64 << 20, purger: false)
        let queue = Locked<[UInt]>([])
        let done = StopFlag()
        let count = underThreadSanitizer ? 5_000 : 100_000
        async let produced: Void = {
            for i in 0..<count {
                let block = try! heap.allocate(byteCount: 16 + i % 1000)
                block.storeBytes(of: UInt64(i), as: UInt64.self)
                queue.withLock { $0.append(UInt(bitPattern: block)) }
            }
            done.set()
        }()
        async let consumed: Int = {
            var seen = 0
            while true {
                let batch = queue.withLock { queue in defer { queue.removeAll() }; return queue }
                for address in batch {
                    heap.deallocate(UnsafeMutableRawPointer(bitPattern: address)!)
                    seen += 1
                }
                if batch.isEmpty && done.isSet && queue.withLock({ $0.isEmpty }) { return seen }
            }
        }()
        await produced
        #expect(await consumed == count)
        let stats = heap.statistics()
        #expect(stats.gets == UInt64(count) && stats.puts == UInt64(count))
    }

    @Test("a thread's cache goes back when the thread ends")
    func threadExit() throws {
        let heap = try NUMAHeap(capacityPerNode: 16 << 20, purger: false)
        let thread = try PinnedThread(cpus: Topology.current.allowedCPUs) { () throws in
            for _ in 0..<10 { heap.deallocate(try heap.allocate(byteCount: 100)) }
        }
        try thread.join()
        let stats = heap.statistics()
        #expect(stats.gets == 10)
        #expect(stats.perNode.values.reduce(0) { $0 + $1.bytesCached } == 0)
    }
}
