import NUMA

/// Every CPU node this process may use against every node with memory it may bind: the cells
/// of the latency and bandwidth matrices, made and run in one place.
enum NodeGrid {
    /// The CPU nodes (rows), the memory nodes (columns), and `cell(cpuNode, memoryNode)` for
    /// each pair, every one made before any runs.
    static func make<Cell>(topology: Topology, _ cell: (Int, Int) throws(MembenchError) -> Cell) throws(MembenchError)
        -> (cpuNodes: [Int], memoryNodes: [Int], cells: [[Cell]]) {
        let cpuNodes = topology.allowedCPUNodes
        let memoryNodes = topology.bindableNodes.ids
        guard !cpuNodes.isEmpty, !memoryNodes.isEmpty else { throw .refused("no node has both allowed CPUs and memory") }
        var cells: [[Cell]] = []
        for cpuNode in cpuNodes {
            var row: [Cell] = []
            for memoryNode in memoryNodes { row.append(try cell(cpuNode, memoryNode)) }
            cells.append(row)
        }
        return (cpuNodes, memoryNodes, cells)
    }

    /// Runs `body` on every cell, row by row, reporting the fraction done after each and, through
    /// the progress `body` is given, within each.
    static func run<Cell, Result>(_ cells: [[Cell]], progress: (@Sendable (Double) -> Void)?,
                                  _ body: (Cell, (@Sendable (Double) -> Void)?) throws(MembenchError) -> Result) throws(MembenchError) -> [[Result]] {
        let total = Double(cells.reduce(0) { $0 + $1.count })
        var done = 0
        var rows: [[Result]] = []
        for row in cells {
            var results: [Result] = []
            for cell in row {
                let before = Double(done)
                results.append(try body(cell, progress.map { report in { @Sendable in report((before + $0) / total) } }))
                done += 1
                progress?(Double(done) / total)
            }
            rows.append(results)
        }
        return rows
    }
}
