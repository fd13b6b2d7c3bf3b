import Foundation
import Testing

/// The rule file users copy, beside the package.
let rulesDirectory = URL(fileURLWithPath: #filePath).deletingLastPathComponent()
    .deletingLastPathComponent().deletingLastPathComponent().appendingPathComponent("prometheus")

@Suite("numa-service watched by a real Prometheus")
struct PrometheusTests {
    /// A free TCP port on loopback.
    static func freePort() throws -> Int {
        let socket = Foundation.socket(AF_INET, Int32(SOCK_STREAM.rawValue), 0)
        defer { close(socket) }
        var address = sockaddr_in()
        address.sin_family = sa_family_t(AF_INET)
        address.sin_addr.s_addr = inet_addr("127.0.0.1")
        address.sin_port = 0
        var length = socklen_t(MemoryLayout<sockaddr_in>.size)
        try withUnsafeMutablePointer(to: &address) { pointer in
            try pointer.withMemoryRebound(to: sockaddr.self, capacity: 1) {
                guard bind(socket, $0, length) == 0, getsockname(socket, $0, &length) == 0 else {
                    throw ServerFailure(message: "no free port")
                }
            }
        }
        return Int(UInt16(bigEndian: address.sin_port))
    }

    /// The value of a one-series instant query, or nil while it has none (or Prometheus does
    /// not answer yet).
    static func query(_ port: Int, _ expression: String) throws -> Double? {
        var components = URLComponents(string: "http://127.0.0.1:\(port)/api/v1/query")!
        components.queryItems = [URLQueryItem(name: "query", value: expression)]
        guard let reply = try? Curl.request(components.url!.absoluteString), reply.status == 200,
              let json = try JSONSerialization.jsonObject(with: reply.body) as? [String: Any],
              let data = json["data"] as? [String: Any], let result = data["result"] as? [[String: Any]],
              result.count == 1, let value = result[0]["value"] as? [Any], value.count == 2,
              let text = value[1] as? String else { return nil }
        return Double(text)
    }

    static func stats(_ server: ServerProcess) throws -> [String: Any] {
        try #require(try JSONSerialization.jsonObject(with: Curl.request(server.url("/stats")).body) as? [String: Any])
    }

    @Test("Prometheus scrapes /metrics, and its numapool_gets_total and reuse agree with the service's own counts")
    func scrape() throws {
        let server = try ServerProcess(["--allocator", "local", "--metrics-interval", "1"])
        let (status, _) = try Curl.run(["-s", "-o", "/dev/null", server.url("/hello?n=[1-300]")])
        #expect(status == 0)

        let directory = FileManager.default.temporaryDirectory.appendingPathComponent("prometheus-\(UUID().uuidString)")
        try FileManager.default.createDirectory(at: directory, withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(at: directory) }
        let configuration = directory.appendingPathComponent("prometheus.yml")
        try """
        global:
          scrape_interval: 1s
        scrape_configs:
          - job_name: numa-service
            static_configs:
              - targets: ["127.0.0.1:\(server.port)"]
        """.write(to: configuration, atomically: true, encoding: .utf8)
        let webPort = try Self.freePort()
        let prometheus = Process()
        prometheus.executableURL = URL(fileURLWithPath: "/usr/bin/prometheus")
        prometheus.arguments = ["--config.file=\(configuration.path)", "--storage.tsdb.path=\(directory.appendingPathComponent("data").path)",
                                "--web.listen-address=127.0.0.1:\(webPort)"]
        let log = directory.appendingPathComponent("prometheus.log")
        _ = FileManager.default.createFile(atPath: log.path, contents: nil)
        prometheus.standardOutput = try FileHandle(forWritingTo: log)
        prometheus.standardError = prometheus.standardOutput
        try prometheus.run()
        defer {
            prometheus.terminate()
            prometheus.waitUntilExit()
        }

        // Two scrapes of the service, after its collector exported the load.
        let deadline = Date().addingTimeInterval(90)
        var scrapes = 0.0
        while Date() < deadline {
            scrapes = try Self.query(webPort, "count_over_time(up{job=\"numa-service\"}[5m])") ?? 0
            if scrapes >= 2 { break }
            usleep(250_000)
        }
        let prometheusLog = (try? String(contentsOf: log, encoding: .utf8)) ?? ""
        #expect(scrapes >= 2, "\(prometheusLog)")
        #expect(try Self.query(webPort, "up{job=\"numa-service\"}") == 1)

        let own = try #require(try Self.stats(server)["pools"] as? [String: [String: Int]])
        let gets = try #require(own["contexts"]?["gets"])
        #expect(gets == 300)
        var seen: Double?
        while Date() < deadline {
            seen = try Self.query(webPort, "numapool_gets_total{pool=\"contexts\",node=\"all\"}")
            if seen == Double(gets) { break }
            usleep(250_000)
        }
        #expect(seen == Double(gets))

        // The reuse over the last interval with gets, as the service exposes it.
        let exposed = String(decoding: try Curl.request(server.url("/metrics")).body, as: UTF8.self)
        let line = try #require(exposed.split(separator: "\n").first { $0.hasPrefix("numapool_reuse_ratio{pool=\"contexts\"") })
        let reuse = try #require(Double(line.split(separator: " ").last ?? ""))
        #expect(reuse > 0.5 && reuse <= 1)
        var scraped: Double?
        while Date() < deadline {
            scraped = try Self.query(webPort, "numapool_reuse_ratio{pool=\"contexts\",node=\"all\"}")
            if scraped == reuse { break }
            usleep(250_000)
        }
        #expect(scraped == reuse)
        #expect(server.stop().status == 0)
    }

    @Test("the shipped alerting rules pass promtool: the study's thresholds fire, and only past them")
    func alertRules() throws {
        let rules = rulesDirectory.appendingPathComponent("numapool-alerts.yml").path
        let (checked, checkOutput) = try Command.run("/usr/bin/promtool", ["check", "rules", rules])
        #expect(checked == 0, "\(checkOutput)")
        let (tested, testOutput) = try Command.run("/usr/bin/promtool", ["test", "rules", rulesDirectory.appendingPathComponent("numapool-alerts.test.yml").path])
        #expect(tested == 0, "\(testOutput)")
    }

    @Test("/metrics passes promtool check metrics")
    func lint() throws {
        let server = try ServerProcess(["--allocator", "local", "--metrics-interval", "1"])
        _ = try Curl.run(["-s", "-o", "/dev/null", server.url("/work?bytes=5000&n=[1-50]")])
        usleep(1_500_000)
        let metrics = try Curl.request(server.url("/metrics")).body
        let (status, text) = try Command.run("/usr/bin/promtool", ["check", "metrics"], input: metrics)
        #expect(status == 0, "\(text)")
        #expect(server.stop().status == 0)
    }
}
