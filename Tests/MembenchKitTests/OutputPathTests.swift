import Foundation
import Testing
import TestSupport

@Suite("membench: no row lost on the documented output paths")
struct OutputPathTests {
    /// `--csv /dev/stdout` reopened the file behind standard output and compared its first line,
    /// the table's, with the header: exit 1 and the rows lost.
    @Test("--csv /dev/stdout with standard output redirected into a file: the table, then the header and rows",
          arguments: ["bandwidth --kernels read --size 32MiB --duration 0.1",
                      "run --size 8MiB --duration 0.1 --warmup 0",
                      "run --size 8MiB --duration 0.1 --warmup 0 --json",
                      "c2c --lines 16 --repeats 2 --physcpubind 0,1"])
    func standardOutputIntoFile(arguments: String) throws {
        let file = CLI.temporaryPath(".txt")
        defer { try? FileManager.default.removeItem(atPath: file) }
        let output = try CLI.shell("$MEMBENCH \(arguments) --csv /dev/stdout > '\(file)'")
        #expect(output.status == 0, "\(output.stderr)")
        let text = try String(contentsOfFile: file, encoding: .utf8)
        let lines = text.split(separator: "\n")
        let header = try #require(lines.firstIndex { $0.hasPrefix("timestamp,command,") }, "\(text)")
        #expect(header > 0, "the table (or JSON) comes first")
        #expect(lines.count > header + 1, "rows follow the header")
        #expect(lines[(header + 1)...].allSatisfy { $0.split(separator: ",", omittingEmptySubsequences: false).count
                    == lines[header].split(separator: ",").count }, "\(text)")
    }

    @Test("--csv naming a FIFO that no process reads is refused before the run, with one line")
    func fifoWithoutReader() throws {
        let fifo = CLI.temporaryPath(".fifo")
        try #require(mkfifo(fifo, 0o600) == 0)
        defer { try? FileManager.default.removeItem(atPath: fifo) }
        let start = Date()
        let output = try CLI.run(["bandwidth", "--kernels", "read", "--size", "32MiB", "--duration", "2", "--csv", fifo], timeout: 30)
        output.expectOneLineError(status: 1, mentioning: "--csv: \(fifo) is a FIFO that no process reads")
        #expect(Date().timeIntervalSince(start) < 2, "refused before the run")
    }

    @Test("--csv naming a FIFO with a reader streams the header and rows to it")
    func fifoWithReader() throws {
        let fifo = CLI.temporaryPath(".fifo"), copy = CLI.temporaryPath(".csv")
        try #require(mkfifo(fifo, 0o600) == 0)
        defer { [fifo, copy].forEach { try? FileManager.default.removeItem(atPath: $0) } }
        let output = try CLI.shell("cat '\(fifo)' > '\(copy)' & sleep 0.2; $MEMBENCH bandwidth --kernels read --threads 1 --size 32MiB --duration 0.1 --csv '\(fifo)' >/dev/null; S=$?; wait; exit $S")
        #expect(output.status == 0, "\(output.stderr)")
        #expect(try CLI.rows(copy).count == 2, "the thread and the total")
    }

    @Test("bandwidth and bandwidth --matrix append to one file: one set of columns")
    func bandwidthColumns() throws {
        let csv = CLI.temporaryPath(".csv")
        defer { try? FileManager.default.removeItem(atPath: csv) }
        for matrix in [[], ["--matrix"]] {
            let output = try CLI.run(["bandwidth", "--kernels", "read", "--size", "32MiB", "--duration", "0.1", "--csv", csv] + matrix)
            #expect(output.status == 0, "\(output.stderr)")
        }
        let rows = try CLI.rows(csv)
        #expect(Set(rows.compactMap { $0["command"] }) == ["bandwidth", "bandwidth-matrix"])
        #expect(rows.allSatisfy { $0.keys.contains("firmware_read_bandwidth_mb_per_s") })
    }

    /// Foundation's deletingLastPathComponent trapped on a one-letter name without a directory.
    @Test("--csv a bare one-letter file name creates it in the working directory")
    func bareName() throws {
        let directory = try CLI.temporaryDirectory()
        defer { try? FileManager.default.removeItem(atPath: directory) }
        let output = try CLI.shell("cd '\(directory)' && $MEMBENCH run --size 8MiB --duration 0.1 --warmup 0 --csv r")
        #expect(output.status == 0, "\(output.stderr)")
        #expect(try CLI.rows("\(directory)/r").count == 2)
    }
}
