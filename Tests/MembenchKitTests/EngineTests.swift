import Foundation
@testable import MembenchKit
import NUMA
import Testing

@Suite("Chain building")
struct ChainTests {
    /// Walks the chain and returns the visited slot addresses until it returns to the start.
    static func walk(_ chain: Chain, limit: Int) -> [UInt] {
        var visited: [UInt] = []
        var pointer = chain.start
        repeat {
            visited.append(UInt(bitPattern: pointer))
            pointer = pointer.load(as: UnsafeRawPointer.self)
        } while pointer != chain.start && visited.count <= limit
        return visited
    }

    @Test("Sattolo's shuffle yields one cycle over every item", arguments: [1, 2, 3, 10, 1000])
    func sattolo(n: Int) {
        var generator = SplitMix64(seed: UInt64(n))
        let order = Chain.sattoloOrder(n, using: &generator)
        #expect(order.count == n)
        #expect(Set(order).count == n)
        #expect(order.first == 0)
    }

    @Test("the chain is one cycle that covers every slot", arguments: [ChasePattern.chase, .sequential])
    func oneCycle(pattern: ChasePattern) throws {
        let region = try MemoryRegion(size: 1 << 20)
        let groups = (0..<16).map { region.baseAddress + $0 * (64 << 10) }
        let chain = Chain.build(groups: groups, groupBytes: 64 << 10, layout: SlotLayout(stride: 128, offsets: .zero), pattern: pattern, seed: 42)
        #expect(chain.slots == 8192)
        let visited = Self.walk(chain, limit: 10_000)
        #expect(visited.count == 8192)
        #expect(Set(visited).count == 8192)
        let base = UInt(bitPattern: region.baseAddress)
        #expect(visited.allSatisfy { ($0 - base) % 128 == 0 && $0 - base < 1 << 20 })
        if pattern == .sequential { #expect(visited == visited.sorted()) }
    }

    @Test("random slot offsets: one cycle over every slot, each inside its own stride, at multiples of 8",
          arguments: [ChasePattern.chase, .sequential], [64, 256, 24])
    func mixedOffsets(pattern: ChasePattern, stride: Int) throws {
        let region = try MemoryRegion(size: 1 << 20)
        let groupBytes = (16 << 10) / stride * stride
        let groups = (0..<16).map { region.baseAddress + $0 * (64 << 10) }
        let layout = SlotLayout(stride: stride, seed: 5)
        let chain = Chain.build(groups: groups, groupBytes: groupBytes, layout: layout, pattern: pattern, seed: 42)
        let perGroup = groupBytes / stride
        #expect(chain.slots == 16 * perGroup)
        let visited = Self.walk(chain, limit: 20_000)
        #expect(visited.count == chain.slots)
        var strides = Set<Int>()
        var offsets = Set<Int>()
        let base = UInt(bitPattern: region.baseAddress)
        for address in visited {
            let group = Int(address - base) / (64 << 10), inGroup = Int(address - base) % (64 << 10)
            #expect(inGroup + 8 <= groupBytes, "a slot stays inside its group")
            let (slot, offset) = inGroup.quotientAndRemainder(dividingBy: stride)
            #expect(offset % 8 == 0 && offset + 8 <= stride, "offset \(offset) inside stride \(stride)")
            #expect(offset == layout.offset(ofSlot: group * perGroup + slot))
            strides.insert(group * perGroup + slot)
            offsets.insert(offset)
        }
        #expect(strides.count == chain.slots, "every stride holds exactly one slot")
        #expect(offsets.count == min(stride / 8, 64), "offsets spread over the stride: \(offsets.sorted())")
    }

    @Test("threads of one run get different offsets for the same slot, where the stride has room")
    func offsetsPerThread() {
        let threads = 4
        let layouts = (0..<threads).map { SlotLayout(stride: 256, thread: $0, threads: threads, seed: 11) }
        for x in 0..<1000 {
            #expect(Set(layouts.map { $0.offset(ofSlot: x) }).count == threads, "slot \(x)")
        }
        // Every position equally often: 64 entries over 32 positions is twice each.
        for layout in layouts {
            let uses = Dictionary((0..<64).map { (layout.offset(ofSlot: $0), 1) }, uniquingKeysWith: +)
            #expect(uses.count == 32 && uses.values.allSatisfy { $0 == 2 }, "\(uses)")
        }
        let odd = Dictionary((0..<64).map { (SlotLayout(stride: 24, seed: 2).offset(ofSlot: $0), 1) }, uniquingKeysWith: +)
        #expect(odd.keys.sorted() == [0, 8, 16] && odd.values.allSatisfy { $0 == 21 || $0 == 22 }, "\(odd)")
        #expect(SlotLayout(stride: 256, offsets: .zero).offset(ofSlot: 7) == 0)
        #expect(SlotLayout(stride: 8).offset(ofSlot: 3) == 0, "an 8-byte stride has one place")
    }

    @Test("TLB-locality grouping keeps each group's slots together, in random order")
    func grouping() throws {
        let region = try MemoryRegion(size: 1 << 20)
        let group = 32 << 10
        let groups = (0..<32).map { region.baseAddress + $0 * group }
        let chain = Chain.build(groups: groups, groupBytes: group, layout: SlotLayout(stride: 64), pattern: .chase, seed: 7)
        let visited = Self.walk(chain, limit: 20_000)
        let base = UInt(bitPattern: region.baseAddress)
        let perGroup = group / 64
        var groupOrder: [Int] = []
        for run in stride(from: 0, to: visited.count, by: perGroup) {
            let ids = Set(visited[run..<run + perGroup].map { Int($0 - base) / group })
            #expect(ids.count == 1, "a run of \(perGroup) visits stays in one group")
            groupOrder.append(ids.first!)
        }
        #expect(Set(groupOrder).count == 32)
        #expect(groupOrder != groupOrder.sorted(), "groups are visited in shuffled order")
        let inFirst = visited[0..<perGroup].map { Int($0 - base) % group }
        #expect(inFirst != inFirst.sorted(), "slots inside a group are shuffled")
    }

    @Test("the same seed builds the same chain")
    func deterministic() throws {
        let a = try MemoryRegion(size: 256 << 10), b = try MemoryRegion(size: 256 << 10)
        let chainA = Chain.build(groups: [a.baseAddress], groupBytes: 256 << 10, layout: SlotLayout(stride: 256, seed: 9), pattern: .chase, seed: 9)
        let chainB = Chain.build(groups: [b.baseAddress], groupBytes: 256 << 10, layout: SlotLayout(stride: 256, seed: 9), pattern: .chase, seed: 9)
        let offsetsA = Self.walk(chainA, limit: 2000).map { $0 - UInt(bitPattern: a.baseAddress) }
        let offsetsB = Self.walk(chainB, limit: 2000).map { $0 - UInt(bitPattern: b.baseAddress) }
        #expect(offsetsA == offsetsB)
    }

    @Test("the chase follows the chain for exactly the given loads")
    func chaseLoads() throws {
        let region = try MemoryRegion(size: 64 << 10)
        let chain = Chain.build(groups: [region.baseAddress], groupBytes: 64 << 10, layout: SlotLayout(stride: 64, offsets: .zero), pattern: .sequential, seed: 1)
        let end = chase(from: chain.start, loads: 37)
        #expect(UInt(bitPattern: end) == UInt(bitPattern: region.baseAddress) + 37 * 64)
        #expect(chase(from: chain.start, loads: 1024) == chain.start)
    }
}

@Suite("Latency statistics")
struct StatisticsTests {
    @Test("mean, deviation and extremes match hand-computed values")
    func handComputed() {
        var stats = LatencyStatistics()
        for value in [80.0, 82, 84, 86, 88] { stats.record(value) }
        let summary = stats.summary
        #expect(summary.samples == 5)
        #expect(abs(summary.mean - 84) < 1e-9)
        #expect(abs(summary.standardDeviation - 10.0.squareRoot()) < 1e-9)  // sample variance 10
        #expect(summary.min == 80 && summary.max == 88)
        #expect(abs(summary.p50 - 84) < 0.1)
        #expect(abs(summary.p99 - 88) < 0.1)
    }

