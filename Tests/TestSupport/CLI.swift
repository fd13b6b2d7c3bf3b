import CSV
import Foundation
import Testing

/// Runs the built `membench` binary, which sits beside the test bundle.
package enum CLI {
    package static let binary = URL(fileURLWithPath: "/proc/self/exe").resolvingSymlinksInPath()
        .deletingLastPathComponent().appendingPathComponent("membench").path

    package struct Output {
        package var status: Int32
        package var stdout: String
        package var stderr: String

        /// Checks a refused invocation: exit `status`, nothing on stdout, and one line on stderr,
        /// "membench: error: …", that contains `text`.
        package func expectOneLineError(status: Int32, mentioning text: String,
                                sourceLocation: SourceLocation = #_sourceLocation) {
            #expect(self.status == status, "\(stderr)", sourceLocation: sourceLocation)
            #expect(stdout.isEmpty, sourceLocation: sourceLocation)
            let lines = stderr.split(separator: "\n")
            #expect(lines.count == 1, "\(stderr)", sourceLocation: sourceLocation)
            #expect(lines.first?.hasPrefix("membench: error: ") == true, "\(stderr)", sourceLocation: sourceLocation)
            #expect(lines.first?.contains(text) == true, "\(stderr)", sourceLocation: sourceLocation)
        }
    }

    /// Runs membench under timeout(1), so that a hang fails the test (status 124) instead of
    /// stalling the suite.
    package static func run(_ arguments: [String], timeout seconds: Int = 300) throws -> Output {
        let process = Process()
        process.executableURL = URL(fileURLWithPath: "/usr/bin/timeout")
        process.arguments = ["--kill-after=10", String(seconds), binary] + arguments
        // stderr goes to a file, so that neither stream can fill its pipe while the other is read.
        let errPath = temporaryPath(".stderr")
        guard FileManager.default.createFile(atPath: errPath, contents: nil),
              let err = FileHandle(forWritingAtPath: errPath) else { throw CocoaError(.fileWriteUnknown) }
        defer { try? FileManager.default.removeItem(atPath: errPath) }
        let out = Pipe()
        process.standardOutput = out
        process.standardError = err
        try process.run()
        let outData = out.fileHandleForReading.readDataToEndOfFile()
        process.waitUntilExit()
        try err.close()
        // FileHandle rather than Data(contentsOf:), whose read buffer AddressSanitizer's leak
        // check reports as leaked here (Foundation of Swift 6.3).
        guard let reader = FileHandle(forReadingAtPath: errPath) else { throw CocoaError(.fileReadUnknown) }
        let errData = reader.readDataToEndOfFile()
        try reader.close()
        return Output(status: process.terminationStatus, stdout: String(decoding: outData, as: UTF8.self),
                      stderr: String(decoding: errData, as: UTF8.self))
    }

    /// Parses a CSV file into dictionaries by header.
    package static func rows(_ path: String) throws -> [[String: String]] {
        let reader = try CSVReader(string: try String(contentsOfFile: path, encoding: .utf8), hasHeaderRow: true)
        var rows: [[String: String]] = []
        while reader.next() != nil {
            var row: [String: String] = [:]
            for (name, value) in zip(reader.headerRow ?? [], reader.currentRow ?? []) { row[name] = value }
            rows.append(row)
        }
        return rows
    }

    /// Makes a new empty directory under the temporary directory and returns its path.
    package static func temporaryDirectory() throws -> String {
        let path = temporaryPath(".dir")
        try FileManager.default.createDirectory(atPath: path, withIntermediateDirectories: false)
        return path
    }

    package static func temporaryPath(_ suffix: String) -> String {
        FileManager.default.temporaryDirectory.appendingPathComponent("membench-\(UUID().uuidString)\(suffix)").path
    }

    /// Quick run arguments: a small buffer and a short duration.
    package static let quick = ["--size", "8MiB", "--duration", "0.2", "--warmup", "0"]

    /// The quick run's flags less those `arguments` give (a flag may be given once).
    package static func quick(besides arguments: [String]) -> [String] {
        let given = Set(arguments.map { String($0.prefix { $0 != "=" }) })
        return stride(from: 0, to: quick.count, by: 2).filter { !given.contains(quick[$0]) }.flatMap { [quick[$0], quick[$0 + 1]] }
    }

    /// membench under a shell, for redirections: `$MEMBENCH` in `command` is the built binary.
    /// Returns the exit status and what reached stdout and stderr (where they were not redirected).
    package static func shell(_ command: String, timeout seconds: Int = 120) throws -> Output {
        let script = command.replacingOccurrences(of: "$MEMBENCH", with: "'\(binary)'")
        let process = Process()
        process.executableURL = URL(fileURLWithPath: "/usr/bin/timeout")
        process.arguments = ["--kill-after=10", String(seconds), "/bin/sh", "-c", script]
        let errPath = temporaryPath(".stderr"), outPath = temporaryPath(".stdout")
        guard FileManager.default.createFile(atPath: errPath, contents: nil), FileManager.default.createFile(atPath: outPath, contents: nil),
              let err = FileHandle(forWritingAtPath: errPath), let out = FileHandle(forWritingAtPath: outPath) else {
            throw CocoaError(.fileWriteUnknown)
        }
        defer {
            try? FileManager.default.removeItem(atPath: errPath)
            try? FileManager.default.removeItem(atPath: outPath)
        }
        process.standardOutput = out
        process.standardError = err
        try process.run()
        process.waitUntilExit()
        try out.close()
        try err.close()
        func read(_ path: String) throws -> String {
            guard let reader = FileHandle(forReadingAtPath: path) else { throw CocoaError(.fileReadUnknown) }
            defer { try? reader.close() }
            return String(decoding: reader.readDataToEndOfFile(), as: UTF8.self)
        }
        return Output(status: process.terminationStatus, stdout: try read(outPath), stderr: try read(errPath))
    }
}
