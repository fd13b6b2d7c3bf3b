import CNuma
import Foundation
import NUMA
import NUMAPool

/// The allocators `membench alloc` compares.
public enum AllocStrategy: String, Sendable, Codable, CaseIterable {
    case local, global
    /// An `ObjectPool` of small class objects on a `LocalPool`: lease, touch, release.
    case object
    /// The process's malloc/free: glibc's, or whichever `LD_PRELOAD` puts in front.
    case malloc
}

/// The object `membench alloc --allocators object` leases: a small class, as a service would
/// pool (the counterpart of a pointer in Go's sync.Pool). Each lease touches it; the reset
/// clears it. Internal, so that the optimiser sees every access to `length` and needs no
/// dynamic exclusivity check (a public class's stored properties get one per access).
final class PooledObject {
    var length = 0
    var words: (UInt64, UInt64, UInt64, UInt64) = (0, 0, 0, 0)
}

/// Parameters of an allocator throughput run.
public struct AllocOptions: Sendable, Equatable {
    public var strategies: [AllocStrategy] = AllocStrategy.allCases
    public var threadCounts: [Int] = [1]
    public var blockSize = 64
    /// Blocks taken before they are all given back; 1 is a get+put pair.
    public var batch = 32
    public var duration = 1.0
    public var placement = PlacementOptions()
    /// Bytes each pool may reserve per node.
    public var capacity = 256 << 20
    /// How the local pools bind their arenas.
    public var binding: LocalPool.Binding = .strict
    /// How the global pool is filled.
    public var globalFill: GlobalFill = .spread
    /// Times every allocator and thread count is measured, in turns (see `AllocBenchmark.run`).
    public var rounds = 1

    public init() {}
}

/// One strategy at one thread count.
public struct AllocResult: Sendable {
    public var strategy: AllocStrategy
    public var allocatorName: String
    public var threads: Int
    /// The round it was measured in, from 0.
    public var round = 0
    public var pairs: UInt64
    public var seconds: Double
    /// Page faults (minor and major) the measuring threads took inside the timed window
    /// (`getrusage(RUSAGE_THREAD)`); one-time set-up such as faulting a block in is outside it.
    public var pageFaults = 0
    /// Pool counters over the run; nil for malloc.
    public var statistics: PoolStatistics?

    public var pairsPerSecond: Double { seconds > 0 ? Double(pairs) / seconds : 0 }
    /// Wall time per get+put pair, per thread.
    public var nanosecondsPerPair: Double { pairs > 0 ? seconds * 1e9 * Double(threads) / Double(pairs) : 0 }
}

/// One allocator at one thread count over every round.
public struct AllocSummary: Sendable {
    struct Key: Hashable { var strategy: AllocStrategy; var threads: Int }

    public var strategy: AllocStrategy
    public var allocatorName: String
    public var threads: Int
    public var rounds: [AllocResult]
    /// The median over rounds of the time per pair per thread, and of the throughput.
    public var nanosecondsPerPair: Double
    public var pairsPerSecond: Double
    /// The fastest and slowest rounds' ns per pair.
    public var fastest: Double
    public var slowest: Double
    /// The pool counters of the round with the median time (of the faster middle round for an
    /// even count); nil for malloc.
    public var statistics: PoolStatistics?
    /// Throughput over the same allocator's 1-thread throughput in the same round: the median
    /// over rounds; nil without a 1-thread row.
    public var scaling: Double?
    /// malloc's time per pair over this allocator's, at the same thread count in the same round:
    /// the median over rounds; nil when malloc was not measured.
    public var overMalloc: Double?
}

/// Measures get+put throughput of the pools against malloc/free.
public enum AllocBenchmark {
    public static func run(_ resolved: ResolvedAlloc, topology: Topology = .current) throws(MembenchError) -> [AllocResult] {
        let options = resolved.options, placements = resolved.placements
        // Every round measures each allocator at each thread count once, so that the rows a ratio
        // compares (an allocator against malloc, 2 threads against 1) are measured seconds
        // apart, never a whole run apart. Odd rounds go in reverse order, so that a steady
        // drift of the machine favours no row.
        let order = options.strategies.flatMap { strategy in placements.map { (strategy, $0) } }
        return try measure(options, order: order, topology: topology)
    }
}

