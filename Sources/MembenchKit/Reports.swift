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
        var placement = options.placement.summary
        if options.placement.memoryPolicy == nil { placement = placement.replacingOccurrences(of: "inherit", with: result.policyText) }
        var lines = [
            "size \(ByteSize.format(result.size)) per thread, \(options.threads) thread(s), stride \(options.stride) B\(options.slotOffsets == .zero ? " (slots at offset 0)" : ""), \(mode), pages \(options.pageMode.rawValue)",
            "placement \(placement); \(environment.nodeCount) node(s); THP \(environment.transparentHugePages); numa_balancing \(environment.numaBalancing)",
        ]
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
        func local(inRound round: Int) -> Double? {
            results.first { $0.options.strategy == .local && $0.round == round }?.total.latency.mean
        }
        for strategy in strategies {
            let mine = results.filter { $0.options.strategy == strategy }
            func median(_ value: (RunResult) -> Double?) -> Double? { mine.compactMap(value).median }
            let means = mine.map(\.total.latency.mean)
            let relative = mine.compactMap { result in local(inRound: result.round).map { $0 > 0 ? result.total.latency.mean / $0 : 0 } }.median
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

/// Runs several strategies with identical parameters, in rounds that take turns: round 0 in
/// the order given, round 1 in reverse, and so on, so that drift on a shared host falls on
/// every strategy alike.
public enum Comparison {
    public static func run(_ strategies: [PoolStrategy], options: RunOptions, rounds: Int = 1, topology: Topology = .current,
                           progress: (@Sendable (PoolStrategy, Int, Double) -> Void)? = nil) throws(MembenchError) -> [RunResult] {
        guard rounds >= 1 && rounds <= 1000 else { throw .usage(flag: "--rounds", reason: "must be between 1 and 1000, got \(rounds)") }
        var results: [RunResult] = []
        for round in 0..<rounds {
            for strategy in round % 2 == 0 ? strategies : strategies.reversed() {
                var each = options
                each.strategy = strategy
                var perRun: LatencyRunner.Progress?
                if let progress { perRun = { fraction in progress(strategy, round, fraction) } }
                var result = try LatencyRunner.run(each, topology: topology, progress: perRun)
                result.round = round
                results.append(result)
            }
        }
        return results
    }
}

/// Node × node idle latency, as Intel MLC's latency matrix: one thread on a CPU of each CPU node
/// chasing memory bound to each memory node.
public struct LatencyMatrix: Sendable {
    public var cpuNodes: [Int]
    public var memoryNodes: [Int]
    /// results[row][column]: CPU node row, memory node column.
    public var results: [[RunResult]]

    public static func run(_ options: RunOptions, topology: Topology = .current,
                           progress: (@Sendable (Double) -> Void)? = nil) throws(MembenchError) -> LatencyMatrix {
        let cpuNodes = topology.nodes.map(\.id).filter { !topology.allowedCPUs(on: [$0]).isEmpty }
        let memoryNodes = topology.bindableNodes.ids
        guard !cpuNodes.isEmpty, !memoryNodes.isEmpty else { throw .refused("no node has both allowed CPUs and memory") }
        var rows: [[RunResult]] = []
        for (r, cpuNode) in cpuNodes.enumerated() {
            var row: [RunResult] = []
            for (c, memoryNode) in memoryNodes.enumerated() {
                var cell = options
                cell.strategy = .direct
                cell.threads = 1
                cell.placement = PlacementOptions(membind: [memoryNode],
                                                  physcpubind: [topology.allowedCPUs(on: [cpuNode]).first!])
                row.append(try LatencyRunner.run(cell, topology: topology))
                progress?(Double(r * memoryNodes.count + c + 1) / Double(cpuNodes.count * memoryNodes.count))
            }
            rows.append(row)
        }
        return LatencyMatrix(cpuNodes: cpuNodes, memoryNodes: memoryNodes, results: rows)
    }

    /// The latency matrix beside the kernel's distance table.
    public func render(topology: Topology = .current) -> String {
        var latency = TextTable(["cpu node \\ memory node"] + memoryNodes.map { "node \($0)" })
        var distance = TextTable(["distance"] + memoryNodes.map { "node \($0)" })
        for (r, cpuNode) in cpuNodes.enumerated() {
            latency.add(["node \(cpuNode)"] + results[r].map { Format.ns($0.total.latency.mean) })
            distance.add(["node \(cpuNode)"] + memoryNodes.map { topology.distance(from: cpuNode, to: $0).map(String.init) ?? "" })
        }
        return "idle latency (mean, ns per access)\n" + latency.render() + "\nkernel distances\n" + distance.render()
    }
}
