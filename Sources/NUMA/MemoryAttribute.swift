import CLibHwloc
import CNuma

/// One of hwloc's memory attributes of a node as seen from one initiator
/// (hwloc_memattr_get_initiators(3)); on Linux, hwloc takes them from the same firmware tables.
public struct MemoryAttribute: Hashable, Sendable, Codable {
    /// hwloc's attribute name: `Bandwidth`, `Latency`, `ReadBandwidth`, `WriteBandwidth`,
    /// `ReadLatency` or `WriteLatency`.
    public let name: String
    /// The CPUs of the initiator.
    public let initiator: CPUSet
    /// Bandwidth in MB/s, latency in nanoseconds (hwloc's units).
    public let value: UInt64

    /// The attribute `name` of a node, seen from the CPUs `initiator`, worth `value`.
    public init(name: String, initiator: CPUSet, value: UInt64) {
        self.name = name
        self.initiator = initiator
        self.value = value
    }

    /// hwloc's ids (HWLOC_MEMATTR_ID_*) of the attributes that have initiators.
    static let attributes: [(id: Int32, name: String)] = [
        (HWLOC_MEMATTR_ID_BANDWIDTH, "Bandwidth"), (HWLOC_MEMATTR_ID_READ_BANDWIDTH, "ReadBandwidth"),
        (HWLOC_MEMATTR_ID_WRITE_BANDWIDTH, "WriteBandwidth"), (HWLOC_MEMATTR_ID_LATENCY, "Latency"),
        (HWLOC_MEMATTR_ID_READ_LATENCY, "ReadLatency"), (HWLOC_MEMATTR_ID_WRITE_LATENCY, "WriteLatency"),
    ].map { (Int32($0.0.rawValue), $0.1) }
}

extension HwlocSummary {
    /// hwloc's memory attributes of `node`, every initiator it knows, in attribute order.
    static func memoryAttributes(_ handle: OpaquePointer, node: Int) -> [MemoryAttribute] {
        let listSize = 4096, most = 64  // a list of every other CPU up to 1000 fits
        var lists = [CChar](repeating: 0, count: listSize * most)
        var values = [UInt64](repeating: 0, count: most)
        var result: [MemoryAttribute] = []
        for (id, name) in MemoryAttribute.attributes {
            let count = CNuma_hwloc_memattr_initiators(handle, id, Int32(node), &lists, listSize, &values, Int32(most))
            for index in 0..<max(0, Int(count)) {
                let list = lists[(index * listSize)..<((index + 1) * listSize)]
                let text = String(decoding: list.prefix { $0 != 0 }.map { UInt8(bitPattern: $0) }, as: UTF8.self)
                guard let cpus = try? CPUSet(parsing: text, all: CPUSet()) else { continue }
                result.append(MemoryAttribute(name: name, initiator: cpus, value: values[index]))
            }
        }
        return result
    }
}
