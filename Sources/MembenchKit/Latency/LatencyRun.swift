import NUMA
import NUMAPool
import Synchronization

/// One thread's measurements.
public struct ThreadResult: Sendable, Codable, Equatable {
    public var thread: Int
    public var cpu: Int
    public var node: Int
    public var latency: LatencySummary
    public var accesses: UInt64
    public var accessesPerSecond: Double
    /// The share of accesses to memory on another node, from the placement read before the run.
    public var remoteShare: Double
    /// The same share from the placement read again after the run.
    public var remoteShareAfter: Double
    public var placement: PlacementReport
    /// Whether the page placement after the run differs from before (NUMA balancing, migration).
    public var placementChanged: Bool
    /// Whether the thread was seen off its CPU during the run.
    public var migrated: Bool
}

/// A finished latency run of one strategy.
public struct RunResult: Sendable {
    public var options: RunOptions
    /// The round of a `compare` it was measured in, from 0.
    public var round = 0
    public var size: Int
    public var groupBytes: Int
    public var threads: [ThreadResult]
    public var total: ThreadResult
    public var environment: RunEnvironment
    /// How the remote share was found.
    public var remoteSource = "page-placement"
    /// The memory policy the run ran under, as records and tables show it.
    public var policyText = "inherit"
    /// How the global pool was filled (`spread:0,1`), and the pages per node it got.
    public var globalFill: String?
    public var poolPagesPerNode: [Int: Int]?
    /// The percentile curve of all samples, for plots.
    public var curve: [LatencyPoint]
}

public struct LatencyPoint: Sendable, Codable, Equatable {
    public var percentile: Double
    public var nanoseconds: Double
}

#if canImport(Glibc)
import Glibc
#endif

/// Runs latency measurements.
public enum LatencyRunner {
    /// Reports progress in [0, 1]; called from the first worker thread.
    public typealias Progress = @Sendable (Double) -> Void

    /// Measures one strategy of a run resolved once (`RunOptions.resolve`): each thread on its
    /// own CPU chases its own chain over memory from the strategy, and reports latency and
    /// placement. `compare` runs the same resolution for each strategy.
    public static func run(_ run: ResolvedRun, topology: Topology = .current,
                           progress: Progress? = nil) throws(MembenchError) -> RunResult {
        let environment = RunEnvironment.current(topology: topology)
        let source = try MemorySource.make(for: run, topology: topology)
        let start = StartLine(parties: run.placement.cpus.count)
        let workers = try startPinnedThreads(on: run.placement.cpus, role: "a thread", lines: [start]) { index, cpu in
            try measure(run, index: index, cpu: cpu, source: source, start: start,
                        topology: topology, progress: index == 0 ? progress : nil)
        }
        let results = try joinAll(workers)
        var result = summarize(run, results: results, environment: environment)
        if let placement = source.globalPlacement {
            result.globalFill = placement.fill
            result.poolPagesPerNode = placement.pages
        }
        return result
    }

    static func measure(_ run: ResolvedRun, index: Int, cpu: Int, source: MemorySource, start: StartLine,
                        topology: Topology, progress: Progress?) throws -> (ThreadResult, LatencyStatistics) {
        var ready = false
        defer { if !ready { try? start.arriveAndWait() } }
        let options = run.options
        if let policy = run.placement.policy {
            do { try policy.applyToCurrentThread() } catch { throw MembenchError.from(error, setting: policy.setting) }
        }
        let memory = try source.acquire(size: run.size, groupBytes: run.groupBytes, pages: options.pageMode)
        defer { source.release(memory) }
        let layout = SlotLayout(stride: options.stride, offsets: options.slotOffsets, thread: index,
                                threads: run.placement.cpus.count, seed: options.seed)
        let chain = Chain.build(groups: memory.groups, groupBytes: run.groupBytes, layout: layout,
                                pattern: options.pattern, seed: options.seed &+ UInt64(index))
        let node = topology.node(ofCPU: cpu) ?? -1
        let before = try PlacementReport.measure(groups: memory.groups, groupBytes: run.groupBytes, layout: layout)
        ready = true
        try start.arriveAndWait()
        if index == 0 { source.notePlacement() }

        var pointer = chain.start
        let loads = options.loadsPerSample
        let warmupEnd = monotonicNanoseconds() + UInt64(options.warmup * 1e9)
        repeat { pointer = chase(from: pointer, loads: loads) } while monotonicNanoseconds() < warmupEnd

        var statistics = LatencyStatistics(windowSeconds: options.window)
        var migrated = false
        let timed = timedChase(from: pointer, loads: loads, length: options.length, into: &statistics) { fraction in
            if Topology.currentCPU().cpu != cpu { migrated = true }
            progress?(fraction)
        }
        statistics.finish()
        let elapsed = Double(timed.ended - timed.began) / 1e9
        ValueSink.keep(timed.pointer)
        if Topology.currentCPU().cpu != cpu { migrated = true }
        let after = try PlacementReport.measure(groups: memory.groups, groupBytes: run.groupBytes, layout: layout)
        let accesses = UInt64(statistics.count) * UInt64(loads)
        let result = ThreadResult(thread: index, cpu: cpu, node: node, latency: statistics.summary, accesses: accesses,
                            accessesPerSecond: elapsed > 0 ? Double(accesses) / elapsed : 0,
                            remoteShare: before.remoteShare(from: node), remoteShareAfter: after.remoteShare(from: node),
                            placement: before,
                            placementChanged: before != after, migrated: migrated)
        return (result, statistics)
    }

    static func summarize(_ run: ResolvedRun, results: [(ThreadResult, LatencyStatistics)],
                          environment: RunEnvironment) -> RunResult {
        let sorted = results.map(\.0).sorted { $0.thread < $1.thread }
        var merged = LatencyStatistics()
        for (_, statistics) in results { merged.merge(statistics) }
        let accesses = sorted.reduce(UInt64(0)) { $0 + $1.accesses }
        func weighted(_ share: (ThreadResult) -> Double) -> Double {
            accesses == 0 ? 0 : sorted.reduce(0.0) { $0 + share($1) * Double($1.accesses) } / Double(accesses)
        }
        let total = ThreadResult(
            thread: -1, cpu: -1, node: -1, latency: merged.summary, accesses: accesses,
            accessesPerSecond: sorted.reduce(0) { $0 + $1.accessesPerSecond }, remoteShare: weighted(\.remoteShare),
            remoteShareAfter: weighted(\.remoteShareAfter),
            placement: sorted.map(\.placement).reduce(PlacementReport(), +),
            placementChanged: sorted.contains { $0.placementChanged }, migrated: sorted.contains { $0.migrated })
        var result = RunResult(options: run.options, size: run.size / run.groupBytes * run.groupBytes,
                               groupBytes: run.groupBytes, threads: sorted, total: total, environment: environment,
                               curve: merged.curve().map { LatencyPoint(percentile: $0.percentile, nanoseconds: $0.nanoseconds) })
        result.policyText = run.placement.policyText
        if total.placementChanged { result.remoteSource = "page-placement, changed during the run" }
        return result
    }
}
