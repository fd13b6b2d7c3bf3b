import NUMA
@testable import NUMAPool
import Testing

/// Replays of window sequences through both capacity policies: each is a pure function of the
/// windows and its parameters, so each case states what must happen and checks it.
@Suite("Elastic sizing: the study's SLO rule and the demand controller, replayed")
struct ElasticSizingTests {
    static let slo = Duration.milliseconds(10)
    static let window = Duration.seconds(10)

    /// `count` windows of 10 s from `start`, with p99 at `ratio` × the SLO and the given demand.
    static func windows(_ count: Int, from start: Int = 0, ratio: Double, gets: UInt64 = 10_000, misses: UInt64 = 0,
                        idle: Int = 0, remote: Int = 0) -> [CapacityWindow] {
        (0..<count).map { i in
            CapacityWindow(end: window * (start + i + 1), p99: slo * ratio, gets: gets, misses: misses,
                           idleLowWater: idle, remoteReturns: remote)
        }
    }

    static func changes(_ decisions: [CapacityDecision]) -> [CapacityDecision] {
        decisions.filter { $0.reason == .grow || $0.reason == .shrink }
    }

    // MARK: The study's rule

    @Test("the study's rule: a spike shorter than its five windows is ignored")
    func sloSpike() {
        let rule = SLORule(slo: Self.slo, minimum: 10)
        let run = Self.windows(4, ratio: 2) + Self.windows(10, from: 4, ratio: 1)
        #expect(Self.changes(rule.replay(run, from: 20)).isEmpty)
        // Five in a row is enough.
        let five = Self.windows(5, ratio: 2)
        #expect(rule.replay(five, from: 20).last == CapacityDecision(capacity: 23, reason: .grow))
    }

