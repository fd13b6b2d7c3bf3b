import CSV
import Foundation
import NUMA

/// One value of a record: typed for JSON, printed for CSV (a number with four decimals, or with
/// four significant digits, 1.000e-09, where the decimals would show none). An absent value
/// (and a number that is not finite) is `null` in JSON and an empty field in CSV.
public enum RecordValue: Sendable, Equatable, Encodable {
    case int(Int)
    case double(Double)
    case string(String)
    case bool(Bool)
    case null

    /// `.int`, or `.null` for nil.
    public static func int(_ value: Int?) -> RecordValue { value.map { .int($0) } ?? .null }
    /// `.string`, or `.null` for nil.
    public static func string(_ value: String?) -> RecordValue { value.map { .string($0) } ?? .null }

    public var text: String {
        switch self {
        case .int(let value): String(value)
        // Four decimals; a value too small for them (a duration of 1ns) keeps four significant
        // digits instead of printing as 0.0000.
        case .double(let value) where value != 0 && abs(value) < 0.00005: value.isFinite ? String(format: "%.3e", value) : ""
        case .double(let value): value.isFinite ? String(format: "%.4f", value) : ""
        case .string(let value): value
        case .bool(let value): value ? "true" : "false"
        case .null: ""
        }
    }

    public func encode(to encoder: any Encoder) throws {
        var container = encoder.singleValueContainer()
        switch self {
        case .int(let value): try container.encode(value)
        case .double(let value) where value.isFinite: try container.encode(value)
        case .double, .null: try container.encodeNil()
        case .string(let value): try container.encode(value)
        case .bool(let value): try container.encode(value)
        }
    }
}

/// One row of output: ordered, named, typed fields. The CSV header, the CSV row and the JSON
/// object all come from the same list.
public struct Record: Sendable, Equatable, Encodable {
    public var fields: [(name: String, value: RecordValue)]

    public init(_ fields: [(name: String, value: RecordValue)]) { self.fields = fields }

    public static func == (a: Record, b: Record) -> Bool {
        a.fields.map(\.name) == b.fields.map(\.name) && a.fields.map(\.value) == b.fields.map(\.value)
    }

    public subscript(name: String) -> RecordValue? { fields.first { $0.name == name }?.value }

    /// The record with `extra` fields after its own.
    public func adding(_ extra: [(name: String, value: RecordValue)]) -> Record { Record(fields + extra) }

    public var header: [String] { fields.map(\.name) }
    public var values: [String] { fields.map(\.value.text) }

    struct Key: CodingKey {
        var stringValue: String
        var intValue: Int? { nil }
        init(stringValue: String) { self.stringValue = stringValue }
        init?(intValue: Int) { nil }
    }

    public func encode(to encoder: any Encoder) throws {
        var container = encoder.container(keyedBy: Key.self)
        for field in fields { try container.encode(field.value, forKey: Key(stringValue: field.name)) }
    }
}

extension Record {
    /// The fields every record of a run shares: parameters and environment.
    static func runFields(_ result: RunResult, command: String) -> [(name: String, value: RecordValue)] {
        let options = result.options, environment = result.environment
        let size = result.size, groupBytes = result.groupBytes
        let placement = options.placement
        return [
            ("timestamp", .string(environment.timestamp)),
            ("command", .string(command)),
            ("strategy", .string(options.strategy.rawValue)),
            ("size_bytes", .int(size)),
            ("threads", .int(options.threads)),
            ("stride_bytes", .int(options.stride)),
            ("tlb_locality_bytes", .int(groupBytes)),
            ("page_mode", .string(options.pageMode.rawValue)),
            ("pattern", .string(options.pattern.rawValue)),
            ("slot_offsets", .string(options.slotOffsets.rawValue)),
            ("policy", .string(result.policyText)),
        ] + placement.recordFields + [
            ("binding", .string(options.binding.rawValue)),
            ("global_fill", .string(result.globalFill)),
            ("pool_pages_per_node", .string(result.poolPagesPerNode.map(PlacementReport.text))),
            ("duration_s", options.length.seconds.map { .double($0) } ?? .null),
            ("samples_requested", .int(options.length.samples)),
            ("warmup_s", .double(options.warmup)),
            ("window_s", .double(options.window)),
            ("loads_per_sample", .int(options.loadsPerSample)),
            ("seed", .int(Int(truncatingIfNeeded: options.seed))),
            ("round", .int(result.round)),
        ]
    }

