import Foundation
import NUMA
import NUMAPool
import Testing

/// A pointer given back that is not a live block of the pool stops the program with a message
/// naming the pool and the address. Each case runs in a child process (an exit test); the
/// child prints the address it gives back on its first line, so that the check can find it in
/// the message.
@Suite("A pointer that is not a live block stops the program")
struct CorruptionTests {
    /// Checks that the child failed and its message names the pool and the address.
    static func expectStop(_ result: ExitTest.Result?, reason: String, sourceLocation: SourceLocation = #_sourceLocation) {
        guard let result else { return }
        let output = String(decoding: result.standardOutputContent, as: UTF8.self)
        let errors = String(decoding: result.standardErrorContent, as: UTF8.self)
        let address = output.split(separator: "\n").first.map(String.init) ?? "?"
        #expect(errors.contains("pool under test"), "the message names the pool: \(errors)", sourceLocation: sourceLocation)
        #expect(errors.contains("deallocate(\(address))"), "the message names \(address): \(errors)", sourceLocation: sourceLocation)
        #expect(errors.contains(reason), "the message says why: \(errors)", sourceLocation: sourceLocation)
    }

    static let observed: [any PartialKeyPath<ExitTest.Result> & Sendable] = [\.standardOutputContent, \.standardErrorContent]