/// Alloc options checked against the machine, with each thread count's placement.
public struct ResolvedAlloc: Sendable {
    public let options: AllocOptions
    /// One placement per thread count, in the order of `options.threadCounts`.
    public let placements: [ResolvedPlacement]
}

extension AllocOptions {
    /// Checks the options and resolves each thread count's placement; nothing runs.
    public func resolve(topology: Topology = .current) throws(MembenchError) -> ResolvedAlloc {
        let options = self
        for (setting, values) in [(Setting.allocators, options.strategies.map(\.rawValue)), (.threads, options.threadCounts.map(String.init))] {
            var seen = Set<String>()
            for value in values where !seen.insert(value).inserted {
                throw .invalid(setting, "\(value) is given twice")
            }
        }
        guard options.blockSize >= 1 && options.blockSize <= BlockSize.maximum else {
            throw .invalid(.blockSize, "must be between 1 byte and \(ByteSize.format(BlockSize.maximum)), got \(options.blockSize)")
        }
        guard options.batch >= 1 && options.batch <= 1 << 20 else {
            throw .invalid(.batch, "must be between 1 and 1048576, got \(options.batch)")
        }
        try Check.duration(options.duration)
        try Check.rounds(options.rounds)
        let pools = options.strategies.contains { $0 != .malloc }
        if pools {
            // Every thread holds a batch at once, in the pool of its node.
            let block = BlockSize.rounded(options.blockSize)
            guard options.capacity >= block else {
                throw .invalid(.blockSize, "\(ByteSize.format(options.blockSize)) does not fit the pools' capacity of \(ByteSize.format(options.capacity)) per node")
            }
        }
        var placements: [ResolvedPlacement] = []
        for threads in options.threadCounts {
            let placement = try options.placement.resolve(threads: threads, needsMemory: pools, topology: topology)
            if pools {
                let available = placement.poolNodes.reduce(UInt64(0)) { $0 + (topology.node($1)?.memoryAvailable ?? 0) }
                if UInt64(options.capacity) > available {
                    throw .unavailable(.capacity, "\(ByteSize.format(options.capacity)) per node is more than nodes \(placement.poolNodes) have available (\(available >> 20) MiB, \(topology.availableMemorySource))")
                }
            }
            placements.append(placement)
        }
        return ResolvedAlloc(options: options, placements: placements)
    }
}

extension AllocBenchmark {
    static func measure(_ options: AllocOptions, order: [(AllocStrategy, ResolvedPlacement)],
                        topology: Topology) throws(MembenchError) -> [AllocResult] {
        var results: [AllocResult] = []
        for ((strategy, placement), round) in Rounds.alternating(order, rounds: options.rounds) {
            var result = try measure(strategy, placement: placement, options: options, topology: topology)
            result.round = round
            results.append(result)
        }
        return results
    }

    static func measure(_ strategy: AllocStrategy, placement: ResolvedPlacement, options: AllocOptions,
                        topology: Topology) throws(MembenchError) -> AllocResult {
        let cpus = placement.cpus, nodes = placement.poolNodes
        switch strategy {
        case .local:
            let pool = try PoolFactory.local(blockSize: options.blockSize, capacityPerNode: options.capacity, nodes: nodes,
                                             binding: options.binding, pages: .base, topology: topology)
            return try drive(Pool(pool), strategy: strategy, cpus: cpus, options: options)
        case .global:
            let pool = try PoolFactory.global(blockSize: options.blockSize, capacity: options.capacity, fill: options.globalFill,
                                              nodes: placement.memoryNodes, pages: .base, cpu: cpus[0], policy: placement.policy,
                                              topology: topology)
            return try drive(Pool(pool), strategy: strategy, cpus: cpus, options: options)
        case .object:
            let backing = try PoolFactory.local(blockSize: options.blockSize, capacityPerNode: options.capacity, nodes: nodes,
                                                binding: options.binding, pages: .base, topology: topology)
            let objects: ObjectPool<PooledObject>
            do {
                objects = try ObjectPool(backing: backing, factory: { PooledObject() }, reset: { $0.length = 0 })
            } catch {
                throw MembenchError.from(error)
            }
            return try drive(Objects(pool: objects), strategy: strategy, cpus: cpus, options: options)
        case .malloc:
            return try drive(Malloc(size: options.blockSize), strategy: strategy, cpus: cpus, options: options)
        }
    }