    @Test("the study's rule: steady overload grows by its step of 3 at most once per 300 s cooldown")
    func sloOverload() {
        let rule = SLORule(slo: Self.slo, minimum: 10)
        let decisions = rule.replay(Self.windows(180, ratio: 2), from: 20)  // 30 minutes
        var capacity = 20
        var lastGrowth: Int?
        for (i, decision) in decisions.enumerated() where decision.reason == .grow {
            #expect(decision.capacity - capacity == 3)
            if let lastGrowth { #expect((i - lastGrowth) * 10 >= 300, "growths at windows \(lastGrowth) and \(i)") }
            lastGrowth = i
            capacity = decision.capacity
        }
        // 30 minutes: the first growth after 5 windows, then one per 300 s.
        #expect(Self.changes(decisions).count == 6)
        #expect(decisions.last?.capacity == 38)
    }

    @Test("the study's rule: a quiet period shrinks to the minimum and no further")
    func sloQuiet() {
        let rule = SLORule(slo: Self.slo, minimum: 10, cooldown: .zero)
        let decisions = rule.replay(Self.windows(200, ratio: 0.3), from: 40)
        #expect(decisions.map(\.capacity).min() == 10)
        #expect(decisions.last?.capacity == 10)
        #expect(decisions.suffix(20).allSatisfy { $0.capacity == 10 })
        #expect(decisions.contains { $0.reason == .atMinimum })
    }

    @Test("the study's rule: p99 swinging around the SLO makes no change")
    func sloOscillation() {
        let rule = SLORule(slo: Self.slo, minimum: 10)
        let run = (0..<200).map { (i: Int) -> CapacityWindow in
            let p99: Duration = Self.slo * (i % 2 == 0 ? 1.4 : 0.6)
            return CapacityWindow(end: Self.window * (i + 1), p99: p99)
        }
        #expect(Self.changes(rule.replay(run, from: 20)).isEmpty)
    }

    // MARK: The demand controller

    @Test("the demand controller: a spike of misses shorter than its two windows is ignored")
    func demandSpike() {
        let controller = DemandController(minimum: 10, maximum: 10_000)
        let run = Self.windows(1, ratio: 1, misses: 5000) + Self.windows(3, from: 1, ratio: 1)
        #expect(Self.changes(controller.replay(run, from: 100)).isEmpty)
        let two = Self.windows(2, ratio: 1, misses: 5000)
        #expect(controller.replay(two, from: 100).last == CapacityDecision(capacity: 5100, reason: .grow))
    }

    @Test("the demand controller: steady overload grows by at most its factor, at most once per cooldown")
    func demandOverload() {
        let controller = DemandController(minimum: 10, maximum: 1_000_000, cooldown: .seconds(60))
        let decisions = controller.replay(Self.windows(60, ratio: 2, misses: 500), from: 100)
        var capacity = 100
        var lastGrowth: Int?
        for (i, decision) in decisions.enumerated() where decision.reason == .grow {
            #expect(decision.capacity <= max(capacity * 2, capacity + 500))
            if let lastGrowth { #expect((i - lastGrowth) * 10 >= 60) }
            lastGrowth = i
            capacity = decision.capacity
        }
        #expect(Self.changes(decisions).count >= 5)
        #expect(decisions.allSatisfy { $0.capacity <= 1_000_000 })
    }

    @Test("the demand controller: a quiet period shrinks to the minimum and no further")
    func demandQuiet() {
        let controller = DemandController(minimum: 10, maximum: 10_000)
        var capacity = 1000
        var policy = controller
        var decisions: [CapacityDecision] = []
        for window in Self.windows(2000, ratio: 0.2, gets: 0) {
            // What sits unused is what the capacity lets the partition keep.
            var window = window
            window.idleLowWater = capacity
            let decision = policy.decide(after: window, capacity: capacity)
            decisions.append(decision)
            capacity = decision.capacity
        }
        #expect(capacity == 10)
        #expect(decisions.map(\.capacity).min() == 10)
        #expect(decisions.contains { $0.reason == .atMinimum })
        // Slowly: a quarter of what was unused, once every five windows.
        let first = decisions.firstIndex { $0.reason == .shrink }
        #expect(first == 4 && decisions[4].capacity == 750)
    }

    @Test("the demand controller: misses that come and go, and p99 around the SLO, make no change")
    func demandOscillation() {
        let controller = DemandController(minimum: 10, maximum: 10_000, slo: Self.slo)
        let run = (0..<200).map { (i: Int) -> CapacityWindow in
            let high = i % 2 == 0
            let p99: Duration = Self.slo * (high ? 1.4 : 0.6)
            let misses: UInt64 = high ? 1000 : 0
            return CapacityWindow(end: Self.window * (i + 1), p99: p99, gets: 10_000, misses: misses,
                                  idleLowWater: high ? 0 : 50)
        }
        #expect(Self.changes(controller.replay(run, from: 100)).isEmpty)
    }

    @Test("a slow dependency (p99 over the SLO, no misses) grows the study's rule and leaves the demand controller still")
    func slowDependency() {
        let run = Self.windows(60, ratio: 2, gets: 10_000, misses: 0, idle: 40)
        let study = SLORule(slo: Self.slo, minimum: 10).replay(run, from: 100)
        #expect(study.last!.capacity > 100)
        let demand = DemandController(minimum: 10, maximum: 10_000, slo: Self.slo).replay(run, from: 100)
        #expect(demand.allSatisfy { $0.capacity == 100 })
        #expect(demand.contains { $0.reason == .sloVeto }, "the guard vetoes the shrink that the idle memory calls for")
    }

    @Test("the demand controller grows a byte capacity by what its misses stand for")
    func demandUnits() {
        let controller = DemandController(minimum: 0, maximum: 1 << 30)
        let short = [1, 2].map {
            CapacityWindow(end: Self.window * $0, gets: 100, misses: 10, unitsPerMiss: 4096)
        }
        #expect(controller.replay(short, from: 8192).last == CapacityDecision(capacity: 8192 + 10 * 4096, reason: .grow))
        #expect(controller.replay(short, from: 0).last == CapacityDecision(capacity: 10 * 4096, reason: .grow))
    }

    @Test("objects that come home from another node do not count as unused")
    func remoteReturnsAreInTransit() {
        let run = Self.windows(20, ratio: 1, gets: 10_000, misses: 0, idle: 30, remote: 30)
        #expect(Self.changes(DemandController(minimum: 10, maximum: 1000).replay(run, from: 100)).isEmpty)
    }
}

/// The capacity interface on the pools: what a partition keeps above its limit goes back.
@Suite("Elastic sizing: pools obey their idle limits")
struct IdleLimitTests {
    @Test("an object pool's idle limit destroys the idle objects over it, now and on later returns")
    func objectPool() throws {
        let backing = try LocalPool(blockSize: 64, capacityPerNode: 4 << 20)
        let pool = try ObjectPool(backing: backing, maxIdle: 1000, cacheCapacity: 8, factory: { 0 }, reset: { $0 = 0 })
        /// Takes `count` leases at once, then gives them all back.
        func cycle(_ count: Int) throws {
            let lease = try pool.lease()
            if count > 1 { try cycle(count - 1) }
            lease.release()
        }
        try cycle(600)
        pool.trim()  // the cache goes to the list
        #expect(pool.idleAmount(partition: 0) == 600)
        pool.setIdleLimit(100, partition: 0)
        #expect(pool.idleAmount(partition: 0) == 100)
        #expect(pool.idleCount == 100)
        let outstandingBlocks = backing.statistics().outstanding
        #expect(outstandingBlocks == 100, "the destroyed objects' blocks went back to the backing pool")
        try cycle(300)
        pool.trim()
        #expect(pool.idleAmount(partition: 0) <= 100)
        #expect(pool.idleUnit == .objects && pool.idlePartitionCount == backing.partitionCount)
    }

    @Test("a local pool over its idle limit gives the arena's free pages back; under it, it keeps them")
    func localPool() throws {
        let pool = try LocalPool(blockSize: 4096, capacityPerNode: 64 << 20)
        var blocks: [UnsafeMutableRawPointer] = []
        for _ in 0..<4000 { blocks.append(try pool.allocate()) }
        for block in blocks { pool.deallocate(block) }
        pool.trim()
        for _ in 0..<2000 { blocks.append(try pool.allocate()) }
        let live = blocks.suffix(2000)
        for block in live.prefix(1000) { pool.deallocate(block) }
        let idle = pool.idleAmount(partition: 0)
        #expect(idle >= 1000 * 4096 - 256 * 4096)
        pool.setIdleLimit(idle + 1, partition: 0)
        #expect(pool.idleAmount(partition: 0) == idle, "under its limit it keeps what it has")
        pool.setIdleLimit(64 << 10, partition: 0)
        #expect(pool.idleAmount(partition: 0) <= 64 << 10, "idle after the limit: \(pool.idleAmount(partition: 0))")
        for block in live.suffix(1000) { pool.deallocate(block) }
        #expect(pool.idleUnit == .bytes && pool.idleNode(ofPartition: 0) != nil)
    }

    @Test("a heap node over its idle limit flushes the caches and gives its free pages back")
    func heap() throws {
        let heap = try NUMAHeap(capacityPerNode: 64 << 20, purger: false)
        var blocks: [UnsafeMutableRawPointer] = []
        for _ in 0..<10_000 { blocks.append(try heap.allocate(byteCount: 1000)) }
        for block in blocks { heap.deallocate(block) }
        let idle = heap.idleAmount(partition: 0)
        #expect(idle >= 9_000_000, "idle before: \(idle)")
        heap.setIdleLimit(idle, partition: 0)
        #expect(heap.idleAmount(partition: 0) == idle, "at its limit it keeps what it has")
        heap.setIdleLimit(1 << 20, partition: 0)
        #expect(heap.idleAmount(partition: 0) <= 1 << 20, "idle after: \(heap.idleAmount(partition: 0))")
        #expect(heap.idleUnit == .bytes && heap.idleNode(ofPartition: 0) != nil)
    }
}
