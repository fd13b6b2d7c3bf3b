import ArgumentParser
import Foundation
import MembenchKit
import NUMA
import NUMAPool
import Synchronization

/// A byte size argument: `256MiB`, `1GB` (binary units).
struct ByteCount: ExpressibleByArgument {
    let bytes: Int
    init?(argument: String) {
        guard let bytes = ByteSize.parse(argument) else { return nil }
        self.bytes = bytes
    }
    static var defaultCompletionKind: CompletionKind { .default }
    /// How a default shows in --help: "256KiB", not the struct.
    var defaultValueDescription: String { ByteSize.format(bytes) }
}

/// A duration argument: `2`, `2s`, `500ms` (a bare number is seconds).
struct Seconds: ExpressibleByArgument {
    let value: Double
    init(_ value: Double) { self.value = value }
    init?(argument: String) {
        guard let value = TimeSpan.parse(argument) else { return nil }
        self.value = value
    }
    var defaultValueDescription: String { TimeSpan.format(value) }
}

/// Values given as one comma-separated argument: `--threads 1,2`.
struct ListArgument<Element: ExpressibleByArgument>: ExpressibleByArgument {
    let values: [Element]
    init(_ values: [Element]) { self.values = values }
    init?(argument: String) {
        let values = argument.split(separator: ",", omittingEmptySubsequences: false).map { Element(argument: String($0)) }
        guard !values.isEmpty, values.allSatisfy({ $0 != nil }) else { return nil }
        self.values = values.compactMap { $0 }
    }
    static var allValueStrings: [String] { Element.allValueStrings }
    var defaultValueDescription: String { values.map(\.defaultValueDescription).joined(separator: ",") }
}

extension PoolStrategy: ExpressibleByArgument {}
extension PageMode: ExpressibleByArgument {}
extension ChasePattern: ExpressibleByArgument {}
extension SlotLayout.Offsets: ExpressibleByArgument {}
extension LocalPool.Binding: ExpressibleByArgument {}
extension GlobalFill: ExpressibleByArgument {}

/// The memory policy flags, numactl's: where pages go.
struct MemoryPolicyGroup: ParsableArguments {
    @Option(parsing: .unconditional, help: ArgumentHelp("Allocate only on these nodes (MPOL_BIND).", valueName: "nodes"))
    var membind: String?

    @Option(parsing: .unconditional, help: ArgumentHelp("Interleave pages over these nodes (MPOL_INTERLEAVE).", valueName: "nodes"))
    var interleave: String?

    @Option(name: .customLong("weighted-interleave"), parsing: .unconditional,
            help: ArgumentHelp("Interleave pages over these nodes by the kernel's weights (MPOL_WEIGHTED_INTERLEAVE, Linux 6.9+); node:weight pairs such as 0:3,2:1 set the weights for the run (root) and restore them after it.", valueName: "nodes"))
    var weightedInterleave: String?

    @Option(parsing: .unconditional, help: ArgumentHelp("Prefer this node (MPOL_PREFERRED).", valueName: "node"))
    var preferred: String?

    @Flag(help: "Allocate on the node of the touching CPU (MPOL_LOCAL).")
    var localalloc = false

    func apply(to options: inout PlacementOptions) throws {
        options.membind = try nodes(membind, "--membind")
        options.interleave = try nodes(interleave, "--interleave")
        if let weightedInterleave {
            if let node = InterleaveWeights.repeatedNode(in: weightedInterleave) {
                throw ValidationError("--weighted-interleave: node \(node) is listed twice in '\(weightedInterleave)'")
            }
            guard let (nodes, weights) = InterleaveWeights.parse(weightedInterleave) else {
                throw ValidationError("--weighted-interleave: '\(weightedInterleave)' is neither a node list (0,2) nor node:weight pairs (0:3,2:1)")
            }
            options.weightedInterleave = nodes
            options.interleaveWeights = weights
        }
        if let preferred {
            guard let node = Int(preferred), node >= 0, node <= IDSetLimit.maximumID else {
                throw ValidationError("--preferred: '\(preferred)' is not a node id")
            }
            options.preferred = node
        }
        options.localalloc = localalloc
    }
}

/// The CPU flags, numactl's: where threads run.
struct CPUGroup: ParsableArguments {
    @Option(parsing: .unconditional, help: ArgumentHelp("Run threads on the CPUs of these nodes.", valueName: "nodes"))
    var cpunodebind: String?

