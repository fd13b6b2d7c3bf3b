import Foundation
import NUMA

/// The `membench topology` view: numactl --hardware's layout, plus the last-level cache and the
/// sets this process may use.
public enum TopologyReport {
    /// Text in the layout of `numactl --hardware`, followed by cache and allowed-set lines.
    public static func text(_ topology: Topology) -> String {
        var lines: [String] = []
        let ids = topology.nodes.map(\.id)
        let range = ids.isEmpty ? "" : (ids.count == 1 ? "\(ids[0])" : "\(NodeSet(ids))")
        lines.append("available: \(topology.nodeCount) nodes (\(range))")
        for node in topology.nodes {
            lines.append("node \(node.id) cpus:" + node.cpus.ids.map { " \($0)" }.joined())
            lines.append("node \(node.id) size: \(node.memoryTotal >> 20) MB")
            lines.append("node \(node.id) free: \(node.memoryFree >> 20) MB")
        }
        lines.append("node distances:")
        lines.append("node " + ids.map { pad("\($0)", 3) }.joined(separator: " ") + " ")
        for node in topology.nodes {
            lines.append(pad("\(node.id)", 3) + ": " + node.distances.map { pad("\($0)", 3) }.joined(separator: " ") + " ")
        }
        if let cache = topology.lastLevelCache {
            lines.append("last-level cache: L\(cache.level) \(ByteSize.format(cache.size)) x \(cache.instances)")
        } else {
            lines.append("last-level cache: unknown")
        }
        lines.append("packages: \(topology.packages)")
        lines.append("allowed nodes: \(topology.allowedNodes)")
        lines.append("allowed cpus: \(topology.allowedCPUs)")
        if !topology.numaAvailable { lines.append("numa: not supported by this kernel; one node shown") }
        return lines.joined(separator: "\n") + "\n"
    }

    /// The topology as JSON, with sizes in bytes.
    public static func json(_ topology: Topology) throws -> String {
        let encoder = JSONEncoder()
        encoder.outputFormatting = [.prettyPrinted, .sortedKeys]
        return String(decoding: try encoder.encode(topology), as: UTF8.self) + "\n"
    }

    static func pad(_ text: String, _ width: Int) -> String {
        String(repeating: " ", count: max(0, width - text.count)) + text
    }
}
