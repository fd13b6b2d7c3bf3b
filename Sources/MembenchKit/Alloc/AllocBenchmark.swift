import CNuma
import Foundation
import NUMA
import NUMAPool
import Synchronization

/// The object `membench alloc --allocators object` leases: a small class, as a service would
/// pool (the counterpart of a pointer in Go's sync.Pool). Each lease touches it; the reset
/// clears it. Internal, so that the optimiser sees every access to `length` and needs no
/// dynamic exclusivity check (a public class's stored properties get one per access).
final class PooledObject {
    var length = 0
    var words: (UInt64, UInt64, UInt64, UInt64) = (0, 0, 0, 0)
}

/// Measures get+put throughput of the pools against malloc/free.
public enum AllocBenchmark {
    public static func run(_ resolved: ResolvedAlloc, topology: Topology = .current) throws(MembenchError) -> [AllocResult] {
        let options = resolved.options, placements = resolved.placements
        // Every round measures each allocator at each thread count once, so that the rows a ratio
        // compares (an allocator against malloc, 2 threads against 1) are measured seconds
        // apart, never a whole run apart. Odd rounds go in reverse order, so that a steady
        // drift of the machine favours no row.
        let order = options.strategies.flatMap { strategy in placements.map { (strategy, $0) } }
        return try measure(options, order: order, topology: topology)
    }
}

extension AllocBenchmark {
    static func measure(_ options: AllocOptions, order: [(AllocStrategy, ResolvedPlacement)],
                        topology: Topology) throws(MembenchError) -> [AllocResult] {
        var results: [AllocResult] = []
        for ((strategy, placement), round) in Rounds.alternating(order, rounds: options.rounds) {
            var result = try measure(strategy, placement: placement, options: options, topology: topology)
            result.round = round
            results.append(result)
        }
        return results
    }

    static func measure(_ strategy: AllocStrategy, placement: ResolvedPlacement, options: AllocOptions,
                        topology: Topology) throws(MembenchError) -> AllocResult {
        let cpus = placement.cpus, nodes = placement.poolNodes
        switch strategy {
        case .local:
            let pool = try PoolFactory.local(blockSize: options.blockSize, capacityPerNode: options.capacity, nodes: nodes,
                                             binding: options.binding, pages: .base, topology: topology)
            return try drive(Pool(pool), strategy: strategy, cpus: cpus, options: options)
        case .global:
            let pool = try PoolFactory.global(blockSize: options.blockSize, capacity: options.capacity, fill: options.globalFill,
                                              nodes: placement.memoryNodes, pages: .base, cpu: cpus[0], policy: placement.policy,
                                              topology: topology)
            return try drive(Pool(pool), strategy: strategy, cpus: cpus, options: options)
        case .object:
            let backing = try PoolFactory.local(blockSize: options.blockSize, capacityPerNode: options.capacity, nodes: nodes,
                                                binding: options.binding, pages: .base, topology: topology)
            let objects: ObjectPool<PooledObject>
            do {
                objects = try ObjectPool(backing: backing, factory: { PooledObject() }, reset: { $0.length = 0 })
            } catch {
                throw MembenchError.from(error)
            }
            return try drive(Objects(pool: objects), strategy: strategy, cpus: cpus, options: options)
        case .malloc:
            return try drive(Malloc(), strategy: strategy, cpus: cpus, options: options)
        case .heap:
            let heap: NUMAHeap
            do {
                heap = try NUMAHeap(capacityPerNode: options.capacity, binding: options.binding == .strict ? .strict : .preferred,
                                    nodes: nodes, name: "membench heap", topology: topology)
            } catch {
                throw MembenchError.from(error)
            }
            return try drive(Heap(heap: heap), strategy: strategy, cpus: cpus, options: options)
        }
    }

    /// What a worker measures. Each allocator runs its own loop, generic over nothing, so that
    /// its calls are direct, with nothing shared between threads in the loop but the allocator
    /// itself (no existential, no reference counting per batch).
    protocol Allocator: Sendable {
        /// Bytes of scratch memory that hold a batch of what the allocator hands out.
        func scratchBytes(batch: Int) -> Int
        /// `rounds` rounds of `batch` gets and then `batch` puts (a batch of 1 is a get+put
        /// pair), holding the batch in `scratch`.
        func cycle(rounds: Int, batch: Int, scratch: UnsafeMutableRawPointer, sizes: inout SizeSequence) throws(PoolError)
        /// Takes `batch` and holds them in `scratch`; on a failure, gives back what it took and
        /// throws.
        func take(_ batch: Int, into scratch: UnsafeMutableRawPointer, sizes: inout SizeSequence) throws(PoolError)
        /// Gives back the `batch` that `take` holds.
        func giveBack(_ batch: Int, from scratch: UnsafeMutableRawPointer)
        /// After a worker's loop: what the thread still holds goes back.
        func finish()
        func statistics() -> PoolStatistics?
    }