    @Test("merging equals recording everything in one")
    func merge() {
        var a = LatencyStatistics(), b = LatencyStatistics(), all = LatencyStatistics()
        for i in 0..<1000 {
            let value = 100 + Double(i % 37) * 1.5
            if i % 3 == 0 { a.record(value) } else { b.record(value) }
            all.record(value)
        }
        a.merge(b)
        #expect(a.count == all.count)
        #expect(abs(a.mean - all.mean) < 1e-9)
        #expect(abs(a.standardDeviation - all.standardDeviation) < 1e-9)
        #expect(a.percentile(90) == all.percentile(90))
    }

    @Test("windows: each closes after its time, best and median over them, a last one under half dropped")
    func windows() {
        // 1 s windows of 100 ms samples: 50 ns per load for 10 samples, then 100 ns for 10,
        // then 80 ns for 10, then 4 samples (0.4 of a window) at 10 ns.
        var stats = LatencyStatistics(windowSeconds: 1)
        for (ns, count) in [(50, 10), (100, 10), (80, 10), (10, 4)] {
            for _ in 0..<count { stats.record(nanoseconds: 100_000_000, loads: 100_000_000 / ns) }
        }
        stats.finish()
        #expect(stats.windows.closed.map(\.nanosecondsPerLoad) == [50, 100, 80], "the short last window is dropped")
        #expect(stats.summary.windows == 3 && stats.summary.bestWindow == 50 && stats.summary.medianWindow == 80)
        #expect(stats.summary.windowSeconds == 1)

        var short = LatencyStatistics(windowSeconds: 1)
        short.record(nanoseconds: 1_000_000, loads: 10_000)
        short.finish()
        #expect(short.summary.windows == 1 && short.summary.bestWindow == 100, "a run shorter than a window has one")
        #expect(LatencyStatistics().summary.bestWindow == nil)

        var half = LatencyStatistics(windowSeconds: 1)
        for _ in 0..<15 { half.record(nanoseconds: 100_000_000, loads: 1_000_000) }
        half.finish()
        #expect(half.summary.windows == 2, "a last window of half the length counts")
    }

