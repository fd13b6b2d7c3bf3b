import ArgumentParser
import MembenchKit

struct RunCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "run",
        abstract: "Measure latency and remote-access share of one pool strategy (the default command)."
    )

    @Option(parsing: .unconditional, help: "Where the chased memory comes from: local, global or direct.")
    var pool: PoolStrategy = .local

    @OptionGroup(title: "Placement") var placement: PlacementGroup
    @OptionGroup(title: "Workload") var workload: WorkloadGroup
    @OptionGroup(title: "Output") var output: OutputGroup

    func run() throws {
        var options = RunOptions()
        options.strategy = pool
        workload.apply(to: &options)
        options.placement = try placement.resolve()
        let resolved = try options.resolve()  // once, and before any warning is printed
        let csv = try output.destination()
        try options.placement.withInterleaveWeights {
            warnAboutBalancing()
            let progress = ProgressLine()
            let result = try LatencyRunner.run(resolved) { progress.show(pool.rawValue, $0) }
            progress.clear()
            try output.emit(table: LatencyReport.describe(result) + LatencyReport.table(result),
                            records: Record.rows(for: result, command: "run"), to: csv)
        }
    }
}
