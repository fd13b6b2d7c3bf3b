import NUMA

/// Everything `numa-service` is started with.
public struct ServiceConfiguration: Sendable {
    /// Where request contexts and buffers come from.
    public enum Allocator: String, CaseIterable, Sendable {
        /// Swift allocations and NIO's default allocator: the baseline.
        case malloc
        /// A `GlobalPool` spread over the nodes, and the heap's arenas in turn.
        case global
        /// A `LocalPool` and the heap on the serving thread's node.
        case local
    }

    /// What sizes the contexts' idle capacity per node.
    public enum Policy: String, CaseIterable, Sendable {
        /// A fixed capacity (`maxIdle`).
        case none
        /// The study's rule: p99 over 1.3× the SLO grows, under 0.7× shrinks (`SLORule`).
        case slo
        /// The pool's own demand, with the SLO as a veto on shrinking (`DemandController`).
        case demand
    }

    /// Where request handlers run.
    public enum Handlers: String, CaseIterable, Sendable {
        /// Swift's concurrency pool (Hummingbird's default): a handler may run on any thread.
        case concurrency
        /// The event loops themselves: NIO's event loop group is Swift's global executor.
        case eventLoops = "event-loops"
    }

    public var host = "127.0.0.1"
    /// 0 takes any free port; the one taken is printed.
    public var port = 8080
    public var allocator: Allocator = .local
    public var policy: Policy = .none
    /// The p99 request duration the controllers aim for.
    public var slo: Duration = .milliseconds(50)
    /// The controllers' window.
    public var window: Duration = .seconds(10)
    /// The least time between two steps of a controller: the study's 300 s for both.
    public var cooldown: Duration = .seconds(300)
    /// The largest `/work` reply and the largest request body.
    public var limit = 1 << 20
    /// The CPUs that get an event loop, one each; nil for every allowed CPU.
    public var cpus: [Int]?
    public var handlers: Handlers = .concurrency
    /// How long free heap memory stays before it goes back to the kernel.
    public var decay: Duration = .seconds(10)
    /// Whether the heap's purger thread gives memory back while the service is idle; without
    /// it, decay happens only as the heap is called (for instruction counts, which the
    /// purger's wall-clock work would skew).
    public var purger = true
    /// Count the placement of one request in this many; 0 counts none.
    public var placementSample = 16
    /// How often pool statistics are exported to the metrics.
    public var metricsInterval: Duration = .seconds(1)
    /// Address space of the contexts' pool per node.
    public var contextBytesPerNode = 64 << 20
    /// Address space of each node's heap arena; nil for 1 GiB, or half the smallest node's
    /// memory where that is less (an arena may not be larger than its node).
    public var heapBytesPerNode: Int?

    public init() {}

    /// The event loops' CPUs: those given, or every allowed CPU, ordered so that consecutive
    /// loops take turns over the nodes.
    public func loopCPUs(topology: Topology = .current) throws -> [Int] {
        let allowed = topology.allowedCPUs.ids
        if let cpus {
            guard !cpus.isEmpty else { throw ServiceError.invalid("--cpus names no CPU") }
            for cpu in cpus where !allowed.contains(cpu) {
                throw ServiceError.invalid("CPU \(cpu) is not allowed to this process (allowed: \(allowed.map(String.init).joined(separator: ",")))")
            }
            return cpus
        }
        var byNode: [Int: [Int]] = [:]
        for cpu in allowed { byNode[topology.node(ofCPU: cpu) ?? 0, default: []].append(cpu) }
        var ordered: [Int] = []
        let nodes = byNode.keys.sorted()
        var index = 0
        while ordered.count < allowed.count {
            for node in nodes where index < byNode[node]!.count { ordered.append(byNode[node]![index]) }
            index += 1
        }
        return ordered
    }

    /// The heap's arena size on this machine.
    public func heapArenaBytes(topology: Topology = .current) -> Int {
        if let heapBytesPerNode { return heapBytesPerNode }
        let smallest = topology.bindableNodes.ids.compactMap { topology.node($0)?.memoryTotal }.min() ?? (2 << 30)
        let chunk = 256 << 10
        return max(chunk, min(1 << 30, Int(smallest / 2) / chunk * chunk))
    }

    /// Checks the values that do not depend on the machine.
    public func validate() throws {
        guard (0...65535).contains(port) else { throw ServiceError.invalid("--port must be between 0 and 65535, got \(port)") }
        guard limit > 0 else { throw ServiceError.invalid("--limit must be positive, got \(limit)") }
        guard slo > .zero else { throw ServiceError.invalid("--slo must be positive, got \(slo)") }
        guard window > .zero else { throw ServiceError.invalid("--window must be positive, got \(window)") }
        guard cooldown >= .zero else { throw ServiceError.invalid("--cooldown must not be negative, got \(cooldown)") }
        guard decay >= .zero else { throw ServiceError.invalid("--decay must not be negative, got \(decay)") }
        guard metricsInterval > .zero else { throw ServiceError.invalid("--metrics-interval must be positive, got \(metricsInterval)") }
        guard placementSample >= 0 else { throw ServiceError.invalid("--placement-sample must not be negative") }
        if policy != .none && allocator == .malloc {
            throw ServiceError.invalid("--policy \(policy.rawValue) sizes a pool: it needs --allocator local or global")
        }
    }
}

/// A configuration the service cannot run with.
public enum ServiceError: Error, CustomStringConvertible {
    case invalid(String)

    public var description: String {
        switch self {
        case .invalid(let message): message
        }
    }
}
