import CMemoryKernels
import NUMA
import Synchronization

/// A streaming kernel: what it reads and writes per pass.
public enum BandwidthKernel: String, CaseIterable, Sendable, Codable {
    /// Reads one array, summing it (read only).
    case read
    /// Copies one array to another (1 read : 1 write).
    case copy
    /// a = b + 3c (2 reads : 1 write), STREAM's triad.
    case triad
    /// Writes one array with ordinary stores (write only; the caches still read each line first).
    case write
    /// Writes one array with non-temporal stores, which bypass the caches (write only).
    case ntWrite = "nt-write"

    /// The arrays a pass streams over: the buffer is split into this many equal arrays.
    public var arrays: Int {
        switch self {
        case .read, .write, .ntWrite: 1
        case .copy: 2
        case .triad: 3
        }
    }

    /// The read:write mix, for tables.
    public var mix: String {
        switch self {
        case .read: "read"
        case .copy: "1:1"
        case .triad: "2:1"
        case .write, .ntWrite: "write"
        }
    }

    /// One pass over `length` bytes of each array; returns a value that depends on the data.
    func pass(_ arrays: [UnsafeMutableRawPointer], length: Int) -> UInt64 {
        switch self {
        case .read: CMemoryKernels_read(arrays[0], length)
        case .copy: CMemoryKernels_copy(arrays[0], arrays[1], length)
        case .triad: CMemoryKernels_triad(arrays[0], arrays[1], arrays[2], length)
        case .write: CMemoryKernels_write(arrays[0], length, UInt64(length))
        case .ntWrite: CMemoryKernels_write_nontemporal(arrays[0], length, UInt64(length))
        }
    }
}

/// What `membench bandwidth` runs.
public struct BandwidthOptions: Sendable {
    public var kernels: [BandwidthKernel] = BandwidthKernel.allCases
    /// Worker threads; nil for one per CPU the placement allows.
    public var threads: Int?
    /// Bytes per thread, all of a kernel's arrays together; nil for 4x the last-level cache,
    /// at least 256 MiB.
    public var size: Int?
    /// Seconds of timed passes per kernel.
    public var duration = 1.0
    public var pageMode: PageMode = .base
    public var placement = PlacementOptions()

    public init() {}
}

/// One thread's passes over its buffer with one kernel.
public struct BandwidthThreadResult: Sendable, Equatable {
    public var thread: Int
    public var cpu: Int
    public var node: Int
    /// Bytes read and written per second over the timed passes.
    public var bytesPerSecond: Double
    /// Per-pass rates, bytes per second: mean, deviation, lowest and highest.
    public var passes: Int
    public var passMean: Double
    public var passStandardDeviation: Double
    public var passMin: Double
    public var passMax: Double
    public var seconds: Double
    /// Distinct pages of the thread's buffer per node (move_pages(2)), and the share on
    /// another node than its CPU's.
    public var pagesPerNode: [Int: Int]
    public var remoteShare: Double
}

/// One kernel on every thread.
public struct BandwidthResult: Sendable {
    public var kernel: BandwidthKernel
    public var size: Int
    public var threads: [BandwidthThreadResult]
    public var policyText: String
    public var environment: RunEnvironment
    /// The sum of the threads' rates (they run at once).
    public var bytesPerSecond: Double { threads.reduce(0) { $0 + $1.bytesPerSecond } }
    public var remoteShare: Double {
        threads.isEmpty ? 0 : threads.reduce(0) { $0 + $1.remoteShare } / Double(threads.count)
    }
}

/// Streams memory with each kernel on pinned threads, each over its own buffer, all at once.
///
/// Bytes count both reads and writes, as STREAM counts them: a copy of N bytes moves 2N, a triad
/// over arrays of N bytes 3N. Ordinary stores also make the caches read each line first, which
/// the count leaves out; `nt-write` shows the difference.
public enum BandwidthRunner {
    /// Checks the options and picks CPUs and memory; nothing is allocated.
    public static func resolve(_ options: BandwidthOptions, topology: Topology = .current) throws(MembenchError)
        -> (placement: ResolvedPlacement, size: Int) {
        guard !options.kernels.isEmpty else { throw .invalid(.kernels, "name at least one kernel") }
        if Set(options.kernels).count != options.kernels.count {
            throw .invalid(.kernels, "names a kernel twice")
        }
        if options.kernels.contains(.ntWrite) && CMemoryKernels_has_nontemporal() == 0 {
            throw .unavailable(.kernels, "nt-write needs non-temporal stores, which this build's target does not have")
        }
        guard options.duration > 0 && options.duration <= 3600 else {
            throw .invalid(.duration, "must be more than 0 seconds and at most 3600, got \(options.duration)")
        }
        let size = options.size ?? RunOptions.defaultSize(topology: topology)
        // Every array whole 64-byte lines: 3 arrays (triad) of at least one 64-byte block of 4 lines.
        guard size >= 3 * 256 else {
            throw .invalid(.size, "must be at least 768B per thread (three arrays of 256 bytes), got \(size)")
        }
        let placement = try options.placement.resolve(threads: options.threads, topology: topology)
        try checkMemory(size: size, threads: placement.cpus.count, pageMode: options.pageMode, nodes: placement.memoryNodes,
                        topology: topology)
        return (placement, size)
    }

