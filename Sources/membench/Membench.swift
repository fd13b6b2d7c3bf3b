import ArgumentParser
import Foundation
import MembenchKit

@main
struct Membench: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "membench",
        abstract: "NUMA memory latency, remote-access share and pool throughput.",
        discussion: """
            Sizes take B, KB/KiB, MB/MiB, GB/GiB; all are binary (1GB = 1GiB = 2^30 bytes).
            Node and CPU lists take numactl's forms: 0, 0,2, 1-3, all.
            Exit codes: 0 success, 64 bad input, 1 a run the machine refused or an output error; \
            a run ended by a signal ends by that signal (a shell shows 128 + its number), after \
            putting back any interleave weights it set.
            """,
        subcommands: [RunCommand.self, CompareCommand.self, MatrixCommand.self, BandwidthCommand.self, LoadedCommand.self, CacheToCacheCommand.self, AllocCommand.self, ChurnCommand.self, ElasticCommand.self, TiersCommand.self, TopologyCommand.self],
        defaultSubcommand: RunCommand.self
    )

    /// Parses and runs, printing any error as one line: `membench: error: <flag>: <reason>`.
    /// Every exit is 0, 64 or 1, whatever state the standard streams are in, unless a signal
    /// ends the process.
    static func main() {
        StandardStreams.prepare()
        SignalWatcher.prepareProcess()
        do {
            try CommandLineRules.refuseRepeats(Array(CommandLine.arguments.dropFirst()), root: Membench.self)
            var command = try parseAsRoot()
            try command.run()
        } catch let error as MembenchError {
            fail(error.commandLineMessage, code: error.exitCode)
        } catch {
            let code = exitCode(for: error)
            if code == .success {
                do {
                    try StandardStreams.write(fullMessage(for: error) + "\n")
                } catch {
                    fail(error.commandLineMessage, code: error.exitCode)
                }
                Foundation.exit(0)
            }
            let message = CommandLineRules.reworded(message(for: error))
            fail(message, code: code.rawValue)
        }
    }

    /// Reports `message` on standard error (if it can be written) and exits with `code`.
    static func fail(_ message: String, code: Int32) -> Never {
        StandardStreams.report("membench: error: \(message)\n")
        Foundation.exit(code)
    }
}