    /// An allocator of raw blocks: the pools (which ignore the size), the heap and malloc.
    protocol BlockAllocator: Allocator {
        func allocate(byteCount: Int) throws(PoolError) -> UnsafeMutableRawPointer
        func deallocate(_ block: UnsafeMutableRawPointer)
    }

    struct Pool<P: BlockPool>: BlockAllocator {
        let pool: P
        init(_ pool: P) { self.pool = pool }
        @inline(__always) func allocate(byteCount: Int) throws(PoolError) -> UnsafeMutableRawPointer { try pool.allocate() }
        @inline(__always) func deallocate(_ block: UnsafeMutableRawPointer) { pool.deallocate(block) }
        func finish() { pool.trim() }
        func statistics() -> PoolStatistics? { pool.statistics() }
    }

    /// The process's malloc(3) and free(3).
    struct Malloc: BlockAllocator {
        @inline(__always) func allocate(byteCount: Int) throws(PoolError) -> UnsafeMutableRawPointer {
            guard let block = malloc(byteCount) else { throw .invalidArgument("malloc(\(byteCount)) failed") }
            return block
        }
        @inline(__always) func deallocate(_ block: UnsafeMutableRawPointer) { free(block) }
        func finish() {}
        func statistics() -> PoolStatistics? { nil }
    }

    /// `NUMAHeap`'s allocate and deallocate (no size).
    struct Heap: BlockAllocator {
        let heap: NUMAHeap
        @inline(__always) func allocate(byteCount: Int) throws(PoolError) -> UnsafeMutableRawPointer {
            try heap.allocate(byteCount: byteCount)
        }
        @inline(__always) func deallocate(_ block: UnsafeMutableRawPointer) { heap.deallocate(block) }
        func finish() {}
        /// The heap's counters in the pools' terms: misses are gets its thread caches could not
        /// serve; bytes reserved are the arenas' resident bytes.
        func statistics() -> PoolStatistics? {
            let heapStats = heap.statistics()
            var stats = PoolStatistics()
            stats.gets = heapStats.gets
            stats.puts = heapStats.puts
            stats.hits = heapStats.hits
            stats.misses = heapStats.misses
            stats.remoteReturns = heapStats.remoteFrees
            stats.bytesReserved = heapStats.bytesResident
            stats.bytesInUse = heapStats.bytesInUse
            return stats
        }
    }

    /// Leases of an `ObjectPool`, each touching its object.
    struct Objects: Allocator {
        let pool: ObjectPool<PooledObject>

        func scratchBytes(batch: Int) -> Int { batch * MemoryLayout<Lease<PooledObject>>.stride }

        func cycle(rounds: Int, batch: Int, scratch: UnsafeMutableRawPointer, sizes: inout SizeSequence) throws(PoolError) {
            if batch == 1 {
                for _ in 0..<rounds {
                    let lease = try pool.lease()
                    lease.value.length &+= 1
                    lease.release()
                }
            } else {
                for _ in 0..<rounds {
                    try take(batch, into: scratch, sizes: &sizes)
                    giveBack(batch, from: scratch)
                }
            }
        }

        func take(_ batch: Int, into scratch: UnsafeMutableRawPointer, sizes: inout SizeSequence) throws(PoolError) {
            let leases = scratch.assumingMemoryBound(to: Lease<PooledObject>.self)
            for i in 0..<batch {
                do throws(PoolError) {
                    (leases + i).initialize(to: try pool.lease())
                    leases[i].value.length &+= 1
                } catch {
                    leases.deinitialize(count: i)
                    throw error
                }
            }
        }

        func giveBack(_ batch: Int, from scratch: UnsafeMutableRawPointer) {
            scratch.assumingMemoryBound(to: Lease<PooledObject>.self).deinitialize(count: batch)
        }

