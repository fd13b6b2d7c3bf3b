import Foundation
import NUMA
import NUMAPool

/// One strategy at one thread count.
public struct AllocResult: Sendable {
    public var strategy: AllocStrategy
    public var allocatorName: String
    public var threads: Int
    /// The round it was measured in, from 0.
    public var round = 0
    public var pairs: UInt64
    public var seconds: Double
    /// Page faults (minor and major) the measuring threads took inside the timed window
    /// (`getrusage(RUSAGE_THREAD)`); one-time set-up such as faulting a block in is outside it.
    public var pageFaults = 0
    /// Pool counters over the run; nil for malloc.
    public var statistics: PoolStatistics?

    public var pairsPerSecond: Double { seconds > 0 ? Double(pairs) / seconds : 0 }
    /// Wall time per get+put pair, per thread.
    public var nanosecondsPerPair: Double { pairs > 0 ? seconds * 1e9 * Double(threads) / Double(pairs) : 0 }
}

/// One allocator at one thread count over every round.
public struct AllocSummary: Sendable {
    struct Key: Hashable { var strategy: AllocStrategy; var threads: Int }

    public var strategy: AllocStrategy
    public var allocatorName: String
    public var threads: Int
    public var rounds: [AllocResult]
    /// The median over rounds of the time per pair per thread, and of the throughput.
    public var nanosecondsPerPair: Double
    public var pairsPerSecond: Double
    /// The fastest and slowest rounds' ns per pair.
    public var fastest: Double
    public var slowest: Double
    /// The pool counters of the round with the median time (of the faster middle round for an
    /// even count); nil for malloc.
    public var statistics: PoolStatistics?
    /// Throughput over the same allocator's 1-thread throughput in the same round: the median
    /// over rounds; nil without a 1-thread row.
    public var scaling: Double?
    /// malloc's time per pair over this allocator's, at the same thread count in the same round:
    /// the median over rounds; nil when malloc was not measured.
    public var overMalloc: Double?
}

extension AllocBenchmark {
    public static func table(_ results: [AllocResult], options: AllocOptions? = nil) -> String {
        let summaries = summarize(results)
        let rounds = Set(results.map(\.round)).count
        var columns = ["allocator", "threads", "ns/pair"]
        if rounds > 1 { columns.append("min-max") }
        columns += ["pairs/s", "scaling", "vs malloc", "reuse", "fresh", "remote returns", "fragmentation"]
        var table = TextTable(columns)
        for summary in summaries {
            let stats = summary.statistics
            var row = [summary.allocatorName, String(summary.threads), Format.fixed(summary.nanosecondsPerPair, 2)]
            if rounds > 1 { row.append("\(Format.fixed(summary.fastest, 2))-\(Format.fixed(summary.slowest, 2))") }
            row += [Format.rate(summary.pairsPerSecond),
                    summary.scaling.map { String(format: "%.2fx", $0) } ?? "",
                    summary.overMalloc.map { String(format: "%.2fx", $0) } ?? "",
                    stats.map { Format.percent($0.reuseRate) } ?? "", stats.map { Format.percent($0.freshAllocationRate) } ?? "",
                    stats.map { String($0.remoteReturns) } ?? "", stats.map { Format.percent($0.fragmentation) } ?? ""]
            table.add(row)
        }
        var text = table.render()
        if let options, let heap = results.first(where: { $0.strategy == .heap }) {
            text += "\nSizes \(options.sizes?.description ?? String(options.blockSize)), frees \(options.frees.rawValue); heap: bytes asked for over bytes its size classes take: \(Format.fixed(sizeFit(options, threads: heap.threads), 3))\n"
        }
        if rounds > 1 {
            text += "\nMedians of \(rounds) rounds; scaling and vs malloc are medians of each round's own ratio.\n"
        }
        return text
    }

