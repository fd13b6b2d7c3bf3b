import Foundation
import NUMA
import Testing
import TestSupport

@Suite("membench: the command line's messages, flags and help")
struct CommandLineTests {
    /// The argument parser's own words came out before: "The value '-1MiB' is invalid for
    /// '--size <size>'", "Missing value for '--delays <delays>'".
    @Test("a value the parser cannot read is one line naming the flag, exit 64", arguments: [
        (["run", "--size", "-1MiB"], "--size: '-1MiB' is not a size"),
        (["loaded", "--delays", "-1"], "--delays: each must be between 0 and"),
        (["bandwidth", "--kernels", "foo"], "--kernels: 'foo' is not one of read, copy, triad, write, nt-write"),
        (["run", "--pool", "foo"], "--pool: 'foo' is not one of local, global, direct"),
        (["run", "--binding", "x"], "--binding: 'x' is not one of strict, preferred"),
        (["run", "--duration", "5x"], "--duration: '5x' is not a time"),
        (["run", "--threads", "x"], "--threads: 'x' is not a whole number"),
        (["run", "--size"], "--size: needs a value"),
        (["run", "--weighted-interleave", "0:3,0:2"], "--weighted-interleave: node 0 is listed twice"),
        (["alloc", "--threads", "1", "2"], "'2': not a flag or a flag's value (a list is one value with commas"),
    ])
    func parserMessages(arguments: [String], message: String) throws {
        try CLI.run(arguments).expectOneLineError(status: 64, mentioning: message)
    }

    /// The parser kept the last of a repeated flag, and a list flag added the repeats up.
    @Test("a flag given twice is refused, exit 64", arguments: [
        (["run", "--threads", "1", "--threads", "2"], "--threads"),
        (["run", "--threads=1", "--threads", "2"], "--threads"),
        (["run", "--csv", "a", "--csv", "b"], "--csv"),
        (["run", "--json", "--json"], "--json"),
        (["tiers", "--kernel", "read", "--kernel", "copy"], "--kernel"),
        (["bandwidth", "--kernels", "read", "--kernels", "copy"], "--kernels"),
        (["loaded", "--delays", "0", "--delays", "5"], "--delays"),
    ])
    func repeatedFlags(arguments: [String], flag: String) throws {
        try CLI.run(arguments).expectOneLineError(status: 64, mentioning: "\(flag): given more than once")
    }

    @Test("a value that repeats a flag's name is a value, not a repeat")
    func valueLikeFlag() throws {
        // --csv's value is the file named --json; --json itself is given once.
        let directory = try CLI.temporaryDirectory()
        defer { try? FileManager.default.removeItem(atPath: directory) }
        let output = try CLI.shell("cd '\(directory)' && $MEMBENCH run --size 8MiB --duration 0.1 --warmup 0 --csv --json --json")
        #expect(output.status == 0, "\(output.stderr)")
    }

    @Test("help lists only the flags a command takes")
    func help() throws {
        let c2c = try CLI.run(["help", "c2c"]).stdout
        for flag in ["--membind", "--interleave", "--weighted-interleave", "--preferred", "--localalloc"] {
            #expect(!c2c.contains(flag), "c2c refuses \(flag)")
        }
        #expect(c2c.contains("--physcpubind") && c2c.contains("--cpunodebind"))
        let matrix = try CLI.run(["help", "matrix"]).stdout
        for flag in ["--threads", "--global-fill", "--binding", "--pool"] { #expect(!matrix.contains(flag), "matrix ignores \(flag)") }
        #expect(matrix.contains("--size") && matrix.contains("--stride"))
        let run = try CLI.run(["help", "run"]).stdout
        for flag in ["--membind", "--physcpubind", "--threads", "--global-fill", "--binding", "--size", "--csv"] {
            #expect(run.contains(flag), "run takes \(flag)")
        }
    }

    /// Under a pseudo-terminal (script(1)): bandwidth showed no progress, tiers only 100%.
    @Test("progress shows on a terminal as the run goes", arguments: [
        ("bandwidth --kernels read,copy --size 32MiB --duration 1", "bandwidth"),
        ("bandwidth --matrix --size 32MiB --duration 2", "bandwidth"),
        ("tiers --size 32MiB --duration 2", "tiers"),
    ])
    func progress(command: String, label: String) throws {
        let output = try CLI.shell("script -qec \"$MEMBENCH \(command) >/dev/null\" /dev/null")
        #expect(output.status == 0, "\(output.stderr)")
        let pattern = try Regex("\(label) +([0-9]+)%")
        let shown = Set(output.stdout.split(separator: "\r").compactMap { $0.firstMatch(of: pattern)?.output[1].substring }.map(String.init))
        #expect(shown.count >= 3, "percentages shown: \(shown.sorted())")
    }

    @Test("messages count in words: one node has, one CPU")
    func wording() throws {
        if Topology.current.nodeCount == 1 {
            try CLI.run(["run", "--size", "900TiB"]).expectOneLineError(status: 1, mentioning: "but node 0 has ")
        }
        if Topology.current.allowedCPUs.count == 2 {
            try CLI.run(["loaded", "--load-threads", "2", "--size", "1MiB"])
                .expectOneLineError(status: 64, mentioning: "2 load threads but only 1 CPU besides the chase's")
        }
    }

    @Test("a duration too short for four decimals keeps its digits in the CSV")
    func shortDuration() throws {
        let csv = CLI.temporaryPath(".csv")
        defer { try? FileManager.default.removeItem(atPath: csv) }
        let output = try CLI.run(["bandwidth", "--kernels", "read", "--size", "32MiB", "--duration", "1ns", "--csv", csv])
        #expect(output.status == 0, "\(output.stderr)")
        #expect(output.stdout.contains("1ns per kernel"), "\(output.stdout)")
        #expect(try CLI.rows(csv).allSatisfy { $0["duration_s"] == "1.000e-09" })
    }
}
