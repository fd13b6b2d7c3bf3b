import ArgumentParser
import MembenchKit
import NUMA

extension BandwidthKernel: ExpressibleByArgument {}

struct BandwidthCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "bandwidth",
        abstract: "Memory bandwidth by read/write mix: every thread streams its own buffer with each kernel, all at once."
    )

    @Option(parsing: .unconditional,
            help: "Kernels: read (sum), copy (1:1), triad (2:1), write, nt-write (non-temporal); e.g. read,copy (default: all; read for --matrix).")
    var kernels: ListArgument<BandwidthKernel>?

    @Flag(help: "Every CPU node against every memory node (the CPU node's CPUs stream memory bound to the memory node).")
    var matrix = false

    @OptionGroup(title: "Streaming") var stream: StreamGroup
    @OptionGroup(title: "Placement") var placement: PlacementGroup
    @OptionGroup(title: "Output") var output: OutputGroup

    func run() throws {
        var options = BandwidthOptions()
        options.kernels = kernels?.values ?? (matrix ? [.read] : BandwidthKernel.allCases)
        options.threads = stream.threads
        options.size = stream.size?.bytes
        options.duration = stream.duration.value
        options.pageMode = stream.pageSize
        options.placement = try placement.resolve()
        // Bad input is refused, once, before any warning is printed and before any weight is set.
        if matrix {
            let resolved = try options.resolveMatrix()
            let csv = try output.destination()
            try options.placement.withInterleaveWeights {
                warnAboutBalancing()
                let progress = ProgressLine()
                let result = try BandwidthMatrix.run(resolved) { progress.show("bandwidth", $0) }
                progress.clear()
                try output.emit(table: result.render(), records: result.records(options: options), to: csv)
            }
        } else {
            let resolved = try options.resolve()
            let csv = try output.destination()
            try options.placement.withInterleaveWeights {
                warnAboutBalancing()
                let progress = ProgressLine()
                let results = try BandwidthRunner.run(resolved) { progress.show("bandwidth", $0) }
                progress.clear()
                try output.emit(table: BandwidthReport.describe(results, options: options) + BandwidthReport.table(results),
                                records: BandwidthReport.records(results, options: options), to: csv)
            }
        }
    }
}
