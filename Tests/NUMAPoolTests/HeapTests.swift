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

@Suite("NUMAHeap gives memory back")
struct HeapReleaseTests {
    /// Allocates `count` blocks of `size`, fills each, frees all but every `keep`-th; returns
    /// the kept ones.
    static func churn(_ heap: NUMAHeap, count: Int, size: Int, keep: Int) throws -> [UnsafeMutableRawPointer] {
        var blocks: [UnsafeMutableRawPointer] = []
        for i in 0..<count {
            let block = try heap.allocate(byteCount: size)
            memset(block, Int32(i & 0xff), size)
            blocks.append(block)
        }
        var kept: [UnsafeMutableRawPointer] = []
        for (i, block) in blocks.enumerated() {
            if i % keep == 0 { kept.append(block) } else { heap.deallocate(block) }
        }
        return kept
    }

    @Test("trim() with blocks still live: resident memory drops, the live blocks keep their contents")
    func partialTrim() throws {
        let heap = try NUMAHeap(capacityPerNode: 64 << 20, purger: false)
        let kept = try Self.churn(heap, count: 100_000, size: 100, keep: 100_000)
        let before = heap.statistics()
        heap.trim()
        let after = heap.statistics()
        #expect(before.bytesResident >= 10 << 20, "resident before: \(before.bytesResident)")
        #expect(after.bytesResident <= 1 << 20, "resident after trim: \(after.bytesResident)")
        #expect(after.bytesInUse == 112 && kept.count == 1)
        #expect(after.perNode.values.reduce(0) { $0 + $1.bytesReturned } >= 10 << 20)
        #expect(UnsafeRawBufferPointer(start: kept[0], count: 100).allSatisfy { $0 == 0 })
        // What came back is usable again.
        let more = try Self.churn(heap, count: 1000, size: 100, keep: 1)
        for block in more + kept { heap.deallocate(block) }
    }

    @Test("trim() with live small blocks scattered over every chunk gives back the pages between them")
    func pagesBetweenLiveBlocks() throws {
        let heap = try NUMAHeap(capacityPerNode: 64 << 20, purger: false)
        // 1000-byte requests take the 1024-byte class: four blocks a page. One block in 40 stays.
        let kept = try Self.churn(heap, count: 20_000, size: 1000, keep: 40)
        for (i, block) in kept.enumerated() { block.storeBytes(of: UInt64(i), toByteOffset: 16, as: UInt64.self) }
        let before = heap.statistics().bytesResident
        heap.trim()
        let after = heap.statistics()
        #expect(before >= 19 << 20, "resident before: \(before)")
        #expect(after.bytesResident <= before / 3, "resident after trim: \(after.bytesResident) of \(before)")
        #expect(after.perNode.values.reduce(0) { $0 + $1.bytesReturned } >= 10 << 20)
        for (i, block) in kept.enumerated() {
            #expect(block.load(fromByteOffset: 16, as: UInt64.self) == UInt64(i))
        }
        // The blocks behind the given-back pages come back, writable, each once.
        var again: [UnsafeMutableRawPointer] = []
        for _ in 0..<20_000 {
            let block = try heap.allocate(byteCount: 1000)
            block.initializeMemory(as: UInt8.self, repeating: 9, count: 1000)
            again.append(block)
        }
        #expect(Set(again).count == again.count && Set(again).isDisjoint(with: kept))
        for block in again + kept { heap.deallocate(block) }
        #expect(heap.statistics().bytesInUse == 0)
    }

    @Test("decay: with no call at all, the purger gives free chunks back after the decay time")
    func decayWhileIdle() throws {
        let heap = try NUMAHeap(capacityPerNode: 64 << 20, decay: .milliseconds(200))
        let kept = try Self.churn(heap, count: 50_000, size: 200, keep: 50_000)
        // The calling thread's cache holds at most 32 KiB per class; the rest is in the arena.
        let before = heap.statistics().bytesResident
        var after = before
        let deadline = ContinuousClock.now + .seconds(10)
        while ContinuousClock.now < deadline {
            Thread.sleep(forTimeInterval: 0.1)
            after = heap.statistics().bytesResident  // a snapshot makes no heap call of a thread
            if after < before / 4 { break }
        }
        #expect(before >= 8 << 20, "resident before: \(before)")
        #expect(after < before / 4, "resident after the decay time: \(after) of \(before)")
        let stats = heap.statistics()
        #expect(stats.perNode.values.reduce(0) { $0 + $1.pagesDecayed } > 0)
        #expect(stats.purgerCPUSeconds >= 0)
        heap.deallocate(kept[0])
    }

