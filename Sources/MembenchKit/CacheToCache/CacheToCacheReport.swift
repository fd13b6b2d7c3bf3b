import NUMA

/// Tables and records of `membench c2c`.
public enum CacheToCacheReport {
    /// Per state: a CPU x CPU table (holder rows, reader columns; median ns per line), then the
    /// node pairs' means over their CPU pairs (a CPU with itself left out).
    public static func render(_ pairs: [CacheToCachePair], options: CacheToCacheOptions) -> String {
        let cpus = Array(Set(pairs.map(\.holderCPU))).sorted()
        var text = "\(options.lines) lines of 64 B per measurement, median of \(options.repeats); ns per line, "
            + "holder CPU (rows) to reader CPU (columns); a CPU with itself reads its own cache\n"
        for state in LineState.allCases where pairs.contains(where: { $0.state == state }) {
            var table = TextTable(["\(state.rawValue): holder \\ reader"] + cpus.map { "cpu \($0)" })
            for holder in cpus {
                table.add(["cpu \(holder)"] + cpus.map { reader in
                    pairs.first { $0.state == state && $0.holderCPU == holder && $0.readerCPU == reader }
                        .map { Format.fixed($0.median) } ?? ""
                })
            }
            text += "\n" + table.render()
        }
        var summary = TextTable(["holder node", "reader node", "CPU pairs"] + LineState.allCases
            .filter { state in pairs.contains { $0.state == state } }.map { "\($0.rawValue) ns" })
        for (holderNode, readerNode) in nodePairs(pairs) {
            let mine = pairs.filter { $0.holderNode == holderNode && $0.readerNode == readerNode && $0.holderCPU != $0.readerCPU }
            let states = LineState.allCases.filter { state in pairs.contains { $0.state == state } }
            summary.add([String(holderNode), String(readerNode), String(mine.count / max(1, states.count))]
                + states.map { state in
                    let values = mine.filter { $0.state == state }.map(\.median)
                    return values.isEmpty ? "" : Format.fixed(values.reduce(0, +) / Double(values.count))
                })
        }
        return text + "\nby node pair (mean of the CPU pairs' medians)\n" + summary.render()
    }

    static func nodePairs(_ pairs: [CacheToCachePair]) -> [(Int, Int)] {
        let distinct = pairs.filter { $0.holderCPU != $0.readerCPU }.map { [$0.holderNode, $0.readerNode] }
        return Array(Set(distinct)).sorted { ($0[0], $0[1]) < ($1[0], $1[1]) }.map { ($0[0], $0[1]) }
    }

    public static func records(_ pairs: [CacheToCachePair], options: CacheToCacheOptions,
                               environment: RunEnvironment) -> [Record] {
        pairs.map { pair in
            Record([
                ("timestamp", .string(environment.timestamp)),
                ("command", .string("c2c")),
                ("state", .string(pair.state.rawValue)),
                ("holder_cpu", .int(pair.holderCPU)),
                ("holder_node", .int(pair.holderNode)),
                ("reader_cpu", .int(pair.readerCPU)),
                ("reader_node", .int(pair.readerNode)),
                ("lines", .int(options.lines)),
                ("repeats", .int(options.repeats)),
                ("median_ns", .double(pair.median)),
                ("min_ns", .double(pair.minimum)),
            ] + Record.environmentFields(environment))
        }
    }
}