    @Test("merged windows are every thread's window k, weighted by loads")
    func mergedWindows() {
        var a = WindowStatistic(seconds: 1), b = WindowStatistic(seconds: 1)
        a.add(nanoseconds: 1_000_000_000, loads: 10_000_000)  // 100 ns
        a.add(nanoseconds: 1_000_000_000, loads: 20_000_000)  // 50 ns
        b.add(nanoseconds: 1_000_000_000, loads: 5_000_000)   // 200 ns
        a.finish()
        b.finish()
        a.merge(b)
        #expect(a.count == 1, "window 2 only one thread reached is dropped")
        #expect(abs((a.best ?? 0) - 2e9 / 15e6) < 1e-9)
    }

    @Test("percentiles of a known distribution")
    func percentiles() {
        var stats = LatencyStatistics()
        for i in 1...1000 { stats.record(Double(i)) }
        #expect(abs(stats.percentile(50) - 500) <= 1)
        #expect(abs(stats.percentile(90) - 900) <= 1)
        #expect(abs(stats.percentile(99.9) - 999) <= 1)
    }
}

@Suite("Remote-access share")
struct PlacementShareTests {
    @Test("the share comes from the page placement, weighted by slots")
    func known() {
        // Four 4 KiB pages: nodes 0, 1, 1, 0; 64-byte stride, so 64 slots per page.
        var report = PlacementReport()
        report.add(PagePlacement(pageSize: 4096, nodes: [0, 1, 1, 0]), base: 0x10000, groupBytes: 4 * 4096, layout: SlotLayout(stride: 64, offsets: .zero), firstSlot: 0)
        #expect(report.pagesPerNode == [0: 2, 1: 2])
        #expect(report.slotsPerNode == [0: 128, 1: 128])
        #expect(report.remoteShare(from: 0) == 0.5)
        var skewed = PlacementReport()
        skewed.add(PagePlacement(pageSize: 4096, nodes: [1, 1, 1, 0]), base: 0x10000, groupBytes: 4 * 4096, layout: SlotLayout(stride: 64, offsets: .zero), firstSlot: 0)
        #expect(skewed.remoteShare(from: 0) == 0.75)
        #expect(skewed.remoteShare(from: 1) == 0.25)
        #expect((report + skewed).remoteShare(from: 0) == 0.625)
        #expect(skewed.pagesText == "0:1;1:3")
    }