    @Option(parsing: .unconditional, help: ArgumentHelp("Run threads on these CPUs.", valueName: "cpus"))
    var physcpubind: String?

    func apply(to options: inout PlacementOptions) throws {
        options.cpunodebind = try nodes(cpunodebind, "--cpunodebind")
        if let physcpubind {
            do { options.physcpubind = try CPUSet(parsing: physcpubind) } catch {
                throw ValidationError("--physcpubind: \(error.message)")
            }
        }
    }

    /// The flags as placement options, for a command that places threads only.
    func resolve() throws -> PlacementOptions {
        var options = PlacementOptions()
        try apply(to: &options)
        return options
    }

    func validate() throws { _ = try resolve() }
}

/// A node list flag's value, or nil when the flag is not given.
private func nodes(_ text: String?, _ flag: String) throws -> NodeSet? {
    guard let text else { return nil }
    do { return try NodeSet(parsing: text) } catch { throw ValidationError("\(flag): \(error.message)") }
}

/// numactl's placement flags: memory policy and CPUs.
struct PlacementGroup: ParsableArguments {
    @OptionGroup var memory: MemoryPolicyGroup
    @OptionGroup var cpus: CPUGroup

    /// The flags as placement options; without flags the process's policy and CPUs are inherited.
    func resolve() throws -> PlacementOptions {
        var options = PlacementOptions()
        try memory.apply(to: &options)
        try cpus.apply(to: &options)
        return options
    }

    func validate() throws { _ = try resolve() }
}

/// The options of a streaming measurement (`bandwidth`, `tiers`).
struct StreamGroup: ParsableArguments {
    @Option(parsing: .unconditional, help: "Threads, one per CPU (default: every CPU the placement allows; for tiers, every CPU of the CPU node).")
    var threads: Int?

    @Option(parsing: .unconditional, help: ArgumentHelp("Bytes per thread, the kernel's arrays together (default: 4x the last-level cache, at least 256MiB).", valueName: "size"))
    var size: ByteCount?

    @Option(parsing: .unconditional, help: ArgumentHelp("Timed passes per kernel or memory node, e.g. 1s or 500ms.", valueName: "time"))
    var duration = Seconds(1)

    @Option(name: .customLong("page-size"), parsing: .unconditional, help: "Page backing: 4k, thp, 2m or 1g.")
    var pageSize: PageMode = .base

}

/// The chase's workload: its buffer, chain and timing.
struct ChaseGroup: ParsableArguments {
    @Option(parsing: .unconditional, help: ArgumentHelp("Buffer each thread chases (default: 4x the last-level cache, at least 256MiB).", valueName: "size"))
    var size: ByteCount?

    @Option(parsing: .unconditional, help: ArgumentHelp("Bytes between chain slots.", valueName: "size"))
    var stride = ByteCount(argument: "256")!

    @Option(name: .customLong("tlb-locality"), parsing: .unconditional, help: ArgumentHelp("Bytes per randomised group, a multiple of the stride; 0 for fully random (default: 256KiB, rounded up to a multiple of the stride).", valueName: "size"))
    var tlbLocality: ByteCount?

    @Option(name: .customLong("page-size"), parsing: .unconditional, help: "Page backing: 4k, thp, 2m or 1g.")
    var pageSize: PageMode = .base

    @Option(parsing: .unconditional, help: "Walk: chase (random) or sequential.")
    var pattern: ChasePattern = .chase

    @Option(name: .customLong("slot-offsets"), parsing: .unconditional,
            help: "Where each slot sits inside its stride: random (a multiple of 8 bytes, different per thread) or zero.")
    var slotOffsets: SlotLayout.Offsets = .random

    @Option(parsing: .unconditional, help: ArgumentHelp("Timed samples per strategy, e.g. 2s or 500ms (default: 2s).", valueName: "time"))
    var duration: Seconds?

    @Option(parsing: .unconditional, help: "A fixed number of samples per thread instead of --duration.")
    var samples: Int?

    @Option(parsing: .unconditional, help: ArgumentHelp("Length of each window of the window statistic (best and median window), e.g. 500ms.", valueName: "time"))
    var window = Seconds(0.5)

    @Option(parsing: .unconditional, help: ArgumentHelp("Untimed warm-up, e.g. 250ms.", valueName: "time"))
    var warmup = Seconds(0.25)

    @Option(name: .customLong("loads-per-sample"), parsing: .unconditional, help: "Dependent loads per timed sample (at least 256).")
    var loadsPerSample = 1024

