import ArgumentParser

@main
struct Membench: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "membench",
        abstract: "NUMA memory latency and pool measurements.",
        subcommands: [TopologyCommand.self]
    )
}
