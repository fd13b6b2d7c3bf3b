import Foundation
import NUMA

/// Byte sizes as people write them: `64`, `4KB`, `256MiB`, `1GB`.
///
/// `KB`, `MB` and `GB` (and `K`, `M`, `G`) are binary, 2^10, 2^20 and 2^30, as in numactl and
/// multichase; `KiB`, `MiB` and `GiB` mean the same. Decimal units are not offered, so that one
/// spelling never means two sizes.
public enum ByteSize {
    public static func parse(_ text: String) -> Int? {
        let trimmed = text.trimmingCharacters(in: .whitespaces)
        let digits = trimmed.prefix { $0.isASCII && $0.isNumber }
        guard !digits.isEmpty, let value = Int(digits) else { return nil }
        let unit = trimmed.dropFirst(digits.count).lowercased()
        let shift: Int
        switch unit {
        case "", "b": shift = 0
        case "k", "kb", "kib": shift = 10
        case "m", "mb", "mib": shift = 20
        case "g", "gb", "gib": shift = 30
        case "t", "tb", "tib": shift = 40
        default: return nil
        }
        let (result, overflow) = value.multipliedReportingOverflow(by: 1 << shift)
        return overflow ? nil : result
    }

    /// The largest binary unit that divides the size evenly, e.g. `256MiB`, else bytes.
    public static func format<T: BinaryInteger>(_ bytes: T) -> String {
        let value = Int(bytes)
        for (shift, unit) in [(40, "TiB"), (30, "GiB"), (20, "MiB"), (10, "KiB")] where value >= 1 << shift && value % (1 << shift) == 0 {
            return "\(value >> shift)\(unit)"
        }
        return "\(value)B"
    }
}

/// `count` and a noun, singular for one: "1 CPU", "2 CPUs", "1 load thread".
func counted(_ count: Int, _ singular: String, plural: String? = nil) -> String {
    "\(count) \(count == 1 ? singular : plural ?? singular + "s")"
}

/// "node 0 has" or "nodes 0-1 have", for messages about what nodes hold.
func nodesHave(_ nodes: NodeSet) -> String {
    nodes.count == 1 ? "node \(nodes) has" : "nodes \(nodes) have"
}
