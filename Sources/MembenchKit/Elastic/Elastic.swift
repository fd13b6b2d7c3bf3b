import Foundation
import Histogram
import Logging
import Metrics
import NUMA
import NUMAPool
import NUMAPoolMetrics
import Synchronization

/// How `membench elastic` sizes the request contexts' object pool.
public enum ElasticPolicy: String, Sendable, CaseIterable {
    /// A fixed, large idle capacity (`fixedLarge` objects per node).
    case fixedLarge = "fixed-large"
    /// A fixed, small idle capacity (`fixedSmall` objects per node).
    case fixedSmall = "fixed-small"
    /// The reference study's rule (`SLORule`), on the window's p99.
    case slo
    /// `DemandController`, on the pool's misses and idle low-water mark, with the SLO as a guard.
    case demand
}

/// A phase of the load profile.
public enum ElasticPhase: String, Sendable, CaseIterable {
    /// The rate climbs from 10% to all of the peak.
    case ramp
    /// The peak rate.
    case burst
    /// 2% of the peak.
    case quiet
    /// A dependency adds `dependency` to every request, at 20% of the peak: about as many
    /// requests in flight as in a burst, each slower.
    case slow

    /// The share of the peak rate `fraction` of the way through the phase.
    func rateShare(at fraction: Double) -> Double {
        switch self {
        case .ramp: 0.1 + 0.9 * fraction
        case .burst: 1
        case .quiet: 0.02
        case .slow: 0.2
        }
    }
}

/// Parameters of `membench elastic`.
public struct ElasticOptions: Sendable {
    public var policies: [ElasticPolicy] = ElasticPolicy.allCases
    public var threads = 2
    /// Requests per second per thread at the peak.
    public var peakRate = 50_000.0
    /// Seconds a request holds its context and buffer, before any dependency.
    public var serviceTime = 0.002
    /// The p99 target, seconds.
    public var slo = 0.005
    /// Seconds a slow dependency adds to each request in the `slow` phase.
    public var dependency = 0.010
    /// Phases and their seconds, in order.
    public var phases: [(ElasticPhase, Double)] = [(.ramp, 3), (.burst, 3), (.quiet, 6), (.burst, 3), (.slow, 6)]
    /// Seconds per controller window (the study's 10 s windows, compressed).
    public var window = 0.5
    public var rounds = 1
    public var sizes: AllocSizes = .service
    /// Idle objects per node of `fixed-large` and `fixed-small`, and where the controllers start.
    public var fixedLarge = 4096
    public var fixedSmall = 16
    public var initialCapacity = 64

    public init() {}

    /// Bytes of a request context: a `RequestContext` object.
    public static var contextBytes: Int { MemoryLayout<RequestContext>.stride }

    /// Checks the options against the machine; nothing runs.
    public func resolve(topology: Topology = .current) throws(MembenchError) -> ElasticOptions {
        guard !policies.isEmpty else { throw .invalid(.policies, "give at least one policy") }
        guard threads >= 1 && threads <= topology.allowedCPUs.count else {
            throw .invalid(.threads, "must be between 1 and the \(topology.allowedCPUs.count) allowed CPUs, got \(threads)")
        }
        guard peakRate >= 1 && peakRate <= 10_000_000 else { throw .invalid(.rate, "must be between 1 and 10000000 requests per second, got \(peakRate)") }
        guard serviceTime > 0 && serviceTime <= 10 else { throw .invalid(.serviceTime, "must be between 0 and 10 seconds, got \(serviceTime)") }
        guard slo > 0 && slo <= 60 else { throw .invalid(.slo, "must be between 0 and 60 seconds, got \(slo)") }
        guard dependency >= 0 && dependency <= 60 else { throw .invalid(.dependency, "must be between 0 and 60 seconds, got \(dependency)") }
        guard !phases.isEmpty, phases.allSatisfy({ $0.1 > 0 && $0.1 <= 3600 }) else {
            throw .invalid(.phases, "every phase needs a time between 0 and 3600 seconds")
        }
        guard window >= 0.01 && window <= 60 else { throw .invalid(.window, "must be between 10ms and 60s, got \(window)") }
        guard rounds >= 1 && rounds <= 100 else { throw .invalid(.rounds, "must be between 1 and 100, got \(rounds)") }
        let inFlight = peakRate * (serviceTime + dependency) * 2
        guard inFlight <= Double(Elastic.maxInFlight) else {
            throw .invalid(.rate, "\(Int(peakRate)) requests per second would keep over \(Elastic.maxInFlight) requests in flight per thread")
        }
        return self
    }

