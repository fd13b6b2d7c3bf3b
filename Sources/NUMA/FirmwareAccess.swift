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
