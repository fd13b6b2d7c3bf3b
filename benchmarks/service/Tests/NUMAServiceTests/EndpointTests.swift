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
            // The channels' reads and the replies take the heap's memory: more requests, more gets.
            let before = try Self.pools(server)["buffers"]?["gets"] ?? 0
            _ = try Curl.run(["-s", "-o", "/dev/null", server.url("/work?bytes=3000&n=[1-20]")])
            let after = try Self.pools(server)["buffers"]?["gets"] ?? 0
            #expect(after >= before + 20, "buffers gets \(before) then \(after)")
        }
        #expect(server.stop().status == 0)
    }

    static func pools(_ server: ServerProcess) throws -> [String: [String: Int]] {
        let json = try JSONSerialization.jsonObject(with: Curl.request(server.url("/stats")).body) as? [String: Any]
        return try #require(json?["pools"] as? [String: [String: Int]])
    }

    static func placement(_ server: ServerProcess) throws -> [String: Int] {
        let text = String(decoding: try Curl.request(server.url("/metrics")).body, as: UTF8.self)
        var counts: [String: Int] = [:]
        for line in text.split(separator: "\n") where line.hasPrefix("numaservice_placement_total{") {
            let object = line.split(separator: "\"")[1]
            counts[String(object), default: 0] += Int(Double(line.split(separator: " ").last ?? "") ?? 0)
        }
        return counts
    }

    /// A request counts its context and then its buffer; with one counter for both, an even
    /// sampling interval saw only contexts.
    @Test("placement is sampled for contexts and buffers alike, one request in N of each")
    func placementSampling() throws {
        let server = try ServerProcess(["--allocator", "local", "--placement-sample", "4", "--metrics-interval", "1"])
        _ = try Curl.run(["-s", "-o", "/dev/null", server.url("/work?bytes=100&n=[1-40]")])
        let counts = try Self.placement(server)
        #expect(counts["context"] == 10 && counts["buffer"] == 10, "\(counts)")
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
        ["--policy", "slo", "--allocator", "malloc"], ["--slo", "0"], ["--placement-sample=-1"], ["--cooldown=-1"],
        ["--handlers", "threads"], ["--window", "x"], ["--window", "0"], ["--decay=-1"], ["--metrics-interval", "0"],
    ])
    func badFlags(arguments: [String]) throws {
        let (status, text) = try Command.run(ServerProcess.binary, arguments, errorsOnly: true)
        #expect(status == 64, "\(text)")
        #expect(text.hasPrefix("Error: "), "\(text)")
        // Refused for its value, not misread ("--decay -1" reads -1 as a flag: "Missing value").
        let flag = String(arguments[0].split(separator: "=")[0])
        #expect(text.contains(flag) && !text.contains("Missing value"), "\(text)")
    }

    @Test("--cpus naming a CPU this process may not use is refused at start, exit code 64",
          .enabled(if: ProcessInfo.processInfo.activeProcessorCount >= 2, "needs a second CPU to leave out"))
    func cpusNotAllowed() throws {
        let (status, text) = try Command.run("/usr/bin/taskset", ["-c", "0", ServerProcess.binary, "--cpus", "1", "--port", "0"],
                                             errorsOnly: true)
        #expect(status == 64, "\(text)")
        #expect(text.contains("CPU 1 is not allowed"), "\(text)")
    }

    @Test("a port in use is an error and exit code 1, not a hang")
    func portInUse() throws {
        let server = try ServerProcess([])
        let (status, text) = try Command.run(ServerProcess.binary, ["--port", String(server.port)], errorsOnly: true)
        #expect(status == 1)
        #expect(text.contains("numa-service: error: "), "\(text)")
        #expect(server.stop().status == 0)
    }
}
