import CNuma
#if canImport(Glibc)
import Glibc
#endif

/// The CPUs the calling thread may run on: sched_getaffinity(2) and sched_setaffinity(2).
public enum ThreadAffinity {
    static let words = 128  // 8192 CPUs

    /// The affinity of the calling thread: sched_getaffinity(2).
    public static func current() throws(NUMAError) -> CPUSet {
        var mask = [UInt64](repeating: 0, count: words)
        try systemCall("sched_getaffinity") { CNuma_getaffinity(&mask, words) }
        return CPUSet(words: mask)
    }

    /// Restricts the calling thread to `cpus`: sched_setaffinity(2). Every CPU must be allowed
    /// for this process.
    public static func set(_ cpus: CPUSet, topology: Topology = .current) throws(NUMAError) {
        guard !cpus.isEmpty else {
            throw NUMAError(operation: "sched_setaffinity", errno: EINVAL, message: "the CPU set is empty")
        }
        for cpu in cpus where !topology.allowedCPUs.contains(cpu) {
            let known = topology.node(ofCPU: cpu) != nil
            throw NUMAError(operation: "sched_setaffinity", errno: known ? EPERM : EINVAL,
                            message: known ? "CPU \(cpu) is not allowed for this process (allowed: \(topology.allowedCPUs))"
                                : "CPU \(cpu) does not exist (CPUs: \(topology.allowedCPUs))")
        }
        var mask = cpus.words
        try systemCall("sched_setaffinity") { CNuma_setaffinity(&mask, mask.count) }
        for observer in moveObservers.withLock({ $0 }) { observer() }
    }

    /// Code to run on a thread right after it restricted itself to other CPUs through this
    /// type: the pools move the thread's caches to its new node at once, instead of at the
    /// cache's next refill (which is when they notice other moves).
    private static let moveObservers = Locked<[@Sendable () -> Void]>([])

    /// Adds `observer`, which runs on every thread that calls `set` or `bind` successfully.
    package static func observeMoves(_ observer: @escaping @Sendable () -> Void) {
        moveObservers.withLock { $0.append(observer) }
    }

    /// Restricts the calling thread to the allowed CPUs of `nodes`. Throws for a node that
    /// does not exist or has no CPU this process may use.
    public static func bind(toNodes nodes: NodeSet, topology: Topology = .current) throws(NUMAError) {
        try set(cpus(ofNodes: nodes, topology: topology), topology: topology)
    }

    /// The allowed CPUs of `nodes`, or an error naming the node that has none.
    public static func cpus(ofNodes nodes: NodeSet, topology: Topology = .current) throws(NUMAError) -> CPUSet {
        guard !nodes.isEmpty else {
            throw NUMAError(operation: "sched_setaffinity", errno: EINVAL, message: "the node set is empty")
        }
        try topology.validate(nodes, operation: "sched_setaffinity", needsMemory: false)
        for node in nodes where topology.allowedCPUs(on: [node]).isEmpty {
            throw NUMAError(operation: "sched_setaffinity", errno: EINVAL,
                            message: "node \(node) has no CPU this process may use")
        }
        return topology.allowedCPUs(on: nodes)
    }

    /// The process-wide allowed CPUs, read from the calling thread at start-up.
    static func processCPUs() -> CPUSet {
        (try? current()) ?? CPUSet()
    }
}
