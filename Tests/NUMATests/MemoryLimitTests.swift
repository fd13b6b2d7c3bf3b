@testable import NUMA
import Testing

@Suite("Memory limits: the cgroups and rlimits a process is under")
struct MemoryLimitTests {
    /// A container on cgroup v1 sees its own cgroup (/docker/abc in /proc/self/cgroup) mounted
    /// at the hierarchy's mount point: the directory is the mount point, not a path below it.
    @Test("a cgroup path maps onto the mount that shows it, innermost level first")
    func levels() {
        let container = (root: "/docker/abc", point: "/sys/fs/cgroup/memory")
        #expect(MemoryLimit.levels(of: "/docker/abc", in: container) == ["/sys/fs/cgroup/memory"])
        #expect(MemoryLimit.levels(of: "/docker/abc/job", in: container) == ["/sys/fs/cgroup/memory/job", "/sys/fs/cgroup/memory"])
        let host = (root: "/", point: "/sys/fs/cgroup")
        #expect(MemoryLimit.levels(of: "/a/b", in: host) == ["/sys/fs/cgroup/a/b", "/sys/fs/cgroup/a", "/sys/fs/cgroup"])
        #expect(MemoryLimit.levels(of: "/", in: host) == ["/sys/fs/cgroup"])
        // A path the mount does not show (another namespace's): the mount's own cgroup.
        #expect(MemoryLimit.levels(of: "/elsewhere", in: container) == ["/sys/fs/cgroup/memory"])
        #expect(MemoryLimit.levels(of: "/docker/abcdef", in: container) == ["/sys/fs/cgroup/memory"])
    }

    @Test("the memory hierarchy of this process is found through mountinfo")
    func mounts() throws {
        let membership = try #require(SysFS.read("/proc/self/cgroup"))
        let usesMemory = membership.split(separator: "\n").contains { line in
            let fields = line.split(separator: ":", maxSplits: 2, omittingEmptySubsequences: false)
            return fields.count == 3 && (fields[1].split(separator: ",").contains("memory") || (fields[0] == "0" && fields[1].isEmpty))
        }
        guard usesMemory else { return }
        let mounts = MemoryLimit.cgroupMounts()
        #expect(mounts["memory"] != nil || mounts[""] != nil, "\(mounts)")
        for (_, mount) in mounts { #expect(mount.point.hasPrefix("/"), "\(mount)") }
    }

    @Test("every limit read leaves at most the limit available")
    func limitsConsistent() {
        for limit in MemoryLimit.current() {
            #expect(limit.available <= limit.limit, "\(limit)")
        }
    }
}
