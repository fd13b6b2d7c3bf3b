import Foundation
import Testing

@Suite("numa-service: graceful shutdown")
struct ShutdownTests {
    /// Eight clients send 400 requests on short connections, each reply waiting 50 ms; SIGTERM
    /// comes while they are in flight. Every reply the server began is answered in full, and the
    /// clients received exactly those; what failed was never taken in.
    @Test("SIGTERM during load: the server answers every request it took, then exits 0",
          arguments: ["local", "malloc"])
    func sigtermUnderLoad(allocator: String) throws {
        let server = try ServerProcess(["--allocator", allocator])
        let clients = Process()
        clients.executableURL = URL(fileURLWithPath: "/usr/bin/curl")
        clients.arguments = ["-s", "-Z", "--parallel-max", "8", "-H", "Connection: close", "--max-time", "30",
                             "-o", "/dev/null", "-w", "%{http_code} %{size_download} %{exitcode}\\n",
                             server.url("/work?bytes=20000&wait=50&n=[1-400]")]
        let output = Pipe()
        clients.standardOutput = output
        clients.standardError = Pipe()
        try clients.run()
        // Some replies out, many still to come.
        usleep(700_000)
        let stopped = server.stop(signal: SIGTERM)
        let text = String(decoding: output.fileHandleForReading.readDataToEndOfFile(), as: UTF8.self)
        clients.waitUntilExit()
        #expect(stopped.status == 0, "\(stopped.stderr)")

        let transfers = text.split(separator: "\n").map { $0.split(separator: " ") }
        #expect(transfers.count == 400)
        let complete = transfers.filter { $0.count == 3 && $0[0] == "200" && $0[1] == "20000" && $0[2] == "0" }.count
        let partial = transfers.filter { $0.count == 3 && $0[0] == "200" && $0[1] != "20000" }.count
        #expect(partial == 0, "replies cut short")

        // "numa-service: stopped; A of B replies begun were answered"
        let summary = try #require(stopped.stderr.split(separator: "\n").last { $0.contains("replies begun were answered") })
        let numbers = summary.split(separator: " ").compactMap { Int($0) }
        #expect(numbers.count == 2 && numbers[0] == numbers[1], "\(summary)")
        #expect(numbers.first == complete, "the server answered \(numbers.first ?? -1), the clients got \(complete)")
        #expect(complete > 0 && complete < 400, "the signal came during the load: \(complete) of 400 answered")
    }

    @Test("SIGINT stops it too, with exit code 0")
    func sigint() throws {
        let server = try ServerProcess(["--allocator", "global"])
        #expect(try Curl.request(server.url("/hello")).status == 200)
        let stopped = server.stop(signal: SIGINT)
        #expect(stopped.status == 0, "\(stopped.stderr)")
        #expect(stopped.stderr.contains("1 of 1 replies begun were answered"), "\(stopped.stderr)")
    }
}