    @Test("local: a block given back twice")
    func localDoubleFree() async {
        let result = await #expect(processExitsWith: .failure, observing: Self.observed) {
            let pool = try LocalPool(blockSize: 64, capacityPerNode: 1 << 20, name: "pool under test")
            let a = try pool.allocate()
            show(a)
            pool.deallocate(a)
            pool.deallocate(a)
            // What the old code did next: the same address handed out twice.
            let x = try pool.allocate(), y = try pool.allocate()
            print(x == y ? "handed out twice" : "distinct")
        }
        Self.expectStop(result, reason: "double free")
    }

    @Test("local: a block given back twice with others in between")
    func localDoubleFreeLater() async {
        let result = await #expect(processExitsWith: .failure, observing: Self.observed) {
            let pool = try LocalPool(blockSize: 64, capacityPerNode: 1 << 20, name: "pool under test")
            let a = try pool.allocate(), b = try pool.allocate(), c = try pool.allocate()
            show(a)
            pool.deallocate(a)
            pool.deallocate(b)
            pool.deallocate(c)
            pool.deallocate(a)
        }
        Self.expectStop(result, reason: "double free")
    }

    @Test("local: a block given back twice by two threads, the second through its fast path")
    func localDoubleFreeAcrossThreads() async {
        let result = await #expect(processExitsWith: .failure, observing: Self.observed) {
            let pool = try LocalPool(blockSize: 64, capacityPerNode: 1 << 20, name: "pool under test")
            let helper = try Helper()
            try helper.run { pool.deallocate(try pool.allocate()) }  // its cache is bound to the arena
            let a = try pool.allocate()
            show(a)
            pool.deallocate(a)
            try helper.run { pool.deallocate(a) }
        }
        Self.expectStop(result, reason: "double free")
    }

    @Test("local: a block given back again after a trim, through another thread's fast path")
    func localDoubleFreeAfterTrim() async {
        let result = await #expect(processExitsWith: .failure, observing: Self.observed) {
            // Refills of one block, so that each thread's cache holds what the test says.
            let pool = try LocalPool(blockSize: 64, capacityPerNode: 1 << 20, cacheCapacity: 2, name: "pool under test")
            let helper = try Helper()
            let a = try pool.allocate()
            show(a)
            // The helper's cache is bound to the arena and knows `a` as carved; it gives its
            // own block back while `a` is out, so the arena cannot trim yet.
            try helper.run {
                pool.deallocate(try pool.allocate())
                pool.trim()
            }
            pool.deallocate(a)
            // Every block is home: the arena's memory goes back to the kernel (the free
            // marker with it) and nothing counts as carved any more.
            pool.trim()
            guard pool.statistics().bytesReserved == 0 else { exit(2) }
            try helper.run { pool.deallocate(a) }
        }
        Self.expectStop(result, reason: "given back before a trim")
    }

    @Test("local: a pointer into a live block")
    func localInterior() async {
        let result = await #expect(processExitsWith: .failure, observing: Self.observed) {
            let pool = try LocalPool(blockSize: 64, capacityPerNode: 1 << 20, name: "pool under test")
            let a = try pool.allocate()
            show(a + 8)
            pool.deallocate(a + 8)
        }
        Self.expectStop(result, reason: "points 8 bytes into the block")
    }

    @Test("local: a 16-byte aligned pointer into a live block")
    func localInteriorAligned() async {
        let result = await #expect(processExitsWith: .failure, observing: Self.observed) {
            let pool = try LocalPool(blockSize: 64, capacityPerNode: 1 << 20, name: "pool under test")
            let a = try pool.allocate()
            show(a + 16)
            pool.deallocate(a + 16)
        }
        Self.expectStop(result, reason: "points 16 bytes into the block")
    }

    @Test("local: a block carved for a thread's cache but never handed out")
    func localCarvedNotHandedOut() async {
        let result = await #expect(processExitsWith: .failure, observing: Self.observed) {
            let pool = try LocalPool(blockSize: 64, capacityPerNode: 1 << 20, name: "pool under test")
            let a = try pool.allocate()
            show(a + 64 * 10)
            pool.deallocate(a + 64 * 10)
        }
        Self.expectStop(result, reason: "already given back")
    }

    @Test("local: an address in the arena never carved")
    func localNeverCarved() async {
        let result = await #expect(processExitsWith: .failure, observing: Self.observed) {
            let pool = try LocalPool(blockSize: 64, capacityPerNode: 1 << 20, name: "pool under test")
            let a = try pool.allocate()
            show(a + 64 * 1000)
            pool.deallocate(a + 64 * 1000)
        }
        Self.expectStop(result, reason: "not a block this pool has handed out")
    }

    @Test("local: memory that is not the pool's")
    func localForeign() async {
        let result = await #expect(processExitsWith: .failure, observing: Self.observed) {
            let pool = try LocalPool(blockSize: 64, capacityPerNode: 1 << 20, name: "pool under test")
            let foreign = malloc(64)!
            show(foreign)
            pool.deallocate(foreign)
        }
        Self.expectStop(result, reason: "is not memory of this pool")
    }

    @Test("global: a block given back twice")
    func globalDoubleFree() async {
        let result = await #expect(processExitsWith: .failure, observing: Self.observed) {
            let pool = try GlobalPool(blockSize: 64, capacity: 1 << 20, name: "pool under test")
            let a = try pool.allocate()
            show(a)
            pool.deallocate(a)
            pool.deallocate(a)
        }
        Self.expectStop(result, reason: "double free")
    }

    @Test("local: a block given back twice, after a trim gave its page back while blocks around it stayed live")
    func localDoubleFreeAfterInnerTrim() async {
        let result = await #expect(processExitsWith: .failure, observing: Self.observed) {
            let pool = try LocalPool(blockSize: 64, capacityPerNode: 1 << 20, name: "pool under test")
            var blocks: [UnsafeMutableRawPointer] = []
            for _ in 0..<1024 { blocks.append(try pool.allocate()) }
            blocks.sort { UInt(bitPattern: $0) < UInt(bitPattern: $1) }
            let victim = blocks[512]
            for (i, block) in blocks.enumerated() where i != 0 && i != 1023 { pool.deallocate(block) }
            pool.trim()  // the pages between the first and the last block go back
            show(victim)
            pool.deallocate(victim)
        }
        Self.expectStop(result, reason: "double free")
    }

    @Test("global: a block given back twice, after a trim gave its page back while blocks around it stayed live")
    func globalDoubleFreeAfterInnerTrim() async {
        let result = await #expect(processExitsWith: .failure, observing: Self.observed) {
            let pool = try GlobalPool(blockSize: 64, capacity: 1 << 20, name: "pool under test")
            var blocks: [UnsafeMutableRawPointer] = []
            for _ in 0..<1024 { blocks.append(try pool.allocate()) }
            blocks.sort { UInt(bitPattern: $0) < UInt(bitPattern: $1) }
            let victim = blocks[512]
            for (i, block) in blocks.enumerated() where i != 0 && i != 1023 { pool.deallocate(block) }
            pool.trim()  // the pages between the first and the last block go back
            show(victim)
            pool.deallocate(victim)
        }
        Self.expectStop(result, reason: "double free")
    }

    @Test("global: a pointer into a live block")
    func globalInterior() async {
        let result = await #expect(processExitsWith: .failure, observing: Self.observed) {
            let pool = try GlobalPool(blockSize: 48, capacity: 1 << 20, name: "pool under test")
            let a = try pool.allocate()
            show(a + 16)
            pool.deallocate(a + 16)
        }
        Self.expectStop(result, reason: "points 16 bytes into the block")
    }

    @Test("global: an address never handed out")
    func globalNeverHandedOut() async {
        let result = await #expect(processExitsWith: .failure, observing: Self.observed) {
            let pool = try GlobalPool(blockSize: 64, capacity: 1 << 20, name: "pool under test")
            let a = try pool.allocate()
            show(a + 64 * 10)
            pool.deallocate(a + 64 * 10)
        }
        Self.expectStop(result, reason: "not a block this pool has handed out")
    }

    @Test("global: memory that is not the pool's")
    func globalForeign() async {
        let result = await #expect(processExitsWith: .failure, observing: Self.observed) {
            let pool = try GlobalPool(blockSize: 64, capacity: 1 << 20, name: "pool under test")
            var local = 0
            withUnsafeMutablePointer(to: &local) { pointer in
                show(UnsafeMutableRawPointer(pointer))
                pool.deallocate(UnsafeMutableRawPointer(pointer))
            }
        }
        Self.expectStop(result, reason: "is not memory of this pool")
    }

    @Test("an object pool that ends while a lease is out")
    func leaseOutlivesPool() async {
        await #expect(processExitsWith: .failure) {
            let backing = try LocalPool(blockSize: 16, capacityPerNode: 1 << 20)
            var pool: ObjectPool<Int>? = try ObjectPool(backing: backing, factory: { 0 }, reset: { $0 = 0 })
            let lease = try pool!.lease()
            pool = nil
            lease.release()
        }
    }
}