    @Test("a group that starts inside a page counts only its own slots")
    func partialPages() {
        var report = PlacementReport()
        // 6 KiB from the middle of page 0 into page 1, stride 1 KiB: 2 slots on page 0, 4 on page 1.
        report.add(PagePlacement(pageSize: 4096, nodes: [2, 3]), base: 0x20800, groupBytes: 6144, layout: SlotLayout(stride: 1024, offsets: .zero), firstSlot: 0)
        #expect(report.slotsPerNode == [2: 2, 3: 4])
        #expect(report.unplacedSlots == 0)
    }

    @Test("slots offset inside their stride count on the page they sit on")
    func offsetSlots() {
        // Stride 512 from 0x10F00: every stride spans the page boundary at its middle when the
        // group starts 256 bytes before a page; where the slot sits decides its page.
        let layout = SlotLayout(stride: 512, seed: 3)
        var report = PlacementReport()
        var expected: [Int: Int] = [:]
        // 64 groups of 8 slots at the same place, numbered on: each uses other offsets.
        for group in 0..<64 {
            report.add(PagePlacement(pageSize: 4096, nodes: [0, 1, 2]), base: 0x10F00, groupBytes: 4096, layout: layout,
                       firstSlot: group * 8)
            for k in 0..<8 {
                let address = 0x10F00 + k * 512 + layout.offset(ofSlot: group * 8 + k)
                expected[(address - 0x10000) / 4096, default: 0] += 1  // page index = node here
            }
        }
        #expect(report.slotsPerNode == expected)
        #expect(expected[0, default: 0] > 0 && expected[1, default: 0] > 0, "the first slots straddle pages: \(expected)")
        #expect(report.totalSlots == 512)
    }

    @Test("untouched pages count as remote, not local")
    func unplaced() {
        var report = PlacementReport()
        report.add(PagePlacement(pageSize: 4096, nodes: [0, -2]), base: 0, groupBytes: 8192, layout: SlotLayout(stride: 4096, offsets: .zero), firstSlot: 0)
        #expect(report.unplacedSlots == 1)
        #expect(report.remoteShare(from: 0) == 0.5)
    }
}

@Suite("Latency runs on this machine", .serialized)
struct LatencyRunTests {
    static func options(_ strategy: PoolStrategy) -> RunOptions {
        var options = RunOptions()
        options.strategy = strategy
        options.size = 8 << 20
        options.length = .duration(0.2)
        options.warmup = 0.02
        return options
    }

    @Test("every strategy measures, and memory on the thread's own node is 0% remote",
          arguments: PoolStrategy.allCases)
    func local(strategy: PoolStrategy) throws {
        let node = Topology.current.bindableNodes.ids[0]
        let cpu = try #require(Topology.current.allowedCPUs(on: [node]).first)
        var options = Self.options(strategy)
        options.placement = PlacementOptions(membind: [node], physcpubind: [cpu])
        let result = try LatencyRunner.run(options.resolve())
        #expect(result.threads.count == 1)
        #expect(result.total.latency.samples > 10)
        #expect(result.total.latency.mean > 0)
        #expect(result.total.latency.min <= result.total.latency.p50 && result.total.latency.p50 <= result.total.latency.max)
        #expect(result.total.remoteShare == 0)
        #expect(result.total.placement.pagesPerNode == [node: (8 << 20) / PagePlacement.basePageSize])
        #expect(result.threads[0].cpu == cpu && result.threads[0].node == node)
        #expect(!result.total.placementChanged)
    }

