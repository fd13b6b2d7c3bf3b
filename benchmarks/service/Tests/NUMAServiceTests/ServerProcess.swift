import Foundation
#if canImport(Glibc)
import Glibc
#endif
import Testing

/// The built `numa-service`, started as users start it, on a free port.
final class ServerProcess {
    static let binary = URL(fileURLWithPath: "/proc/self/exe").resolvingSymlinksInPath()
        .deletingLastPathComponent().appendingPathComponent("numa-service").path

    let process = Process()
    let port: Int
    private let stderrFile: URL
    private var stopped = false

    /// Starts the service with `arguments` (and `--port 0`), and waits until it listens.
    init(_ arguments: [String]) throws {
        stderrFile = FileManager.default.temporaryDirectory.appendingPathComponent("numa-service-\(UUID().uuidString).err")
        _ = FileManager.default.createFile(atPath: stderrFile.path, contents: nil)
        process.executableURL = URL(fileURLWithPath: Self.binary)
        process.arguments = ["--port", "0"] + arguments
        let output = Pipe()
        process.standardOutput = output
        process.standardError = try FileHandle(forWritingTo: stderrFile)
        try process.run()
        // The first line says where it listens; a server that says nothing for 60 s has failed.
        var line = Data()
        let deadline = Date().addingTimeInterval(60)
        let descriptor = output.fileHandleForReading.fileDescriptor
        reading: while true {
            let left = Int32(max(0, deadline.timeIntervalSinceNow * 1000))
            var poll = pollfd(fd: descriptor, events: Int16(POLLIN), revents: 0)
            guard left > 0, Glibc.poll(&poll, 1, left) == 1 else { break }
            var byte: UInt8 = 0
            guard read(descriptor, &byte, 1) == 1, byte != UInt8(ascii: "\n") else { break reading }
            line.append(byte)
        }
        let text = String(decoding: line, as: UTF8.self)
        guard let port = text.split(separator: " ").last.flatMap({ Int($0) }), text.contains("listening on port") else {
            process.terminate()
            process.waitUntilExit()
            let errors = (try? String(contentsOf: stderrFile, encoding: .utf8)) ?? ""
            throw ServerFailure(message: "numa-service did not start: \(text) \(errors)")
        }
        self.port = port
    }

    deinit {
        if !stopped && process.isRunning {
            process.terminate()
            process.waitUntilExit()
        }
        try? FileManager.default.removeItem(at: stderrFile)
    }

    var stderr: String { (try? String(contentsOf: stderrFile, encoding: .utf8)) ?? "" }

    func url(_ path: String) -> String { "http://127.0.0.1:\(port)\(path)" }

    /// Sends `signal` and waits for the exit: the status and what it wrote to stderr.
    func stop(signal: Int32 = SIGTERM, timeout: TimeInterval = 60) -> (status: Int32, stderr: String) {
        kill(process.processIdentifier, signal)
        let deadline = Date().addingTimeInterval(timeout)
        while process.isRunning && Date() < deadline { usleep(20_000) }
        if process.isRunning {
            kill(process.processIdentifier, SIGKILL)
            process.waitUntilExit()
            stopped = true
            return (-1, stderr)
        }
        process.waitUntilExit()
        stopped = true
        return (process.terminationStatus, stderr)
    }
}

struct ServerFailure: Error, CustomStringConvertible {
    var message: String
    var description: String { message }
}

/// Requests through curl(1), a client users have.
enum Curl {
    struct Reply {
        var status: Int
        var body: Data
        var contentType: String
    }

    /// One request: its status, body and content type.
    static func request(_ url: String, method: String = "GET", body: Data? = nil, headers: [String] = []) throws -> Reply {
        let bodyFile = FileManager.default.temporaryDirectory.appendingPathComponent("curl-\(UUID().uuidString)")
        defer { try? FileManager.default.removeItem(at: bodyFile) }
        var arguments = ["-s", "-S", "-X", method, "-o", bodyFile.path, "-w", "%{http_code} %{content_type}", "--max-time", "60"]
        for header in headers { arguments += ["-H", header] }
        var input: Data?
        if let body {
            arguments += ["--data-binary", "@-", "-H", "Content-Type: application/octet-stream"]
            input = body
        }
        let (status, output) = try run(arguments + [url], input: input)
        guard status == 0 else { throw ServerFailure(message: "curl \(url) failed (\(status)): \(output)") }
        let parts = output.split(separator: " ", maxSplits: 1)
        return Reply(status: Int(parts.first ?? "") ?? 0, body: (try? Data(contentsOf: bodyFile)) ?? Data(),
                     contentType: parts.count > 1 ? String(parts[1]) : "")
    }

    /// Runs curl with `arguments`: its exit status and what it wrote.
    static func run(_ arguments: [String], input: Data? = nil) throws -> (Int32, String) {
        try Command.run("/usr/bin/curl", arguments, input: input)
    }
}
