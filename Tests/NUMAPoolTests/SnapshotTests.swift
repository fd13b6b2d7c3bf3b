#if canImport(Glibc)
import Glibc
#endif
import NUMA
@testable import NUMAPool
import Testing

/// Statistics read while threads run hold their invariants in every snapshot.
@Suite("Snapshots while threads run")
struct SnapshotTests {
    /// The invariants of one snapshot, and of it against the one before; nil when they hold.
    static func problem(_ stats: PoolStatistics, after previous: PoolStatistics?) -> String? {
        let shown = "gets \(stats.gets) puts \(stats.puts) hits \(stats.hits) misses \(stats.misses) in use \(stats.bytesInUse) reserved \(stats.bytesReserved)"
        if stats.hits > stats.gets || stats.misses > stats.gets || stats.hits + stats.misses != stats.gets {
            return "hits and misses do not add up to gets: \(shown)"
        }
        if stats.puts > stats.gets { return "more puts than gets: \(shown)" }
        if stats.bytesInUse < 0 || stats.bytesInUse > stats.bytesReserved { return "in use outside 0...reserved: \(shown)" }
        if stats.reuseRate < 0 || stats.reuseRate > 1 { return "reuse rate \(stats.reuseRate): \(shown)" }
        if let previous, stats.gets < previous.gets || stats.puts < previous.puts || stats.misses < previous.misses {
            return "a counter went back: \(shown) after gets \(previous.gets) puts \(previous.puts) misses \(previous.misses)"
        }
        return nil
    }

    /// Runs `workers` until `snapshots` snapshots were read and checked and a snapshot shows
    /// that they `ran` (or 60 s passed: on a loaded machine the workers may not have been
    /// scheduled while the first snapshots were read), then `finish`.
    static func check(snapshots: Int, read: () -> PoolStatistics, workers: [@Sendable (StopFlag) throws -> Void],
                      ran: (PoolStatistics) -> Bool = { $0.gets > 0 }, finish: () -> Void = {}) throws {
        let stop = StopFlag()
        let threads = try workers.map { work in try PinnedThread(cpus: Topology.current.allowedCPUs) { try work(stop) } }
        var problems: [String] = []
        var previous: PoolStatistics?
        let clock = ContinuousClock(), deadline = clock.now + .seconds(60)
        var taken = 0
        while taken < snapshots || (!(previous.map(ran) ?? false) && clock.now < deadline) {
            let stats = read()
            if let problem = problem(stats, after: previous) { problems.append(problem) }
            previous = stats
            taken += 1
        }
        stop.set()
        for thread in threads { try thread.join() }
        finish()
        #expect(problems.isEmpty, "\(problems.count) of \(taken) snapshots broke an invariant; first: \(problems.first ?? "")")
        #expect((previous?.gets ?? 0) > 0, "the workers ran")
    }

    /// A queue of blocks from one thread to another.
    final class Handoff: Sendable {
        private let blocks = Locked<[UInt]>([])
        func put(_ block: UnsafeMutableRawPointer) { blocks.withLock { $0.append(UInt(bitPattern: block)) } }
        var count: Int { blocks.withLock { $0.count } }
        func take() -> [UnsafeMutableRawPointer] {
            blocks.withLock { blocks in
                defer { blocks.removeAll(keepingCapacity: true) }
                return blocks.map { UnsafeMutableRawPointer(bitPattern: $0)! }
            }
        }
    }

    /// One thread takes blocks, fresh and reused, and hands most to another, which gives them
    /// back (puts on another thread than the gets), keeps some for a while, and trims. The
    /// second closure gives back what is left in the hand-off once both threads ended.
    static func producerConsumer(_ pool: some BlockPool, rounds: Int = 1 << 30)
        -> (workers: [@Sendable (StopFlag) throws -> Void], finish: () -> Void) {
        let handoff = Handoff()
        let workers: [@Sendable (StopFlag) throws -> Void] = [
            { stop in
                var round = 0
                var kept: [UnsafeMutableRawPointer] = []
                while !stop.isSet && round < rounds {
                    round += 1
                    for i in 0..<(round % 97) {
                        guard let block = try? pool.allocate() else { break }
                        if i % 4 == 0 { kept.append(block) } else { handoff.put(block) }
                    }
                    if kept.count > 2000 {
                        for block in kept { pool.deallocate(block) }
                        kept.removeAll(keepingCapacity: true)
                    }
                }
                for block in kept { pool.deallocate(block) }
            },
            { stop in
                var round = 0
                while !stop.isSet {
                    round += 1
                    for block in handoff.take() { pool.deallocate(block) }
                    if round % 64 == 0 { pool.trim() }
                }
            },
        ]
        return (workers, { for block in handoff.take() { pool.deallocate(block) } })
    }

