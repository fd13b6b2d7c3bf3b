import ArgumentParser
import MembenchKit
import NUMA

struct MatrixCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "matrix",
        abstract: "Node x node idle latency: one thread on each CPU node chasing memory bound to each memory node."
    )

    @OptionGroup(title: "Workload") var workload: ChaseGroup
    @OptionGroup(title: "Output") var output: OutputGroup

    func run() throws {
        var options = RunOptions()
        workload.apply(to: &options)
        let resolved = try options.resolveMatrix()  // once, and before any warning is printed
        let csv = try output.destination()
        warnAboutBalancing()
        let progress = ProgressLine()
        let matrix = try LatencyMatrix.run(resolved) { progress.show("matrix", $0) }
        progress.clear()
        try output.emit(table: matrix.render(), records: matrix.records(), to: csv)
    }
}
