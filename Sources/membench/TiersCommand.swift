import ArgumentParser
import MembenchKit
import NUMA

struct TiersCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "tiers",
        abstract: "Measure each memory node's bandwidth from one CPU node and propose interleave weights in proportion to it.",
        discussion: """
            The weights are small integers: each node's bandwidth over the slowest node's, scaled by \
            the smallest factor that keeps every weight within 10% of its ratio. Use them with \
            --weighted-interleave, or write them to the kernel with --apply (root, Linux 6.9+).
            """
    )

    @Option(name: .customLong("cpu-node"), parsing: .unconditional,
            help: ArgumentHelp("The CPU node whose CPUs stream (default: the node of the first CPU this process may use).", valueName: "node"))
    var cpuNode: Int?

    @Option(name: .customLong("nodes"), parsing: .unconditional,
            help: ArgumentHelp("The memory nodes to weigh (default: every node with memory this process may use).", valueName: "nodes"))
    var memoryNodes: String?

    @Option(parsing: .unconditional, help: "The kernel that measures: read, copy, triad, write or nt-write.")
    var kernel: BandwidthKernel = .read

    @Flag(help: "Write the proposed weights to the kernel's weighted-interleave settings (root; they stay after membench exits).")
    var apply = false

    @OptionGroup(title: "Streaming") var stream: StreamGroup
    @OptionGroup(title: "Output") var output: OutputGroup

    func run() throws {
        var options = TierOptions()
        options.cpuNode = cpuNode
        if let memoryNodes {
            do { options.memoryNodes = try NodeSet(parsing: memoryNodes) } catch { throw ValidationError("--nodes: \(error.message)") }
        }
        options.kernel = kernel
        options.threads = stream.threads
        options.size = stream.size?.bytes
        options.duration = stream.duration.value
        options.pageMode = stream.pageSize
        let resolved = try options.resolve()  // once, and before any warning is printed
        if apply {
            guard InterleaveWeights.isSupported else {
                throw MembenchError.unavailable(.apply, InterleaveWeights.unsupported(operation: "").message)
            }
            guard InterleaveWeights.isWritable else {
                throw MembenchError.unavailable(.apply, "the interleave weights cannot be written by this process (it needs root)")
            }
        }
        let csv = try output.destination()
        warnAboutBalancing()
        let progress = ProgressLine()
        let proposal = try TierWeights.run(resolved) { progress.show("tiers", $0) }
        progress.clear()
        // The table and records first: a failure to apply loses no measurement.
        try output.emit(table: TierWeights.table(proposal), records: TierWeights.records(proposal, options: options), to: csv)
        if apply {
            let lock: InterleaveWeights.Lock
            do {
                lock = try InterleaveWeights.lockSayingWhenWaiting()
            } catch {
                throw MembenchError.unavailable(.apply, error.message)
            }
            defer { withExtendedLifetime(lock) {} }
            let before = InterleaveWeights.current() ?? [:]
            let changes = InterleaveWeights.changes(proposal.weights)
            InterleaveWeights.warnIfAutomaticModeIsLost(by: proposal.weights)
            do {
                try InterleaveWeights.set(proposal.weights)
            } catch {
                throw MembenchError.unavailable(.apply, error.message)
            }
            let was = InterleaveWeights.text(before.filter { changes[$0.key] != nil })
            if !output.json {
                try StandardStreams.write("applied: \(InterleaveWeights.text(proposal.weights)) (\(changes.isEmpty ? "unchanged" : "was \(was)"))\n")
            }
        }
    }
}
