import ArgumentParser
import MembenchKit

struct CompareCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "compare",
        abstract: "Run the local and global pools (and direct, if asked) with identical parameters and print the reference table."
    )

    @Flag(help: "Also measure a plain region with no pool.")
    var direct = false

    @OptionGroup(title: "Placement") var placement: PlacementGroup
    @OptionGroup(title: "Workload") var workload: WorkloadGroup
    @OptionGroup(title: "Output") var output: OutputGroup

    func run() throws {
        var options = RunOptions()
        workload.apply(to: &options)
        options.placement = try placement.resolve()
        _ = try options.resolve()  // refuse bad input before any warning is printed
        let csv = try output.destination()
        warnAboutBalancing()
        let strategies: [PoolStrategy] = direct ? [.local, .global, .direct] : [.local, .global]
        let progress = ProgressLine(expectedSeconds: Double(strategies.count) * (options.duration + options.warmup))
        let results = try Comparison.run(strategies, options: options) { progress.show($0.rawValue, $1) }
        progress.clear()
        try output.emit(table: LatencyReport.describe(results) + LatencyReport.comparison(results),
                        records: results.flatMap { Record.rows(for: $0, command: "compare") }, to: csv)
    }
}
