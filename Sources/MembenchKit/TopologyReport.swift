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
        lines += tierLines(topology)
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

    /// Memory tiers, the firmware's access figures, hwloc's memory attributes and the
    /// interleave weights; each says so when the kernel shows none.
    static func tierLines(_ topology: Topology) -> [String] {
        var lines: [String] = []
        lines.append("memory tiers: " + (topology.tiers.isEmpty ? "none shown by this kernel"
            : topology.tiers.map { "tier \($0.id): nodes \($0.nodes)" }.joined(separator: "; ")))
        let firmware = topology.nodes.flatMap { node in node.firmware.map { (node.id, $0) } }
        if firmware.isEmpty {
            lines.append("firmware access figures (ACPI HMAT): none shown by this kernel")
        } else {
            lines.append("firmware access figures (ACPI HMAT), from each node's best initiators:")
            var table = TextTable(["node", "tier", "access", "initiators", "read ns", "write ns", "read MB/s", "write MB/s"])
            for (id, access) in firmware {
                table.add([String(id), topology.node(id)?.tier.map(String.init) ?? "-", "access\(access.accessClass)",
                           "\(access.initiators)", text(access.readLatency), text(access.writeLatency),
                           text(access.readBandwidth), text(access.writeBandwidth)])
            }
            lines += table.render().split(separator: "\n").map(String.init)
        }
        let attributes = topology.nodes.flatMap { node in node.memoryAttributes.map { (node.id, $0) } }
        if !attributes.isEmpty {
            lines.append("hwloc memory attributes (MB/s, ns):")
            var table = TextTable(["node", "attribute", "initiator cpus", "value"])
            for (id, attribute) in attributes {
                table.add([String(id), attribute.name, "\(attribute.initiator)", String(attribute.value)])
            }
            lines += table.render().split(separator: "\n").map(String.init)
        }
        if let weights = InterleaveWeights.current() {
            let mode = InterleaveWeights.isAutomatic.map { $0 ? " (chosen by the kernel)" : " (set by hand)" } ?? ""
            lines.append("interleave weights: \(InterleaveWeights.text(weights))\(mode)")
        } else {
            lines.append("interleave weights: none (\(InterleaveWeights.unsupported(operation: "").message))")
        }
        return lines
    }

    static func text(_ value: Int?) -> String { value.map(String.init) ?? "-" }

    /// The topology as JSON, with sizes in bytes, and the interleave weights
    /// (`interleaveWeights`, node id to weight; null without weighted interleave).
    public static func json(_ topology: Topology) throws -> String {
        let encoder = JSONEncoder()
        encoder.outputFormatting = [.prettyPrinted, .sortedKeys]
        let document = Document(topology: topology, weights: InterleaveWeights.current(), automatic: InterleaveWeights.isAutomatic)
        return String(decoding: try encoder.encode(document), as: UTF8.self) + "\n"
    }

    /// The topology's own keys, then the weights beside them.
    struct Document: Encodable {
        var topology: Topology
        var weights: [Int: Int]?
        var automatic: Bool?

        enum Keys: String, CodingKey { case interleaveWeights, interleaveWeightsAutomatic }

        func encode(to encoder: any Encoder) throws {
            try topology.encode(to: encoder)
            var container = encoder.container(keyedBy: Keys.self)
            // String keys: JSON objects have no integer keys, and a dictionary keyed by Int
            // would encode as a flat array.
            try container.encode(weights.map { Dictionary(uniqueKeysWithValues: $0.map { (String($0.key), $0.value) }) },
                                 forKey: .interleaveWeights)
            try container.encode(automatic, forKey: .interleaveWeightsAutomatic)
        }
    }

    static func pad(_ text: String, _ width: Int) -> String {
        String(repeating: " ", count: max(0, width - text.count)) + text
    }
}