    /// `ramp=3,burst=3,quiet=6,burst=3,slow=6`: phases in order with their seconds.
    public static func parsePhases(_ text: String) throws(MembenchError) -> [(ElasticPhase, Double)] {
        var phases: [(ElasticPhase, Double)] = []
        for item in text.split(separator: ",") {
            let parts = item.split(separator: "=")
            guard parts.count == 2, let phase = ElasticPhase(rawValue: String(parts[0])), let seconds = Double(parts[1]) else {
                throw .invalid(.phases, "expected phase=seconds pairs (phases: \(ElasticPhase.allCases.map(\.rawValue).joined(separator: ", "))), got '\(item)'")
            }
            phases.append((phase, seconds))
        }
        return phases
    }
}

/// A request's context, the object the pool lends: an id and a 64 KiB scratch area (parsed
/// headers, a body being built) that the request writes.
public struct RequestContext {
    var id: UInt64 = 0
    var scratch = InlineArray<8191, UInt64>(repeating: 0)
}

/// One controller window of one policy's run.
public struct ElasticWindow: Sendable {
    public var policy: ElasticPolicy
    public var round: Int
    public var seconds: Double
    public var phase: ElasticPhase
    /// Requests completed per second in the window, all threads.
    public var rate: Double
    public var p50: Double?
    public var p99: Double?
    /// Idle objects per node the pool may keep, after the window's decision.
    public var capacity: Int
    public var decision: String
    /// Idle bytes kept: the pool's idle objects, and the heap's cached and free bytes.
    public var retainedBytes: Int
    /// Resident bytes of the pools: the contexts' arenas and the heap's.
    public var residentBytes: Int
    /// Misses over gets of the object pool in the window.
    public var missRate: Double?
}

/// Requests at a phased rate, each holding a pooled context and a heap buffer for its service
/// time, under each capacity policy in turn.
public enum Elastic {
    /// Requests one thread may have in flight.
    static let maxInFlight = 1 << 16

    /// The pools of one policy's run.
    final class Subject: Sendable {
        let contexts: ObjectPool<RequestContext>
        let backing: LocalPool
        let heap: NUMAHeap
        let driver: CapacityDriver<AnyCapacityPolicy>?
        /// The idle capacity a fixed policy set.
        let fixedCapacity: Int
        let lastP99 = Locked<Duration?>(nil)

        init(_ options: ElasticOptions, policy: ElasticPolicy, topology: Topology) throws(MembenchError) {
            do {
                // Small thread caches: a block a context gave back should reach the arena, where
                // a trim finds it.
                backing = try LocalPool(blockSize: BlockSize.rounded(ElasticOptions.contextBytes), capacityPerNode: 1 << 30,
                                        binding: .preferred, nodes: nil, cacheCapacity: 8,
                                        name: "membench elastic contexts", topology: topology)
                contexts = try ObjectPool(backing: backing, maxIdle: options.fixedLarge, cacheCapacity: 32,
                                          factory: { RequestContext() }, reset: { $0.id = 0 })
                heap = try NUMAHeap(capacityPerNode: 1 << 30, binding: .preferred, decay: .seconds(1),
                                    name: "membench elastic buffers", topology: topology)
            } catch {
                throw MembenchError.from(error)
            }
            let slo = Duration.seconds(options.slo), window = Duration.seconds(options.window)
            let chosen: AnyCapacityPolicy? = switch policy {
            case .fixedLarge, .fixedSmall: nil
            // The study's 300 s cooldown at its 10 s windows: 30 windows.
            case .slo: AnyCapacityPolicy(SLORule(slo: slo, minimum: options.fixedSmall, cooldown: window * 30))
            case .demand: AnyCapacityPolicy(DemandController(minimum: options.fixedSmall, maximum: options.fixedLarge * 4,
                                                             slo: slo, cooldown: window * 3))
            }
            let last = lastP99, objects = contexts
            driver = chosen.map {
                CapacityDriver(objects: objects, name: "contexts", policy: $0, capacity: options.initialCapacity,
                               window: window, p99: { last.withLock { $0 } },
                               logger: Logger(label: "membench.elastic") { _ in SwiftLogNoOpLogHandler() },
                               factory: NOOPMetricsHandler.instance)
            }
            let capacity = policy == .fixedLarge ? options.fixedLarge
                : policy == .fixedSmall ? options.fixedSmall : options.initialCapacity
            fixedCapacity = capacity
            for partition in 0..<objects.idlePartitionCount { objects.setIdleLimit(capacity, partition: partition) }
        }

        var capacity: Int { driver?.capacities.max() ?? fixedCapacity }

        /// Idle bytes kept, and resident bytes of both pools.
        func memory() -> (retained: Int, resident: Int) {
            let heapStats = heap.statistics()
            let heapIdle = heapStats.perNode.values.reduce(0) { $0 + $1.bytesCached + $1.bytesFree }
            return (contexts.idleCount * backing.blockSize + heapIdle, backing.statistics().bytesReserved + heapStats.bytesResident)
        }
    }

