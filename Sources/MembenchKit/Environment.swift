import Foundation
import NUMA

/// The facts about the machine that change latency numbers; stored in every record.
public struct RunEnvironment: Sendable, Codable, Equatable {
    /// "2 node(s); THP madvise; numa_balancing 0", for headers.
    var summary: String { "\(nodeCount) node(s); THP \(transparentHugePages); numa_balancing \(numaBalancing)" }

    public var host: String
    public var kernel: String
    public var cpuModel: String
    public var nodeCount: Int
    /// The selected mode of /sys/kernel/mm/transparent_hugepage/enabled.
    public var transparentHugePages: String
    /// /proc/sys/kernel/numa_balancing: 0 off, 1 on, 2 tiering; "n/a" where absent.
    public var numaBalancing: String
    /// The base page size in bytes.
    public var pageSize: Int
    /// ISO 8601, UTC.
    public var timestamp: String

    public static func current(topology: Topology = .current) -> RunEnvironment {
        var names = utsname()
        uname(&names)
        let kernel = withUnsafeBytes(of: &names.release) { String(decoding: $0.prefix { $0 != 0 }, as: UTF8.self) }
        let cpuinfo = (try? String(contentsOfFile: "/proc/cpuinfo", encoding: .utf8)) ?? ""
        let model = cpuinfo.split(separator: "\n").first { $0.hasPrefix("model name") }
            .map { $0.split(separator: ":", maxSplits: 1).last.map { $0.trimmingCharacters(in: .whitespaces) } ?? "" } ?? "unknown"
        let thp = read("/sys/kernel/mm/transparent_hugepage/enabled")
        let selected = thp.flatMap { text in
            text.split(separator: " ").first { $0.hasPrefix("[") }.map { String($0.dropFirst().dropLast()) }
        } ?? "n/a"
        return RunEnvironment(
            host: ProcessInfo.processInfo.hostName, kernel: kernel, cpuModel: model,
            nodeCount: topology.nodeCount, transparentHugePages: selected,
            numaBalancing: read("/proc/sys/kernel/numa_balancing") ?? "n/a",
            pageSize: PagePlacement.basePageSize,
            timestamp: Date().ISO8601Format())
    }

    /// Whether the kernel migrates pages on its own during a run.
    public var numaBalancingOn: Bool { numaBalancing != "0" && numaBalancing != "n/a" }

    static func read(_ path: String) -> String? {
        (try? String(contentsOfFile: path, encoding: .utf8))?.trimmingCharacters(in: .whitespacesAndNewlines)
    }
}