    @Test("a fixed sample count is honoured, with several threads")
    func samples() throws {
        var options = Self.options(.direct)
        options.length = .samples(50)
        options.threads = Topology.current.allowedCPUs.count
        let result = try LatencyRunner.run(options.resolve())
        #expect(result.threads.count == options.threads)
        #expect(result.threads.allSatisfy { $0.latency.samples == 50 })
        #expect(result.total.latency.samples == 50 * options.threads)
        #expect(Set(result.threads.map(\.cpu)).count == options.threads)
    }

    @Test("the default size is at least four times the last-level cache")
    func defaultSize() {
        let llc = Int(Topology.current.lastLevelCache?.size ?? 0)
        #expect(RunOptions.defaultSize() >= 4 * llc)
        #expect(RunOptions.defaultSize() >= 256 << 20)
    }
}

@Suite("Allocator rounds")
struct AllocSummaryTests {
    /// A round of `strategy` at `threads` threads that took `ns` per pair per thread.
    static func result(_ strategy: AllocStrategy, threads: Int, round: Int, ns: Double) -> AllocResult {
        let pairs: UInt64 = 1_000_000
        return AllocResult(strategy: strategy, allocatorName: strategy.rawValue, threads: threads, round: round,
                           pairs: pairs, seconds: ns * Double(pairs) / Double(threads) / 1e9, statistics: nil)
    }

    @Test("medians over rounds, and ratios taken within each round")
    func summary() throws {
        // Round 1 is slow for everything (the machine, not the allocator): the ratios within
        // each round stay the same, and the medians ignore the outlier.
        let slow = [1.0, 3.0, 1.0]
        var results: [AllocResult] = []
        for round in 0..<3 {
            results.append(Self.result(.local, threads: 1, round: round, ns: 5 * slow[round]))
            results.append(Self.result(.local, threads: 2, round: round, ns: 5.5 * slow[round]))
            results.append(Self.result(.malloc, threads: 1, round: round, ns: 12.5 * slow[round]))
            results.append(Self.result(.malloc, threads: 2, round: round, ns: 11 * slow[round]))
        }
        let summaries = AllocBenchmark.summarize(results)
        #expect(summaries.map(\.strategy) == [.local, .local, .malloc, .malloc])
        #expect(summaries.map(\.threads) == [1, 2, 1, 2])
        let local = summaries[0], local2 = summaries[1], malloc2 = summaries[3]
        #expect(local.rounds.count == 3)
        #expect(abs(local.nanosecondsPerPair - 5) < 1e-9)
        #expect(abs(local.fastest - 5) < 1e-9 && abs(local.slowest - 15) < 1e-9)
        #expect(abs((local.overMalloc ?? 0) - 2.5) < 1e-9)
        #expect(abs((local2.overMalloc ?? 0) - 2) < 1e-9)
        #expect(abs((local2.scaling ?? 0) - 2 * 5 / 5.5) < 1e-9)
        #expect(abs((malloc2.scaling ?? 0) - 2 * 12.5 / 11) < 1e-9)
        #expect(abs((malloc2.overMalloc ?? 0) - 1) < 1e-9)
        let table = AllocBenchmark.table(results)
        #expect(table.contains("min-max") && table.contains("Medians of 3 rounds"))
        #expect(table.contains("2.50x"))
    }

    @Test("without malloc or a 1-thread row there is no ratio")
    func noRatios() {
        let summaries = AllocBenchmark.summarize([Self.result(.local, threads: 2, round: 0, ns: 5)])
        #expect(summaries.count == 1)
        #expect(summaries[0].overMalloc == nil && summaries[0].scaling == nil)
        #expect(!AllocBenchmark.table([Self.result(.local, threads: 1, round: 0, ns: 5)]).contains("min-max"))
    }
}

@Suite("Bad input is refused with one line naming the setting")
struct ValidationTests {
    static func check(_ change: (inout RunOptions) -> Void) -> MembenchError? {
        var options = RunOptions()
        options.size = 1 << 20
        change(&options)
        do {
            _ = try options.resolve()
            return nil
        } catch {
            return error
        }
    }

