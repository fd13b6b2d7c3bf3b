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
        var table = TextTable(["thread", "cpu", "node", "mean", "stddev", "p50", "p90", "p99", "p99.9", "max",
                               "accesses/s", "remote", "pages/node"])
        for thread in result.threads + [result.total] {
            let l = thread.latency
            table.add([thread.thread < 0 ? "total" : String(thread.thread),
                       thread.cpu < 0 ? "" : String(thread.cpu), thread.node < 0 ? "" : String(thread.node),
                       Format.ns(l.mean), Format.fixed(l.standardDeviation), Format.fixed(l.p50), Format.fixed(l.p90),
                       Format.fixed(l.p99), Format.fixed(l.p999), Format.fixed(l.max),
                       Format.rate(thread.accessesPerSecond), Format.percent(thread.remoteShare), thread.placement.pagesText])
        }
        return table.render() + warnings(result)
    }

    /// The reference table: strategy | mean | deviation | p99 | remote share | relative to local.
    public static func comparison(_ results: [RunResult]) -> String {
        var table = TextTable(["strategy", "mean", "deviation", "p99", "remote share", "relative to local"])
        let local = results.first { $0.options.strategy == .local }?.total.latency.mean
        for result in results {
            let l = result.total.latency
            let relative = local.map { $0 > 0 ? String(format: "%.2fx", l.mean / $0) : "" } ?? ""
            table.add([result.options.strategy.rawValue, Format.ns(l.mean), "±" + Format.fixed(l.standardDeviation),
                       Format.ns(l.p99), Format.percent(result.total.remoteShare), relative])
        }
        return table.render() + results.map(warnings).joined()
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

/// Runs several strategies with identical parameters, back to back.
public enum Comparison {
    public static func run(_ strategies: [PoolStrategy], options: RunOptions, topology: Topology = .current,
                           progress: (@Sendable (PoolStrategy, Double) -> Void)? = nil) throws(MembenchError) -> [RunResult] {
        var results: [RunResult] = []
        for strategy in strategies {
            var each = options
            each.strategy = strategy
            var perRun: LatencyRunner.Progress?
            if let progress { perRun = { fraction in progress(strategy, fraction) } }
            results.append(try LatencyRunner.run(each, topology: topology, progress: perRun))
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
