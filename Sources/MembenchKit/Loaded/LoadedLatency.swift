import CMemoryKernels
import NUMA
import Synchronization
#if canImport(Glibc)
import Glibc
#endif

/// What the load threads do to each line.
public enum LoadKind: String, CaseIterable, Sendable, Codable {
    case read, write, copy

    var code: CMemoryKernels_load_kind {
        switch self {
        case .read: CMemoryKernels_load_read
        case .write: CMemoryKernels_load_write
        case .copy: CMemoryKernels_load_copy
        }
    }
}

/// What `membench loaded` runs.
public struct LoadedOptions: Sendable {
    /// Delays swept, in turns of an empty loop between a load thread's line accesses; an idle
    /// step (no load) always ends the sweep.
    public var delays: [Int] = [0, 5, 10, 20, 50, 100, 200, 500, 1000, 5000, 20_000]
    public var kind: LoadKind = .read
    /// Load threads; nil for every allowed CPU but the chase's.
    public var loadThreads: Int?
    /// Bytes per thread (the chase's and each load thread's); nil for 4x the last-level cache,
    /// at least 256 MiB.
    public var size: Int?
    /// Seconds of chase samples per delay.
    public var duration = 1.0
    /// The chase: its CPU is the first the placement's CPU flags allow, its memory under the
    /// placement's policy.
    public var placement = PlacementOptions()
    /// Where the load threads' memory goes (MPOL_BIND); nil for the chase's policy.
    public var loadMembind: NodeSet?
    /// Where the load threads run; nil for the allowed CPUs other than the chase's.
    public var loadCPUs: CPUSet?

    public init() {}
}

/// Loaded-latency options checked against the machine.
public struct ResolvedLoaded: Sendable {
    public let options: LoadedOptions
    /// The chase's CPU (its only one) and memory policy.
    public let chase: ResolvedPlacement
    /// The load threads' CPUs.
    public let loadCPUs: [Int]
    /// Bytes per thread.
    public let size: Int
}

extension LoadedOptions {
    /// Checks the options and picks the chase's CPU and the load threads' CPUs; nothing runs.
    public func resolve(topology: Topology = .current) throws(MembenchError) -> ResolvedLoaded {
        let options = self
        guard !options.delays.isEmpty else { throw .invalid(.delays, "give at least one delay") }
        guard options.delays.allSatisfy({ $0 >= 0 && $0 <= 100_000_000 }) else {
            throw .invalid(.delays, "each must be between 0 and 100000000")
        }
        guard Set(options.delays).count == options.delays.count else { throw .invalid(.delays, "names a delay twice") }
        try Check.duration(options.duration)
        if let threads = options.loadThreads, threads < 1 {
            throw .invalid(.loadThreads, "must be at least 1, got \(threads)")
        }
        let size = options.size ?? RunOptions.defaultSize(topology: topology)
        // A load thread streams whole chunks; a copy load copies one half of its buffer onto the
        // other, so it needs two chunks, or it would copy lines onto themselves.
        try Check.size(size, atLeast: (options.kind == .copy ? 2 : 1) * LoadedLatency.chunk)
        let chasePlacement = try options.placement.resolve(threads: 1, topology: topology)
        guard let chaseCPU = chasePlacement.cpus.first else { throw .refused("no CPU for the chase") }
        var loadSet = options.loadCPUs ?? topology.allowedCPUs
        if let cpus = options.loadCPUs {
            try PlacementOptions.check(cpus, setting: .loadCPUs, topology: topology)
            if cpus.contains(chaseCPU) { throw .invalid(.loadCPUs, "includes the chase's CPU \(chaseCPU)") }
        }
        loadSet = loadSet.subtracting([chaseCPU])
        let available = loadSet.count
        let count = options.loadThreads ?? available
        guard count >= 1 else {
            throw .refused("loaded needs a CPU for the chase and at least one for load; this process may use \(topology.allowedCPUs)")
        }
        guard count <= available else {
            throw .invalid(.loadThreads, "\(counted(count, "load thread")) but only \(counted(available, "CPU")) besides the chase's (\(loadSet))")
        }
        if let nodes = options.loadMembind {
            do { try topology.validate(nodes, operation: Setting.loadBind.rawValue) } catch { throw MembenchError.from(error, setting: .loadBind) }
        }
        let load = RunOptions.spread(loadSet, count: count, topology: topology)
        // The chase's buffer and every load thread's, all at once.
        try checkMemory([MemoryDemand(size: size, count: 1, nodes: chasePlacement.memoryNodes,
                                      label: "\(ByteSize.format(size)) for the chase"),
                         MemoryDemand(size: size, count: count, nodes: options.loadMembind ?? chasePlacement.memoryNodes,
                                      owner: "load threads")], topology: topology)
        return ResolvedLoaded(options: options, chase: chasePlacement, loadCPUs: load, size: size)
    }
}

