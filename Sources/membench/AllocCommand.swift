import ArgumentParser
import MembenchKit

extension AllocStrategy: ExpressibleByArgument {}

/// Counts given as "1,2,4" (or one per argument).
struct CountList: ExpressibleByArgument {
    let counts: [Int]
    init(counts: [Int]) { self.counts = counts }
    init?(argument: String) {
        let counts = argument.split(separator: ",", omittingEmptySubsequences: false).map { Int($0) }
        guard !counts.isEmpty, counts.allSatisfy({ $0 != nil }) else { return nil }
        self.counts = counts.compactMap { $0 }
    }
    var defaultValueDescription: String { counts.map(String.init).joined(separator: ",") }
}

struct AllocCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "alloc",
        abstract: "Get+put throughput of the local and global pools against malloc/free (swap malloc with LD_PRELOAD)."
    )

    @Option(parsing: .upToNextOption, help: "Allocators to measure: local, global, malloc.")
    var allocators: [AllocStrategy] = AllocStrategy.allCases

    @Option(parsing: .upToNextOption, help: "Thread counts to measure, e.g. 1 2 or 1,2.")
    var threads: [CountList] = [CountList(counts: [1])]

    @Option(name: .customLong("block-size"), parsing: .unconditional, help: ArgumentHelp("Bytes per block.", valueName: "size"))
    var blockSize = ByteCount(argument: "64")!

    @Option(parsing: .unconditional, help: "Blocks taken before they are given back (1 = a get+put pair).")
    var batch = 32

    @Option(parsing: .unconditional, help: "Seconds per allocator and thread count.")
    var duration = 1.0

    @Option(parsing: .unconditional, help: ArgumentHelp("Bytes each pool may reserve per node.", valueName: "size"))
    var capacity = ByteCount(argument: "256MiB")!

    @OptionGroup(title: "Placement") var placement: PlacementGroup
    @OptionGroup(title: "Output") var output: OutputGroup

    func validate() throws {
        for count in threads.flatMap(\.counts) where count < 1 { throw ValidationError("--threads: must be at least 1, got \(count)") }
    }

    func run() throws {
        var options = AllocOptions()
        options.strategies = allocators
        options.threadCounts = threads.flatMap(\.counts)
        options.blockSize = blockSize.bytes
        options.batch = batch
        options.duration = duration
        options.capacity = capacity.bytes
        options.placement = try placement.resolve()
        let results = try AllocBenchmark.run(options)
        try output.emit(table: AllocBenchmark.table(results),
                        records: AllocBenchmark.records(results, options: options, environment: .current()))
    }
}