/// A second thread that runs closures handed to it, one at a time, and keeps its pool caches
/// between them.
final class Helper: @unchecked Sendable {
    // @unchecked: `work` is written by the caller before `go` is signalled and read by the
    // thread after it waits on `go`; `done` orders `failure` back.
    private let go = DispatchSemaphore(value: 0), done = DispatchSemaphore(value: 0)
    private var work: (() throws -> Void)?
    private var failure: (any Error)?
    private var thread: PinnedThread<Void>?

    init() throws {
        thread = try PinnedThread(cpus: Topology.current.allowedCPUs) { [unowned(unsafe) self] in
            while true {
                go.wait()
                guard let work else { return }
                do { try work() } catch { failure = error }
                done.signal()
            }
        }
    }

    func run(_ body: @escaping () throws -> Void) throws {
        work = body
        go.signal()
        done.wait()
        if let failure { throw failure }
    }

    deinit {
        work = nil
        go.signal()
        _ = try? thread?.join()
    }
}

/// Writes the address to standard output as the pools' messages write it (0x and lowercase
/// hex), unbuffered, so that it is out before the program stops.
func show(_ pointer: UnsafeRawPointer) {
    let line = "0x" + String(UInt(bitPattern: pointer), radix: 16) + "\n"
    _ = line.utf8CString.withUnsafeBufferPointer { write(1, $0.baseAddress, $0.count - 1) }
}