/// One step of the sweep.
public struct LoadedStep: Sendable, Equatable {
    /// Turns of the empty loop between line accesses; nil for the idle step (no load).
    public var delay: Int?
    /// Bytes per second the load threads moved during the step's samples.
    public var loadBytesPerSecond: Double
    public var latency: LatencySummary
}

public struct LoadedResult: Sendable {
    public var options: LoadedOptions
    public var size: Int
    public var chaseCPU: Int
    public var chaseNode: Int
    public var chaseRemoteShare: Double
    public var chasePages: [Int: Int]
    public var loadCPUs: [Int]
    public var loadPages: [Int: Int]
    public var policyText: String
    public var steps: [LoadedStep]
    public var environment: RunEnvironment
}

/// Loaded latency, as Intel MLC's `--loaded_latency`: one thread chases a random cycle (as
/// `run`) while the other threads stream their own buffers with a delay between line accesses;
/// the delay is swept from none to idle, tracing latency against bandwidth.
public enum LoadedLatency {
    /// The smallest span a load thread streams (a copy, two of them): 256 KiB, beyond the L1
    /// and L2 of one core.
    static let chunk = 256 << 10

    /// The shared state of a sweep, which the load kernel reads and adds to as it goes
    /// (CMemoryKernels_load_lines): the delay the chase's step asks for, and each load thread's
    /// bytes, each on a cache line of its own.
    final class Sweep: @unchecked Sendable {
        // @unchecked: the memory is reached only through the C kernel's relaxed atomics and
        // CMemoryKernels_state_load/store and counter_load; the pointer never changes.
        private let memory: UnsafeMutableRawPointer
        let loaders: Int

        init(loaders: Int) {
            self.loaders = loaders
            memory = UnsafeMutableRawPointer.allocate(byteCount: (loaders + 1) * 64, alignment: 64)
            memory.initializeMemory(as: UInt8.self, repeating: 0, count: (loaders + 1) * 64)
            CMemoryKernels_state_store(state, -1)
        }

        deinit { memory.deallocate() }

        /// The delay's cell: the current delay; -1 pauses the load (idle), -2 ends it.
        var state: UnsafeMutablePointer<Int64> { memory.assumingMemoryBound(to: Int64.self) }
        /// Load thread `index`'s bytes.
        func counter(_ index: Int) -> UnsafeMutablePointer<UInt64> {
            (memory + 64 * (index + 1)).assumingMemoryBound(to: UInt64.self)
        }
        var delay: Int {
            get { Int(CMemoryKernels_state_load(state)) }
            set { CMemoryKernels_state_store(state, Int64(newValue)) }
        }
        var moved: UInt64 { (0..<loaders).reduce(0) { $0 &+ CMemoryKernels_counter_load(counter($1)) } }
    }