    @Test("the purger can be stopped, and then nothing decays")
    func stopPurger() throws {
        let heap = try NUMAHeap(capacityPerNode: 16 << 20, decay: .milliseconds(20))
        heap.stopPurger()
        let kept = try Self.churn(heap, count: 10_000, size: 200, keep: 10_000)
        Thread.sleep(forTimeInterval: 0.3)
        #expect(heap.statistics().perNode.values.reduce(0) { $0 + $1.pagesDecayed } == 0)
        heap.deallocate(kept[0])
    }
}

/// Caches of threads that stopped calling the heap: reclaimed while the thread is parked
/// (blocked in a system call), by `trim()` from another thread and by the purger. Not under
/// ThreadSanitizer, where the heap leaves parked caches to their owners' next call.
@Suite("NUMAHeap reclaims the caches of parked threads", .disabled(if: underThreadSanitizer, "the heap does not reclaim parked caches under ThreadSanitizer"))
struct HeapParkedTests {
    /// A thread that fills its caches of several classes, then parks until `resume`; then it
    /// checks that it can still allocate and free.
    static func parkedWorker(_ heap: NUMAHeap, parked: DispatchSemaphore, resume: DispatchSemaphore) throws -> PinnedThread<Int> {
        try PinnedThread(cpus: Topology.current.allowedCPUs) { () throws -> Int in
            for size in [64, 500, 3000] {
                let blocks = try (0..<200).map { _ in try heap.allocate(byteCount: size) }
                for block in blocks { heap.deallocate(block) }
            }
            parked.signal()
            resume.wait()
            var done = 0
            for size in [64, 500, 3000, 100_000] {
                let blocks = try (0..<100).map { _ in try heap.allocate(byteCount: size) }
                for block in blocks { heap.deallocate(block) }
                done += blocks.count
            }
            return done
        }
    }

    static func cachedBytes(_ heap: NUMAHeap) -> Int { heap.statistics().perNode.values.reduce(0) { $0 + $1.bytesCached } }

    @Test("trim() from another thread reclaims a parked thread's cache")
    func trimReclaims() throws {
        let heap = try NUMAHeap(capacityPerNode: 64 << 20, purger: false)
        let parked = DispatchSemaphore(value: 0), resume = DispatchSemaphore(value: 0)
        let worker = try Self.parkedWorker(heap, parked: parked, resume: resume)
        parked.wait()
        Thread.sleep(forTimeInterval: 0.05)  // into its wait
        #expect(Self.cachedBytes(heap) > 0)
        heap.trim()
        #expect(Self.cachedBytes(heap) == 0)
        #expect(heap.statistics().parkedReclaims >= 1)
        resume.signal()
        #expect(try worker.join() == 400)
        let stats = heap.statistics()
        #expect(stats.gets == stats.puts && stats.bytesInUse == 0)
    }

    @Test("the purger reclaims a parked thread's cache with no call at all")
    func purgerReclaims() throws {
        let heap = try NUMAHeap(capacityPerNode: 64 << 20, decay: .milliseconds(40))
        let parked = DispatchSemaphore(value: 0), resume = DispatchSemaphore(value: 0)
        let worker = try Self.parkedWorker(heap, parked: parked, resume: resume)
        parked.wait()
        var cached = Self.cachedBytes(heap)
        let deadline = ContinuousClock.now + .seconds(10)
        while cached > 0 && ContinuousClock.now < deadline {
            Thread.sleep(forTimeInterval: 0.02)
            cached = Self.cachedBytes(heap)
        }
        #expect(cached == 0)
        #expect(heap.statistics().parkedReclaims >= 1)
        resume.signal()
        #expect(try worker.join() == 400)
    }