        func finish() {}
        func statistics() -> PoolStatistics? { pool.statistics() }
    }

    static func drive<A: BlockAllocator>(_ allocator: A, strategy: AllocStrategy, cpus: [Int],
                                         options: AllocOptions) throws(MembenchError) -> AllocResult {
        if options.frees == .remote { return try driveRemote(allocator, strategy: strategy, cpus: cpus, options: options) }
        return try driveLocal(allocator, strategy: strategy, cpus: cpus, options: options)
    }

    static func drive(_ allocator: Objects, strategy: AllocStrategy, cpus: [Int],
                      options: AllocOptions) throws(MembenchError) -> AllocResult {
        try driveLocal(allocator, strategy: strategy, cpus: cpus, options: options)
    }

    static func driveLocal<A: Allocator>(_ allocator: A, strategy: AllocStrategy, cpus: [Int],
                                         options: AllocOptions) throws(MembenchError) -> AllocResult {
        let before = allocator.statistics()
        let start = StartLine(parties: cpus.count)
        // At the end every thread takes one more batch and holds it until all do; the first
        // thread then reads the pool's statistics, so that bytes in use and fragmentation
        // describe the pool with the callers' blocks out, not after they all went back.
        let holding = StartLine(parties: cpus.count), read = StartLine(parties: cpus.count)
        let batch = options.batch, duration = options.duration
        let workers = try startPinnedThreads(on: cpus, role: "a thread", lines: [start]) {
            index, _ throws -> (UInt64, Double, Int, PoolStatistics?) in
            // Cache-line aligned and padded, so that threads never share a line here.
            let bytes = (allocator.scratchBytes(batch: batch) + 63) / 64 * 64
            let scratch = UnsafeMutableRawPointer.allocate(byteCount: bytes, alignment: 64)
            defer { scratch.deallocate() }
            var sizes = SizeSequence(options, thread: index)
            defer { sizes.free() }
            defer { allocator.finish() }
            // One untimed batch first: the pools fault the memory of a batch in on first
            // use, which is set-up, not throughput.
            var failure: PoolError?
            do throws(PoolError) {
                try allocator.cycle(rounds: 1, batch: batch, scratch: scratch, sizes: &sizes)
            } catch {
                failure = error
            }
            try start.arriveAndWait()
            var pairs: UInt64 = 0
            let faultsBefore = threadPageFaults()
            let began = monotonicNanoseconds()
            let deadline = began + UInt64(duration * 1e9)
            var now = began
            // The clock is read once per 256 pairs or more, so that small batches
            // time the allocator rather than clock_gettime(2).
            let rounds = max(1, 256 / batch)
            do throws(PoolError) {
                while failure == nil && now < deadline {
                    try allocator.cycle(rounds: rounds, batch: batch, scratch: scratch, sizes: &sizes)
                    pairs &+= UInt64(batch * rounds)
                    now = monotonicNanoseconds()
                }
            } catch {
                failure = error
            }
            let faults = threadPageFaults() - faultsBefore
            // Every thread arrives at both lines, even after a failure, so none waits forever.
            var holds = false
            if failure == nil {
                do throws(PoolError) {
                    try allocator.take(batch, into: scratch, sizes: &sizes)
                    holds = true
                } catch {
                    failure = error
                }
            }
            // Never abandoned: only `start` is, and every thread has passed it.
            try? holding.arriveAndWait()
            let statistics = index == 0 ? allocator.statistics() : nil
            try? read.arriveAndWait()
            if holds { allocator.giveBack(batch, from: scratch) }
            if let failure { throw failure }
            return (pairs, Double(now - began) / 1e9, faults, statistics)
        }
        var pairs: UInt64 = 0
        var seconds = 0.0
        var faults = 0
        var statistics: PoolStatistics?
        for (count, elapsed, workerFaults, snapshot) in try joinAll(workers) {
            pairs += count
            faults += workerFaults
            seconds = max(seconds, elapsed)
            statistics = statistics ?? snapshot
        }
        statistics = counted(statistics, since: before)
        return AllocResult(strategy: strategy, allocatorName: allocatorName(strategy), threads: cpus.count,
                           pairs: pairs, seconds: seconds, pageFaults: faults, statistics: statistics)
    }

