import ArgumentParser
import MembenchKit

struct CompareCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "compare",
        abstract: "Run the local and global pools (and direct, if asked) with identical parameters and print the reference table."
    )

    @Flag(help: "Also measure a plain region with no pool.")
    var direct = false

    @Option(parsing: .unconditional,
            help: "Rounds, taking turns (every other round in reverse order); the table shows medians and each round's ratio to local.")
    var rounds = 3

    @OptionGroup(title: "Placement") var placement: PlacementGroup
    @OptionGroup(title: "Workload") var workload: WorkloadGroup
    @OptionGroup(title: "Output") var output: OutputGroup

    func run() throws {
        var options = RunOptions()
        workload.apply(to: &options)
        options.placement = try placement.resolve()
        let strategies: [PoolStrategy] = direct ? [.local, .global, .direct] : [.local, .global]
        let resolved = try options.resolveComparison(strategies: strategies, rounds: rounds)  // once, before any warning
        let csv = try output.destination()
        try options.placement.withInterleaveWeights {
            warnAboutBalancing()
            let progress = ProgressLine()
            let results = try Comparison.run(resolved) { strategy, round, fraction in
                progress.show(rounds > 1 ? "\(strategy.rawValue), round \(round + 1) of \(rounds)" : strategy.rawValue, fraction)
            }
            progress.clear()
            try output.emit(table: LatencyReport.describe(results) + LatencyReport.comparison(results),
                            records: results.flatMap { Record.rows(for: $0, command: "compare") }, to: csv)
        }
    }
}
