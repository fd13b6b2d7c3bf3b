import Foundation
import NUMA
@testable import NUMAPool
import Testing

/// fork(2) while other threads use the pools: the child's pools work, and what the threads
/// that were not copied held is written off, never handed out.
@Suite("Pools after fork", .serialized,
       .disabled(if: underThreadSanitizer,
                 "ThreadSanitizer turns itself off in the child of a multithreaded fork and may deadlock there on its own or the Swift runtime's locks (llvm/llvm-project#96600); these run in the plain and AddressSanitizer runs"))
struct ForkTests {
    /// Forks `children` times while `work` runs on another thread; each child runs `child` and
    /// exits with its status. Returns how many children hung (killed after 5 s) and failed.
    static func forkRepeatedly(_ children: Int, while work: @escaping @Sendable (StopFlag) throws -> Void,
                               child: () -> Int32) throws -> (hung: Int, failed: Int) {
        let stop = StopFlag()
        let worker = try PinnedThread(cpus: Topology.current.allowedCPUs) { try work(stop) }
        usleep(50_000)
        var hung = 0, failed = 0
        for _ in 0..<children {
            let pid = fork()
            if pid == 0 { _exit(child()) }
            var status: Int32 = 0, done = false
            for _ in 0..<500 {
                if waitpid(pid, &status, WNOHANG) == pid { done = true; break }
                usleep(10_000)
            }
            if !done {
                hung += 1
                kill(pid, SIGKILL)
                waitpid(pid, &status, 0)
            } else if status != 0 {
                failed += 1
            }
        }
        stop.set()
        try worker.join()
        return (hung, failed)
    }

    /// Takes and gives back blocks until told to stop, in batches that refill and spill the
    /// thread's cache, so that the arena lock is taken all the time.
    static func churn(_ pool: some BlockPool, _ stop: StopFlag) throws {
        var held: [UnsafeMutableRawPointer] = []
        held.reserveCapacity(64)
        while !stop.isSet {
            for _ in 0..<64 { held.append(try pool.allocate()) }
            for block in held { pool.deallocate(block) }
            held.removeAll(keepingCapacity: true)
        }
    }

    /// In a child: 256 blocks, all distinct, given back; a snapshot that holds its invariants.
    static func useInChild(_ pool: some BlockPool) -> Int32 {
        var blocks = Set<UInt>()
        var held: [UnsafeMutableRawPointer] = []
        for _ in 0..<256 {
            guard let block = try? pool.allocate() else { return 3 }
            blocks.insert(UInt(bitPattern: block))
            held.append(block)
        }
        for block in held { pool.deallocate(block) }
        let stats = pool.statistics()
        guard blocks.count == 256, stats.hits <= stats.gets, stats.puts <= stats.gets,
              stats.bytesInUse <= stats.bytesReserved else { return 4 }
        return 0
    }

    /// Runs the child's path once before forking, so that the Swift runtime's one-time set-up
    /// for it (metadata of an unspecialised debug build) is not caught half done by a fork.
    static func warm(_ pool: some BlockPool) throws {
        for _ in 0..<2 {
            var held: [UnsafeMutableRawPointer] = []
            for _ in 0..<256 { held.append(try pool.allocate()) }
            for block in held { pool.deallocate(block) }
        }
        _ = useInChild(pool)
    }

    @Test("LocalPool: 200 children of a process whose other thread uses the pool all finish")
    func local() throws {
        let pool = try LocalPool(blockSize: 64, capacityPerNode: 16 << 20, cacheCapacity: 4)
        try Self.warm(pool)
        let outcome = try Self.forkRepeatedly(200, while: { try Self.churn(pool, $0) }) { Self.useInChild(pool) }
        #expect(outcome.hung == 0)
        #expect(outcome.failed == 0)
    }

    @Test("GlobalPool: 40 children of a process whose other thread uses the pool all finish")
    func global() throws {
        let pool = try GlobalPool(blockSize: 64, capacity: 16 << 20)
        try Self.warm(pool)
        let outcome = try Self.forkRepeatedly(40, while: { try Self.churn(pool, $0) }) { Self.useInChild(pool) }
        #expect(outcome.hung == 0)
        #expect(outcome.failed == 0)
    }