    @Test("a strict arena that parked caches would exhaust succeeds after they are reclaimed")
    func strictArenaReclaims() throws {
        // Two chunks: the parked thread's caches hold blocks of two classes, one chunk each.
        let heap = try NUMAHeap(capacityPerNode: 2 << 18, binding: .strict, cacheBytesPerClass: 64 << 10, purger: false)
        let parked = DispatchSemaphore(value: 0), resume = DispatchSemaphore(value: 0)
        let worker = try PinnedThread(cpus: Topology.current.allowedCPUs) { () throws -> Int in
            for size in [64, 3000] { heap.deallocate(try heap.allocate(byteCount: size)) }
            parked.signal()
            resume.wait()
            return 0
        }
        parked.wait()
        Thread.sleep(forTimeInterval: 0.05)
        // Both chunks are taken by the parked thread's two classes: a large run needs them back.
        let run = try heap.allocate(byteCount: 300_000)
        #expect(heap.usableSize(of: run) == 2 << 18)
        heap.deallocate(run)
        resume.signal()
        _ = try worker.join()
    }
}

/// The pools reclaim parked threads' caches the same way, through `trim()`.
@Suite("The pools reclaim the caches of parked threads", .disabled(if: underThreadSanitizer, "no reclaim of parked caches under ThreadSanitizer"))
struct PoolParkedTests {
    @Test("LocalPool.trim() from another thread takes back a parked thread's cache, and the thread carries on")
    func localPool() throws {
        let pool = try LocalPool(blockSize: 128, capacityPerNode: 8 << 20)
        let parked = DispatchSemaphore(value: 0), resume = DispatchSemaphore(value: 0)
        let worker = try PinnedThread(cpus: Topology.current.allowedCPUs) { () throws -> Int in
            let blocks = try (0..<200).map { _ in try pool.allocate() }
            for block in blocks { pool.deallocate(block) }
            parked.signal()
            resume.wait()
            let again = try (0..<500).map { _ in try pool.allocate() }
            for block in again { pool.deallocate(block) }
            return Set(again).count
        }
        parked.wait()
        Thread.sleep(forTimeInterval: 0.05)
        let before = pool.statistics().perNode.values.reduce(0) { $0 + $1.bytesOutstanding }
        pool.trim()
        let after = pool.statistics()
        #expect(before > 0)
        #expect(after.perNode.values.reduce(0) { $0 + $1.bytesOutstanding } == 0)
        #expect(after.bytesReserved == 0)
        resume.signal()
        #expect(try worker.join() == 500)
    }

    @Test("ObjectPool.trim() from another thread moves a parked thread's idle objects to the pool's lists")
    func objectPool() throws {
        final class Box { var value = 0 }
        let pool = try ObjectPool(backing: LocalPool(blockSize: 64, capacityPerNode: 4 << 20), maxIdle: 1000,
                                  factory: { Box() }, reset: { $0.value = 0 })
        let parked = DispatchSemaphore(value: 0), resume = DispatchSemaphore(value: 0)
        let worker = try PinnedThread(cpus: Topology.current.allowedCPUs) { () throws -> Int in
            // 40 leases held at once (on the stack), then all given back to this thread's cache.
            func hold(_ count: Int) throws {
                guard count > 0 else { return }
                let lease = try pool.lease()
                try hold(count - 1)
                lease.release()
            }
            try hold(40)
            parked.signal()
            resume.wait()
            let lease = try pool.lease()
            lease.value.value = 1
            return lease.value.value
        }
        parked.wait()
        Thread.sleep(forTimeInterval: 0.05)
        let idle = pool.idleCount
        pool.trim()
        #expect(idle == 40 && pool.idleCount == 40)
        // Taken from the thread's cache: a lease on this thread now reuses one of them.
        let lease = try pool.lease()
        #expect(pool.statistics().misses == 40)
        lease.release()
        resume.signal()
        #expect(try worker.join() == 1)
    }
}