    /// The sizes a worker asks for, taken in turn: 4096 drawn once per thread from a seed that
    /// depends on the thread's index only, so every allocator is given the same sequence.
    struct SizeSequence {
        let sizes: UnsafeMutablePointer<Int>
        static let count = 4096
        var next = 0

        init(_ options: AllocOptions, thread: Int) {
            let drawn = (options.sizes ?? .fixed(options.blockSize)).draw(count: Self.count, seed: 0x5EED &+ UInt64(thread))
            sizes = .allocate(capacity: Self.count)
            sizes.initialize(from: drawn, count: Self.count)
        }

        @inline(__always)
        mutating func take() -> Int {
            let size = sizes[next & (Self.count - 1)]
            next &+= 1
            return size
        }

        func free() { sizes.deallocate() }
    }

    /// Bytes asked for over bytes taken, for the heap: over the sizes every thread asks for,
    /// each size's class (`NUMAHeap.roundedSize`).
    static func sizeFit(_ options: AllocOptions, threads: Int) -> Double {
        var asked = 0, taken = 0
        for thread in 0..<threads {
            for size in (options.sizes ?? .fixed(options.blockSize)).draw(count: SizeSequence.count, seed: 0x5EED &+ UInt64(thread)) {
                asked += size
                taken += NUMAHeap.roundedSize(forRequest: size) ?? size
            }
        }
        return Double(asked) / Double(max(1, taken))
    }

    /// A batch on its way from one thread of a pair to the other: `state` is 0 while the box
    /// is empty, 1 when a batch of `count` blocks is in it, 2 when it is the sender's last.
    final class Mailbox: @unchecked Sendable {
        // @unchecked: `blocks` and `count` are written by the sender while `state` is 0 and read
        // by the receiver after it saw 1 or 2; the store and load of `state` order them
        // (release and acquire).
        let state = Atomic<Int>(0)
        var count = 0
        let blocks: UnsafeMutablePointer<UnsafeMutableRawPointer>
        init(batch: Int) { blocks = .allocate(capacity: batch) }
        deinit { blocks.deallocate() }

        /// Waits until the box holds a batch (or, with `empty`, until it is empty); returns the state.
        func wait(empty: Bool) -> Int {
            var spins = 0
            while true {
                let value = state.load(ordering: .acquiring)
                if (value == 0) == empty { return value }
                spins += 1
                if spins % 64 == 0 { sched_yield() }
            }
        }
    }

    /// `--frees remote`: threads in pairs (0 and 1, 2 and 3, ...), each freeing every batch its
    /// partner took, as producer and consumer (mimalloc-bench's xmalloc-test): the even thread
    /// takes a batch and sends it; the odd one frees it, takes a batch and sends it back; and
    /// so on until the even thread's clock says stop, when it marks its batch the last. A
    /// failed allocation sends what was taken as the last batch, so neither side waits for ever.
    static func driveRemote<A: BlockAllocator>(_ allocator: A, strategy: AllocStrategy, cpus: [Int],
                                               options: AllocOptions) throws(MembenchError) -> AllocResult {
        let before = allocator.statistics()
        let start = StartLine(parties: cpus.count)
        let batch = options.batch, duration = options.duration
        let boxes = (0..<cpus.count).map { _ in Mailbox(batch: batch) }  // box i: what thread i sends
        let workers = try startPinnedThreads(on: cpus, role: "a thread", lines: [start]) {
            index, _ throws -> (UInt64, Double) in
            var sizes = SizeSequence(options, thread: index)
            defer { sizes.free() }
            let outbox = boxes[index], inbox = boxes[index ^ 1]
            let leads = index % 2 == 0
            var failure: PoolError?
            func send(last: Bool) -> Bool {
                _ = outbox.wait(empty: true)
                var taken = 0
                do throws(PoolError) {
                    while taken < batch {
                        outbox.blocks[taken] = try allocator.allocate(byteCount: sizes.take())
                        taken += 1
                    }
                } catch {
                    failure = error
                }
                outbox.count = taken
                outbox.state.store(last || failure != nil ? 2 : 1, ordering: .releasing)
                return last || failure != nil
            }
            /// Frees the partner's batch; returns whether it was the last.
            func receive() -> Bool {
                let state = inbox.wait(empty: false)
                for i in 0..<inbox.count { allocator.deallocate(inbox.blocks[i]) }
                inbox.state.store(0, ordering: .releasing)
                return state == 2
            }
            try start.arriveAndWait()
            var pairs: UInt64 = 0
            let began = monotonicNanoseconds()
            let deadline = began + UInt64(duration * 1e9)
            var now = began
            while true {
                if leads {
                    let last = send(last: now >= deadline)
                    pairs &+= UInt64(outbox.count)
                    if last || receive() { break }
                } else {
                    if receive() { break }
                    let last = send(last: false)
                    pairs &+= UInt64(outbox.count)
                    if last { break }
                }
                now = monotonicNanoseconds()
            }
            // The partner's last word may still wait in the inbox: the leader stops after
            // sending its last batch, which its partner frees; the partner stops after freeing
            // it, or after a failure, which the leader sees as a last batch.
            now = monotonicNanoseconds()
            allocator.finish()
            if let failure { throw failure }
            return (pairs, Double(now - began) / 1e9)
        }
        var pairs: UInt64 = 0
        var seconds = 0.0
        for (count, elapsed) in try joinAll(workers) {
            pairs += count
            seconds = max(seconds, elapsed)
        }
        let statistics = counted(allocator.statistics(), since: before)
        return AllocResult(strategy: strategy, allocatorName: allocatorName(strategy), threads: cpus.count,
                           pairs: pairs, seconds: seconds, pageFaults: 0, statistics: statistics)
    }