    /// What a worker measures. Each allocator runs its own loop, generic over nothing, so that
    /// its calls are direct, with nothing shared between threads in the loop but the allocator
    /// itself (no existential, no reference counting per batch).
    protocol Allocator: Sendable {
        /// Bytes of scratch memory that hold a batch of what the allocator hands out.
        func scratchBytes(batch: Int) -> Int
        /// `rounds` rounds of `batch` gets and then `batch` puts (a batch of 1 is a get+put
        /// pair), holding the batch in `scratch`.
        func cycle(rounds: Int, batch: Int, scratch: UnsafeMutableRawPointer) throws(PoolError)
        /// Takes `batch` and holds them in `scratch`; on a failure, gives back what it took and
        /// throws.
        func take(_ batch: Int, into scratch: UnsafeMutableRawPointer) throws(PoolError)
        /// Gives back the `batch` that `take` holds.
        func giveBack(_ batch: Int, from scratch: UnsafeMutableRawPointer)
        /// After a worker's loop: what the thread still holds goes back.
        func finish()
        func statistics() -> PoolStatistics?
    }

    /// An allocator of raw blocks: the pools and malloc.
    protocol BlockAllocator: Allocator {
        func allocate() throws(PoolError) -> UnsafeMutableRawPointer
        func deallocate(_ block: UnsafeMutableRawPointer)
    }

    struct Pool<P: BlockPool>: BlockAllocator {
        let pool: P
        init(_ pool: P) { self.pool = pool }
        @inline(__always) func allocate() throws(PoolError) -> UnsafeMutableRawPointer { try pool.allocate() }
        @inline(__always) func deallocate(_ block: UnsafeMutableRawPointer) { pool.deallocate(block) }
        func finish() { pool.trim() }
        func statistics() -> PoolStatistics? { pool.statistics() }
    }

    /// The process's malloc(3) and free(3).
    struct Malloc: BlockAllocator {
        let size: Int
        @inline(__always) func allocate() throws(PoolError) -> UnsafeMutableRawPointer {
            guard let block = malloc(size) else { throw .invalidArgument("malloc(\(size)) failed") }
            return block
        }
        @inline(__always) func deallocate(_ block: UnsafeMutableRawPointer) { free(block) }
        func finish() {}
        func statistics() -> PoolStatistics? { nil }
    }

    /// Leases of an `ObjectPool`, each touching its object.
    struct Objects: Allocator {
        let pool: ObjectPool<PooledObject>

        func scratchBytes(batch: Int) -> Int { batch * MemoryLayout<Lease<PooledObject>>.stride }

        func cycle(rounds: Int, batch: Int, scratch: UnsafeMutableRawPointer) throws(PoolError) {
            if batch == 1 {
                for _ in 0..<rounds {
                    let lease = try pool.lease()
                    lease.value.length &+= 1
                    lease.release()
                }
            } else {
                for _ in 0..<rounds {
                    try take(batch, into: scratch)
                    giveBack(batch, from: scratch)
                }
            }
        }

        func take(_ batch: Int, into scratch: UnsafeMutableRawPointer) throws(PoolError) {
            let leases = scratch.assumingMemoryBound(to: Lease<PooledObject>.self)
            for i in 0..<batch {
                do throws(PoolError) {
                    (leases + i).initialize(to: try pool.lease())
                    leases[i].value.length &+= 1
                } catch {
                    leases.deinitialize(count: i)
                    throw error
                }
            }
        }

