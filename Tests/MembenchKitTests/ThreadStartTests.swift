import Foundation
@testable import MembenchKit
@testable import NUMA
import Testing
import TestSupport

/// A pids cgroup that caps the tasks membench may have, so that pthread_create(3) fails for
/// real part way through a measurement (EAGAIN), as under a container's pids limit.
enum PidsLimit {
    /// A pids hierarchy this process can make groups in (it makes one and removes it): cgroup
    /// v1's `pids`, or v2 where the root already delegates the pids controller; nil where
    /// there is neither, or where the hierarchy is read-only to us.
    static let root: String? = {
        var candidates: [String] = []
        if FileManager.default.fileExists(atPath: "/sys/fs/cgroup/pids/cgroup.procs") { candidates.append("/sys/fs/cgroup/pids") }
        if let controllers = try? String(contentsOfFile: "/sys/fs/cgroup/cgroup.subtree_control", encoding: .utf8),
           controllers.split(whereSeparator: \.isWhitespace).contains("pids") {
            candidates.append("/sys/fs/cgroup")
        }
        return candidates.first { root in
            let probe = "\(root)/membench-probe-\(getpid())"
            return mkdir(probe, 0o755) == 0 && rmdir(probe) == 0
        }
    }()

    static let usable = root != nil && Topology.current.allowedCPUs.count >= 2

    /// Runs membench with `arguments` in a new pids group of at most `limit` tasks.
    static func run(_ arguments: [String], limit: Int) throws -> CLI.Output {
        let group = "\(root!)/membench-\(UUID().uuidString)"
        try FileManager.default.createDirectory(atPath: group, withIntermediateDirectories: false)
        defer { #expect(rmdir(group) == 0, "the pids group \(group) is left behind: \(String(cString: strerror(errno)))") }
        return try CLI.shell("echo $$ > \(group)/cgroup.procs && echo \(limit) > \(group)/pids.max && exec $MEMBENCH "
                             + arguments.joined(separator: " "), timeout: 60)
    }
}

@Suite("membench: a thread that cannot start", .serialized,
       .enabled(if: PidsLimit.usable, "needs a pids cgroup this process can write and two CPUs"))
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
              ["loaded", "--delays", "0", "--load-threads", "1", "--size", "4MiB", "--duration", "0.1"],
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

@Suite("membench: a thread that cannot be pinned")
struct UnpinnableThreadTests {
    /// The current topology with one more CPU on the first node, which no thread can be pinned
    /// to (sched_setaffinity(2) fails with EINVAL), as when a CPU leaves the cpuset between the
    /// topology being read and the run's threads starting.
    static func topologyWithGhostCPU() -> (Topology, Int) {
        let real = Topology.current
        let ghost = 1000
        var cpuToNode = real.cpuToNode + Array(repeating: -1, count: max(0, ghost + 1 - real.cpuToNode.count))
        cpuToNode[ghost] = real.nodes[0].id
        var nodes = real.nodes
        let first = nodes[0]
        nodes[0] = Node(id: first.id, cpus: first.cpus.union([ghost]), memoryTotal: first.memoryTotal, memoryFree: first.memoryFree,
                        memoryAvailable: first.memoryAvailable, distances: first.distances, tier: first.tier,
                        firmware: first.firmware, memoryAttributes: first.memoryAttributes)
        let topology = Topology(nodes: nodes, numaAvailable: real.numaAvailable, allowedNodes: real.allowedNodes,
                                allowedCPUs: real.allowedCPUs.union([ghost]), lastLevelCache: real.lastLevelCache,
                                packages: real.packages, cpuToNode: cpuToNode, tiers: real.tiers)
        return (topology, ghost)
    }

    @Test("run: the thread that started is released and the run fails, instead of waiting for the unpinned one")
    func run() throws {
        let (topology, ghost) = Self.topologyWithGhostCPU()
        var options = RunOptions()
        options.strategy = .direct
        options.size = 4 << 20
        options.length = .duration(0.1)
        options.warmup = 0
        options.placement.physcpubind = [topology.allowedCPUs.first { $0 != ghost }!, ghost]
        options.threads = 2
        Self.expectAffinityError { _ = try LatencyRunner.run(options.resolve(topology: topology), topology: topology) }
    }

    @Test("loaded: a load thread that cannot be pinned releases the chase, and the error is the load thread's")
    func loaded() throws {
        let (topology, ghost) = Self.topologyWithGhostCPU()
        var options = LoadedOptions()
        options.delays = [0]
        options.size = 4 << 20
        options.duration = 0.1
        options.placement.physcpubind = [topology.allowedCPUs.first { $0 != ghost }!]
        options.loadCPUs = [ghost]
        Self.expectAffinityError { _ = try LoadedLatency.run(options.resolve(topology: topology), topology: topology) }
    }

    @Test("c2c: a reader that cannot be pinned releases the holder, and the error is the reader's")
    func cacheToCache() throws {
        let (topology, ghost) = Self.topologyWithGhostCPU()
        var options = CacheToCacheOptions()
        options.lines = 32
        options.repeats = 3
        options.placement.physcpubind = [topology.allowedCPUs.first { $0 != ghost }!, ghost]
        Self.expectAffinityError { _ = try CacheToCache.run(options.resolve(topology: topology), topology: topology) }
    }

    /// The run fails (rather than hangs) with the unpinned thread's own error, not that of the
    /// threads it stopped.
    static func expectAffinityError(sourceLocation: SourceLocation = #_sourceLocation, _ body: () throws -> Void) {
        let error = #expect(throws: MembenchError.self, sourceLocation: sourceLocation) { try body() }
        #expect(error?.message(naming: { $0.rawValue }).contains("sched_setaffinity") == true, "\(String(describing: error))",
                sourceLocation: sourceLocation)
    }
}
