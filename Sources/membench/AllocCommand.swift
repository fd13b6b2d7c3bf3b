import ArgumentParser
import MembenchKit
import NUMAPool

extension AllocStrategy: ExpressibleByArgument {}
extension AllocFrees: ExpressibleByArgument {}

struct AllocCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "alloc",
        abstract: "Get+put throughput of the pools and the heap against malloc/free (swap malloc with LD_PRELOAD).",
        discussion: """
        --sizes takes a size (64), a uniform range (16-4096) or a named mix: service, mostly small \
        objects and some 1-64 KiB buffers (50% 16-64 B, 25% 65-256 B, 13% 257 B-1 KiB, 8% 1-16 KiB, \
        4% 16-64 KiB). Sizes other than one fixed size are for heap and malloc only. --frees remote \
        pairs the threads: each frees what its partner took.
        """
    )

    @Option(parsing: .unconditional, help: "Allocators to measure, e.g. local,malloc.")
    var allocators = ListArgument<AllocStrategy>(AllocStrategy.allCases)

    @Option(parsing: .unconditional, help: "Thread counts to measure, e.g. 1,2.")
    var threads = ListArgument<Int>([1])

    @Option(name: .customLong("block-size"), parsing: .unconditional,
            help: ArgumentHelp("Bytes per block (default 64); the same as --sizes with one size.", valueName: "size"))
    var blockSize: ByteCount?

    @Option(parsing: .unconditional, help: ArgumentHelp("Sizes asked for: a size, a range (16-4096) or service.", valueName: "sizes"))
    var sizes: String?

    @Option(parsing: .unconditional, help: "Who frees a block: local (the thread that took it) or remote (its partner thread).")
    var frees: AllocFrees = .local

    @Option(parsing: .unconditional, help: "Blocks taken before they are given back (1 = a get+put pair).")
    var batch = 32

    @Option(parsing: .unconditional, help: ArgumentHelp("Time per allocator and thread count, e.g. 1s or 500ms (more than 0).", valueName: "time"))
    var duration = Seconds(1)

    @Option(parsing: .unconditional,
            help: "Times each allocator and thread count is measured, taking turns; the table shows medians.")
    var rounds = 1

    @Option(parsing: .unconditional, help: ArgumentHelp("Bytes each pool may reserve per node.", valueName: "size"))
    var capacity = ByteCount(argument: "256MiB")!

    @Option(parsing: .unconditional, help: "Local pool arenas: strict (MPOL_BIND) or preferred.")
    var binding: LocalPool.Binding = .strict

    @Option(name: .customLong("global-fill"), parsing: .unconditional,
            help: "How the global pool is filled: spread, first-touch or interleave (as for run).")
    var globalFill: GlobalFill = .spread

    @OptionGroup(title: "Placement") var placement: PlacementGroup
    @OptionGroup(title: "Output") var output: OutputGroup

    func run() throws {
        var options = AllocOptions()
        options.strategies = allocators.values
        options.threadCounts = threads.values
        if blockSize != nil && sizes != nil {
            throw MembenchError.invalid(.sizes, "give --block-size or --sizes, not both")
        }
        options.blockSize = blockSize?.bytes ?? 64
        options.sizes = try sizes.map { text throws(MembenchError) in try AllocSizes.parse(text) }
        options.frees = frees
        options.batch = batch
        options.duration = duration.value
        options.rounds = rounds
        options.capacity = capacity.bytes
        options.binding = binding
        options.globalFill = globalFill
        options.placement = try placement.resolve()
        let resolved = try options.resolve()  // once, and before any weight is set
        let csv = try output.destination()
        try options.placement.withInterleaveWeights {
            let results = try AllocBenchmark.run(resolved)
            try output.emit(table: AllocBenchmark.table(results, options: resolved.options),
                            records: AllocBenchmark.records(results, options: resolved.options, environment: .current()), to: csv)
        }
    }
}