    static func environmentFields(_ environment: RunEnvironment) -> [(name: String, value: RecordValue)] {
        [
            ("host", .string(environment.host)),
            ("kernel", .string(environment.kernel)),
            ("cpu_model", .string(environment.cpuModel)),
            ("node_count", .int(environment.nodeCount)),
            ("thp", .string(environment.transparentHugePages)),
            ("numa_balancing", .int(Int(environment.numaBalancing))),
            ("base_page_bytes", .int(environment.pageSize)),
        ]
    }

    /// One row per thread and a total row (thread `total`).
    public static func rows(for result: RunResult, command: String) -> [Record] {
        let shared = runFields(result, command: command)
        return (result.threads + [result.total]).map { thread in
            let latency = thread.latency
            let measured: [(name: String, value: RecordValue)] = [
                ("scope", .string(thread.thread < 0 ? "total" : "thread")),
                ("thread", thread.thread < 0 ? .null : .int(thread.thread)),
                ("cpu", thread.cpu < 0 ? .null : .int(thread.cpu)),
                ("node", thread.node < 0 ? .null : .int(thread.node)),
                ("samples", .int(latency.samples)),
                ("mean_ns", .double(latency.mean)),
                ("stddev_ns", .double(latency.standardDeviation)),
                ("windows", .int(latency.windows)),
                ("best_window_ns", latency.bestWindow.map { .double($0) } ?? .null),
                ("median_window_ns", latency.medianWindow.map { .double($0) } ?? .null),
                ("min_ns", .double(latency.min)),
                ("p50_ns", .double(latency.p50)),
                ("p90_ns", .double(latency.p90)),
                ("p99_ns", .double(latency.p99)),
                ("p999_ns", .double(latency.p999)),
                ("max_ns", .double(latency.max)),
                ("accesses", .int(Int(thread.accesses))),
                ("accesses_per_s", .double(thread.accessesPerSecond)),
                ("remote_share", .double(thread.remoteShare)),
                ("remote_share_after", .double(thread.remoteShareAfter)),
                ("unplaced_slots", .int(thread.placement.unplacedSlots)),
                ("remote_source", .string(result.remoteSource)),
                ("pages_per_node", .string(thread.placement.pagesText)),
                ("placement_changed", .bool(thread.placementChanged)),
                ("migrated", .bool(thread.migrated)),
            ]
            return Record(shared + measured + environmentFields(result.environment))
        }
    }
}

/// Formats records as CSV (RFC 4180 quoting by CSV.swift) or JSON.
public enum RecordWriter {
    /// Rows as CSV text without a final newline.
    static func csvText(_ rows: [[String]]) throws(MembenchError) -> String {
        do {
            return try csvTextThrowing(rows)
        } catch {
            throw .refused("cannot format CSV: \(error)")
        }
    }

    private static func csvTextThrowing(_ rows: [[String]]) throws -> String {
        let stream = OutputStream(toMemory: ())
        stream.open()
        let writer = try CSVWriter(stream: stream)
        for row in rows { try writer.write(row: row) }
        writer.stream.close()
        let data = stream.property(forKey: .dataWrittenToMemoryStreamKey) as? Data ?? Data()
        return String(decoding: data, as: UTF8.self)
    }

    /// Records as a pretty-printed JSON array, keys sorted (the same order every run).
    public static func json(_ records: [Record]) throws(MembenchError) -> String {
        let encoder = JSONEncoder()
        encoder.outputFormatting = [.prettyPrinted, .sortedKeys]
        do {
            return String(decoding: try encoder.encode(records), as: UTF8.self) + "\n"
        } catch {
            throw .refused("cannot format JSON: \(error)")
        }
    }
}