        func giveBack(_ batch: Int, from scratch: UnsafeMutableRawPointer) {
            scratch.assumingMemoryBound(to: Lease<PooledObject>.self).deinitialize(count: batch)
        }

        func finish() {}
        func statistics() -> PoolStatistics? { pool.statistics() }
    }

    static func drive<A: Allocator>(_ allocator: A, strategy: AllocStrategy, cpus: [Int],
                                    options: AllocOptions) throws(MembenchError) -> AllocResult {
        let before = allocator.statistics()
        let start = StartLine(parties: cpus.count)
        // At the end every thread takes one more batch and holds it until all do; the first
        // thread then reads the pool's statistics, so that bytes in use and fragmentation
        // describe the pool with the callers' blocks out, not after they all went back.
        let holding = StartLine(parties: cpus.count), read = StartLine(parties: cpus.count)
        let batch = options.batch, duration = options.duration
        let workers = try startPinnedThreads(on: cpus, role: "a thread", lines: [start]) {
            index, _ throws -> (UInt64, Double, Int, PoolStatistics?) in
            // Cache-line aligned and padded, so that threads never share a line here.
            let bytes = (allocator.scratchBytes(batch: batch) + 63) / 64 * 64
            let scratch = UnsafeMutableRawPointer.allocate(byteCount: bytes, alignment: 64)
            defer { scratch.deallocate() }
            defer { allocator.finish() }
            // One untimed batch first: the pools fault the memory of a batch in on first
            // use, which is set-up, not throughput.
            var failure: PoolError?
            do throws(PoolError) {
                try allocator.cycle(rounds: 1, batch: batch, scratch: scratch)
            } catch {
                failure = error
            }
            try start.arriveAndWait()
            var pairs: UInt64 = 0
            let faultsBefore = threadPageFaults()
            let began = monotonicNanoseconds()
            let deadline = began + UInt64(duration * 1e9)
            var now = began
            // The clock is read once per 256 pairs or more, so that small batches
            // time the allocator rather than clock_gettime(2).
            let rounds = max(1, 256 / batch)
            do throws(PoolError) {
                while failure == nil && now < deadline {
                    try allocator.cycle(rounds: rounds, batch: batch, scratch: scratch)
                    pairs &+= UInt64(batch * rounds)
                    now = monotonicNanoseconds()
                }
            } catch {
                failure = error
            }
            let faults = threadPageFaults() - faultsBefore
            // Every thread arrives at both lines, even after a failure, so none waits forever.
            var holds = false
            if failure == nil {
                do throws(PoolError) {
                    try allocator.take(batch, into: scratch)
                    holds = true
                } catch {
                    failure = error
                }
            }
            // Never abandoned: only `start` is, and every thread has passed it.
            try? holding.arriveAndWait()
            let statistics = index == 0 ? allocator.statistics() : nil
            try? read.arriveAndWait()
            if holds { allocator.giveBack(batch, from: scratch) }
            if let failure { throw failure }
            return (pairs, Double(now - began) / 1e9, faults, statistics)
        }
        var pairs: UInt64 = 0
        var seconds = 0.0
        var faults = 0
        var statistics: PoolStatistics?
        for (count, elapsed, workerFaults, snapshot) in try joinAll(workers) {
            pairs += count
            faults += workerFaults
            seconds = max(seconds, elapsed)
            statistics = statistics ?? snapshot
        }
        if var stats = statistics, let before {
            stats.gets -= before.gets
            stats.puts -= before.puts
            stats.hits -= before.hits
            stats.misses -= before.misses
            stats.remoteReturns -= before.remoteReturns
            statistics = stats
        }
        return AllocResult(strategy: strategy, allocatorName: allocatorName(strategy), threads: cpus.count,
                           pairs: pairs, seconds: seconds, pageFaults: faults, statistics: statistics)
    }

    /// Minor and major page faults of the calling thread so far (`getrusage(RUSAGE_THREAD)`).
    static func threadPageFaults() -> Int {
        var usage = rusage()
        guard CNuma_getrusage_thread(&usage) == 0 else { return 0 }
        return usage.ru_minflt + usage.ru_majflt
    }

