import CMemoryKernels
import NUMA
import Synchronization
#if canImport(Glibc)
import Glibc
#endif

/// The state the holder leaves a line in before the reader takes it.
public enum LineState: String, CaseIterable, Sendable, Codable {
    /// Only read by the holder: the reader finds it clean in the holder's cache (or a shared level).
    case clean
    /// Written by the holder: the reader must take it from the holder's cache.
    case modified
}

/// What `membench c2c` runs.
public struct CacheToCacheOptions: Sendable {
    /// Lines per transfer measurement (each 64 bytes; the reader chases them in random order).
    public var lines = 256
    /// Measurements per CPU pair and state; the median is reported.
    public var repeats = 50
    /// Where the CPUs come from; memory flags are refused (each buffer sits on its holder's node).
    public var placement = PlacementOptions()

    public init() {}
}

/// One ordered CPU pair: the holder prepares the lines, the reader takes them.
public struct CacheToCachePair: Sendable, Equatable {
    public var holderCPU: Int
    public var holderNode: Int
    public var readerCPU: Int
    public var readerNode: Int
    public var state: LineState
    /// Nanoseconds per line read: median and lowest over the repeats.
    public var median: Double
    public var minimum: Double
}

/// Cache-to-cache options checked against the machine, with the CPUs to pair.
public struct ResolvedCacheToCache: Sendable {
    public let options: CacheToCacheOptions
    /// The CPUs, ascending; every ordered pair of them is measured.
    public let cpus: [Int]
}

extension CacheToCacheOptions {
    /// Checks the options and picks the CPUs; nothing runs.
    public func resolve(topology: Topology = .current) throws(MembenchError) -> ResolvedCacheToCache {
        guard lines >= 16 && lines <= 1 << 16 else {
            throw .invalid(.lines, "must be between 16 and 65536, got \(lines)")
        }
        guard repeats >= 1 && repeats <= 100_000 else {
            throw .invalid(.repeats, "must be between 1 and 100000, got \(repeats)")
        }
        if let setting = placement.memorySettingsGiven.first {
            throw .invalid(setting, "c2c places each line on its holder's node; give CPUs only")
        }
        let cpus = try placement.resolve(threads: nil, needsMemory: false, topology: topology).cpus.sorted()
        guard cpus.count >= 2 else {
            // Flags that name fewer than two CPUs are bad input; a process that has one is refused.
            if placement.physcpubind != nil { throw .invalid(.cpus, "c2c needs two CPUs, and the list names \(cpus.count)") }
            if placement.cpunodebind != nil { throw .invalid(.cpuNodes, "c2c needs two CPUs, and these nodes have \(cpus.count)") }
            throw .refused("c2c needs two CPUs or more; this process may use \(cpus.count)")
        }
        return ResolvedCacheToCache(options: self, cpus: cpus)
    }
}

/// Cache-line transfer latency between every ordered pair of allowed CPUs.
///
/// For each pair, a buffer of `lines` lines is allocated and first touched by the holder (so it
/// sits on the holder's node), linked into one random cycle. Each repeat, the reader evicts
/// every line from every cache (`clflush`), the holder reads them (clean) or loads and stores
/// them (modified), and the reader then follows the cycle once, timing it: the time per line
/// is the latency of taking a line from the holder's cache. A CPU paired with itself reads its
/// own cache, the baseline. Without `clflush` (not x86-64), only the modified state is measured.
public enum CacheToCache {
    static let lineBytes = 64

    public static var states: [LineState] {
        CMemoryKernels_flush(nil, 0) != 0 ? LineState.allCases : [.modified]
    }

    /// Every ordered pair, the pairs of a CPU with itself included, in both states.
    public static func run(_ resolved: ResolvedCacheToCache, topology: Topology = .current,
                           progress: (@Sendable (Double) -> Void)? = nil) throws(MembenchError) -> [CacheToCachePair] {
        let options = resolved.options, cpus = resolved.cpus
        var pairs: [CacheToCachePair] = []
        var done = 0
        for holder in cpus {
            for reader in cpus {
                pairs += try measure(holder: holder, reader: reader, options: options, topology: topology)
                done += 1
                progress?(Double(done) / Double(cpus.count * cpus.count))
            }
        }
        return pairs
    }

    /// The two sides' turns: odd phases are the holder's, even ones the reader's.
    final class Turns: Sendable {
        let phase = Atomic<Int>(0)
        private let abandoned = Atomic<Bool>(false)
        /// Spins until the phase reaches `value`; a partner that never answers ends the wait
        /// after 10 s, and one whose thread could not start (`abandon`) ends it at once.
        func wait(for value: Int, cpu: Int) throws {
            var spins = 0
            var deadline: UInt64 = 0
            while phase.load(ordering: .acquiring) < value {
                spins += 1
                if spins & 0xFFFF == 0 {
                    if abandoned.load(ordering: .acquiring) { throw StartLine.Abandoned() }
                    let now = monotonicNanoseconds()
                    if deadline == 0 { deadline = now + 10_000_000_000 } else if now > deadline {
                        throw MembenchError.refused("c2c: CPU \(cpu) did not answer within 10 s")
                    }
                }
            }
        }
        func advance(to value: Int) { phase.store(value, ordering: .releasing) }
        func abandon() { abandoned.store(true, ordering: .releasing) }
    }

