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

    /// Where each array starts in a thread's buffer of `size` bytes, and the bytes of each.
    ///
    /// Arrays hold whole 256-byte blocks (every kernel's step, 64 bytes or less, divides it),
    /// array `i` starting `i * (length + arrayGap)` bytes in. Laid end to end, arrays are a
    /// power of two apart at the usual sizes, and so are the lines a kernel touches at once, one
    /// in each array: they differ in one high address bit only, and a copy laid out that way
    /// read 0.72x likwid-bench's `copy_sse` here. The gap changes the bits above the page offset
    /// (where the memory controller picks channels and banks; which of them matter here is the
    /// host's); likwid-bench's arrays, each a mapping of its own, sit 8 KiB off a power of two.
    /// A plain C copy on this host moved a median 29 GB/s with its arrays 6 KiB apart and 45 GB/s
    /// with them 8 KiB apart, where likwid-bench moved 36.
    public func layout(size: Int) -> (offsets: [Int], length: Int) {
        let length = (size - (arrays - 1) * Self.arrayGap) / arrays / 256 * 256
        return ((0..<arrays).map { $0 * (length + Self.arrayGap) }, length)
    }

    /// Bytes between one array's end and the next one's start: two pages.
    public static let arrayGap = 8192

    /// The smallest buffer every kernel can lay its arrays out in: a triad's three arrays of
    /// one block, and their gaps.
    public static let minimumSize = 3 * 256 + 2 * arrayGap

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

/// Bandwidth options checked against the machine: the threads' CPUs and policy, and the size.
public struct ResolvedBandwidth: Sendable {
    public let options: BandwidthOptions
    public let placement: ResolvedPlacement
    /// Bytes per thread.
    public let size: Int
}

extension BandwidthOptions {
    /// Checks the options and picks CPUs and memory; nothing is allocated.
    public func resolve(topology: Topology = .current) throws(MembenchError) -> ResolvedBandwidth {
        guard !kernels.isEmpty else { throw .invalid(.kernels, "name at least one kernel") }
        if Set(kernels).count != kernels.count {
            throw .invalid(.kernels, "names a kernel twice")
        }
        if kernels.contains(.ntWrite) && CMemoryKernels_has_nontemporal() == 0 {
            throw .unavailable(.kernels, "nt-write needs non-temporal stores, which this build's target does not have")
        }
        try Check.duration(duration)
        let size = self.size ?? RunOptions.defaultSize(topology: topology)
        try Check.size(size, atLeast: BandwidthKernel.minimumSize)
        let placement = try self.placement.resolve(threads: threads, topology: topology)
        try checkMemory([MemoryDemand(size: size, count: placement.cpus.count, nodes: placement.memoryNodes, pageMode: pageMode)],
                        topology: topology)
        return ResolvedBandwidth(options: self, placement: placement, size: size)
    }
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
    /// Each thread's buffer.
    public var size: Int
    public var threads: [BandwidthThreadResult]
    /// The bytes of the kernel's arrays that each thread streams per pass: the buffer less the
    /// gaps between arrays and what does not fill a 256-byte block of each.
    public var streamedBytes: Int { kernel.layout(size: size).length * kernel.arrays }
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
    /// Runs every kernel in turn, the same threads and buffers for all; the first thread reports
    /// the fraction done as it streams.
    public static func run(_ resolved: ResolvedBandwidth, topology: Topology = .current,
                           progress: (@Sendable (Double) -> Void)? = nil) throws(MembenchError) -> [BandwidthResult] {
        let options = resolved.options, placement = resolved.placement, size = resolved.size
        let environment = RunEnvironment.current(topology: topology)
        let kernels = options.kernels
        let ready = StartLine(parties: placement.cpus.count)
        // Each kernel starts on every thread together: one line per kernel, made up front.
        let starts = kernels.map { _ in StartLine(parties: placement.cpus.count) }
        let workers = try startPinnedThreads(on: placement.cpus, role: "a thread", lines: [ready] + starts) { index, cpu in
            try stream(index: index, cpu: cpu, size: size, kernels: kernels, options: options,
                       placement: placement, ready: ready, starts: starts, topology: topology,
                       progress: index == 0 ? progress : nil)
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
                       topology: Topology, progress: (@Sendable (Double) -> Void)?) throws -> [BandwidthThreadResult] {
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
            let (offsets, length) = kernel.layout(size: size)
            let arrays = offsets.map { region.baseAddress + $0 }
            let moved = Double(length * kernel.arrays)
            keep &+= kernel.pass(arrays, length: length)  // untimed: caches and TLB settle
            try starts[k].arriveAndWait()
            var statistics = LatencyStatistics()
            let began = monotonicNanoseconds()
            let deadline = began + UInt64(options.duration * 1e9)
            var now = began
            var reported = began
            repeat {
                let t0 = now
                keep &+= kernel.pass(arrays, length: length)
                now = monotonicNanoseconds()
                statistics.record(moved / (Double(now - t0) / 1e9) / 1e6)  // MB/s: the histogram keeps 3 digits
                if let progress, now - reported >= 100_000_000 {
                    // A tenth of a second apart, outside the next pass's time.
                    progress((Double(k) + min(1, Double(now - began) / Double(max(1, deadline - began)))) / Double(kernels.count))
                    reported = now
                    now = monotonicNanoseconds()
                }
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
