import NUMA

/// Tables and records of `membench loaded`.
public enum LoadedReport {
    public static func describe(_ result: LoadedResult) -> String {
        let options = result.options
        return "chase: CPU \(result.chaseCPU) (node \(result.chaseNode)), \(ByteSize.format(result.size)), "
            + "placement \(options.placement.summary(policyText: result.policyText)), "
            + "pages per node \(PlacementReport.text(result.chasePages)), \(Format.percent(result.chaseRemoteShare)) remote\n"
            + "load: \(result.loadCPUs.count) thread(s) on CPUs \(CPUSet(result.loadCPUs)), \(options.kind.rawValue), "
            + "\(ByteSize.format(result.size)) each, memory \(options.loadMembind.map { "bind:\($0)" } ?? "as the chase's"), "
            + "pages per node \(PlacementReport.text(result.loadPages))\n"
            + "\(result.environment.summary); \(TimeSpan.format(options.duration)) of samples per step\n"
    }

    public static func table(_ result: LoadedResult) -> String {
        var table = TextTable(["delay", "load GB/s", "mean", "p50", "p99", "best win"])
        for step in result.steps {
            let l = step.latency
            table.add([step.delay.map(String.init) ?? "idle", step.delay == nil ? "-" : Format.fixed(step.loadBytesPerSecond / 1e9, 2), Format.ns(l.mean),
                       Format.ns(l.p50), Format.ns(l.p99), l.bestWindow.map { Format.ns($0) } ?? ""])
        }
        return table.render()
            + "delay: turns of an empty loop (about a cycle each) between a load thread's line accesses; idle: no load\n"
    }

    public static func records(_ result: LoadedResult) -> [Record] {
        let options = result.options
        let placement = options.placement
        return result.steps.map { step in
            let l = step.latency
            // The idle step runs no load: its load fields are null.
            let loaded = step.delay != nil
            return Record([
                ("timestamp", .string(result.environment.timestamp)),
                ("command", .string("loaded")),
                ("delay", .int(step.delay)),
                ("load_kind", .string(loaded ? options.kind.rawValue : nil)),
                ("load_threads", .int(loaded ? result.loadCPUs.count : nil)),
                ("load_cpus", .string(loaded ? CPUSet(result.loadCPUs).description : nil)),
                ("load_membind", .string(loaded ? options.loadMembind?.description : nil)),
                ("load_pages_per_node", .string(loaded ? PlacementReport.text(result.loadPages) : nil)),
                ("size_bytes", .int(result.size)),
                ("policy", .string(result.policyText)),
            ] + placement.recordFields + [
                ("chase_cpu", .int(result.chaseCPU)),
                ("chase_node", .int(result.chaseNode)),
                ("chase_remote_share", .double(result.chaseRemoteShare)),
                ("chase_pages_per_node", .string(PlacementReport.text(result.chasePages))),
                ("duration_s", .double(options.duration)),
                ("load_gb_per_s", loaded ? .double(step.loadBytesPerSecond / 1e9) : .null),
                ("samples", .int(l.samples)),
                ("mean_ns", .double(l.mean)),
                ("stddev_ns", .double(l.standardDeviation)),
                ("p50_ns", .double(l.p50)),
                ("p99_ns", .double(l.p99)),
                ("best_window_ns", l.bestWindow.map { .double($0) } ?? .null),
            ] + Record.environmentFields(result.environment))
        }
    }
}