    @Test("ObjectPool: 40 children of a process whose other thread leases all finish")
    func objects() throws {
        let backing = try LocalPool(blockSize: 64, capacityPerNode: 16 << 20, cacheCapacity: 4)
        let pool = try ObjectPool(backing: backing, maxIdle: 8, cacheCapacity: 2, factory: { [UInt8]() },
                                  reset: { $0.removeAll(keepingCapacity: true) })
        let lease: @Sendable () -> Int32 = {
            for _ in 0..<64 {
                guard (try? pool.withObject({ $0.append(1); return $0.count })) == 1 else { return 5 }
            }
            let stats = pool.statistics()
            return stats.hits <= stats.gets && stats.puts <= stats.gets ? 0 : 6
        }
        _ = lease()
        let outcome = try Self.forkRepeatedly(40, while: { stop in
            while !stop.isSet { for _ in 0..<64 { _ = try pool.withObject { $0.append(2) } } }
        }) { lease() }
        #expect(outcome.hung == 0)
        #expect(outcome.failed == 0)
    }

    @Test("NUMAHeap: 40 children of a process whose other thread uses the heap all finish, and what that thread cached is written off")
    func heap() throws {
        let heap = try NUMAHeap(capacityPerNode: 16 << 20, cacheBytesPerClass: 4096, purger: false)
        let child: () -> Int32 = {
            var held: [UnsafeMutableRawPointer] = []
            var seen = Set<UInt>()
            for i in 0..<256 {
                guard let block = try? heap.allocate(byteCount: 16 + (i % 8) * 100) else { return 3 }
                seen.insert(UInt(bitPattern: block))
                held.append(block)
            }
            for block in held { heap.deallocate(block) }
            let stats = heap.statistics()
            guard seen.count == 256, stats.puts <= stats.gets, stats.hits <= stats.gets else { return 4 }
            return 0
        }
        _ = child()
        let outcome = try Self.forkRepeatedly(40, while: { stop in
            var held: [UnsafeMutableRawPointer] = []
            while !stop.isSet {
                for i in 0..<64 { held.append(try heap.allocate(byteCount: 16 + (i % 8) * 100)) }
                for block in held { heap.deallocate(block) }
                held.removeAll(keepingCapacity: true)
            }
        }) {
            // The other thread's cache was written off, never handed out.
            let code = child()
            return code != 0 ? code : (heap.statistics().writtenOff > 0 ? 0 : 5)
        }
        #expect(outcome.hung == 0)
        #expect(outcome.failed == 0)
    }

    @Test("the blocks a thread that was not copied had cached are written off, never handed out")
    func writtenOff() throws {
        // One arena of 4096 blocks. A thread fills its cache with 100 blocks it gave back (and
        // keeps the rest of its run of fresh blocks), then waits while the test forks.
        let node = Topology.current.bindableNodes.ids[0]
        let pool = try LocalPool(blockSize: 64, capacityPerNode: 64 * 4096, nodes: [node], cacheCapacity: 256)
        let cachedBlocks = Locked<[UInt]>([])
        let parked = DispatchSemaphore(value: 0), release = DispatchSemaphore(value: 0)
        let thread = try PinnedThread(cpus: Topology.current.allowedCPUs) { () throws in
            var blocks: [UnsafeMutableRawPointer] = []
            for _ in 0..<100 { blocks.append(try pool.allocate()) }
            for block in blocks { pool.deallocate(block) }
            cachedBlocks.withLock { $0 = blocks.map { UInt(bitPattern: $0) } }
            parked.signal()
            release.wait()
        }
        parked.wait()
        let cached = Set(cachedBlocks.withLock { $0 })
        let pid = fork()
        if pid == 0 {
            // The other thread is gone. What its cache held is written off (at least its 100
            // blocks); every other block can still be had, each once, and none of its 100.
            let lost = pool.statistics().writtenOff
            guard lost >= 100 else { _exit(10) }
            var got = Set<UInt>()
            while let block = try? pool.allocate() {
                guard got.insert(UInt(bitPattern: block)).inserted else { _exit(11) }
            }
            guard got.count + Int(lost) == 4096 else { _exit(12) }
            guard got.isDisjoint(with: cached) else { _exit(13) }
            _exit(0)
        }
        var status: Int32 = 0
        waitpid(pid, &status, 0)
        release.signal()
        try thread.join()
        #expect(status == 0, "child exit status \(status >> 8) (10: fewer than 100 written off, 11: a block twice, 12: blocks missing, 13: a written-off block handed out)")
        #expect(cached.count == 100)
        #expect(pool.statistics().writtenOff == 0, "only the child writes off")
    }
}