    @Test("LocalPool: fresh and reused gets, puts on another thread, trims")
    func local() throws {
        let pool = try LocalPool(blockSize: 64, capacityPerNode: 32 << 20, cacheCapacity: 16)
        let work = Self.producerConsumer(pool)
        try Self.check(snapshots: 5000, read: pool.statistics, workers: work.workers, finish: work.finish)
        let end = pool.statistics()
        #expect(end.gets == end.puts, "every block went back")
        #expect(end.bytesInUse == 0)
    }

    @Test("LocalPool: fresh gets only (the case that once showed misses > gets)")
    func localFresh() throws {
        let pool = try LocalPool(blockSize: 64, capacityPerNode: 256 << 20, cacheCapacity: 8)
        let fill: @Sendable (StopFlag) throws -> Void = { stop in
            var held: [UnsafeMutableRawPointer] = []
            while !stop.isSet, let block = try? pool.allocate() { held.append(block) }
            for block in held { pool.deallocate(block) }
        }
        try Self.check(snapshots: 20000, read: pool.statistics, workers: [fill, fill])
    }

    @Test("GlobalPool: gets and puts on different threads")
    func global() throws {
        let pool = try GlobalPool(blockSize: 64, capacity: 32 << 20)
        let work = Self.producerConsumer(pool)
        try Self.check(snapshots: 5000, read: pool.statistics, workers: work.workers, finish: work.finish)
        #expect(pool.statistics().bytesInUse == 0)
    }

    @Test("ObjectPool: leases on two threads, some escaping")
    func objects() throws {
        final class Item { var value = 0 }
        let backing = try LocalPool(blockSize: 16, capacityPerNode: 16 << 20, cacheCapacity: 8)
        let pool = try ObjectPool(backing: backing, maxIdle: 64, cacheCapacity: 4, factory: { Item() }, reset: { $0.value = 0 })
        let work: @Sendable (StopFlag) throws -> Void = { stop in
            var round = 0
            var escaped: [Item] = []
            while !stop.isSet {
                round += 1
                var leases: [Item] = []
                for _ in 0..<(round % 13) {
                    try pool.withObject { item in
                        item.value = round
                        if round % 7 == 0 { leases.append(item) }
                    }
                }
                escaped = leases
            }
            _ = escaped
        }
        try Self.check(snapshots: 5000, read: pool.statistics, workers: [work, work], ran: { $0.escaped > 0 })
        let end = pool.statistics()
        #expect(end.gets == end.puts)
        #expect(end.escaped > 0)
    }

    @Test("NUMAHeap: snapshots while threads allocate and free each other's blocks hold their invariants")
    func heap() throws {
        let heap = try NUMAHeap(capacityPerNode: 64 << 20, purger: false)
        let handoff = Handoff()
        var previous: HeapStatistics?
        var problems: [String] = []
        try Self.check(snapshots: 300, read: {
            let stats = heap.statistics()
            if stats.puts > stats.gets || stats.misses > stats.gets || stats.hits + stats.misses != stats.gets {
                problems.append("gets \(stats.gets) puts \(stats.puts) hits \(stats.hits) misses \(stats.misses)")
            }
            for entry in stats.perClass where entry.puts > entry.gets || entry.misses > entry.gets {
                problems.append("class \(entry.size): gets \(entry.gets) puts \(entry.puts) misses \(entry.misses)")
            }
            if let previous, stats.gets < previous.gets || stats.puts < previous.puts { problems.append("a counter went back") }
            previous = stats
            var pool = PoolStatistics()
            pool.gets = stats.gets
            pool.puts = stats.puts
            pool.hits = stats.hits
            pool.misses = stats.misses
            return pool
        }, workers: [
            { stop in
                var i = 0
                while !stop.isSet {
                    // At most 10,000 blocks in flight: the consumer keeps up.
                    if handoff.count > 10_000 { sched_yield(); continue }
                    handoff.put(try heap.allocate(byteCount: 16 + (i % 40) * 50))
                    i += 1
                }
            },
            { stop in
                while !stop.isSet { for block in handoff.take() { heap.deallocate(block) } }
                for block in handoff.take() { heap.deallocate(block) }
            },
        ])
        for block in handoff.take() { heap.deallocate(block) }
        #expect(problems.isEmpty, "\(problems.count) snapshots broke an invariant; first: \(problems.first ?? "")")
    }
}
