import Foundation

extension Churn {
    /// One line per sample and node: time, phase, the node's figures in MiB, and the process's
    /// resident and held bytes.
    public static func table(_ samples: [ChurnSample], options: ChurnOptions) -> String {
        func mib(_ bytes: Int?) -> String { bytes.map { Format.fixed(Double($0) / 1_048_576, 1) } ?? "" }
        var table = TextTable(["t_s", "phase", "node", "in use MiB", "cached MiB", "free MiB", "returned MiB", "held MiB", "rss MiB"])
        for sample in samples {
            for node in sample.nodes {
                table.add([Format.fixed(sample.seconds, 2), sample.phase.rawValue, String(node.node), mib(node.inUse),
                           mib(node.cached), mib(node.free), mib(node.returned), mib(sample.heldBytes), mib(sample.rssBytes)])
            }
        }
        var text = table.render()
        text += "\nAllocator \(allocatorName(options.allocator)), \(options.threads) thread(s), working set \(ByteSize.format(options.workingSet)), sizes \(options.sizes), keep \(options.keep)"
        if options.allocator == .heap { text += ", decay \(Format.fixed(options.decay, 1)) s" }
        text += ".\n"
        if let idle = samples.last(where: { $0.phase == .idle }) {
            text += "End of the idle phase: resident \(mib(idle.rssBytes)) MiB while the threads hold \(mib(idle.heldBytes)) MiB.\n"
        }
        if let last = samples.last, let seconds = last.purgerSeconds {
            text += "The heap's purger thread used \(Format.fixed(seconds * 1000, 1)) ms of CPU time in \(Format.fixed(last.seconds, 1)) s.\n"
        }
        return text
    }

    /// One record per sample and node.
    public static func records(_ samples: [ChurnSample], options: ChurnOptions, environment: RunEnvironment) -> [Record] {
        samples.flatMap { sample in
            sample.nodes.map { node in
                let fields: [(name: String, value: RecordValue)] = [
                    ("timestamp", .string(environment.timestamp)),
                    ("command", .string("churn")),
                    ("allocator", .string(allocatorName(options.allocator))),
                    ("threads", .int(options.threads)),
                    ("working_set_bytes", .int(options.workingSet)),
                    ("sizes", .string(options.sizes.description)),
                    ("keep", .double(options.keep)),
                    ("decay_s", options.allocator == .heap ? .double(options.decay) : .null),
                    ("t_s", .double(sample.seconds)),
                    ("phase", .string(sample.phase.rawValue)),
                    ("node", .int(node.node)),
                    ("in_use_bytes", .int(node.inUse)),
                    ("cached_bytes", .int(node.cached)),
                    ("free_bytes", .int(node.free)),
                    ("returned_bytes", .int(node.returned)),
                    ("resident_bytes", .int(node.resident)),
                    ("held_bytes", .int(sample.heldBytes)),
                    ("rss_bytes", .int(sample.rssBytes)),
                    ("purger_cpu_s", sample.purgerSeconds.map { .double($0) } ?? .null),
                ]
                return Record(fields + Record.environmentFields(environment))
            }
        }
    }

    /// `heap`, `local`, `malloc (glibc)` or `malloc (<LD_PRELOAD library>)`.
    static func allocatorName(_ allocator: ChurnAllocator) -> String {
        guard allocator == .malloc else { return allocator.rawValue }
        return AllocBenchmark.allocatorName(.malloc)
    }
}