    /// The phase and rate the threads follow, set by the main thread.
    final class Control: Sendable {
        let phase = Atomic<Int>(0)
        /// The phase's start, nanoseconds of the monotonic clock.
        let phaseStart = Atomic<UInt64>(0)
        let stop = Atomic<Bool>(false)
        let durations: [Locked<Histogram<UInt64>>]
        init(threads: Int) {
            durations = (0..<threads).map { _ in
                Locked(Histogram<UInt64>(highestTrackableValue: 60_000_000_000, numberOfSignificantValueDigits: .three))
            }
        }
    }

    /// Runs the profile under each policy, in rounds that take turns.
    public static func run(_ options: ElasticOptions, topology: Topology = .current,
                           progress: (Double) -> Void = { _ in }) throws(MembenchError) -> [ElasticWindow] {
        var windows: [ElasticWindow] = []
        let turns = Rounds.alternating(options.policies, rounds: options.rounds)
        for (index, turn) in turns.enumerated() {
            windows += try runOne(options, policy: turn.item, round: turn.round, topology: topology) { fraction in
                progress((Double(index) + fraction) / Double(turns.count))
            }
        }
        return windows
    }

    static func runOne(_ options: ElasticOptions, policy: ElasticPolicy, round: Int, topology: Topology,
                       progress: (Double) -> Void) throws(MembenchError) -> [ElasticWindow] {
        let subject = try Subject(options, policy: policy, topology: topology)
        defer { subject.heap.stopPurger() }
        let control = Control(threads: options.threads)
        // The first phase starts before the threads do: the ramp's clock must not read 0.
        control.phaseStart.store(monotonicNanoseconds(), ordering: .relaxed)
        let cpus = Array(topology.allowedCPUs.ids.prefix(options.threads))
        let start = StartLine(parties: options.threads)
        let phases = options.phases
        let workers = try startPinnedThreads(on: cpus, role: "a request thread", lines: [start]) { index, _ throws -> Void in
            try serve(index: index, options: options, phases: phases.map(\.0), subject: subject, control: control, start: start)
        }
        let total = phases.reduce(0) { $0 + $1.1 }
        var windows: [ElasticWindow] = []
        var windowStart = 0.0
        var lastGets = subject.contexts.statistics()
        let began = ContinuousClock.now
        var elapsed = 0.0
        let tick = options.window / Double(subject.driver?.samplesPerWindow ?? 4)
        for (index, (phase, seconds)) in phases.enumerated() {
            control.phaseStart.store(monotonicNanoseconds(), ordering: .relaxed)
            control.phase.store(index, ordering: .releasing)
            let end = elapsed + seconds
            while elapsed < end - 1e-6 {
                let windowEnd = min(end, elapsed + options.window)
                while elapsed < windowEnd - 1e-6 {
                    Thread.sleep(forTimeInterval: min(tick, windowEnd - elapsed))
                    subject.driver?.sample()
                    elapsed = (ContinuousClock.now - began).inSeconds
                }
                var merged = Histogram<UInt64>(highestTrackableValue: 60_000_000_000, numberOfSignificantValueDigits: .three)
                for durations in control.durations {
                    let taken = durations.withLock { histogram in
                        let taken = histogram
                        histogram.reset()
                        return taken
                    }
                    merged.add(taken)
                }
                let p99 = merged.totalCount > 0 ? Double(merged.valueAtPercentile(99)) / 1e9 : nil
                subject.lastP99.withLock { $0 = p99.map { Duration.seconds($0) } }
                let decision: String
                if let driver = subject.driver {
                    decision = driver.endWindow().first?.reason.rawValue ?? "hold"
                } else {
                    // The fixed limit, set again: what returns destroyed goes back with its pages.
                    for partition in 0..<subject.contexts.idlePartitionCount {
                        subject.contexts.setIdleLimit(subject.fixedCapacity, partition: partition)
                    }
                    decision = "fixed"
                }
                let stats = subject.contexts.statistics()
                let gets = stats.gets - lastGets.gets, misses = stats.misses - lastGets.misses
                lastGets = stats
                let memory = subject.memory()
                windows.append(ElasticWindow(
                    policy: policy, round: round, seconds: elapsed, phase: phase,
                    rate: Double(merged.totalCount) / max(1e-3, elapsed - windowStart),
                    p50: merged.totalCount > 0 ? Double(merged.valueAtPercentile(50)) / 1e9 : nil, p99: p99,
                    capacity: subject.capacity, decision: decision, retainedBytes: memory.retained,
                    residentBytes: memory.resident, missRate: gets > 0 ? Double(misses) / Double(gets) : nil))
                windowStart = elapsed
                progress(elapsed / total)
            }
        }
        control.stop.store(true, ordering: .releasing)
        _ = try joinAll(workers)
        return windows
    }