    /// `local`, `global`, `malloc (glibc)` or `malloc (<LD_PRELOAD library>)`.
    static func allocatorName(_ strategy: AllocStrategy) -> String {
        guard strategy == .malloc else { return strategy.rawValue }
        let preload = ProcessInfo.processInfo.environment["LD_PRELOAD"].flatMap { $0.isEmpty ? nil : $0 }
        return "malloc (\(preload.map { URL(fileURLWithPath: $0).lastPathComponent } ?? "glibc"))"
    }

    public static func table(_ results: [AllocResult]) -> String {
        let summaries = summarize(results)
        let rounds = Set(results.map(\.round)).count
        var columns = ["allocator", "threads", "ns/pair"]
        if rounds > 1 { columns.append("min-max") }
        columns += ["pairs/s", "scaling", "vs malloc", "reuse", "fresh", "remote returns", "fragmentation"]
        var table = TextTable(columns)
        for summary in summaries {
            let stats = summary.statistics
            var row = [summary.allocatorName, String(summary.threads), Format.fixed(summary.nanosecondsPerPair, 2)]
            if rounds > 1 { row.append("\(Format.fixed(summary.fastest, 2))-\(Format.fixed(summary.slowest, 2))") }
            row += [Format.rate(summary.pairsPerSecond),
                    summary.scaling.map { String(format: "%.2fx", $0) } ?? "",
                    summary.overMalloc.map { String(format: "%.2fx", $0) } ?? "",
                    stats.map { Format.percent($0.reuseRate) } ?? "", stats.map { Format.percent($0.freshAllocationRate) } ?? "",
                    stats.map { String($0.remoteReturns) } ?? "", stats.map { Format.percent($0.fragmentation) } ?? ""]
            table.add(row)
        }
        var text = table.render()
        if rounds > 1 {
            text += "\nMedians of \(rounds) rounds; scaling and vs malloc are medians of each round's own ratio.\n"
        }
        return text
    }

    /// Every round of each allocator at each thread count, in the order first measured.
    public static func summarize(_ results: [AllocResult]) -> [AllocSummary] {
        var keys: [AllocSummary.Key] = []
        var groups: [AllocSummary.Key: [AllocResult]] = [:]
        for result in results {
            let key = AllocSummary.Key(strategy: result.strategy, threads: result.threads)
            if groups[key] == nil { keys.append(key) }
            groups[key, default: []].append(result)
        }
        func row(_ strategy: AllocStrategy, threads: Int, round: Int) -> AllocResult? {
            groups[AllocSummary.Key(strategy: strategy, threads: threads)]?.first { $0.round == round }
        }
        return keys.compactMap { key in
            guard let rounds = groups[key], let middle = rounds.sorted(by: { $0.nanosecondsPerPair < $1.nanosecondsPerPair })
                .dropFirst((rounds.count - 1) / 2).first else { return nil }
            let scaling = Rounds.medianRatio(rounds, round: \.round, partner: { row(key.strategy, threads: 1, round: $0) },
                                             ratio: { $0.pairsPerSecond / max(1, $1.pairsPerSecond) })
            let overMalloc = Rounds.medianRatio(rounds, round: \.round, partner: { row(.malloc, threads: key.threads, round: $0) },
                                                ratio: { $1.nanosecondsPerPair / max(1e-9, $0.nanosecondsPerPair) })
            let times = rounds.map(\.nanosecondsPerPair)
            return AllocSummary(strategy: key.strategy, allocatorName: middle.allocatorName, threads: key.threads,
                                rounds: rounds, nanosecondsPerPair: times.median ?? 0,
                                pairsPerSecond: rounds.map(\.pairsPerSecond).median ?? 0,
                                fastest: times.min() ?? 0, slowest: times.max() ?? 0, statistics: middle.statistics,
                                scaling: scaling, overMalloc: overMalloc)
        }
    }