    /// Every round of each allocator at each thread count, in the order first measured.
    public static func summarize(_ results: [AllocResult]) -> [AllocSummary] {
        var keys: [AllocSummary.Key] = []
        var groups: [AllocSummary.Key: [AllocResult]] = [:]
        for result in results {
            let key = AllocSummary.Key(strategy: result.strategy, threads: result.threads)
            if groups[key] == nil { keys.append(key) }
            groups[key, default: []].append(result)
        }
        func row(_ strategy: AllocStrategy, threads: Int, round: Int) -> AllocResult? {
            groups[AllocSummary.Key(strategy: strategy, threads: threads)]?.first { $0.round == round }
        }
        return keys.compactMap { key in
            guard let rounds = groups[key], let middle = rounds.sorted(by: { $0.nanosecondsPerPair < $1.nanosecondsPerPair })
                .dropFirst((rounds.count - 1) / 2).first else { return nil }
            let scaling = Rounds.medianRatio(rounds, round: \.round, partner: { row(key.strategy, threads: 1, round: $0) },
                                             ratio: { $0.pairsPerSecond / max(1, $1.pairsPerSecond) })
            let overMalloc = Rounds.medianRatio(rounds, round: \.round, partner: { row(.malloc, threads: key.threads, round: $0) },
                                                ratio: { $1.nanosecondsPerPair / max(1e-9, $0.nanosecondsPerPair) })
            let times = rounds.map(\.nanosecondsPerPair)
            return AllocSummary(strategy: key.strategy, allocatorName: middle.allocatorName, threads: key.threads,
                                rounds: rounds, nanosecondsPerPair: times.median ?? 0,
                                pairsPerSecond: rounds.map(\.pairsPerSecond).median ?? 0,
                                fastest: times.min() ?? 0, slowest: times.max() ?? 0, statistics: middle.statistics,
                                scaling: scaling, overMalloc: overMalloc)
        }
    }

    /// The sizes asked for, who freed, and for the heap the fit of its size classes.
    static func sizeFields(_ result: AllocResult, options: AllocOptions) -> [(name: String, value: RecordValue)] {
        let fit: RecordValue = result.strategy == .heap ? .double(sizeFit(options, threads: result.threads)) : .null
        return [("sizes", .string(options.sizes?.description ?? String(options.blockSize))),
                ("frees", .string(options.frees.rawValue)),
                ("size_fit", fit)]
    }

    /// One record per round, each carrying its allocator and thread count's summary over the
    /// rounds (the table's medians, range and ratios), so that nobody recomputes them.
    public static func records(_ results: [AllocResult], options: AllocOptions, environment: RunEnvironment) -> [Record] {
        let summaries = summarize(results)
        return results.map { result in
            let stats = result.statistics
            let summary = summaries.first { $0.strategy == result.strategy && $0.threads == result.threads }
            let fields: [(name: String, value: RecordValue)] = [
                ("timestamp", .string(environment.timestamp)),
                ("command", .string("alloc")),
                ("allocator", .string(result.allocatorName)),
                ("strategy", .string(result.strategy.rawValue)),
                ("threads", .int(result.threads)),
                ("round", .int(result.round)),
                ("block_bytes", .int(options.sizes == nil ? options.blockSize : nil)),
                ("batch", .int(options.batch)),
                ("binding", .string(options.binding.rawValue)),
                ("global_fill", .string(options.globalFill.rawValue)),
                ("cpunodebind", .string(options.placement.cpunodebind?.description)),
                ("duration_s", .double(result.seconds)),
                ("pairs", .int(Int(result.pairs))),
                ("ns_per_pair", .double(result.nanosecondsPerPair)),
                ("pairs_per_s", .double(result.pairsPerSecond)),
                ("rounds", .int(summary?.rounds.count)),
                ("median_ns_per_pair", summary.map { .double($0.nanosecondsPerPair) } ?? .null),
                ("min_ns_per_pair", summary.map { .double($0.fastest) } ?? .null),
                ("max_ns_per_pair", summary.map { .double($0.slowest) } ?? .null),
                ("median_pairs_per_s", summary.map { .double($0.pairsPerSecond) } ?? .null),
                ("scaling", summary?.scaling.map { .double($0) } ?? .null),
                ("vs_malloc", summary?.overMalloc.map { .double($0) } ?? .null),
                ("page_faults", .int(result.pageFaults)),
                ("reuse_rate", stats.map { .double($0.reuseRate) } ?? .null),
                ("fresh_rate", stats.map { .double($0.freshAllocationRate) } ?? .null),
                ("remote_returns", .int(stats.map { Int($0.remoteReturns) })),
                ("fragmentation", stats.map { .double($0.fragmentation) } ?? .null),
                ("bytes_reserved", .int(stats?.bytesReserved)),
                ("bytes_in_use", .int(stats?.bytesInUse)),
                ("bytes_peak", .int(stats?.bytesPeak)),
            ]
            return Record(fields + sizeFields(result, options: options) + Record.environmentFields(environment))
        }
    }
}
