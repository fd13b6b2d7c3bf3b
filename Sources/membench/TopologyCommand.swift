import ArgumentParser
import MembenchKit
import NUMA

struct TopologyCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "topology",
        abstract: "Show nodes, CPUs, memory, distances, the last-level cache and the allowed sets."
    )

    @Flag(help: "Print JSON instead of the numactl --hardware layout.")
    var json = false

    func run() throws {
        let topology = Topology.current
        try StandardStreams.write(json ? try TopologyReport.json(topology) : TopologyReport.text(topology))
    }
}
