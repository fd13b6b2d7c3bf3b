import Foundation

/// What one policy's run came to, over the profile's phases.
public struct ElasticSummary: Sendable {
    public var policy: ElasticPolicy
    public var round: Int
    /// The mean of the windows' p99 in the burst phases, seconds.
    public var burstP99: Double?
    /// The share of burst windows whose p99 was over the SLO.
    public var burstOverSLO: Double?
    /// The mean resident bytes of the quiet phases' windows.
    public var quietResident: Double?
    /// Idle bytes kept at the end of the slow phase, less those kept just before it.
    public var slowAdded: Int?
    /// Misses over gets, weighted by each window's requests.
    public var missRate: Double?
    /// Windows whose decision changed the capacity.
    public var changes: Int

    /// The summary of one run's windows.
    init(_ windows: [ElasticWindow], slo: Double) {
        policy = windows.first?.policy ?? .demand
        round = windows.first?.round ?? 0
        let bursts = windows.filter { $0.phase == .burst }.compactMap(\.p99)
        burstP99 = bursts.isEmpty ? nil : bursts.reduce(0, +) / Double(bursts.count)
        burstOverSLO = bursts.isEmpty ? nil : Double(bursts.count { $0 > slo }) / Double(bursts.count)
        let quiet = windows.filter { $0.phase == .quiet }.map { Double($0.residentBytes) }
        quietResident = quiet.isEmpty ? nil : quiet.reduce(0, +) / Double(quiet.count)
        if let first = windows.firstIndex(where: { $0.phase == .slow }), first > 0,
           let last = windows.lastIndex(where: { $0.phase == .slow }) {
            slowAdded = windows[last].retainedBytes - windows[first - 1].retainedBytes
        }
        let weighted = windows.compactMap { window in window.missRate.map { ($0 * window.rate, window.rate) } }
        let requests = weighted.reduce(0) { $0 + $1.1 }
        missRate = requests > 0 ? weighted.reduce(0) { $0 + $1.0 } / requests : nil
        changes = windows.count { $0.decision == "grow" || $0.decision == "shrink" }
    }
}

extension Elastic {
    /// Each run's summary, in the order the runs were made.
    public static func summaries(_ windows: [ElasticWindow], options: ElasticOptions) -> [ElasticSummary] {
        var runs: [[ElasticWindow]] = []
        for window in windows {
            if let last = runs.last?.last, last.policy == window.policy && last.round == window.round {
                runs[runs.count - 1].append(window)
            } else {
                runs.append([window])
            }
        }
        return runs.map { ElasticSummary($0, slo: options.slo) }
    }

    /// One line per policy: the medians over rounds of its summaries.
    public static func table(_ windows: [ElasticWindow], options: ElasticOptions) -> String {
        let summaries = summaries(windows, options: options)
        func ms(_ seconds: Double?) -> String { seconds.map { Format.fixed($0 * 1000, 2) } ?? "" }
        func mib(_ bytes: Double?) -> String { bytes.map { Format.fixed($0 / 1_048_576, 1) } ?? "" }
        var table = TextTable(["policy", "burst p99 ms", "burst windows over SLO", "quiet resident MiB",
                               "slow phase adds MiB", "miss rate", "capacity changes"])
        for policy in options.policies {
            let runs = summaries.filter { $0.policy == policy }
            table.add([policy.rawValue, ms(runs.compactMap(\.burstP99).median), runs.compactMap(\.burstOverSLO).median.map(Format.percent) ?? "",
                       mib(runs.compactMap(\.quietResident).median), mib(runs.compactMap { $0.slowAdded.map(Double.init) }.median),
                       runs.compactMap(\.missRate).median.map(Format.percent) ?? "",
                       runs.map { Double($0.changes) }.median.map { Format.fixed($0, 0) } ?? ""])
        }
        var text = table.render()
        text += "\nSLO \(ms(options.slo)) ms; \(options.threads) thread(s) at up to \(Format.rate(options.peakRate)) requests/s each, "
        text += "\(ms(options.serviceTime)) ms per request (+\(ms(options.dependency)) ms in the slow phase); "
        text += "windows of \(Format.fixed(options.window, 2)) s; phases \(options.phases.map { "\($0.0.rawValue)=\(Format.fixed($0.1, 1))" }.joined(separator: ","))."
        text += "\nMedians of \(options.rounds) round(s), taken in turns. Contexts of \(ElasticOptions.contextBytes) bytes from an ObjectPool; "
        text += "buffers (\(options.sizes)) from a NUMAHeap. fixed-large keeps \(options.fixedLarge) idle contexts per node, fixed-small \(options.fixedSmall).\n"
        return text
    }

    /// One record per window.
    public static func records(_ windows: [ElasticWindow], options: ElasticOptions, environment: RunEnvironment) -> [Record] {
        windows.map { window in
            Record([
                ("timestamp", .string(environment.timestamp)),
                ("command", .string("elastic")),
                ("policy", .string(window.policy.rawValue)),
                ("round", .int(window.round)),
                ("threads", .int(options.threads)),
                ("slo_s", .double(options.slo)),
                ("t_s", .double(window.seconds)),
                ("phase", .string(window.phase.rawValue)),
                ("requests_per_s", .double(window.rate)),
                ("p50_s", window.p50.map { .double($0) } ?? .null),
                ("p99_s", window.p99.map { .double($0) } ?? .null),
                ("capacity", .int(window.capacity)),
                ("decision", .string(window.decision)),
                ("retained_bytes", .int(window.retainedBytes)),
                ("resident_bytes", .int(window.residentBytes)),
                ("miss_rate", window.missRate.map { .double($0) } ?? .null),
            ] + Record.environmentFields(environment))
        }
    }
}
