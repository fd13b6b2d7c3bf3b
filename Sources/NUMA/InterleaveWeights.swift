import CLibHwloc
import CNuma
#if canImport(Glibc)
import Glibc
#endif

/// A memory tier: nodes the kernel groups as of like performance
/// (`/sys/devices/virtual/memory_tiering/memory_tierN`). A lower id is a faster tier: DRAM
/// sits above CXL expanders and other slow memory.
public struct MemoryTier: Hashable, Sendable, Codable {
    /// The kernel's tier id, N of `memory_tierN`.
    public let id: Int
    /// The nodes in the tier (its `nodelist`).
    public let nodes: NodeSet

    /// A tier with the kernel's id `id` that holds `nodes`.
    public init(id: Int, nodes: NodeSet) {
        self.id = id
        self.nodes = nodes
    }

    static let root = "/sys/devices/virtual/memory_tiering"

    /// The kernel's tiers in id order; empty on a kernel without memory tiering (before 6.1)
    /// or without the sysfs directory.
    static func read() -> [MemoryTier] {
        SysFS.entries(root, prefix: "memory_tier").compactMap { id in
            guard let list = SysFS.read("\(root)/memory_tier\(id)/nodelist"),
                  let nodes = try? NodeSet(parsing: list, all: NodeSet()) else { return nil }
            return MemoryTier(id: id, nodes: nodes)
        }
    }
}

/// Access to a node's memory as the firmware (ACPI HMAT) describes it and the kernel shows it in
/// `/sys/devices/system/node/nodeN/accessK/initiators`: the performance from the node's best
/// initiators. Values the kernel does not show are nil.
public struct FirmwareAccess: Hashable, Sendable, Codable {
    /// 0: the best initiators of any kind (CPUs or devices); 1: the best with CPUs.
    public let accessClass: Int
    /// The initiator nodes (the `initiators/nodeN` links).
    public let initiators: NodeSet
    /// Read latency in nanoseconds (`read_latency`).
    public let readLatency: Int?
    /// Write latency in nanoseconds (`write_latency`).
    public let writeLatency: Int?
    /// Read bandwidth in MB/s (`read_bandwidth`).
    public let readBandwidth: Int?
    /// Write bandwidth in MB/s (`write_bandwidth`).
    public let writeBandwidth: Int?

    /// Access figures as given; nil for a figure the kernel does not show.
    public init(accessClass: Int, initiators: NodeSet, readLatency: Int?, writeLatency: Int?,
                readBandwidth: Int?, writeBandwidth: Int?) {
        self.accessClass = accessClass
        self.initiators = initiators
        self.readLatency = readLatency
        self.writeLatency = writeLatency
        self.readBandwidth = readBandwidth
        self.writeBandwidth = writeBandwidth
    }

    /// The access classes of `node` the kernel shows, in class order; empty without HMAT.
    static func read(node: Int) -> [FirmwareAccess] {
        let base = "/sys/devices/system/node/node\(node)"
        return SysFS.entries(base, prefix: "access").compactMap { accessClass in
            let directory = "\(base)/access\(accessClass)/initiators"
            let initiators = NodeSet(SysFS.entries(directory, prefix: "node"))
            func value(_ name: String) -> Int? { SysFS.read("\(directory)/\(name)").flatMap { Int($0) } }
            let access = FirmwareAccess(
                accessClass: accessClass, initiators: initiators,
                readLatency: value("read_latency"), writeLatency: value("write_latency"),
                readBandwidth: value("read_bandwidth"), writeBandwidth: value("write_bandwidth"))
            let empty = access.readLatency == nil && access.writeLatency == nil
                && access.readBandwidth == nil && access.writeBandwidth == nil
            return empty && initiators.isEmpty ? nil : access
        }
    }
}

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

/// The kernel's weights for weighted interleave (`MPOL_WEIGHTED_INTERLEAVE`, Linux 6.9):
/// `/sys/kernel/mm/mempolicy/weighted_interleave/nodeN`, one small integer per node. A page
/// sequence interleaved over nodes A and B with weights 3 and 1 puts three pages on A for each
/// one on B. The weights are system-wide; changing them needs root.
public enum InterleaveWeights {
    static let directory = "/sys/kernel/mm/mempolicy/weighted_interleave"

    /// The largest weight the kernel takes.
    public static let maximum = 255

    /// Whether this kernel has weighted interleave (its weights directory exists).
    public static var isSupported: Bool { access(directory, F_OK) == 0 }

    /// Whether this process may write the weights (root, as a rule).
    public static var isWritable: Bool {
        SysFS.entries(directory, prefix: "node").first.map { access("\(directory)/node\($0)", W_OK) == 0 } ?? false
    }

    /// The weight of every node, or nil when the kernel has no weighted interleave.
    public static func current() -> [Int: Int]? {
        guard isSupported else { return nil }
        var weights: [Int: Int] = [:]
        for node in SysFS.entries(directory, prefix: "node") {
            if let weight = SysFS.read("\(directory)/node\(node)").flatMap({ Int($0) }) { weights[node] = weight }
        }
        return weights
    }

