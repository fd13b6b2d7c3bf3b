import NUMA

/// The latency matrix's cells, every one checked before the first runs.
public struct ResolvedLatencyMatrix: Sendable {
    public let cpuNodes: [Int]
    public let memoryNodes: [Int]
    /// cells[row][column]: one thread on a CPU of the row's node, memory bound to the column's.
    public let cells: [[ResolvedRun]]
}

extension RunOptions {
    /// Checks the options for every cell of the node x node matrix (`direct`, one thread per
    /// cell); nothing runs.
    public func resolveMatrix(topology: Topology = .current) throws(MembenchError) -> ResolvedLatencyMatrix {
        guard threads == 1 else { throw .invalid(.threads, "matrix runs one thread per cell, on a CPU of each node") }
        let grid = try NodeGrid.make(topology: topology) { cpuNode, memoryNode throws(MembenchError) -> ResolvedRun in
            var cell = self
            cell.strategy = .direct
            cell.placement = PlacementOptions(membind: [memoryNode], physcpubind: [topology.allowedCPUs(on: [cpuNode]).first!])
            return try cell.resolve(topology: topology)
        }
        return ResolvedLatencyMatrix(cpuNodes: grid.cpuNodes, memoryNodes: grid.memoryNodes, cells: grid.cells)
    }
}

/// Node × node idle latency, as Intel MLC's latency matrix: one thread on a CPU of each CPU node
/// chasing memory bound to each memory node.
public struct LatencyMatrix: Sendable {
    public var cpuNodes: [Int]
    public var memoryNodes: [Int]
    /// results[row][column]: CPU node row, memory node column.
    public var results: [[RunResult]]

    public static func run(_ resolved: ResolvedLatencyMatrix, topology: Topology = .current,
                           progress: (@Sendable (Double) -> Void)? = nil) throws(MembenchError) -> LatencyMatrix {
        let results = try NodeGrid.run(resolved.cells, progress: progress) { cell, cellProgress throws(MembenchError) in
            try LatencyRunner.run(cell, topology: topology, progress: cellProgress)
        }
        return LatencyMatrix(cpuNodes: resolved.cpuNodes, memoryNodes: resolved.memoryNodes, results: results)
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
            + FirmwareTable.render(cpuNodes: cpuNodes, memoryNodes: memoryNodes, topology: topology,
                                   title: "firmware read latency (ns, ACPI HMAT)") { $0.readLatency.map(String.init) }
            + FirmwareTable.render(cpuNodes: cpuNodes, memoryNodes: memoryNodes, topology: topology,
                                   title: "firmware read bandwidth (MB/s, ACPI HMAT)") { $0.readBandwidth.map(String.init) }
    }

    /// Two records per cell, as `run` writes them: its thread's and the total (`scope`), with
    /// the firmware's read latency for the pair.
    public func records(topology: Topology = .current) -> [Record] {
        var records: [Record] = []
        for (r, cpuNode) in cpuNodes.enumerated() {
            for (c, memoryNode) in memoryNodes.enumerated() {
                let firmware = topology.firmwareAccess(from: cpuNode, to: memoryNode)
                records += Record.rows(for: results[r][c], command: "matrix").map {
                    $0.adding([("cpu_node", .int(cpuNode)), ("memory_node", .int(memoryNode)),
                               ("firmware_read_latency_ns", .int(firmware?.readLatency)),
                               ("firmware_read_bandwidth_mb_per_s", .int(firmware?.readBandwidth))])
                }
            }
        }
        return records
    }
}