    /// One thread's requests: arrivals at the phase's rate, each taking a context and a buffer,
    /// writing them, and holding them until its service time (plus the dependency's, in the
    /// slow phase) has passed. A request's duration runs from its scheduled arrival, so a thread
    /// that falls behind shows it as queueing.
    static func serve(index: Int, options: ElasticOptions, phases: [ElasticPhase], subject: Subject, control: Control,
                      start: StartLine) throws {
        let capacity = maxInFlight
        let leases = UnsafeMutablePointer<Lease<RequestContext>>.allocate(capacity: capacity)
        var buffers = [UnsafeMutableRawPointer?](repeating: nil, count: capacity)
        var arrivals = [UInt64](repeating: 0, count: capacity)
        var deadlines = [UInt64](repeating: 0, count: capacity)
        var head = 0, count = 0
        let sizes = options.sizes.draw(count: 4096, seed: 0xE1 &+ UInt64(index))
        var next = 0
        var id: UInt64 = 0
        var local = Histogram<UInt64>(highestTrackableValue: 60_000_000_000, numberOfSignificantValueDigits: .three)
        func complete(at now: UInt64) {
            let slot = head
            (leases + slot).move().release()
            if let buffer = buffers[slot] { subject.heap.deallocate(buffer) }
            buffers[slot] = nil
            _ = local.record(now - arrivals[slot])
            head = (head + 1) % capacity
            count -= 1
        }
        defer {
            let now = monotonicNanoseconds()
            while count > 0 { complete(at: now) }
            leases.deallocate()
        }
        try start.arriveAndWait()
        var nextArrival = monotonicNanoseconds()
        var published = nextArrival
        while !control.stop.load(ordering: .acquiring) {
            let now = monotonicNanoseconds()
            while count > 0 && deadlines[head] <= now { complete(at: now) }
            let phaseIndex = control.phase.load(ordering: .acquiring)
            let phase = phases[phaseIndex]
            let phaseSeconds = options.phases[phaseIndex].1
            let into = Double(now &- control.phaseStart.load(ordering: .relaxed)) / 1e9
            let rate = options.peakRate * phase.rateShare(at: min(1, max(0, into / phaseSeconds)))
            let interval = UInt64(1e9 / rate)
            let hold = UInt64((options.serviceTime + (phase == .slow ? options.dependency : 0)) * 1e9)
            if nextArrival + 50 * interval < now { nextArrival = now - 50 * interval }  // a stall: keep 50 late at most
            while nextArrival <= now && count < capacity {
                let slot = (head + count) % capacity
                let size = sizes[next & 4095]
                next &+= 1
                let buffer = try subject.heap.allocate(byteCount: size)
                memset(buffer, 0x5A, min(size, 512))
                // The lease last: once it is in the ring, nothing between it and the count throws.
                let lease: Lease<RequestContext>
                do {
                    lease = try subject.contexts.lease()
                } catch {
                    subject.heap.deallocate(buffer)
                    throw error
                }
                buffers[slot] = buffer
                id &+= 1
                lease.value.id = id
                lease.value.scratch[Int(id % 8191)] = id
                (leases + slot).initialize(to: lease)
                arrivals[slot] = nextArrival
                deadlines[slot] = nextArrival + hold
                count += 1
                nextArrival += interval
            }
            if now - published >= 10_000_000 {  // publish durations every 10 ms
                let taken = local
                control.durations[index].withLock { $0.add(taken) }
                local.reset()
                published = now
            }
            // Sleep until the next arrival or completion (a thread that spins would take the
            // CPU from everything else on the machine); the timer's slack, tens of
            // microseconds, joins the requests' durations.
            let wake = min(nextArrival, count > 0 ? deadlines[head] : nextArrival)
            if wake > now + 20_000 { usleep(UInt32(min(1000, (wake - now) / 1000))) }
        }
        let taken = local
        control.durations[index].withLock { $0.add(taken) }
    }
}

/// A capacity policy chosen at run time: the study's rule or the demand controller.
struct AnyCapacityPolicy: CapacityPolicy {
    private var slo: SLORule?
    private var demand: DemandController?

    init(_ rule: SLORule) { slo = rule }
    init(_ controller: DemandController) { demand = controller }

    mutating func decide(after window: CapacityWindow, capacity: Int) -> CapacityDecision {
        if slo != nil { return slo!.decide(after: window, capacity: capacity) }
        return demand!.decide(after: window, capacity: capacity)
    }
}
