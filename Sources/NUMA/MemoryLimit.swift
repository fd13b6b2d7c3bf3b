#if canImport(Glibc)
import Glibc
#endif

/// A limit on the memory this process may take beyond what the machine has free: its memory
/// cgroup's (`memory.max` and `memory.high` of cgroup v2, `memory.limit_in_bytes` of v1, of its
/// own cgroup and each above it) or a resource limit (getrlimit(2): `RLIMIT_AS`,
/// `RLIMIT_DATA`). A process that goes over a cgroup's limit is throttled into thrashing
/// (`memory.high`) or killed by the OOM killer (`memory.max`); one over an rlimit has its
/// mappings refused.
public struct MemoryLimit: Sendable, Equatable, CustomStringConvertible {
    /// The bytes the process may still take under this limit.
    public let available: UInt64
    /// The limit in bytes.
    public let limit: UInt64
    /// What sets the limit: a cgroup file's path or an rlimit's name.
    public let source: String

    /// A limit of `limit` bytes set by `source`, under which `available` bytes may still be taken.
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

    /// The cgroup's limits, where set: of the process's own cgroup and each above it (as far as
    /// the hierarchy is mounted here), v2's `memory.max` and `memory.high` less `memory.current`,
    /// or v1's `memory.limit_in_bytes` less `memory.usage_in_bytes`; the page cache, which the
    /// kernel reclaims first, counts as free, less its shared memory (tmpfs), which it cannot.
    static func cgroupLimits() -> [MemoryLimit] {
        guard let membership = SysFS.read("/proc/self/cgroup") else { return [] }
        let mounts = cgroupMounts()
        var limits: [MemoryLimit] = []
        for line in membership.split(separator: "\n") {
            let fields = line.split(separator: ":", maxSplits: 2, omittingEmptySubsequences: false)
            guard fields.count == 3 else { continue }
            let v2 = fields[0] == "0" && fields[1].isEmpty
            guard v2 || fields[1].split(separator: ",").contains("memory"),
                  let mount = mounts[v2 ? "" : "memory"] else { continue }
            for directory in levels(of: String(fields[2]), in: mount) {
                limits += v2 ? v2Limits(directory) : v1Limit(directory).map { [$0] } ?? []
            }
        }
        return limits
    }

    /// Where this process sees the cgroup hierarchies (/proc/self/mountinfo): for v2 (key "")
    /// and v1's memory controller (key "memory"), the cgroup the mount shows at its mount point
    /// and that mount point. In a container the mount point may show the container's own cgroup.
    static func cgroupMounts() -> [String: (root: String, point: String)] {
        var mounts: [String: (root: String, point: String)] = [:]
        for line in (SysFS.read("/proc/self/mountinfo") ?? "").split(separator: "\n") {
            // "id parent dev root point options [optional fields] - type source superoptions"
            guard let separator = line.firstRange(of: " - ") else { continue }
            let mount = line[..<separator.lowerBound].split(separator: " "), filesystem = line[separator.upperBound...].split(separator: " ")
            guard mount.count >= 5, filesystem.count >= 3 else { continue }
            let key: String
            if filesystem[0] == "cgroup2" {
                key = ""
            } else if filesystem[0] == "cgroup", filesystem[2].split(separator: ",").contains("memory") {
                key = "memory"
            } else {
                continue
            }
            if mounts[key] == nil { mounts[key] = (String(mount[3]), String(mount[4])) }
        }
        return mounts
    }

    /// The directories of the cgroup at `path` in its hierarchy and of each cgroup above it that
    /// `mount` shows, innermost first.
    static func levels(of path: String, in mount: (root: String, point: String)) -> [String] {
        let root = mount.root == "/" ? "" : mount.root
        // A path outside what the mount shows (another cgroup namespace): the mount's own cgroup.
        var inside = path.hasPrefix(root + "/") || path == root || root.isEmpty ? String(path.dropFirst(root.count)) : ""
        if inside == "/" { inside = "" }
        var levels: [String] = []
        while true {
            levels.append(mount.point + inside)
            guard let slash = inside.lastIndex(of: "/") else { break }
            inside = String(inside[..<slash])
        }
        return levels
    }

    private static func v2Limits(_ directory: String) -> [MemoryLimit] {
        guard let current = SysFS.read("\(directory)/memory.current").flatMap({ UInt64($0) }) else { return [] }
        let stat = directory + "/memory.stat"
        let cache = (statistic(stat, "file") ?? 0) - min(statistic(stat, "file") ?? 0, statistic(stat, "shmem") ?? 0)
        let used = current - min(current, cache)
        return ["memory.max", "memory.high"].compactMap { file in
            guard let limit = SysFS.read("\(directory)/\(file)").flatMap({ UInt64($0) }) else { return nil }  // "max": none
            return MemoryLimit(available: limit - min(limit, used), limit: limit, source: "\(directory)/\(file)")
        }
    }

    private static func v1Limit(_ directory: String) -> MemoryLimit? {
        guard let limit = SysFS.read("\(directory)/memory.limit_in_bytes").flatMap({ UInt64($0) }),
              limit < UInt64(Int64.max) / 2,  // unlimited reads as about 2^63
              let usage = SysFS.read("\(directory)/memory.usage_in_bytes").flatMap({ UInt64($0) }) else { return nil }
        let stat = directory + "/memory.stat"
        let cache = (statistic(stat, "total_cache") ?? 0) - min(statistic(stat, "total_cache") ?? 0, statistic(stat, "total_shmem") ?? 0)
        let used = usage - min(usage, cache)
        return MemoryLimit(available: limit - min(limit, used), limit: limit, source: "\(directory)/memory.limit_in_bytes")
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
