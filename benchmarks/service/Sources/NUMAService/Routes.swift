import Atomics
import Foundation
import Hummingbird
import NIOCore
import NUMAPool
import NUMAPoolMetrics
import Prometheus

/// The service's endpoints:
/// - `GET /hello`: a small fixed reply;
/// - `POST /echo`: the body back;
/// - `GET /work?bytes=N[&wait=MS]`: a reply of N bytes built from the request's context, after
///   waiting MS milliseconds as for a slow dependency;
/// - `GET /metrics`: Prometheus exposition; `GET /health`; `GET /stats`: the pools' own counts
///   as JSON.
///
/// Each of the first three takes a context for the request (a lease, or a Swift allocation for
/// `malloc`) and builds its reply in a buffer of `RequestMemory.bufferAllocator`; the context
/// goes back once the reply is written.
struct Routes: Sendable {
    let memory: RequestMemory
    let limit: Int
    let durations: RequestDurations
    let registry: PrometheusCollectorRegistry
    /// Replies begun (the request's number) and replies written in full.
    let ids = ManagedAtomic<UInt64>(0)
    let answered = ManagedAtomic<UInt64>(0)
    /// The pools' own statistics, read now (not through the metrics, whose intervals they would cut).
    let statistics: @Sendable () -> [String: PoolReading]

    static let hello: StaticString = "hello\n"
    static let longestWait = 10_000

    func router() -> Router<BasicRequestContext> {
        let router = Router()
        router.get("hello") { request, _ in
            reply(to: request, length: Self.hello.utf8CodeUnitCount) { _, buffer in
                buffer.writeStaticString(Self.hello)
            }
        }
        router.post("echo") { request, _ in
            if let length = request.headers[.contentLength].flatMap(Int.init), length > limit {
                throw HTTPError(.contentTooLarge, message: "the body's \(length) bytes are over the limit of \(limit)")
            }
            var request = request
            let body = try await request.collectBody(upTo: limit)
            return reply(to: request, length: body.readableBytes) { _, buffer in
                buffer.writeImmutableBuffer(body)
            }
        }
        router.get("work") { request, _ in
            let bytes = try Self.integer(request, "bytes", required: true)!
            guard bytes >= 0 else { throw HTTPError(.badRequest, message: "bytes must not be negative, got \(bytes)") }
            guard bytes <= limit else {
                throw HTTPError(.contentTooLarge, message: "bytes=\(bytes) is over the limit of \(limit)")
            }
            let wait = try Self.integer(request, "wait", required: false) ?? 0
            guard (0...Self.longestWait).contains(wait) else {
                throw HTTPError(.badRequest, message: "wait must be 0 to \(Self.longestWait) milliseconds, got \(wait)")
            }
            return reply(to: request, length: bytes, wait: wait > 0 ? .milliseconds(wait) : nil) { context, buffer in
                // The scratch takes a pattern of the request's id; the reply repeats it.
                for index in 0..<256 { context.scratch[index] = UInt8(truncatingIfNeeded: context.id &+ UInt64(index)) }
                var left = bytes
                while left > 0 {
                    let count = min(left, 256)
                    _ = context.scratch.span.withUnsafeBytes { buffer.writeBytes(UnsafeRawBufferPointer(rebasing: $0[..<count])) }
                    left -= count
                }
            }
        }
        router.get("metrics") { _, _ in
            let text = Self.addingHelp(to: PoolMetrics.addingHelp(to: registry.emitToString()))
            return Response(status: .ok, headers: [.contentType: "text/plain; version=0.0.4; charset=utf-8"],
                            body: .init(byteBuffer: ByteBuffer(string: text)))
        }
        router.get("health") { _, _ in "ok\n" }
        router.get("stats") { _, _ in
            var pools: [String: [String: UInt64]] = [:]
            for (name, reading) in statistics() {
                // numapool_gets_total is "gets".
                pools[name] = Dictionary(uniqueKeysWithValues: PoolCounter.allCases.map {
                    (String($0.rawValue.dropFirst("numapool_".count).dropLast("_total".count)), reading.total($0))
                })
            }
            let data = try JSONSerialization.data(withJSONObject: ["pools": pools, "begun": ids.load(ordering: .relaxed),
                                                                   "answered": answered.load(ordering: .relaxed),
                                                                   "lease_failures": memory.leaseFailures.load(ordering: .relaxed)],
                                                  options: [.sortedKeys])
            return Response(status: .ok, headers: [.contentType: "application/json"],
                            body: .init(byteBuffer: ByteBuffer(bytes: data)))
        }
        return router
    }

    /// A reply of `length` bytes that `fill` writes, with the request's context held from the
    /// start of the reply until it is written. Its duration, from the handler's start, goes to
    /// `durations`.
    func reply(to request: Request, length: Int, wait: Duration? = nil,
               fill: @escaping @Sendable (inout RequestScratch, inout ByteBuffer) -> Void) -> Response {
        let start = ContinuousClock.now
        let memory = self.memory, durations = self.durations, answered = self.answered
        let id = ids.wrappingIncrementThenLoad(ordering: .relaxed)
        let headerCount = request.headers.count
        return Response(status: .ok, headers: [.contentType: "application/octet-stream"],
                        body: ResponseBody(contentLength: length) { writer in
            try await memory.withContext { context in
                context.id = id
                context.headerCount = headerCount
                context.contentLength = length
                if let wait { try await Task.sleep(for: wait) }
                var buffer = memory.bufferAllocator.buffer(capacity: max(length, 1))
                fill(&context, &buffer)
                memory.count(buffer: buffer)
                try await writer.write(buffer)
                try await writer.finish(nil)
            }
            durations.record(ContinuousClock.now - start)
            answered.wrappingIncrement(ordering: .relaxed)
        })
    }

    /// The service's own metrics' `# HELP` lines, before their `# TYPE` lines.
    static let help = [
        "numaservice_placement_total": "Sampled request contexts and buffers (object) on the node of the CPU that served the request (locality local), on another (remote), or not placed (unknown).",
    ]

    static func addingHelp(to exposition: String) -> String {
        var text = exposition
        for (name, help) in help where !text.contains("# HELP \(name) ") {
            text = text.replacingOccurrences(of: "# TYPE \(name) ", with: "# HELP \(name) \(help)\n# TYPE \(name) ")
        }
        return text
    }

    /// The query parameter `name` as an integer; a malformed one is a 400.
    static func integer(_ request: Request, _ name: String, required: Bool) throws -> Int? {
        guard let text = request.uri.queryParameters.get(name) else {
            if required { throw HTTPError(.badRequest, message: "\(name) is required, as ?\(name)=N") }
            return nil
        }
        guard let value = Int(text) else {
            throw HTTPError(.badRequest, message: "\(name) must be an integer, got \"\(text)\"")
        }
        return value
    }
}
