import ArgumentParser
import MembenchKit
import NUMA

struct CacheToCacheCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "c2c",
        abstract: "Cache-line transfer latency between every pair of allowed CPUs, clean and modified lines."
    )

    @Option(parsing: .unconditional, help: "64-byte lines per measurement, chased in random order.")
    var lines = 256

    @Option(parsing: .unconditional, help: "Measurements per CPU pair and line state; the table shows the median.")
    var repeats = 50

    @OptionGroup(title: "CPUs") var placement: CPUGroup
    @OptionGroup(title: "Output") var output: OutputGroup

    func run() throws {
        var options = CacheToCacheOptions()
        options.lines = lines
        options.repeats = repeats
        options.placement = try placement.resolve()
        let resolved = try options.resolve()  // once, and before any output
        let csv = try output.destination()
        let progress = ProgressLine()
        let pairs = try CacheToCache.run(resolved) { progress.show("c2c", $0) }
        progress.clear()
        try output.emit(table: CacheToCacheReport.render(pairs, options: options),
                        records: CacheToCacheReport.records(pairs, options: options, environment: .current()), to: csv)
    }
}
