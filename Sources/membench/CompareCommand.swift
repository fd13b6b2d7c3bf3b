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

    func validate() throws {
        guard rounds >= 1 && rounds <= 1000 else { throw ValidationError("--rounds: must be between 1 and 1000, got \(rounds)") }
    }

    func run() throws {
        var options = RunOptions()
        workload.apply(to: &options)
        options.placement = try placement.resolve()
        let resolved = try options.resolve()  // once, and before any warning is printed
        let csv = try output.destination()
        try options.placement.withInterleaveWeights {
            warnAboutBalancing()
            let strategies: [PoolStrategy] = direct ? [.local, .global, .direct] : [.local, .global]
            let progress = ProgressLine(expectedSeconds: Double(strategies.count * rounds) * (options.duration + options.warmup))
            let results = try Comparison.run(strategies, run: resolved, rounds: rounds) { strategy, round, fraction in
                progress.show(rounds > 1 ? "\(strategy.rawValue), round \(round + 1) of \(rounds)" : strategy.rawValue, fraction)
            }
            progress.clear()
            try output.emit(table: LatencyReport.describe(results) + LatencyReport.comparison(results),
                            records: results.flatMap { Record.rows(for: $0, command: "compare") }, to: csv)
        }
    }
}
