import NUMA

/// The firmware's figure (ACPI HMAT, as the kernel shows it) for each CPU node and memory node
/// of a matrix, to print beside the measured one so that wrong firmware data stands out.
enum FirmwareTable {
    /// A titled table, or nothing when the firmware gives no figure for any pair. A pair the
    /// kernel does not show (it names the best initiators of each node only) is `-`.
    static func render(cpuNodes: [Int], memoryNodes: [Int], topology: Topology, title: String,
                       value: (FirmwareAccess) -> String?) -> String {
        var table = TextTable(["firmware"] + memoryNodes.map { "node \($0)" })
        var any = false
        for cpuNode in cpuNodes {
            table.add(["node \(cpuNode)"] + memoryNodes.map { memoryNode in
                guard let figure = topology.firmwareAccess(from: cpuNode, to: memoryNode).flatMap(value) else { return "-" }
                any = true
                return figure
            })
        }
        return any ? "\n\(title)\n" + table.render() : ""
    }
}
