import ArgumentParser
import MembenchKit

extension ElasticPolicy: ExpressibleByArgument {}

struct ElasticCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "elastic",
        abstract: "Pool capacity under a phased load: fixed sizes, the reference study's SLO rule and the demand controller, side by side.",
        discussion: """
        Threads serve synthetic requests at a rate that follows the phases (ramp, burst, quiet, \\
        burst, and slow, where a dependency adds --dependency to every request without more \\
        load). Each request leases a 64 KiB context from an ObjectPool and a buffer from a \\
        NUMAHeap, writes them, and holds them for --service-time. Request durations feed an \\
        HdrHistogram; every --window the policy sizes the pool's idle contexts per node. The \\
        study's rule runs with its defaults, its 300 s cooldown as 30 windows. Prints each \\
        policy's p99 in the bursts, resident memory in the quiet phase and memory added in the \\
        slow phase; the CSV has every window.
        """
    )

    @Option(name: .customLong("policy"), parsing: .unconditional, help: ArgumentHelp("Policies, in order: fixed-large, fixed-small, slo, demand.", valueName: "list"))
    var policies = ListArgument<ElasticPolicy>(ElasticPolicy.allCases)

    @Option(parsing: .unconditional, help: "Threads that serve requests.")
    var threads = 2

    @Option(parsing: .unconditional, help: "Requests per second per thread at the peak.")
    var rate = 50_000.0

    @Option(name: .customLong("service-time"), parsing: .unconditional, help: ArgumentHelp("Time a request holds its context and buffer, e.g. 2ms.", valueName: "time"))
    var serviceTime = Seconds(0.002)

    @Option(parsing: .unconditional, help: ArgumentHelp("The p99 target, e.g. 5ms.", valueName: "time"))
    var slo = Seconds(0.005)

    @Option(parsing: .unconditional, help: ArgumentHelp("Time a slow dependency adds to each request in the slow phase.", valueName: "time"))
    var dependency = Seconds(0.010)

    @Option(parsing: .unconditional, help: ArgumentHelp("Phases and their seconds, in order.", valueName: "phase=s,..."))
    var phases = "ramp=3,burst=3,quiet=6,burst=3,slow=6"

    @Option(parsing: .unconditional, help: ArgumentHelp("Time per controller window, e.g. 500ms.", valueName: "time"))
    var window = Seconds(0.5)

    @Option(parsing: .unconditional, help: "Rounds; policies take turns, every other round in reverse order.")
    var rounds = 1

    @Option(parsing: .unconditional, help: ArgumentHelp("Buffer sizes: a size, a range (16-4096) or service (as for alloc).", valueName: "sizes"))
    var sizes = "service"

    @OptionGroup(title: "Output") var output: OutputGroup

    func run() throws {
        var options = ElasticOptions()
        options.policies = policies.values
        options.threads = threads
        options.peakRate = rate
        options.serviceTime = serviceTime.value
        options.slo = slo.value
        options.dependency = dependency.value
        options.phases = try ElasticOptions.parsePhases(phases)
        options.window = window.value
        options.rounds = rounds
        options.sizes = try AllocSizes.parse(sizes)
        let resolved = try options.resolve()
        let csv = try output.destination()
        let progress = ProgressLine()
        let windows = try Elastic.run(resolved) { progress.show("elastic", $0) }
        progress.clear()
        try output.emit(table: Elastic.table(windows, options: resolved),
                        records: Elastic.records(windows, options: resolved, environment: .current()), to: csv)
    }
}
