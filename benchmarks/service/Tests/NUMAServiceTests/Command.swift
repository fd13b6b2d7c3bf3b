import Foundation

/// Runs a program to its end, as the tests run curl, promtool and numa-service itself.
enum Command {
    /// Runs `path` with `arguments`, `input` on its standard input: its exit status and what it
    /// wrote, standard output and error together, or with `errorsOnly` its standard error alone
    /// (standard output discarded).
    static func run(_ path: String, _ arguments: [String], input: Data? = nil,
                    errorsOnly: Bool = false) throws -> (status: Int32, output: String) {
        let process = Process()
        process.executableURL = URL(fileURLWithPath: path)
        process.arguments = arguments
        let output = Pipe()
        process.standardOutput = errorsOnly ? FileHandle.nullDevice : output
        process.standardError = output
        let stdin = Pipe()
        process.standardInput = stdin
        try process.run()
        if let input { stdin.fileHandleForWriting.write(input) }
        try stdin.fileHandleForWriting.close()
        let data = output.fileHandleForReading.readDataToEndOfFile()
        process.waitUntilExit()
        return (process.terminationStatus, String(decoding: data, as: UTF8.self))
    }
}
