import CSV
import Foundation
import NUMA

/// One value of a record: typed for JSON, printed for CSV.
public enum RecordValue: Sendable, Equatable, Encodable {
    case int(Int)
    case double(Double)
    case string(String)
    case bool(Bool)

    public var text: String {
        switch self {
        case .int(let value): String(value)
        case .double(let value): value.isFinite ? String(format: "%.4f", value) : ""
        case .string(let value): value
        case .bool(let value): value ? "true" : "false"
        }
    }

    public func encode(to encoder: any Encoder) throws {
        var container = encoder.singleValueContainer()
        switch self {
        case .int(let value): try container.encode(value)
        case .double(let value): try container.encode(value)
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
    static func runFields(_ options: RunOptions, size: Int, groupBytes: Int, environment: RunEnvironment,
                          command: String) -> [(name: String, value: RecordValue)] {
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
            ("policy", .string(placement.memoryPolicy?.description ?? "inherit")),
            ("membind", .string(placement.membind?.description ?? "")),
            ("interleave", .string(placement.interleave?.description ?? "")),
            ("preferred", .string(placement.preferred.map(String.init) ?? "")),
            ("cpunodebind", .string(placement.cpunodebind?.description ?? "")),
            ("physcpubind", .string(placement.physcpubind?.description ?? "")),
            ("binding", .string(options.binding.rawValue)),
            ("duration_s", .double(options.samples == nil ? options.duration : .nan)),
            ("samples_requested", .int(options.samples ?? 0)),
            ("warmup_s", .double(options.warmup)),
            ("loads_per_sample", .int(options.loadsPerSample)),
            ("seed", .int(Int(truncatingIfNeeded: options.seed))),
        ]
    }

    static func environmentFields(_ environment: RunEnvironment) -> [(name: String, value: RecordValue)] {
        [
            ("host", .string(environment.host)),
            ("kernel", .string(environment.kernel)),
            ("cpu_model", .string(environment.cpuModel)),
            ("node_count", .int(environment.nodeCount)),
            ("thp", .string(environment.transparentHugePages)),
            ("numa_balancing", .string(environment.numaBalancing)),
            ("base_page_bytes", .int(environment.pageSize)),
        ]
    }

    /// One row per thread and a total row (thread `total`).
    public static func rows(for result: RunResult, command: String) -> [Record] {
        let shared = runFields(result.options, size: result.size, groupBytes: result.groupBytes,
                               environment: result.environment, command: command)
        return (result.threads + [result.total]).map { thread in
            let latency = thread.latency
            let measured: [(name: String, value: RecordValue)] = [
                ("thread", .string(thread.thread < 0 ? "total" : String(thread.thread))),
                ("cpu", .string(thread.cpu < 0 ? "" : String(thread.cpu))),
                ("node", .string(thread.node < 0 ? "" : String(thread.node))),
                ("samples", .int(latency.samples)),
                ("mean_ns", .double(latency.mean)),
                ("stddev_ns", .double(latency.standardDeviation)),
                ("min_ns", .double(latency.min)),
                ("p50_ns", .double(latency.p50)),
                ("p90_ns", .double(latency.p90)),
                ("p99_ns", .double(latency.p99)),
                ("p999_ns", .double(latency.p999)),
                ("max_ns", .double(latency.max)),
                ("accesses", .int(Int(thread.accesses))),
                ("accesses_per_s", .double(thread.accessesPerSecond)),
                ("remote_share", .double(thread.remoteShare)),
                ("remote_source", .string(result.remoteSource)),
                ("pages_per_node", .string(thread.placement.pagesText)),
                ("placement_changed", .bool(thread.placementChanged)),
                ("migrated", .bool(thread.migrated)),
            ]
            return Record(shared + measured + environmentFields(result.environment))
        }
    }
}

/// Writes records as CSV (RFC 4180 quoting by CSV.swift) or JSON.
public enum RecordWriter {
    /// Appends rows to `path`, writing the header first when the file is new or empty. Refuses
    /// to append to a file whose header is different.
    public static func appendCSV(_ records: [Record], to path: String) throws(MembenchError) {
        guard let first = records.first else { return }
        let manager = FileManager.default
        let existing = manager.fileExists(atPath: path) ? (try? String(contentsOfFile: path, encoding: .utf8)) : nil
        if manager.fileExists(atPath: path) && existing == nil {
            throw .output(path: path, reason: "it exists but cannot be read")
        }
        let needsHeader = existing?.isEmpty ?? true
        let text: String
        do {
            text = try csvText((needsHeader ? [first.header] : []) + records.map(\.values))
            if let existing, !existing.isEmpty {
                let header = try csvText([first.header])
                guard existing.hasPrefix(header + "\n") || existing == header else {
                    throw MembenchError.output(path: path, reason: "its header differs from this command's columns; use a new file")
                }
            }
        } catch let error as MembenchError {
            throw error
        } catch {
            throw .output(path: path, reason: "\(error)")
        }
        let data = Data((text + "\n").utf8)
        if !manager.fileExists(atPath: path) {
            guard manager.createFile(atPath: path, contents: data) else {
                throw .output(path: path, reason: String(cString: strerror(errno)))
            }
            return
        }
        do {
            let handle = try FileHandle(forWritingTo: URL(fileURLWithPath: path))
            defer { try? handle.close() }
            try handle.seekToEnd()
            if let existing, !existing.isEmpty, !existing.hasSuffix("\n") { try handle.write(contentsOf: Data("\n".utf8)) }
            try handle.write(contentsOf: data)
        } catch {
            throw .output(path: path, reason: (error as NSError).localizedDescription)
        }
    }

    /// Rows as CSV text without a final newline.
    static func csvText(_ rows: [[String]]) throws -> String {
        let stream = OutputStream(toMemory: ())
        stream.open()
        let writer = try CSVWriter(stream: stream)
        for row in rows { try writer.write(row: row) }
        writer.stream.close()
        let data = stream.property(forKey: .dataWrittenToMemoryStreamKey) as? Data ?? Data()
        return String(decoding: data, as: UTF8.self)
    }

    /// Records as a pretty-printed JSON array.
    public static func json(_ records: [Record]) -> String {
        let encoder = JSONEncoder()
        encoder.outputFormatting = [.prettyPrinted]
        let data = (try? encoder.encode(records)) ?? Data("[]".utf8)
        return String(decoding: data, as: UTF8.self) + "\n"
    }
}
