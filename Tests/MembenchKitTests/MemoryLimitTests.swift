import Foundation
import NUMA
import Testing
import TestSupport

/// A memory cgroup of its own for a command, made under this process's (v1's memory controller
/// or v2's unified tree) with a limit, so that a run too big for it meets the limit, never the
/// host's memory.
struct MemoryCgroup {
    let directory: String
    let procs: String

    static var available: Bool { geteuid() == 0 && (try? MemoryCgroup(limit: 1 << 30))?.remove() != nil }

    init(limit: Int) throws {
        let membership = try String(contentsOfFile: "/proc/self/cgroup", encoding: .utf8).split(separator: "\n")
        let name = "membench-test-\(UUID().uuidString)"
        if let v1 = membership.first(where: { $0.split(separator: ":")[1].split(separator: ",").contains("memory") }) {
            let own = String(v1.split(separator: ":", maxSplits: 2)[2])
            directory = "/sys/fs/cgroup/memory\(own == "/" ? "" : own)/\(name)"
            try FileManager.default.createDirectory(atPath: directory, withIntermediateDirectories: false)
            try "\(limit)".write(toFile: "\(directory)/memory.limit_in_bytes", atomically: false, encoding: .utf8)
        } else {
            // v2: a child of the root, where the memory controller is enabled for children.
            directory = "/sys/fs/cgroup/\(name)"
            try FileManager.default.createDirectory(atPath: directory, withIntermediateDirectories: false)
            try "\(limit)".write(toFile: "\(directory)/memory.max", atomically: false, encoding: .utf8)
        }
        procs = "\(directory)/cgroup.procs"
    }

    /// Runs membench with `arguments` inside the cgroup.
    func run(_ arguments: String) throws -> CLI.Output {
        try CLI.shell("echo $$ > '\(procs)' && exec $MEMBENCH \(arguments)")
    }

    /// Removes the cgroup once its processes have ended.
    func remove() { rmdir(directory) }
}

@Suite("membench refuses a run that its memory limits cannot hold", .serialized,
       .enabled(if: MemoryCgroup.available, "needs root and a memory cgroup this process may make children in"))
struct MemoryLimitTests {
    /// The chase's 160 MiB and the load thread's 160 MiB were checked one at a time against the
    /// machine's memory, so the pair ran into the cgroup's limit and was killed (exit 137).
    /// The limit leaves room for the binary itself, larger under AddressSanitizer.
    @Test("loaded counts the chase's buffer and the load threads' together, against the cgroup's limit")
    func loadedInCgroup() throws {
        let cgroup = try MemoryCgroup(limit: 256 << 20)
        defer { cgroup.remove() }
        let output = try cgroup.run("loaded --size 160MiB --load-threads 1 --duration 100ms --delays 0")
        output.expectOneLineError(status: 1, mentioning: "160MiB for the chase and 160MiB x 1 load thread need 320MiB, but this process may take")
        #expect(output.stderr.contains("under its memory cgroup (limit 256 MiB, \(cgroup.directory)/"), "\(output.stderr)")
    }

    @Test("run and bandwidth count every thread's buffer against the cgroup's limit, and run what fits",
          arguments: ["run --size 160MiB --threads 2 --duration 0.1", "bandwidth --size 160MiB --threads 2 --duration 0.1"])
    func threadsInCgroup(arguments: String) throws {
        let cgroup = try MemoryCgroup(limit: 256 << 20)
        defer { cgroup.remove() }
        try cgroup.run(arguments).expectOneLineError(status: 1, mentioning: "160MiB x 2 threads needs 320MiB, but this process may take")
        let fits = try cgroup.run(arguments.replacingOccurrences(of: "160MiB", with: "16MiB") + " --json")
        #expect(fits.status == 0, "\(fits.stderr)")
    }

    /// AddressSanitizer reserves terabytes of address space for its shadow, which no ulimit -v allows.
    @Test("an address-space limit (ulimit -v) is one of the limits",
          .enabled(if: dlsym(UnsafeMutableRawPointer(bitPattern: 0), "__asan_init") == nil, "not under AddressSanitizer"))
    func addressSpace() throws {
        let output = try CLI.shell("ulimit -v 2000000 && exec $MEMBENCH run --size 4GiB --duration 0.1")
        output.expectOneLineError(status: 1, mentioning: "4GiB x 1 thread needs 4GiB, but this process may take")
        #expect(output.stderr.contains("under its RLIMIT_AS (limit 1953 MiB)"), "\(output.stderr)")
    }

}
