import Foundation
import Testing

@Suite("numa-service: endpoints and bad requests", .serialized)
struct EndpointTests {
    @Test("each endpoint answers, in every allocator mode", arguments: ["malloc", "global", "local"])
    func endpoints(allocator: String) throws {
        let server = try ServerProcess(["--allocator", allocator])
        let hello = try Curl.request(server.url("/hello"))
        #expect(hello.status == 200)
        #expect(String(decoding: hello.body, as: UTF8.self) == "hello\n")

        // A reply of N bytes: the scratch's pattern, 256 bytes of the request's id onwards, repeated.
        let work = try Curl.request(server.url("/work?bytes=70000"))
        #expect(work.status == 200)
        #expect(work.body.count == 70000)
        let bytes = [UInt8](work.body)
        #expect(bytes.count == 70000 && (1..<256).allSatisfy { bytes[$0] == bytes[0] &+ UInt8($0) })
        #expect(bytes.count == 70000 && (256..<70000).allSatisfy { bytes[$0] == bytes[$0 - 256] })
        #expect(try Curl.request(server.url("/work?bytes=0")).body.isEmpty)

        let body = Data((0..<100_000).map { UInt8(truncatingIfNeeded: $0 &* 7) })
        let echo = try Curl.request(server.url("/echo"), method: "POST", body: body)
        #expect(echo.status == 200)
        #expect(echo.body == body)

        let health = try Curl.request(server.url("/health"))
        #expect(health.status == 200)
        let metrics = try Curl.request(server.url("/metrics"))
        #expect(metrics.status == 200)
        #expect(metrics.contentType.hasPrefix("text/plain; version=0.0.4"))
        let text = String(decoding: metrics.body, as: UTF8.self)
        #expect(text.contains("numaservice_placement_total"))
        if allocator != "malloc" {
            #expect(text.contains("numapool_gets_total{pool=\"contexts\",node=\"all\"}"))
            #expect(text.contains("numapool_bytes{pool=\"buffers\""))
        }
        #expect(server.stop().status == 0)
    }

    @Test("bad requests get their status, and the server goes on serving")
    func badRequests() throws {
        let server = try ServerProcess(["--limit", "65536"])
        let cases: [(String, String, Data?, Int)] = [
            ("GET", "/work?bytes=abc", nil, 400),
            ("GET", "/work?bytes=-5", nil, 400),
            ("GET", "/work", nil, 400),
            ("GET", "/work?bytes=12&wait=x", nil, 400),
            ("GET", "/work?bytes=12&wait=-1", nil, 400),
            ("GET", "/work?bytes=99999999999999999999999", nil, 400),
            ("GET", "/work?bytes=65537", nil, 413),
            ("POST", "/echo", Data(count: 65537), 413),
            ("GET", "/nowhere", nil, 404),
            ("DELETE", "/hello", nil, 404),
        ]
        for (method, path, body, status) in cases {
            let reply = try Curl.request(server.url(path), method: method, body: body)
            #expect(reply.status == status, "\(method) \(path)")
            #expect(try Curl.request(server.url("/hello")).status == 200, "after \(method) \(path)")
        }
        #expect(try Curl.request(server.url("/work?bytes=65536")).body.count == 65536)
        // A body over the limit without a length announced (chunked) is refused too.
        let chunked = try Curl.request(server.url("/echo"), method: "POST", body: Data(count: 70000),
                                       headers: ["Transfer-Encoding: chunked"])
        #expect(chunked.status == 413)
        let stopped = server.stop()
        #expect(stopped.status == 0, "\(stopped.stderr)")
    }

    @Test("bad flags are refused with one line and exit code 64", arguments: [
        ["--allocator", "jemalloc"], ["--port", "70000"], ["--cpus", "9999"], ["--limit", "0"],
        ["--policy", "slo", "--allocator", "malloc"], ["--slo", "0"], ["--placement-sample", "-1"], ["--cooldown", "-1"],
        ["--handlers", "threads"], ["--window", "x"],
    ])
    func badFlags(arguments: [String]) throws {
        let process = Process()
        process.executableURL = URL(fileURLWithPath: ServerProcess.binary)
        process.arguments = arguments
        let errors = Pipe()
        process.standardError = errors
        process.standardOutput = Pipe()
        try process.run()
        let text = String(decoding: errors.fileHandleForReading.readDataToEndOfFile(), as: UTF8.self)
        process.waitUntilExit()
        #expect(process.terminationStatus == 64, "\(text)")
        #expect(text.hasPrefix("Error: "), "\(text)")
    }

    @Test("a port in use is an error and exit code 1, not a hang")
    func portInUse() throws {
        let server = try ServerProcess([])
        let process = Process()
        process.executableURL = URL(fileURLWithPath: ServerProcess.binary)
        process.arguments = ["--port", String(server.port)]
        let errors = Pipe()
        process.standardError = errors
        process.standardOutput = Pipe()
        try process.run()
        let text = String(decoding: errors.fileHandleForReading.readDataToEndOfFile(), as: UTF8.self)
        process.waitUntilExit()
        #expect(process.terminationStatus == 1)
        #expect(text.contains("numa-service: error: "), "\(text)")
        #expect(server.stop().status == 0)
    }
}
