import ArgumentParser
import MembenchKit

extension ChurnAllocator: ExpressibleByArgument {}

struct ChurnCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "churn",
        abstract: "Memory coming and going: grow to a working set, shrink, go idle, come back; a time series of each node's bytes and the process's RSS.",
        discussion: """
        The threads grow to the working set, hold it (freeing and allocating at random), free all \\
        but --keep of it, go idle (waiting on a semaphore: no allocator call at all), then grow \\
        again. The idle phase outlasts the heap's default decay time, so a plain `membench churn` \\
        shows the heap giving memory back. --allocator malloc watches the process's malloc; put \\
        jemalloc, mimalloc or tcmalloc in front with LD_PRELOAD.
        """
    )

    @Option(parsing: .unconditional, help: "heap, local (a LocalPool of one block size) or malloc.")
    var allocator: ChurnAllocator = .heap

    @Option(parsing: .unconditional, help: "Threads that allocate.")
    var threads = 2

    @Option(name: .customLong("working-set"), parsing: .unconditional, help: ArgumentHelp("Bytes all threads hold at the top.", valueName: "size"))
    var workingSet = ByteCount(argument: "256MiB")!

    @Option(parsing: .unconditional, help: "Share of the working set kept through the idle phase (0 to 1).")
    var keep = 0.1

    @Option(parsing: .unconditional, help: ArgumentHelp("Sizes: a size, a range (16-4096) or service (as for alloc).", valueName: "sizes"))
    var sizes = "service"

    @Option(parsing: .unconditional, help: ArgumentHelp("Phases and their seconds, in order.", valueName: "phase=s,..."))
    var phases = "grow=2,hold=2,shrink=1,idle=14,back=2"

    @Option(parsing: .unconditional, help: ArgumentHelp("Time between samples, e.g. 500ms.", valueName: "time"))
    var interval = Seconds(0.5)

    @Option(parsing: .unconditional, help: ArgumentHelp("The heap's decay time, e.g. 10s.", valueName: "time"))
    var decay = Seconds(10)

    @OptionGroup(title: "Output") var output: OutputGroup

    func run() throws {
        var options = ChurnOptions()
        options.allocator = allocator
        options.threads = threads
        options.workingSet = workingSet.bytes
        options.keep = keep
        options.sizes = try AllocSizes.parse(sizes)
        options.phases = try ChurnOptions.parsePhases(phases)
        options.interval = interval.value
        options.decay = decay.value
        let resolved = try options.resolve()
        let csv = try output.destination()
        let total = resolved.phases.reduce(0) { $0 + $1.1 }
        let progress = ProgressLine()
        let samples = try Churn.run(resolved) { progress.show("churn", $0.seconds / total) }
        progress.clear()
        try output.emit(table: Churn.table(samples, options: resolved),
                        records: Churn.records(samples, options: resolved, environment: .current()), to: csv)
    }
}
