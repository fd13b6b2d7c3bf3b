import ArgumentParser
import MembenchKit
import NUMA

struct MatrixCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "matrix",
        abstract: "Node x node idle latency: one thread on each CPU node chasing memory bound to each memory node."
    )

    @OptionGroup(title: "Workload") var workload: WorkloadGroup
    @OptionGroup(title: "Output") var output: OutputGroup

    func validate() throws {
        if workload.threads != 1 {
            throw ValidationError("--threads: matrix runs one thread per cell, on a CPU of each node; leave it out")
        }
    }

    func run() throws {
        var options = RunOptions()
        workload.apply(to: &options)
        _ = try options.resolve()  // refuse bad input before any warning is printed
        let csv = try output.destination()
        warnAboutBalancing()
        let topology = Topology.current
        let cells = Double(topology.nodes.count * max(1, topology.bindableNodes.count))
        let progress = ProgressLine(expectedSeconds: cells * (options.duration + options.warmup))
        let matrix = try LatencyMatrix.run(options) { progress.show("matrix", $0) }
        progress.clear()
        try output.emit(table: matrix.render(), records: matrix.records(), to: csv)
    }
}