    /// `statistics` with the counters taken before the run taken off: what the run counted.
    static func counted(_ statistics: PoolStatistics?, since before: PoolStatistics?) -> PoolStatistics? {
        guard var stats = statistics, let before else { return statistics }
        stats.gets -= before.gets
        stats.puts -= before.puts
        stats.hits -= before.hits
        stats.misses -= before.misses
        stats.remoteReturns -= before.remoteReturns
        return stats
    }

    /// Minor and major page faults of the calling thread so far (`getrusage(RUSAGE_THREAD)`).
    static func threadPageFaults() -> Int {
        var usage = rusage()
        guard CNuma_getrusage_thread(&usage) == 0 else { return 0 }
        return usage.ru_minflt + usage.ru_majflt
    }

    /// `local`, `global`, `malloc (glibc)` or `malloc (<LD_PRELOAD library>)`.
    static func allocatorName(_ strategy: AllocStrategy) -> String {
        guard strategy == .malloc else { return strategy.rawValue }
        let preload = ProcessInfo.processInfo.environment["LD_PRELOAD"].flatMap { $0.isEmpty ? nil : $0 }
        return "malloc (\(preload.map { URL(fileURLWithPath: $0).lastPathComponent } ?? "glibc"))"
    }
}

extension AllocBenchmark.BlockAllocator {
    func scratchBytes(batch: Int) -> Int { batch * MemoryLayout<UnsafeMutableRawPointer>.stride }

    @inline(__always)
    func cycle(rounds: Int, batch: Int, scratch: UnsafeMutableRawPointer, sizes: inout AllocBenchmark.SizeSequence) throws(PoolError) {
        let held = scratch.assumingMemoryBound(to: UnsafeMutableRawPointer.self)
        if batch == 1 {
            // A get+put pair: the block is given back from a register, as in a caller's code,
            // not loaded back from `held`; storing it there keeps it escaping, so that the
            // compiler cannot drop a malloc/free pair whose block is never used.
            for _ in 0..<rounds {
                let block = try allocate(byteCount: sizes.take())
                held[0] = block
                deallocate(block)
            }
        } else {
            for _ in 0..<rounds {
                for i in 0..<batch { held[i] = try allocate(byteCount: sizes.take()) }
                for i in 0..<batch { deallocate(held[i]) }
            }
        }
    }

    func take(_ batch: Int, into scratch: UnsafeMutableRawPointer, sizes: inout AllocBenchmark.SizeSequence) throws(PoolError) {
        let held = scratch.assumingMemoryBound(to: UnsafeMutableRawPointer.self)
        for i in 0..<batch {
            do throws(PoolError) {
                held[i] = try allocate(byteCount: sizes.take())
            } catch {
                for j in 0..<i { deallocate(held[j]) }
                throw error
            }
        }
    }

    func giveBack(_ batch: Int, from scratch: UnsafeMutableRawPointer) {
        let held = scratch.assumingMemoryBound(to: UnsafeMutableRawPointer.self)
        for i in 0..<batch { deallocate(held[i]) }
    }
}