    /// Runs every kernel in turn, the same threads and buffers for all.
    public static func run(_ options: BandwidthOptions, topology: Topology = .current) throws(MembenchError) -> [BandwidthResult] {
        let (placement, size) = try resolve(options, topology: topology)
        let environment = RunEnvironment.current(topology: topology)
        let kernels = options.kernels
        let ready = StartLine(parties: placement.cpus.count)
        // Each kernel starts on every thread together: one line per kernel, made up front.
        let starts = kernels.map { _ in StartLine(parties: placement.cpus.count) }
        let workers = try startPinnedThreads(on: placement.cpus, role: "a thread", lines: [ready] + starts) { index, cpu in
            try stream(index: index, cpu: cpu, size: size, kernels: kernels, options: options,
                       placement: placement, ready: ready, starts: starts, topology: topology)
        }
        let perThread = try joinAll(workers)
        let policyText = placement.policyText
        return kernels.enumerated().map { k, kernel in
            BandwidthResult(kernel: kernel, size: size, threads: perThread.map { $0[k] }.sorted { $0.thread < $1.thread },
                            policyText: policyText, environment: environment)
        }
    }

    static func stream(index: Int, cpu: Int, size: Int, kernels: [BandwidthKernel], options: BandwidthOptions,
                       placement: ResolvedPlacement, ready: StartLine, starts: [StartLine],
                       topology: Topology) throws -> [BandwidthThreadResult] {
        // A thread that fails before it is ready still passes every line, so that none waits forever.
        var isReady = false
        defer {
            if !isReady {
                try? ready.arriveAndWait()
                for start in starts { try? start.arriveAndWait() }
            }
        }
        if let policy = placement.policy {
            do { try policy.applyToCurrentThread() } catch { throw MembenchError.from(error, setting: policy.setting) }
        }
        let region = try buffer(size: size, pages: options.pageMode, topology: topology)
        region.faultIn()
        let node = topology.node(ofCPU: cpu) ?? -1
        let pages = try PlacementReport.pagesPerNode(region.baseAddress, length: region.size)
        let remote = PlacementReport.remoteShare(of: pages, from: node)
        isReady = true
        try ready.arriveAndWait()

        var results: [BandwidthThreadResult] = []
        var keep: UInt64 = 0
        for (k, kernel) in kernels.enumerated() {
            // Arrays of whole 256-byte blocks (the kernels' unrolled step), one after another.
            let length = size / kernel.arrays / 256 * 256
            let arrays = (0..<kernel.arrays).map { region.baseAddress + $0 * length }
            let moved = Double(length * kernel.arrays)
            keep &+= kernel.pass(arrays, length: length)  // untimed: caches and TLB settle
            try starts[k].arriveAndWait()
            var statistics = LatencyStatistics()
            let began = monotonicNanoseconds()
            let deadline = began + UInt64(options.duration * 1e9)
            var now = began
            repeat {
                let t0 = now
                keep &+= kernel.pass(arrays, length: length)
                now = monotonicNanoseconds()
                statistics.record(moved / (Double(now - t0) / 1e9) / 1e6)  // MB/s: the histogram keeps 3 digits
            } while now < deadline
            let seconds = Double(now - began) / 1e9
            results.append(BandwidthThreadResult(
                thread: index, cpu: cpu, node: node, bytesPerSecond: moved * Double(statistics.count) / seconds,
                passes: statistics.count, passMean: statistics.mean * 1e6,
                passStandardDeviation: statistics.standardDeviation * 1e6, passMin: statistics.minimum * 1e6,
                passMax: statistics.maximum * 1e6, seconds: seconds, pagesPerNode: pages, remoteShare: remote))
        }
        ValueSink.keep(keep)
        return results
    }
}

extension BandwidthRunner {
    /// A thread's buffer, placed by its first touch under the thread's policy.
    static func buffer(size: Int, pages: PageMode, topology: Topology) throws(MembenchError) -> MemoryRegion {
        do {
            return try MemoryRegion(size: size, pages: pages, topology: topology)
        } catch {
            throw .refused("\(error)")
        }
    }
}