    @Option(parsing: .unconditional, help: "Seed of the chain's shuffle.")
    var seed: UInt64 = RunOptions.defaultSeed

    func validate() throws {
        // The one check of the flags themselves; the kit checks every value (RunOptions.resolve).
        if duration != nil && samples != nil {
            throw ValidationError("--duration: conflicts with --samples; give a duration or a number of samples")
        }
    }

    func apply(to options: inout RunOptions) {
        options.size = size?.bytes
        options.stride = stride.bytes
        options.tlbLocality = tlbLocality?.bytes
        options.pageMode = pageSize
        options.pattern = pattern
        options.slotOffsets = slotOffsets
        if let samples { options.length = .samples(samples) } else if let duration { options.length = .duration(duration.value) }
        options.warmup = warmup.value
        options.window = window.value
        options.loadsPerSample = loadsPerSample
        options.seed = seed
    }
}

/// The chase's workload with its threads and the pools' settings (run, compare).
struct WorkloadGroup: ParsableArguments {
    @OptionGroup var chase: ChaseGroup

    @Option(parsing: .unconditional, help: "Worker threads, one per CPU.")
    var threads = 1

    @Option(parsing: .unconditional, help: "Local pool arenas: strict (MPOL_BIND) or preferred.")
    var binding: LocalPool.Binding = .strict

    @Option(name: .customLong("global-fill"), parsing: .unconditional,
            help: "How the global pool is filled: spread (in chunks over the run's memory nodes, each touched on its node), first-touch (as one thread on the first worker's CPU would place it) or interleave (page by page).")
    var globalFill: GlobalFill = .spread

    func apply(to options: inout RunOptions) {
        chase.apply(to: &options)
        options.threads = threads
        options.binding = binding
        options.globalFill = globalFill
    }
}

struct OutputGroup: ParsableArguments {
    @Option(parsing: .unconditional, help: ArgumentHelp("Append records to this CSV file (header written when new; a device or pipe takes them as a stream).", valueName: "file"))
    var csv: String?

    @Flag(help: "Print the records as JSON instead of the table.")
    var json = false

    /// The CSV destination, checked: call before the run starts, so that a bad path costs no run.
    func destination() throws -> CSVDestination? {
        guard let csv else { return nil }
        return try CSVDestination(path: csv)
    }

    /// Prints the table (or JSON), then appends the records to the CSV: the rows are saved
    /// even when standard output cannot take the table, and a CSV failure comes after the
    /// table. Either failure is an error; both make one line.
    func emit(table: String, records: [Record], to destination: CSVDestination?) throws {
        var failures: [MembenchError] = []
        do {
            try StandardStreams.write(json ? RecordWriter.json(records) : table)
        } catch {
            failures.append(error)
        }
        if let destination {
            do {
                try destination.append(records)
            } catch {
                failures.append(error)
            }
        }
        if failures.count == 1 { throw failures[0] }
        if failures.count > 1 { throw MembenchError.refused(failures.map(\.commandLineMessage).joined(separator: "; ")) }
    }
}

/// A one-line progress indicator on stderr, shown only when stderr is a terminal and only once
/// the run has taken a second, redrawn when its whole percent changes.
final class ProgressLine: Sendable {
    private let enabled: Bool
    private let started = monotonicNanoseconds()
    /// The percent last drawn, -1 before any.
    private let drawn = Atomic<Int>(-1)

    init() {
        enabled = isatty(STDERR_FILENO) != 0
    }

    func show(_ label: String, _ fraction: Double) {
        guard enabled, monotonicNanoseconds() - started >= 1_000_000_000 else { return }
        let percent = Int((min(1, max(0, fraction)) * 100).rounded(.down))
        guard drawn.exchange(percent, ordering: .relaxed) != percent else { return }
        StandardStreams.report(String(format: "\r%@ %3d%%", label, percent))
    }

    func clear() {
        guard enabled, drawn.load(ordering: .relaxed) >= 0 else { return }
        StandardStreams.report("\r\u{1B}[K")
    }
}

/// Warns on stderr when the kernel may move pages during a run.
func warnAboutBalancing() {
    let environment = RunEnvironment.current()
    if environment.numaBalancingOn {
        StandardStreams.report("membench: warning: NUMA balancing is on (/proc/sys/kernel/numa_balancing=\(environment.numaBalancing)); pages may migrate during the run\n")
    }
}
