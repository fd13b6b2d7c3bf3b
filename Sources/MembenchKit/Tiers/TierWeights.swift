import NUMA

/// What `membench tiers` runs: the bandwidth of each memory node from one CPU node's threads,
/// and interleave weights in proportion to it.
public struct TierOptions: Sendable {
    /// The CPU node whose CPUs stream; nil for the node of the first CPU this process may use.
    public var cpuNode: Int?
    /// The memory nodes to weigh; nil for every node with memory this process may use.
    public var memoryNodes: NodeSet?
    public var kernel: BandwidthKernel = .read
    /// Threads on the CPU node; nil for each of its allowed CPUs.
    public var threads: Int?
    /// Bytes per thread; nil for `membench bandwidth`'s default.
    public var size: Int?
    /// Seconds of timed passes per memory node.
    public var duration = 1.0
    public var pageMode: PageMode = .base

    public init() {}
}

/// Tier options checked against the machine: the CPU node, and each memory node's bandwidth
/// run, every one checked before the first runs.
public struct ResolvedTiers: Sendable {
    public let options: TierOptions
    public let cpuNode: Int
    /// Each memory node with the bandwidth run that measures it from the CPU node.
    public let cells: [(node: Int, run: ResolvedBandwidth)]
}

extension TierOptions {
    /// The CPU node and the memory nodes, checked; nothing runs.
    public func resolve(topology: Topology = .current) throws(MembenchError) -> ResolvedTiers {
        let cpuNode: Int
        if let node = self.cpuNode {
            guard topology.node(node) != nil else {
                throw .invalid(.tierCPUNode, "node \(node) does not exist (nodes: \(topology.nodeIDs))")
            }
            guard !topology.allowedCPUs(on: [node]).isEmpty else {
                throw .unavailable(.tierCPUNode, "node \(node) has no CPU this process may use")
            }
            cpuNode = node
        } else {
            guard let node = topology.allowedCPUNodes.first else { throw .refused("no node has a CPU this process may use") }
            cpuNode = node
        }
        let memoryNodes = (self.memoryNodes ?? topology.bindableNodes).ids
        guard !memoryNodes.isEmpty else { throw .refused("no node with memory is known or allowed for this process") }
        do {
            try topology.validate(NodeSet(memoryNodes), operation: Setting.tierNodes.rawValue)
        } catch {
            throw MembenchError.from(error, setting: .tierNodes)
        }
        var cells: [(node: Int, run: ResolvedBandwidth)] = []
        for node in memoryNodes {
            // The CPU node's CPUs streaming memory bound to the node.
            var cell = BandwidthOptions()
            cell.kernels = [kernel]
            cell.threads = threads
            cell.size = size
            cell.duration = duration
            cell.pageMode = pageMode
            cell.placement = PlacementOptions(membind: [node], cpunodebind: [cpuNode])
            cells.append((node, try cell.resolve(topology: topology)))
        }
        return ResolvedTiers(options: self, cpuNode: cpuNode, cells: cells)
    }
}

/// One memory node's measured bandwidth and the weight it gets.
public struct TierNode: Sendable {
    public var node: Int
    public var tier: Int?
    /// The firmware's read bandwidth from the CPU node, MB/s as the kernel shows it; nil where
    /// it shows none for this pair.
    public var firmwareReadBandwidth: Int?
    public var result: BandwidthResult
    public var weight: Int
    public var bytesPerSecond: Double { result.bytesPerSecond }
}

/// The measured bandwidths and the weights proposed from them.
public struct TierProposal: Sendable {
    public var cpuNode: Int
    public var kernel: BandwidthKernel
    public var nodes: [TierNode]
    /// The factor the exact ratios were scaled by before rounding (see `TierWeights.propose`).
    public var scale: Int
    /// Whether every weight is within `TierWeights.tolerance` of its ratio.
    public var withinTolerance: Bool
    public var weights: [Int: Int] { Dictionary(uniqueKeysWithValues: nodes.map { ($0.node, $0.weight) }) }
}

/// Interleave weights from measured bandwidth: what `membench tiers` does.
public enum TierWeights {
    /// How far a rounded weight may stray from its exact ratio.
    public static let tolerance = 0.1
    /// The largest factor tried before giving up on the tolerance.
    public static let largestScale = 20

    /// Small integer weights in proportion to `rates` (node: bytes per second). The slowest
    /// node's rate is the unit; each ratio is scaled by the smallest factor, 1 to 20, that
    /// rounds every weight to within 10% of its exact value (else by the largest factor that
    /// keeps the weights within 255), and the weights are divided by their greatest common
    /// divisor. Every weight is at least 1 and at most 255. Also says whether the tolerance was met.
    public static func propose(_ rates: [Int: Double]) -> (weights: [Int: Int], scale: Int, withinTolerance: Bool) {
        guard let slowest = rates.values.filter({ $0 > 0 }).min() else {
            return (rates.mapValues { _ in 1 }, 1, true)
        }
        let exact = rates.mapValues { max($0, 0) / slowest }
        func rounded(_ scale: Int) -> [Int: Int] {
            exact.mapValues { min(InterleaveWeights.maximum, max(1, Int(($0 * Double(scale)).rounded()))) }
        }
        // Scales whose largest weight still fits the kernel's range; the smallest within the
        // tolerance, else the largest that fits.
        let fitting = max(1, min(largestScale, Int(Double(InterleaveWeights.maximum) / (exact.values.max() ?? 1))))
        var scale = fitting, within = false
        for candidate in 1...fitting {
            let weights = rounded(candidate)
            let fits = weights.allSatisfy { node, weight in
                let target = exact[node]! * Double(candidate)
                return target <= 0 || abs(Double(weight) / target - 1) <= tolerance
            }
            if fits {
                scale = candidate
                within = true
                break
            }
        }
        let weights = rounded(scale)
        let divisor = weights.values.reduce(0) { gcd($0, $1) }
        return (weights.mapValues { $0 / max(1, divisor) }, scale, within)
    }

