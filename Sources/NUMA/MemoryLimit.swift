#if canImport(Glibc)
import Glibc
#endif

/// A limit on the memory this process may take beyond what the machine has free: its memory
/// cgroup (`memory.max` of cgroup v2, `memory.limit_in_bytes` of v1, the tightest of its own
/// and its ancestors') or a resource limit (getrlimit(2): `RLIMIT_AS`, `RLIMIT_DATA`). A
/// process that goes over the cgroup's limit is reclaimed into thrashing or killed by the OOM
/// killer; one over an rlimit has its mappings refused.
public struct MemoryLimit: Sendable, Equatable, CustomStringConvertible {
    /// The bytes the process may still take under this limit.
    public let available: UInt64
    /// The limit in bytes.
    public let limit: UInt64
    /// What sets the limit: a cgroup file's path or an rlimit's name.
    public let source: String

    public init(available: UInt64, limit: UInt64, source: String) {
        self.available = available
        self.limit = limit
        self.source = source
    }

    /// "this process's memory cgroup may take 256 MiB more (limit 512 MiB, /sys/fs/cgroup/x/memory.max)".
    public var description: String {
        let kind = source.hasPrefix("RLIMIT") ? "its \(source)" : "its memory cgroup"
        return "this process may take \(available >> 20) MiB more under \(kind) (limit \(limit >> 20) MiB\(source.hasPrefix("RLIMIT") ? "" : ", \(source)"))"
    }

    /// Every limit this process is under now, tightest first.
    public static func current() -> [MemoryLimit] {
        (cgroupLimits() + resourceLimits()).sorted { $0.available < $1.available }
    }

    /// The cgroup's limit, where one is set: v2's `memory.max` of each cgroup from the process's
    /// own to the root (less `memory.current`, plus the page cache, which the kernel reclaims
    /// first), or v1's hierarchical limit of the memory controller's cgroup.
    static func cgroupLimits() -> [MemoryLimit] {
        guard let membership = SysFS.read("/proc/self/cgroup") else { return [] }
        var limits: [MemoryLimit] = []
        for line in membership.split(separator: "\n") {
            let fields = line.split(separator: ":", maxSplits: 2, omittingEmptySubsequences: false)
            guard fields.count == 3 else { continue }
            if fields[0] == "0" && fields[1].isEmpty {
                // v2: every level may set memory.max.
                var path = String(fields[2])
                while true {
                    let directory = "/sys/fs/cgroup" + (path == "/" ? "" : path)
                    if let limit = v2Limit(directory) { limits.append(limit) }
                    if path == "/" || path.isEmpty { break }
                    path = String(path[..<(path.lastIndex(of: "/") ?? path.startIndex)])
                    if path.isEmpty { path = "/" }
                }
            } else if fields[1].split(separator: ",").contains("memory") {
                if let limit = v1Limit("/sys/fs/cgroup/memory" + (fields[2] == "/" ? "" : fields[2])) { limits.append(limit) }
            }
        }
        return limits
    }

    private static func v2Limit(_ directory: String) -> MemoryLimit? {
        guard let max = SysFS.read("\(directory)/memory.max").flatMap({ UInt64($0) }),
              let current = SysFS.read("\(directory)/memory.current").flatMap({ UInt64($0) }) else { return nil }
        let cache = statistic(directory + "/memory.stat", "file") ?? 0
        return MemoryLimit(available: max - min(max, current - min(current, cache)), limit: max, source: "\(directory)/memory.max")
    }

    private static func v1Limit(_ directory: String) -> MemoryLimit? {
        // hierarchical_memory_limit: the tightest limit of the cgroup and its ancestors.
        guard let max = statistic(directory + "/memory.stat", "hierarchical_memory_limit"),
              max < UInt64(Int64.max) / 2,
              let usage = SysFS.read("\(directory)/memory.usage_in_bytes").flatMap({ UInt64($0) }) else { return nil }
        let cache = statistic(directory + "/memory.stat", "total_cache") ?? 0
        return MemoryLimit(available: max - min(max, usage - min(usage, cache)), limit: max,
                           source: "\(directory)/memory.limit_in_bytes")
    }

    /// A value of a `memory.stat` file ("name value" lines).
    private static func statistic(_ path: String, _ name: String) -> UInt64? {
        for line in (SysFS.read(path) ?? "").split(separator: "\n") {
            let fields = line.split(separator: " ")
            if fields.count == 2, fields[0] == name { return UInt64(fields[1]) }
        }
        return nil
    }

    /// `RLIMIT_AS` against the address space in use (`VmSize`) and `RLIMIT_DATA` against the
    /// private writable mappings (`VmData`), where set.
    static func resourceLimits() -> [MemoryLimit] {
        let status = SysFS.meminfo("/proc/self/status")
        var limits: [MemoryLimit] = []
        for (resource, name, used) in [(RLIMIT_AS, "RLIMIT_AS", "VmSize"), (RLIMIT_DATA, "RLIMIT_DATA", "VmData")] {
            var limit = rlimit()
            guard getrlimit(__rlimit_resource_t(resource.rawValue), &limit) == 0, limit.rlim_cur != rlim_t.max else { continue }
            let inUse = status[used] ?? 0
            limits.append(MemoryLimit(available: UInt64(limit.rlim_cur) - min(UInt64(limit.rlim_cur), inUse),
                                      limit: UInt64(limit.rlim_cur), source: name))
        }
        return limits
    }
}
