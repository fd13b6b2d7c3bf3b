import Foundation
import Testing
import TestSupport

/// A pids cgroup that caps the tasks membench may have, so that pthread_create(3) fails for
/// real part way through a measurement (EAGAIN), as under a container's pids limit.
enum PidsLimit {
    /// A pids hierarchy new groups can be made in: cgroup v1's `pids`, or v2 where the root
    /// already delegates the pids controller; nil where there is neither.
    static let root: String? = {
        let manager = FileManager.default
        if manager.fileExists(atPath: "/sys/fs/cgroup/pids/cgroup.procs") { return "/sys/fs/cgroup/pids" }
        if let controllers = try? String(contentsOfFile: "/sys/fs/cgroup/cgroup.subtree_control", encoding: .utf8),
           controllers.split(whereSeparator: \.isWhitespace).contains("pids") {
            return "/sys/fs/cgroup"
        }
        return nil
    }()

    static let usable = root != nil && geteuid() == 0 && ProcessInfo.processInfo.activeProcessorCount >= 2

    /// Runs membench with `arguments` in a new pids group of at most `limit` tasks.
    static func run(_ arguments: [String], limit: Int) throws -> CLI.Output {
        let group = "\(root!)/membench-\(UUID().uuidString)"
        try FileManager.default.createDirectory(atPath: group, withIntermediateDirectories: false)
        defer { rmdir(group) }
        return try CLI.shell("echo $$ > \(group)/cgroup.procs && echo \(limit) > \(group)/pids.max && exec $MEMBENCH "
                             + arguments.joined(separator: " "), timeout: 60)
    }
}

@Suite("membench: a thread that cannot start", .serialized,
       .enabled(if: PidsLimit.usable, "needs root, a pids cgroup and two CPUs"))
struct ThreadStartTests {
    /// With a cap of 2 tasks the first worker starts and the second cannot: the started one
    /// must be released from the start line, not left spinning while the run waits to join it
    /// (which hung before). Higher caps let the run through; a sanitizer's own thread moves the
    /// point by one, so caps 2 to 5 are tried and each must either run or refuse in one line.
    @Test("the threads already started are released and joined, and the run ends with one line and exit 1",
          arguments: [
              ["run", "--pool", "direct", "--threads", "2", "--size", "4MiB", "--duration", "0.1", "--warmup", "0"],
              ["run", "--pool", "local", "--threads", "2", "--size", "4MiB", "--duration", "0.1", "--warmup", "0"],
              ["bandwidth", "--threads", "2", "--kernels", "read,copy", "--size", "4MiB", "--duration", "0.1"],
              ["alloc", "--allocators", "local", "--threads", "2", "--duration", "0.1"],
              ["loaded", "--delays", "0", "--size", "4MiB", "--duration", "0.1"],
              ["c2c", "--repeats", "3", "--lines", "32"],
          ])
    func limited(_ arguments: [String]) throws {
        var refused = 0, ran = 0
        for limit in 2...5 {
            let output = try PidsLimit.run(arguments, limit: limit)
            // 124 or a signal: timeout(1) ended a run that hung.
            try #require(output.status == 0 || output.status == 1, "limit \(limit): exit \(output.status): \(output.stderr)")
            if output.status == 0 {
                ran += 1
            } else {
                output.expectOneLineError(status: 1, mentioning: "start")
                refused += 1
            }
        }
        #expect(refused >= 1, "no cap stopped a thread")
        #expect(ran >= 1, "no cap let the run through")
    }
}
