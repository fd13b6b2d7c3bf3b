import ArgumentParser
import MembenchKit
import NUMA

extension LoadKind: ExpressibleByArgument {}

struct LoadedCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "loaded",
        abstract: "Loaded latency: one thread chases while the others stream memory, their delay swept from none to idle."
    )

    @Option(parsing: .unconditional, help: "Delays to sweep, in turns of an empty loop between line accesses, e.g. 0,100,1000.")
    var delays: ListArgument<Int>?

    @Option(name: .customLong("load"), parsing: .unconditional, help: "What the load threads do to each line: read, write or copy.")
    var kind: LoadKind = .read

    @Option(name: .customLong("load-threads"), parsing: .unconditional,
            help: "Load threads (default: one per allowed CPU besides the chase's).")
    var loadThreads: Int?

    @Option(name: .customLong("load-cpus"), parsing: .unconditional, help: ArgumentHelp("CPUs for the load threads.", valueName: "cpus"))
    var loadCPUs: String?

    @Option(name: .customLong("load-membind"), parsing: .unconditional,
            help: ArgumentHelp("Nodes for the load threads' memory (default: the chase's policy).", valueName: "nodes"))
    var loadMembind: String?

    @Option(parsing: .unconditional, help: ArgumentHelp("Bytes per thread (default: 4x the last-level cache, at least 256MiB).", valueName: "size"))
    var size: ByteCount?

    @Option(parsing: .unconditional, help: ArgumentHelp("Chase samples per step, e.g. 1s or 500ms.", valueName: "time"))
    var duration = Seconds(1)

    @OptionGroup(title: "Placement of the chase") var placement: PlacementGroup
    @OptionGroup(title: "Output") var output: OutputGroup

    func run() throws {
        var options = LoadedOptions()
        if let delays { options.delays = delays.values }
        options.kind = kind
        options.loadThreads = loadThreads
        options.size = size?.bytes
        options.duration = duration.value
        options.placement = try placement.resolve()
        if let loadCPUs {
            do { options.loadCPUs = try CPUSet(parsing: loadCPUs) } catch { throw ValidationError("--load-cpus: \(error.message)") }
        }
        if let loadMembind {
            do { options.loadMembind = try NodeSet(parsing: loadMembind) } catch { throw ValidationError("--load-membind: \(error.message)") }
        }
        let resolved = try options.resolve()  // once, and before any warning is printed
        let csv = try output.destination()
        try options.placement.withInterleaveWeights {
            warnAboutBalancing()
            let progress = ProgressLine()
            let result = try LoadedLatency.run(resolved) { progress.show("loaded", $0) }
            progress.clear()
            try output.emit(table: LoadedReport.describe(result) + LoadedReport.table(result),
                            records: LoadedReport.records(result), to: csv)
        }
    }
}