    static func gcd(_ a: Int, _ b: Int) -> Int { b == 0 ? a : gcd(b, a % b) }

    /// Measures every memory node from the CPU node, one after another, and proposes weights.
    public static func run(_ resolved: ResolvedTiers, topology: Topology = .current,
                           progress: (@Sendable (Double) -> Void)? = nil) throws(MembenchError) -> TierProposal {
        let cpuNode = resolved.cpuNode
        var results: [(Int, BandwidthResult)] = []
        let count = Double(resolved.cells.count)
        for (index, (node, cell)) in resolved.cells.enumerated() {
            let result = try BandwidthRunner.run(cell, topology: topology,
                                                 progress: progress.map { report in { @Sendable in report((Double(index) + $0) / count) } })
            results.append((node, result[0]))
            progress?(Double(index + 1) / Double(resolved.cells.count))
        }
        let (weights, scale, within) = propose(Dictionary(uniqueKeysWithValues: results.map { ($0.0, $0.1.bytesPerSecond) }))
        let nodes = results.map { node, result in
            TierNode(node: node, tier: topology.node(node)?.tier,
                     firmwareReadBandwidth: topology.firmwareAccess(from: cpuNode, to: node)?.readBandwidth,
                     result: result, weight: weights[node] ?? 1)
        }
        return TierProposal(cpuNode: cpuNode, kernel: resolved.options.kernel, nodes: nodes, scale: scale, withinTolerance: within)
    }

    /// The table: each node's tier, firmware and measured bandwidth, and the weight with why.
    public static func table(_ proposal: TierProposal) -> String {
        let slowest = proposal.nodes.filter { $0.bytesPerSecond > 0 }.min { $0.bytesPerSecond < $1.bytesPerSecond }
        var table = TextTable(["node", "tier", "firmware GB/s", "measured GB/s", "share", "x slowest", "weight", "remote", "pages/node"])
        let total = proposal.nodes.reduce(0) { $0 + $1.bytesPerSecond }
        for node in proposal.nodes {
            let ratio = slowest.map { node.bytesPerSecond / $0.bytesPerSecond } ?? 0
            table.add([String(node.node), node.tier.map(String.init) ?? "-",
                       node.firmwareReadBandwidth.map { Format.fixed(Double($0) / 1000, 2) } ?? "-",
                       Format.fixed(node.bytesPerSecond / 1e9, 2), total > 0 ? Format.percent(node.bytesPerSecond / total) : "",
                       Format.fixed(ratio, 2), String(node.weight), Format.percent(node.result.remoteShare),
                       PlacementReport.text(BandwidthReport.pages(node.result))])
        }
        let threads = proposal.nodes.first?.result.threads.count ?? 0
        var text = "\(proposal.kernel.rawValue) bandwidth of each memory node from CPU node \(proposal.cpuNode) (\(threads) thread(s))\n"
            + table.render()
        if let slowest {
            text += "weights: each node's bandwidth over the slowest (node \(slowest.node)), times \(proposal.scale), rounded"
                + (proposal.withinTolerance
                    ? " (the smallest factor that keeps every weight within \(Int(tolerance * 100))% of its ratio)"
                    : " (no factor up to \(largestScale) keeps every weight within \(Int(tolerance * 100))% of its ratio; the largest that fits 1-\(InterleaveWeights.maximum))")
                + ", over their common divisor\n"
        }
        text += "proposed: --weighted-interleave \(InterleaveWeights.text(proposal.weights))\n"
        return text
    }

    /// One record per memory node.
    public static func records(_ proposal: TierProposal, options: TierOptions) -> [Record] {
        let total = proposal.nodes.reduce(0) { $0 + $1.bytesPerSecond }
        return proposal.nodes.map { node in
            Record([
                ("timestamp", .string(node.result.environment.timestamp)),
                ("command", .string("tiers")),
                ("cpu_node", .int(proposal.cpuNode)),
                ("memory_node", .int(node.node)),
                ("tier", .int(node.tier)),
                ("bandwidth_kernel", .string(proposal.kernel.rawValue)),
                ("size_bytes", .int(node.result.streamedBytes)),
                ("threads", .int(node.result.threads.count)),
                ("page_mode", .string(options.pageMode.rawValue)),
                ("duration_s", .double(options.duration)),
                ("bytes_per_s", .double(node.bytesPerSecond)),
                ("share", .double(total > 0 ? node.bytesPerSecond / total : 0)),
                ("firmware_read_bandwidth_mb_per_s", .int(node.firmwareReadBandwidth)),
                ("weight", .int(node.weight)),
                ("scale", .int(proposal.scale)),
                ("remote_share", .double(node.result.remoteShare)),
                ("pages_per_node", .string(PlacementReport.text(BandwidthReport.pages(node.result)))),
            ] + Record.environmentFields(node.result.environment))
        }
    }
}