    @Test("usage errors exit 64 and name the setting, not a flag")
    func usage() {
        let missing = (Topology.current.nodes.map(\.id).max() ?? 0) + 5
        let cases: [(Setting, (inout RunOptions) -> Void)] = [
            (.threads, { $0.threads = 0 }),
            (.threads, { $0.threads = 100_000 }),
            (.threads, { $0.threads = Topology.current.allowedCPUs.count + 1 }),
            (.stride, { $0.stride = 12 }),
            (.tlbLocality, { $0.tlbLocality = 100 }),
            (.size, { $0.size = 8 }),
            (.bind, { $0.placement.membind = [missing] }),
            (.interleave, { $0.placement.interleave = [0, missing] }),
            (.cpuNodes, { $0.placement.cpunodebind = [missing] }),
            (.bind, { $0.placement.membind = [0]; $0.placement.interleave = [0] }),
            (.cpuNodes, { $0.placement.cpunodebind = [0]; $0.placement.physcpubind = [0] }),
            (.cpus, { $0.placement.physcpubind = [100_000 % 8000] }),
            (.loadsPerSample, { $0.loadsPerSample = 10 }),
            (.duration, { $0.length = .duration(-1) }),
            (.samples, { $0.length = .samples(0) }),
        ]
        for (setting, change) in cases {
            let error = Self.check(change)
            #expect(error?.exitCode == 64, "\(setting)")
            #expect(error?.setting == setting, "\(String(describing: error))")
            // The kit names the setting in its own words; only the command line speaks of flags.
            #expect(error?.description.hasPrefix(setting.rawValue + ": ") == true, "\(String(describing: error))")
            #expect(error?.description.contains("--") == false, "\(String(describing: error))")
            #expect(error?.description.contains("\n") == false)
        }
    }

    @Test("a size beyond free memory is a refused run, exit 1")
    func tooLarge() {
        let error = Self.check { $0.size = 1 << 50 }
        #expect(error?.exitCode == 1)
        #expect(error?.setting == .size)
    }

    @Test("threads are spread over nodes in turn")
    func spread() {
        let topology = Topology.current
        let cpus = RunOptions.spread(topology.allowedCPUs, count: topology.allowedCPUs.count, topology: topology)
        #expect(Set(cpus) == Set(topology.allowedCPUs.ids))
    }

    @Test("byte sizes parse with binary units and refuse the rest")
    func sizes() {
        #expect(ByteSize.parse("64") == 64)
        #expect(ByteSize.parse("4KB") == 4096)
        #expect(ByteSize.parse("256MiB") == 256 << 20)
        #expect(ByteSize.parse("1GB") == 1 << 30)
        #expect(ByteSize.parse("1gib") == 1 << 30)
        for bad in ["1QB", "-1", "", "GB", "1.5GB", "99999999999999999999", "8589934592TB"] {
            #expect(ByteSize.parse(bad) == nil, "\(bad)")
        }
        #expect(ByteSize.format(256 << 20) == "256MiB")
        #expect(ByteSize.format(1000) == "1000B")
    }

    @Test("durations print in a unit that reads well, down to nanoseconds (1ns was 1e-06ms)", arguments: [
        (2.0, "2s"), (0.25, "0.25s"), (0.05, "50ms"), (250e-6, "250us"), (1e-9, "1ns"), (0.0, "0s"),
    ])
    func durations(seconds: Double, text: String) {
        #expect(TimeSpan.format(seconds) == text)
        #expect(TimeSpan.parse(text).map { abs($0 - seconds) <= seconds * 1e-9 } == true, "\(text) parses back")
    }
}