/// The heap stops the program as the pools do, naming the heap and the address.
@Suite("A pointer that is not a live block of the heap stops the program")
struct HeapCorruptionTests {
    @Test("heap: a block given back twice")
    func doubleFree() async {
        let result = await #expect(processExitsWith: .failure, observing: CorruptionTests.observed) {
            let heap = try NUMAHeap(capacityPerNode: 4 << 20, purger: false, name: "pool under test")
            let a = try heap.allocate(byteCount: 100)
            show(a)
            heap.deallocate(a)
            heap.deallocate(a)
        }
        CorruptionTests.expectStop(result, reason: "double free")
    }

    @Test("heap: a block given back twice after the cache sent it back to its arena")
    func doubleFreeAfterSpill() async {
        let result = await #expect(processExitsWith: .failure, observing: CorruptionTests.observed) {
            let heap = try NUMAHeap(capacityPerNode: 4 << 20, cacheBytesPerClass: 0, purger: false, name: "pool under test")
            let a = try heap.allocate(byteCount: 2000)
            let others = try (0..<10).map { _ in try heap.allocate(byteCount: 2000) }
            show(a)
            heap.deallocate(a)
            for block in others { heap.deallocate(block) }
            heap.deallocate(a)
        }
        CorruptionTests.expectStop(result, reason: "double free")
    }

    @Test("heap: a block given back twice after trim() gave its page back")
    func doubleFreeAfterTrim() async {
        let result = await #expect(processExitsWith: .failure, observing: CorruptionTests.observed) {
            let heap = try NUMAHeap(capacityPerNode: 4 << 20, purger: false, name: "pool under test")
            // 1024-byte blocks, four a page: the first and the last stay, so the chunk stays.
            let blocks = try (0..<200).map { _ in try heap.allocate(byteCount: 1000) }
            for block in blocks.dropFirst().dropLast() { heap.deallocate(block) }
            heap.trim()
            let freed = blocks[100]
            show(freed)
            heap.deallocate(freed)
        }
        CorruptionTests.expectStop(result, reason: "double free")
    }

    @Test("heap: a write to a block given back, after trim() gave its page back, stops the program")
    func writeAfterTrim() async {
        await #expect(processExitsWith: .failure) {
            let heap = try NUMAHeap(capacityPerNode: 4 << 20, purger: false, name: "pool under test")
            let blocks = try (0..<200).map { _ in try heap.allocate(byteCount: 1000) }
            for block in blocks.dropFirst().dropLast() { heap.deallocate(block) }
            heap.trim()
            blocks[100].storeBytes(of: 1, as: UInt64.self)
        }
    }

    @Test("heap: a pointer into a live block")
    func interior() async {
        let result = await #expect(processExitsWith: .failure, observing: CorruptionTests.observed) {
            let heap = try NUMAHeap(capacityPerNode: 4 << 20, purger: false, name: "pool under test")
            let a = try heap.allocate(byteCount: 96)
            show(a + 16)
            heap.deallocate(a + 16)
        }
        CorruptionTests.expectStop(result, reason: "bytes into the block at")
    }

    @Test("heap: a pointer into a large allocation")
    func interiorLarge() async {
        let result = await #expect(processExitsWith: .failure, observing: CorruptionTests.observed) {
            let heap = try NUMAHeap(capacityPerNode: 4 << 20, purger: false, name: "pool under test")
            let a = try heap.allocate(byteCount: 600_000)
            show(a + 300_000)
            heap.deallocate(a + 300_000)
        }
        CorruptionTests.expectStop(result, reason: "bytes into the block at")
    }

    @Test("heap: a large allocation given back twice")
    func doubleFreeLarge() async {
        let result = await #expect(processExitsWith: .failure, observing: CorruptionTests.observed) {
            let heap = try NUMAHeap(capacityPerNode: 4 << 20, purger: false, name: "pool under test")
            let a = try heap.allocate(byteCount: 100_000)
            show(a)
            heap.deallocate(a)
            heap.deallocate(a)
        }
        CorruptionTests.expectStop(result, reason: "already given back")
    }

    @Test("heap: an address in a chunk the heap never handed out")
    func neverHandedOut() async {
        let result = await #expect(processExitsWith: .failure, observing: CorruptionTests.observed) {
            let heap = try NUMAHeap(capacityPerNode: 4 << 20, purger: false, name: "pool under test")
            let a = try heap.allocate(byteCount: 64)
            show(a + 1 << 20)
            heap.deallocate(a + 1 << 20)
        }
        CorruptionTests.expectStop(result, reason: "not a block this heap has handed out")
    }

    @Test("heap: a block of a chunk that was never handed out")
    func carvedNotHandedOut() async {
        let result = await #expect(processExitsWith: .failure, observing: CorruptionTests.observed) {
            let heap = try NUMAHeap(capacityPerNode: 4 << 20, purger: false, name: "pool under test")
            let a = try heap.allocate(byteCount: 64)
            show(a + 64 * 1000)
            heap.deallocate(a + 64 * 1000)
        }
        CorruptionTests.expectStop(result, reason: "never handed out")
    }

    @Test("heap: memory of another allocator")
    func foreign() async {
        let result = await #expect(processExitsWith: .failure, observing: CorruptionTests.observed) {
            let heap = try NUMAHeap(capacityPerNode: 4 << 20, purger: false, name: "pool under test")
            let foreign = malloc(64)!
            show(foreign)
            heap.deallocate(foreign)
        }
        CorruptionTests.expectStop(result, reason: "is not memory of this heap")
    }
}
