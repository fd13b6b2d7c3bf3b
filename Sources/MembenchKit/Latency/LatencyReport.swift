import NUMA

/// The text reports of latency runs.
public enum LatencyReport {
    /// The header lines that say what ran, for runs with the same parameters (`compare`): the
    /// first one's, and the global pool's fill.
    public static func describe(_ results: [RunResult]) -> String {
        guard var first = results.first else { return "" }
        if let global = results.first(where: { $0.globalFill != nil }) {
            first.globalFill = global.globalFill
            first.poolPagesPerNode = global.poolPagesPerNode
        }
        return describe(first)
    }

    /// The header lines that say what ran.
    public static func describe(_ result: RunResult) -> String {
        let options = result.options
        let environment = result.environment
        let mode = options.pattern == .sequential ? "sequential"
            : (result.groupBytes >= result.size ? "fully random" : "random, TLB locality \(ByteSize.format(result.groupBytes))")
        let placement = options.placement.summary(policyText: result.policyText)
        var lines = [
            "size \(ByteSize.format(result.size)) per thread, \(options.threads) thread(s), stride \(options.stride) B\(options.slotOffsets == .zero ? " (slots at offset 0)" : ""), \(mode), pages \(options.pageMode.rawValue)",
            "placement \(placement); \(environment.summary)",
        ]
        if let line = PlacementReport.weightLine(options.placement.effectiveInterleaveWeights, pages: result.total.placement.pagesPerNode) {
            lines.append(line)
        }
        if let fill = result.globalFill, let pages = result.poolPagesPerNode {
            lines.append("global pool filled \(fill), pages per node \(PlacementReport.text(pages))")
        }
        if environment.nodeCount == 1 {
            lines.append("note: one NUMA node here, so strategies differ only by pool overhead and layout")
        }
        return lines.joined(separator: "\n") + "\n"
    }

    /// Per-thread rows and the total of one run.
    public static func table(_ result: RunResult) -> String {
        var table = TextTable(["thread", "cpu", "node", "mean", "sd", "best win", "med win", "p50", "p90", "p99", "p99.9", "max",
                               "accesses/s", "remote", "pages/node"])
        for thread in result.threads + [result.total] {
            let l = thread.latency
            table.add([thread.thread < 0 ? "total" : String(thread.thread),
                       thread.cpu < 0 ? "" : String(thread.cpu), thread.node < 0 ? "" : String(thread.node),
                       Format.ns(l.mean), Format.fixed(l.standardDeviation),
                       l.bestWindow.map { Format.fixed($0) } ?? "", l.medianWindow.map { Format.fixed($0) } ?? "",
                       Format.fixed(l.p50), Format.fixed(l.p90),
                       Format.fixed(l.p99), Format.fixed(l.p999), Format.fixed(l.max),
                       Format.rate(thread.accessesPerSecond), Format.percent(thread.remoteShare), thread.placement.pagesText])
        }
        return table.render() + legend(result) + warnings(result)
    }

    /// What the deviation and the windows are, under a table.
    static func legend(_ result: RunResult, comparison: Bool = false) -> String {
        let l = result.total.latency
        return (comparison ? "deviation" : "sd") + ": of \(result.options.loadsPerSample)-load sample means; "
            + (comparison ? "best window: the lowest" : "best/med win: the lowest and the median")
            + " of \(l.windows) window(s) of \(TimeSpan.format(l.windowSeconds)) (multichase's statistic)\n"
    }

    /// The reference table: strategy | mean | deviation | best window | p99 | remote share |
    /// relative to local. Over several rounds, each figure is the median of the rounds, and
    /// "relative to local" the median of each round's own ratio, so that drift between rounds
    /// cancels.
    public static func comparison(_ results: [RunResult]) -> String {
        var strategies: [PoolStrategy] = []
        for result in results where !strategies.contains(result.options.strategy) { strategies.append(result.options.strategy) }
        let rounds = Set(results.map(\.round)).count
        var columns = ["strategy", "mean", "deviation", "best window", "p99", "remote share", "relative to local"]
        if rounds > 1 { columns.insert("min-max", at: 2) }
        var table = TextTable(columns)
        for strategy in strategies {
            let mine = results.filter { $0.options.strategy == strategy }
            func median(_ value: (RunResult) -> Double?) -> Double? { mine.compactMap(value).median }
            let means = mine.map(\.total.latency.mean)
            let relative = Rounds.medianRatio(mine, round: \.round, partner: { round in
                results.first { $0.options.strategy == .local && $0.round == round }
            }, ratio: { mine, local in local.total.latency.mean > 0 ? mine.total.latency.mean / local.total.latency.mean : 0 })
            var row = [strategy.rawValue, Format.ns(means.median ?? 0)]
            if rounds > 1 { row.append("\(Format.fixed(means.min() ?? 0))-\(Format.fixed(means.max() ?? 0))") }
            row += ["±" + Format.fixed(median { $0.total.latency.standardDeviation } ?? 0),
                    median { $0.total.latency.bestWindow }.map { Format.ns($0) } ?? "",
                    Format.ns(median { $0.total.latency.p99 } ?? 0), Format.percent(median { $0.total.remoteShare } ?? 0),
                    relative.map { String(format: "%.2fx", $0) } ?? ""]
            table.add(row)
        }
        var text = table.render() + (results.first.map { legend($0, comparison: true) } ?? "")
        if rounds > 1 {
            text += "Medians of \(rounds) rounds, taken in turns (every other round in reverse order); relative to local is the median of each round's own ratio.\n"
        }
        return text + results.map(warnings).joined()
    }

    static func warnings(_ result: RunResult) -> String {
        var lines: [String] = []
        if result.total.placementChanged {
            lines.append("warning: \(result.options.strategy.rawValue): page placement changed during the run; its remote share is not reliable")
        }
        if result.total.migrated {
            lines.append("warning: \(result.options.strategy.rawValue): a thread left its CPU during the run")
        }
        return lines.map { $0 + "\n" }.joined()
    }
}