    static func measure(holder: Int, reader: Int, options: CacheToCacheOptions,
                        topology: Topology) throws(MembenchError) -> [CacheToCachePair] {
        let bytes = options.lines * lineBytes
        let states = Self.states
        let turns = Turns()
        let buffer = try Buffer(bytes: bytes)
        // The holder touches the buffer first (its node), and links the cycle.
        let repeats = options.repeats, lines = options.lines
        if holder == reader {
            // One thread plays both sides: two threads spinning on one CPU would time the scheduler.
            let single: PinnedThread<[[Double]]>
            do {
                single = try PinnedThread(cpus: [holder]) { () -> [[Double]] in
                    buffer.link(lines: lines)
                    return states.map { state in
                        (0..<repeats).map { _ -> Double in
                            buffer.flush()
                            buffer.prepare(state)
                            return buffer.timedChase()
                        }
                    }
                }
            } catch {
                throw .refused("c2c: cannot start a thread on CPU \(holder): \(error)")
            }
            return pairs(holder: holder, reader: reader, states: states, times: try joinAll([single])[0], topology: topology)
        }
        let holderThread: PinnedThread<Void>
        do {
            holderThread = try PinnedThread(cpus: [holder], unpinned: { turns.abandon() }) { () throws -> Void in
                buffer.link(lines: lines)
                turns.advance(to: 1)
                for step in 0..<states.count * repeats {
                    try turns.wait(for: 2 * step + 2, cpu: reader)  // the reader has flushed
                    buffer.prepare(states[step / repeats])
                    turns.advance(to: 2 * step + 3)
                }
            }
        } catch {
            throw .refused("c2c: cannot start a thread on CPU \(holder): \(error)")
        }
        let readerThread: PinnedThread<[[Double]]>
        do {
            readerThread = try PinnedThread(cpus: [reader], unpinned: { turns.abandon() }) { () throws -> [[Double]] in
                var times = states.map { _ in [Double]() }
                try turns.wait(for: 1, cpu: holder)  // linked
                for step in 0..<states.count * repeats {
                    buffer.flush()
                    turns.advance(to: 2 * step + 2)
                    try turns.wait(for: 2 * step + 3, cpu: holder)
                    times[step / repeats].append(buffer.timedChase())
                }
                return times
            }
        } catch {
            turns.abandon()
            _ = try? holderThread.join()
            throw .refused("c2c: cannot start a thread on CPU \(reader): \(error)")
        }
        // Both are joined whatever happens to either; the holder's failure comes first.
        let times = try joinAll([holderThread], [readerThread]).1[0]
        return pairs(holder: holder, reader: reader, states: states, times: times, topology: topology)
    }

    static func pairs(holder: Int, reader: Int, states: [LineState], times: [[Double]],
                      topology: Topology) -> [CacheToCachePair] {
        let holderNode = topology.node(ofCPU: holder) ?? -1, readerNode = topology.node(ofCPU: reader) ?? -1
        return zip(states, times).map { state, samples in
            CacheToCachePair(holderCPU: holder, holderNode: holderNode, readerCPU: reader, readerNode: readerNode,
                             state: state, median: samples.median ?? 0, minimum: samples.min() ?? 0)
        }
    }

    /// A pair's lines: 64-byte aligned memory, freed when the pair is done.
    final class Buffer: @unchecked Sendable {
        // @unchecked: the holder writes it while the reader waits, and the reader reads it while
        // the holder waits; `Turns` orders every hand-over with acquire and release.
        let base: UnsafeMutableRawPointer
        let bytes: Int

        /// Fresh pages (mmap(2)), so that the holder's first touch places them on its node.
        init(bytes: Int) throws(MembenchError) {
            self.bytes = bytes
            let pointer = mmap(nil, bytes, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0)
            guard let pointer, pointer != MAP_FAILED else {
                throw .refused("c2c: cannot map \(bytes) bytes: \(String(cString: strerror(errno)))")
            }
            base = pointer
        }
        deinit { munmap(base, bytes) }

        /// One random cycle over the lines, starting at line 0 (Sattolo's shuffle).
        func link(lines: Int) {
            var generator = SplitMix64(seed: UInt64(lines))
            let order = Chain.sattoloOrder(lines, using: &generator)
            for k in 0..<lines {
                let next = base + Int(order[(k + 1) % lines]) * CacheToCache.lineBytes
                (base + Int(order[k]) * CacheToCache.lineBytes).storeBytes(of: UInt(bitPattern: next), as: UInt.self)
            }
        }

        /// Evicts every line from every cache (`clflush`; nothing where the target has none).
        func flush() { _ = CMemoryKernels_flush(base, bytes) }

        /// Leaves every line clean (read) or modified (loaded and stored) in the calling CPU's cache.
        func prepare(_ state: LineState) {
            switch state {
            case .clean: _ = CMemoryKernels_touch_lines(base, bytes)
            case .modified: CMemoryKernels_dirty_lines(base, bytes)
            }
        }

        /// Follows the cycle once from line 0, timed: nanoseconds per line.
        func timedChase() -> Double {
            let lines = bytes / CacheToCache.lineBytes
            let t0 = monotonicNanoseconds()
            let end = CMemoryKernels_chase(base, lines)
            let t1 = monotonicNanoseconds()
            ValueSink.keep(end)
            return Double(t1 - t0) / Double(lines)
        }
    }
}