    /// One record per round, each carrying its allocator and thread count's summary over the
    /// rounds (the table's medians, range and ratios), so that nobody recomputes them.
    public static func records(_ results: [AllocResult], options: AllocOptions, environment: RunEnvironment) -> [Record] {
        let summaries = summarize(results)
        return results.map { result in
            let stats = result.statistics
            let summary = summaries.first { $0.strategy == result.strategy && $0.threads == result.threads }
            return Record([
                ("timestamp", .string(environment.timestamp)),
                ("command", .string("alloc")),
                ("allocator", .string(result.allocatorName)),
                ("strategy", .string(result.strategy.rawValue)),
                ("threads", .int(result.threads)),
                ("round", .int(result.round)),
                ("block_bytes", .int(options.blockSize)),
                ("batch", .int(options.batch)),
                ("binding", .string(options.binding.rawValue)),
                ("global_fill", .string(options.globalFill.rawValue)),
                ("cpunodebind", .string(options.placement.cpunodebind?.description)),
                ("duration_s", .double(result.seconds)),
                ("pairs", .int(Int(result.pairs))),
                ("ns_per_pair", .double(result.nanosecondsPerPair)),
                ("pairs_per_s", .double(result.pairsPerSecond)),
                ("rounds", .int(summary?.rounds.count)),
                ("median_ns_per_pair", summary.map { .double($0.nanosecondsPerPair) } ?? .null),
                ("min_ns_per_pair", summary.map { .double($0.fastest) } ?? .null),
                ("max_ns_per_pair", summary.map { .double($0.slowest) } ?? .null),
                ("median_pairs_per_s", summary.map { .double($0.pairsPerSecond) } ?? .null),
                ("scaling", summary?.scaling.map { .double($0) } ?? .null),
                ("vs_malloc", summary?.overMalloc.map { .double($0) } ?? .null),
                ("page_faults", .int(result.pageFaults)),
                ("reuse_rate", stats.map { .double($0.reuseRate) } ?? .null),
                ("fresh_rate", stats.map { .double($0.freshAllocationRate) } ?? .null),
                ("remote_returns", .int(stats.map { Int($0.remoteReturns) })),
                ("fragmentation", stats.map { .double($0.fragmentation) } ?? .null),
                ("bytes_reserved", .int(stats?.bytesReserved)),
                ("bytes_in_use", .int(stats?.bytesInUse)),
                ("bytes_peak", .int(stats?.bytesPeak)),
            ] + Record.environmentFields(environment))
        }
    }
}

extension AllocBenchmark.BlockAllocator {
    func scratchBytes(batch: Int) -> Int { batch * MemoryLayout<UnsafeMutableRawPointer>.stride }

    @inline(__always)
    func cycle(rounds: Int, batch: Int, scratch: UnsafeMutableRawPointer) throws(PoolError) {
        let held = scratch.assumingMemoryBound(to: UnsafeMutableRawPointer.self)
        if batch == 1 {
            // A get+put pair: the block is given back from a register, as in a caller's code,
            // not loaded back from `held`; storing it there keeps it escaping, so that the
            // compiler cannot drop a malloc/free pair whose block is never used.
            for _ in 0..<rounds {
                let block = try allocate()
                held[0] = block
                deallocate(block)
            }
        } else {
            for _ in 0..<rounds {
                for i in 0..<batch { held[i] = try allocate() }
                for i in 0..<batch { deallocate(held[i]) }
            }
        }
    }

    func take(_ batch: Int, into scratch: UnsafeMutableRawPointer) throws(PoolError) {
        let held = scratch.assumingMemoryBound(to: UnsafeMutableRawPointer.self)
        for i in 0..<batch {
            do throws(PoolError) {
                held[i] = try allocate()
            } catch {
                for j in 0..<i { deallocate(held[j]) }
                throw error
            }
        }
    }

    func giveBack(_ batch: Int, from scratch: UnsafeMutableRawPointer) {
        let held = scratch.assumingMemoryBound(to: UnsafeMutableRawPointer.self)
        for i in 0..<batch { deallocate(held[i]) }
    }
}