    /// The error for a kernel without weighted interleave, naming the version it needs.
    public static func unsupported(operation: String) -> NUMAError {
        var name = utsname()
        uname(&name)
        let release = withUnsafeBytes(of: name.release) { String(decoding: $0.prefix { $0 != 0 }, as: UTF8.self) }
        return NUMAError(operation: operation, errno: EOPNOTSUPP,
                         message: "weighted interleave needs Linux 6.9 or later; this kernel is \(release)")
    }

    /// Weights saved by `set`, for `restore`: those of the nodes written, and whether the
    /// kernel chose the weights itself before (its `auto` mode, Linux 6.16; nil before it).
    public struct Saved: Sendable, Equatable {
        /// The weight each written node had before, by node.
        public let weights: [Int: Int]
        /// Whether the kernel's `auto` mode was on before; nil on a kernel without it.
        public let automatic: Bool?
    }

    /// The file of the kernel's `auto` mode, which some kernels build as `__auto_type`.
    static var automaticPath: String? {
        ["auto", "__auto_type"].map { "\(directory)/\($0)" }.first { access($0, F_OK) == 0 }
    }

    /// Whether the kernel picks the weights itself (from the firmware's bandwidth), or nil on
    /// a kernel without that mode. Writing a node's weight turns it off.
    public static var isAutomatic: Bool? {
        automaticPath.flatMap { SysFS.read($0) }.flatMap { $0 == "true" ? true : $0 == "false" ? false : nil }
    }

    /// Writes `weights` (node: 1...255) and returns what they replace, for `restore`. Nodes not
    /// named keep their weights. Needs root. On a failure part way, what was written is put
    /// back before the error is thrown.
    @discardableResult
    public static func set(_ weights: [Int: Int]) throws(NUMAError) -> Saved {
        guard let before = current() else { throw unsupported(operation: "weighted_interleave") }
        try check(weights)
        for node in weights.keys.sorted() where before[node] == nil {
            throw NUMAError(operation: "weighted_interleave", errno: ENODEV,
                            message: "node \(node) has no interleave weight (nodes: \(NodeSet(Array(before.keys))))")
        }
        let automatic = isAutomatic
        var written: [Int: Int] = [:]
        for (node, weight) in weights.sorted(by: { $0.key < $1.key }) {
            do {
                try write(String(weight), to: "\(directory)/node\(node)")
            } catch {
                try? restore(Saved(weights: written, automatic: automatic))
                throw error
            }
            written[node] = before[node]
        }
        return Saved(weights: written, automatic: automatic)
    }

    /// Refuses a weight outside 1...255 (EINVAL), naming the first such node; reads nothing.
    public static func check(_ weights: [Int: Int]) throws(NUMAError) {
        if let (node, weight) = weights.sorted(by: { $0.key < $1.key }).first(where: { !(1...maximum).contains($0.value) }) {
            throw NUMAError(operation: "weighted_interleave", errno: EINVAL,
                            message: "weight \(weight) for node \(node) is not between 1 and \(maximum)")
        }
    }

    /// Puts back what `set` replaced: the nodes' weights, then the kernel's `auto` mode.
    public static func restore(_ saved: Saved) throws(NUMAError) {
        var failure: NUMAError?
        for (node, weight) in saved.weights.sorted(by: { $0.key < $1.key }) {
            do { try write(String(weight), to: "\(directory)/node\(node)") } catch { failure = failure ?? error }
        }
        if let automatic = saved.automatic, automatic != isAutomatic, let path = automaticPath {
            // A kernel without firmware bandwidth data refuses `auto` with ENODEV: its automatic
            // weights were the defaults, which the node writes above have put back.
            do { try write(automatic ? "true" : "false", to: path) } catch where error.errno != ENODEV { failure = failure ?? error } catch {}
        }
        if let failure { throw failure }
    }

    private static func write(_ value: String, to path: String) throws(NUMAError) {
        let fd = open(path, O_WRONLY)
        guard fd >= 0 else {
            let code = errno
            throw NUMAError(operation: "weighted_interleave", errno: code,
                            message: "cannot write \(path): \(String(cString: strerror(code)))"
                                + (code == EACCES || code == EPERM ? " (setting weights needs root)" : ""))
        }
        defer { close(fd) }
        let text = Array("\(value)\n".utf8)
        guard Glibc.write(fd, text, text.count) == text.count else {
            let code = errno
            throw NUMAError(operation: "weighted_interleave", errno: code,
                            message: "cannot write \(path): \(String(cString: strerror(code)))")
        }
    }
}

extension SysFS {
    /// The numbers N of the entries named `prefix`N in `directory`, ascending; empty when the
    /// directory cannot be read.
    static func entries(_ directory: String, prefix: String) -> [Int] {
        guard let dir = opendir(directory) else { return [] }
        defer { closedir(dir) }
        var ids: [Int] = []
        while let entry = readdir(dir) {
            let name = withUnsafeBytes(of: entry.pointee.d_name) { String(decoding: $0.prefix { $0 != 0 }, as: UTF8.self) }
            if name.hasPrefix(prefix), let id = Int(name.dropFirst(prefix.count)) { ids.append(id) }
        }
        return ids.sorted()
    }
}