    public static func run(_ resolved: ResolvedLoaded, topology: Topology = .current,
                           progress: (@Sendable (Double) -> Void)? = nil) throws(MembenchError) -> LoadedResult {
        let options = resolved.options, chasePlacement = resolved.chase, loadCPUs = resolved.loadCPUs, size = resolved.size
        let environment = RunEnvironment.current(topology: topology)
        let sweep = Sweep(loaders: loadCPUs.count)
        let ready = StartLine(parties: loadCPUs.count + 1)
        let loadPolicy: MemoryPolicy? = options.loadMembind.map { .bind($0) } ?? chasePlacement.policy
        let stopLoads: @Sendable () -> Void = { sweep.delay = -2 }
        let loaders = try startPinnedThreads(on: loadCPUs, role: "a load thread", lines: [ready], stop: stopLoads) {
            index, _ throws -> [Int: Int] in
            var isReady = false
            defer { if !isReady { try? ready.arriveAndWait() } }
            if let loadPolicy { try loadPolicy.applyToCurrentThread() }
            let region = try BandwidthRunner.buffer(size: size / 4096 * 4096, pages: .base, topology: topology)
            region.faultIn()
            let pages = try PlacementReport.pagesPerNode(region.baseAddress, length: region.size)
            isReady = true
            try ready.arriveAndWait()
            // A copy reads the second half into the first.
            let span = options.kind == .copy ? region.size / 2 / 512 * 512 : region.size
            var offset = 0
            var keep: UInt64 = 0
            while true {
                let delay = sweep.delay
                if delay == -2 { break }
                if delay == -1 {
                    sched_yield()
                    continue
                }
                // Line by line until the span ends or the step changes, counting every line.
                offset += CMemoryKernels_load_lines(options.kind.code, region.baseAddress + offset,
                                                    region.baseAddress + span + offset, span - offset, UInt64(delay),
                                                    sweep.counter(index), sweep.state, Int64(delay), &keep)
                if offset >= span { offset = 0 }
            }
            ValueSink.keep(keep)
            return pages
        }
        let chaseCPU = chasePlacement.cpus[0]
        let steps = options.delays.map { Optional($0) } + [nil]
        let chaser: PinnedThread<(steps: [LoadedStep], pages: [Int: Int])>
        do {
            chaser = try PinnedThread(cpus: [chaseCPU], unpinned: { abandon([ready], stop: stopLoads) }) {
                () throws -> (steps: [LoadedStep], pages: [Int: Int]) in
                var isReady = false
                defer {
                    if !isReady { try? ready.arriveAndWait() }
                    stopLoads()
                }
                if let policy = chasePlacement.policy { try policy.applyToCurrentThread() }
                // Chained as `run` chains by default: its stride, group, offsets and seed.
                let defaults = RunOptions()
                let groupBytes = RunOptions.defaultTLBLocality
                let region = try BandwidthRunner.buffer(size: size / groupBytes * groupBytes, pages: .base, topology: topology)
                region.faultIn()
                let groups = (0..<region.size / groupBytes).map { region.baseAddress + $0 * groupBytes }
                let chain = Chain.build(groups: groups, groupBytes: groupBytes,
                                        layout: SlotLayout(stride: defaults.stride, offsets: defaults.slotOffsets, seed: defaults.seed),
                                        pattern: defaults.pattern, seed: defaults.seed)
                let pages = try PlacementReport.pagesPerNode(region.baseAddress, length: region.size)
                isReady = true
                try ready.arriveAndWait()
                var pointer = chain.start
                var results: [LoadedStep] = []
                for (s, delay) in steps.enumerated() {
                    sweep.delay = delay ?? -1
                    // Settle: the load reaches its rate, the chase's lines their state.
                    let settle = monotonicNanoseconds() + 100_000_000
                    repeat { pointer = chase(from: pointer, loads: defaults.loadsPerSample) } while monotonicNanoseconds() < settle
                    var statistics = LatencyStatistics()
                    let bytesBefore = sweep.moved
                    let timed = timedChase(from: pointer, loads: defaults.loadsPerSample, length: .duration(options.duration),
                                           into: &statistics)
                    pointer = timed.pointer
                    statistics.finish()
                    let moved = sweep.moved &- bytesBefore
                    results.append(LoadedStep(delay: delay, loadBytesPerSecond: Double(moved) / (Double(timed.ended - timed.began) / 1e9),
                                              latency: statistics.summary))
                    progress?(Double(s + 1) / Double(steps.count))
                }
                ValueSink.keep(pointer)
                return (results, pages)
            }
        } catch {
            release(loaders, lines: [ready], stop: stopLoads)
            throw .refused("cannot start the chase on CPU \(chaseCPU): \(error)")
        }
        // Both sides are joined whatever happens to either; the chase's failure comes first.
        let (chased, loaded) = try joinAll([chaser], loaders)
        let outcome = chased[0]
        let loadPages = loaded.reduce(into: [Int: Int]()) { $0.merge($1, uniquingKeysWith: +) }
        let chaseNode = topology.node(ofCPU: chaseCPU) ?? -1
        return LoadedResult(options: options, size: size, chaseCPU: chaseCPU, chaseNode: chaseNode,
                            chaseRemoteShare: PlacementReport.remoteShare(of: outcome.pages, from: chaseNode),
                            chasePages: outcome.pages, loadCPUs: loadCPUs, loadPages: loadPages,
                            policyText: chasePlacement.policyText, steps: outcome.steps, environment: environment)
    }
}
