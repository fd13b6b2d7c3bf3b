import CSV
import Foundation
import NUMA
import Testing
#if canImport(Glibc)
import Glibc
#endif
import TestSupport

/// A quick direct run: a small buffer, a few samples.
let quickRun = "run --pool direct --size 4MiB --samples 20 --warmup 0 --loads-per-sample 256"

/// The shortest run, so that concurrent runs finish, and write, close together.
let tinyRun = "run --pool direct --size 64KiB --samples 1 --warmup 0 --loads-per-sample 256"

@Suite("membench: closed and full standard streams")
struct StreamTests {
    /// Each path (usage error, refused run, success) with stderr closed and full, and stdout full
    /// and closed: the right exit code, never a signal.
    @Test("every exit path gives 0, 64 or 1 whatever state the streams are in", arguments: [
        ("run --bogus", Int32(64)),
        ("run --pool direct --membind 999 --size 4MiB --samples 5", Int32(64)),
        ("run --pool direct --size 900TiB --samples 5", Int32(1)),
        (quickRun, Int32(0)),
    ])
    func streams(arguments: String, expected: Int32) throws {
        for redirection in ["2>&-", "2>/dev/full", "<&- 2>/dev/null"] {
            let result = try CLI.shell("$MEMBENCH \(arguments) >/dev/null \(redirection)")
            #expect(result.status == expected, "\(arguments) \(redirection): exit \(result.status)")
        }
        for redirection in [">/dev/full", ">&-"] {
            let result = try CLI.shell("$MEMBENCH \(arguments) \(redirection)")
            // Success paths that lose their output fail with one line; error paths keep their code.
            let want: Int32 = expected == 0 ? 1 : expected
            #expect(result.status == want, "\(arguments) \(redirection): exit \(result.status), \(result.stderr)")
            if expected == 0 {
                #expect(result.stderr.split(separator: "\n").count == 1 && result.stderr.contains("standard output"),
                        "\(arguments) \(redirection): \(result.stderr)")
            }
        }
    }

    @Test("lost JSON on stdout is reported")
    func json() throws {
        let result = try CLI.shell("$MEMBENCH \(quickRun) --json >/dev/full")
        #expect(result.status == 1)
        #expect(result.stderr.contains("standard output"), "\(result.stderr)")
    }

    @Test("a closed pipe on stdout ends the run with exit 1, not SIGPIPE")
    func brokenPipe() throws {
        let status = CLI.temporaryPath(".status")
        defer { try? FileManager.default.removeItem(atPath: status) }
        // The reader of membench's stdout is gone before membench writes its table.
        _ = try CLI.shell("( $MEMBENCH \(quickRun); echo $? > '\(status)' ) | true")
        let code = try String(contentsOfFile: status, encoding: .utf8).trimmingCharacters(in: .whitespacesAndNewlines)
        #expect(code == "1", "membench exit status \(code)")
    }
}

@Suite("membench: CSV appends", .serialized)
struct CSVAppendTests {
    /// Runs `processes` membench runs at once, each with its own seed, appending to `csv`.
    static func appendAtOnce(_ csv: String, processes: Int, round: Int) throws -> [Int32] {
        let runs = try (0..<processes).map { index -> Process in
            let process = Process()
            process.executableURL = URL(fileURLWithPath: CLI.binary)
            process.arguments = tinyRun.split(separator: " ").map(String.init)
                + ["--seed", String(round * 10 + index), "--csv", csv]
            process.standardOutput = FileHandle.nullDevice
            process.standardError = FileHandle.nullDevice
            try process.run()
            return process
        }
        return runs.map { $0.waitUntilExit(); return $0.terminationStatus }
    }

    /// Every row exactly once (seeds), one header, every mean a number.
    static func check(_ csv: String, seeds: [Int], sourceLocation: SourceLocation = #_sourceLocation) throws {
        let text = try String(contentsOfFile: csv, encoding: .utf8)
        let lines = text.split(separator: "\n", omittingEmptySubsequences: false)
        #expect(lines.last == "", "ends with a newline", sourceLocation: sourceLocation)
        let headers = lines.filter { $0.hasPrefix("timestamp,") }
        #expect(headers.count == 1, "\(headers.count) headers", sourceLocation: sourceLocation)
        let rows = try CLI.rows(csv)
        let fields = Set(rows.map(\.count))
        #expect(fields.count == 1, "rows of \(fields) fields", sourceLocation: sourceLocation)
        for row in rows {
            for column in ["mean_ns", "stddev_ns", "p99_ns", "size_bytes", "threads", "samples", "seed", "remote_share", "node_count"] {
                #expect(Double(row[column] ?? "") != nil, "\(column) \(row[column] ?? "nil")", sourceLocation: sourceLocation)
            }
        }
        // Each run writes a row per thread and a total row: two rows per seed.
        let bySeed = Dictionary(grouping: rows, by: { Int($0["seed"] ?? "") ?? -1 }).mapValues(\.count)
        #expect(bySeed == Dictionary(uniqueKeysWithValues: seeds.map { ($0, 2) }), "rows per seed \(bySeed)",
                sourceLocation: sourceLocation)
    }

    @Test("runs appending at once to a new file: one header, every row once")
    func newFile() throws {
        for round in 0..<20 {
            let csv = CLI.temporaryPath(".csv")
            defer { try? FileManager.default.removeItem(atPath: csv) }
            let processes = 2 + round % 2
            let statuses = try Self.appendAtOnce(csv, processes: processes, round: round)
            #expect(statuses.allSatisfy { $0 == 0 }, "round \(round): \(statuses)")
            try Self.check(csv, seeds: (0..<processes).map { round * 10 + $0 })
        }
    }

    @Test("runs appending at once to an existing file: every row once, nothing torn")
    func existingFile() throws {
        let csv = CLI.temporaryPath(".csv")
        defer { try? FileManager.default.removeItem(atPath: csv) }
        #expect(try CLI.run(quickRun.split(separator: " ").map(String.init) + ["--seed", "999", "--csv", csv]).status == 0)
        var seeds = [999]
        for round in 0..<40 {
            let processes = 6
            let statuses = try Self.appendAtOnce(csv, processes: processes, round: round)
            #expect(statuses.allSatisfy { $0 == 0 }, "round \(round): \(statuses)")
            seeds += (0..<processes).map { round * 10 + $0 }
        }
        try Self.check(csv, seeds: seeds)
    }

    @Test("a full file system leaves the file exactly as it was",
          .enabled(if: geteuid() == 0, "mounting a small file system needs root"))
    func fullDisk() throws {
        let mountPoint = CLI.temporaryPath(".mnt")
        try FileManager.default.createDirectory(atPath: mountPoint, withIntermediateDirectories: false)
        defer { try? FileManager.default.removeItem(atPath: mountPoint) }
        let mount = try CLI.shell("mount -t tmpfs -o size=12k tmpfs '\(mountPoint)'")
        try #require(mount.status == 0, "mount refused: \(mount.stderr)")
        defer { _ = try? CLI.shell("umount '\(mountPoint)'") }
        let csv = mountPoint + "/out.csv"
        var before = Data()
        var failed: CLI.Output?
        for seed in 0..<200 {
            let output = try CLI.run(quickRun.split(separator: " ").map(String.init) + ["--seed", String(seed), "--csv", csv])
            if output.status != 0 {
                failed = output
                break
            }
            before = FileManager.default.contents(atPath: csv) ?? Data()
        }
        let output = try #require(failed, "the file system never filled")
        #expect(output.status == 1)
        #expect(output.stdout.contains("total"), "the table is printed before the write error")
        #expect(output.stderr.contains("No space left"), "\(output.stderr)")
        #expect(FileManager.default.contents(atPath: csv) == before, "the file is exactly as before the failed write")
        #expect(!before.isEmpty)
    }
}

@Suite("membench: JSON types")
struct JSONTypeTests {
    static func objects(_ arguments: String) throws -> [[String: Any]] {
        let output = try CLI.run(arguments.split(separator: " ").map(String.init) + ["--json"])
        #expect(output.status == 0, "\(output.stderr)")
        let value = try JSONSerialization.jsonObject(with: Data(output.stdout.utf8), options: [.fragmentsAllowed])
        return try #require(value as? [[String: Any]])
    }

    @Test("numbers are numbers, absent values null, and --samples runs print their records",
          arguments: [quickRun, "compare --size 4MiB --samples 20 --warmup 0 --loads-per-sample 256",
                      "matrix --size 4MiB --samples 20 --warmup 0 --loads-per-sample 256"])
    func latency(arguments: String) throws {
        let records = try Self.objects(arguments)
        #expect(!records.isEmpty)
        for record in records {
            for key in ["node", "cpu", "thread", "numa_balancing", "mean_ns", "samples", "size_bytes"] {
                let value = record[key]
                #expect(value is NSNumber || value is NSNull, "\(key) is \(String(describing: value))")
            }
            for (key, value) in record {
                #expect((value as? String) != "", "\(key) is an empty string, not null")
            }
        }
    }

    @Test("alloc: malloc rows have null pool figures")
    func alloc() throws {
        let records = try Self.objects("alloc --allocators malloc,local --duration 0.1")
        let malloc = try #require(records.first { ($0["strategy"] as? String) == "malloc" })
        #expect(malloc["bytes_reserved"] is NSNull)
        let local = try #require(records.first { ($0["strategy"] as? String) == "local" })
        #expect(local["bytes_reserved"] is NSNumber)
    }
}

@Suite("membench: figures that were wrong")
struct WrongFigureTests {
    static func pages(_ arguments: String) throws -> Int {
        let csv = CLI.temporaryPath(".csv")
        defer { try? FileManager.default.removeItem(atPath: csv) }
        let output = try CLI.run(arguments.split(separator: " ").map(String.init) + ["--csv", csv])
        #expect(output.status == 0, "\(output.stderr)")
        let total = try #require(try CLI.rows(csv).last)
        return (total["pages_per_node"] ?? "").split(separator: ";").compactMap { $0.split(separator: ":").last.flatMap { Int($0) } }.reduce(0, +)
    }

    @Test("pages per node counts distinct pages when blocks are smaller than a page")
    func distinctPages() throws {
        #expect(try Self.pages("run --size 16MiB --samples 50 --warmup 0 --tlb-locality 256B") == 4096)
        let global = try Self.pages("run --pool global --size 16MiB --samples 50 --warmup 0 --stride 24 --tlb-locality 240")
        #expect(global >= 4096 && global <= 4097, "\(global) pages")
    }

    @Test("a list that names an allocator or thread count twice is refused", arguments: [
        ["alloc", "--threads", "1,1", "--duration", "0.1"], ["alloc", "--allocators", "malloc,malloc", "--duration", "0.1"],
    ])
    func duplicates(arguments: [String]) throws {
        try CLI.run(arguments).expectOneLineError(status: 64, mentioning: "twice")
    }

    /// Free huge pages of `kib` KiB, as the kernel counts them; 0 where the size is unknown.
    static func freeHugePages(kib: Int) -> Int {
        let path = "/sys/kernel/mm/hugepages/hugepages-\(kib)kB/free_hugepages"
        return (try? String(contentsOfFile: path, encoding: .utf8)).flatMap { Int($0.trimmingCharacters(in: .whitespacesAndNewlines)) } ?? 0
    }

    @Test("the huge-page check rounds up: 3 MiB needs two 2 MiB pages, 16 MiB one 1 GiB page", arguments: [
        (size: "3MiB", pageSize: "2m", kib: 2048, needed: 2), (size: "16MiB", pageSize: "1g", kib: 1 << 20, needed: 1),
    ])
    func hugePages(size: String, pageSize: String, kib: Int, needed: Int) throws {
        let output = try CLI.run(["run", "--pool", "direct", "--size", size, "--page-size", pageSize, "--tlb-locality", "0",
                                  "--samples", "5"])
        // What must happen here follows from the kernel's free huge pages of that size.
        if Self.freeHugePages(kib: kib) >= needed {
            #expect(output.status == 0, "\(output.stderr)")
        } else {
            output.expectOneLineError(status: 1, mentioning: "\(needed) huge pages needed")
        }
    }

    @Test("alloc faults a large block in before timing")
    func allocFaultIn() throws {
        // Faulting 1 GiB in is 262,144 page faults; none of them belongs in the timed window. A
        // sanitizer's shadow memory adds about a thousand of its own, so the bound is a tenth.
        let output = try CLI.run(["alloc", "--allocators", "local", "--block-size", "1GiB", "--capacity", "1GiB",
                                  "--batch", "1", "--duration", "0.2", "--json"])
        #expect(output.status == 0, "\(output.stderr)")
        let records = try #require(try JSONSerialization.jsonObject(with: Data(output.stdout.utf8)) as? [[String: Any]])
        let faults = try #require((records.first?["page_faults"] as? NSNumber)?.intValue)
        #expect(faults < (1 << 30) / 4096 / 10, "\(faults) page faults: the fault-in landed in the timed window")
    }

    @Test("memory is judged by what the kernel can hand out (MemAvailable on one node), not MemFree",
          .enabled(if: Topology.current.nodeCount == 1, "one node: the figure is MemAvailable"))
    func availableMemory() throws {
        let output = try CLI.run(["run", "--pool", "direct", "--size", "900TiB", "--samples", "5"])
        output.expectOneLineError(status: 1, mentioning: "available (MemAvailable)")
        // "... have N MiB available (MemAvailable)": N is /proc/meminfo's MemAvailable.
        let words = output.stderr.split(separator: " ")
        let index = try #require(words.firstIndex(of: "MiB"))
        let reported = try #require(Double(words[index - 1]))
        let meminfo = try String(contentsOfFile: "/proc/meminfo", encoding: .utf8)
        let line = try #require(meminfo.split(separator: "\n").first { $0.hasPrefix("MemAvailable:") })
        let kib = try #require(Double(line.split(separator: " ")[1]))
        #expect(abs(reported - kib / 1024) < max(64, kib / 1024 * 0.05), "reported \(reported) MiB, MemAvailable \(kib / 1024) MiB")
    }
}

@Suite("membench: errors name the flag that was given")
struct FlagNamingTests {
    @Test("alloc --block-size beyond the capacity names --block-size")
    func blockSize() throws {
        try CLI.run(["alloc", "--allocators", "local", "--block-size", "1GiB", "--duration", "0.1"])
            .expectOneLineError(status: 64, mentioning: "--block-size: 1GiB does not fit the pools' capacity of 256MiB per node")
    }

    @Test("malloc alone runs without NUMA information",
          .enabled(if: geteuid() == 0, "hiding /sys needs a mount namespace, which needs root"))
    func mallocWithoutSys() throws {
        let probe = try CLI.shell("unshare -m true")
        try #require(probe.status == 0, "unshare refused: \(probe.stderr)")
        let output = try CLI.shell("unshare -m sh -c 'mount -t tmpfs none /sys && $MEMBENCH alloc --allocators malloc --duration 0.1'")
        #expect(output.status == 0, "\(output.stderr)")
        #expect(output.stdout.contains("malloc"))
    }

    @Test("small TLB-locality groups in the pools run", arguments: ["local", "global"])
    func smallGroups(pool: String) throws {
        let output = try CLI.run(["run", "--pool", pool, "--size", "4MiB", "--stride", "8", "--tlb-locality", "8",
                                  "--samples", "5", "--warmup", "0"])
        #expect(output.status == 0, "\(output.stderr)")
    }

    @Test("a stride alone never blames --tlb-locality: the default group is rounded up to it", arguments: ["1MiB", "24"])
    func strideAlone(stride: String) throws {
        let output = try CLI.run(["run", "--pool", "direct", "--size", "8MiB", "--stride", stride, "--samples", "5", "--warmup", "0"])
        #expect(output.status == 0, "\(output.stderr)")
        #expect(!output.stderr.contains("--tlb-locality"), "\(output.stderr)")
    }

    @Test("a conflict names both flags as given, whatever the kit calls them")
    func conflicts() throws {
        try CLI.run(["run", "--interleave", "0", "--membind", "0"] + CLI.quick)
            .expectOneLineError(status: 64, mentioning: "--membind: conflicts with --interleave; give one of them")
        try CLI.run(["bandwidth", "--cpunodebind", "0", "--physcpubind", "0", "--size", "1MiB", "--duration", "0.1"])
            .expectOneLineError(status: 64, mentioning: "--cpunodebind: conflicts with --physcpubind")
        try CLI.run(["loaded", "--load-cpus", "4000", "--size", "1MiB", "--duration", "0.1"])
            .expectOneLineError(status: 64, mentioning: "--load-cpus: CPU 4000 does not exist")
    }

    @Test("--duration with --samples conflicts")
    func durationAndSamples() throws {
        try CLI.run(["run", "--duration", "0.3", "--samples", "50"]).expectOneLineError(status: 64, mentioning: "--samples")
    }

    @Test("matrix refuses --threads")
    func matrixThreads() throws {
        try CLI.run(["matrix", "--threads", "64"]).expectOneLineError(status: 64, mentioning: "--threads")
    }

    @Test("alloc --duration 0 says what it needs")
    func allocDuration() throws {
        let output = try CLI.run(["alloc", "--duration", "0"])
        output.expectOneLineError(status: 64, mentioning: "--duration")
        #expect(!output.stderr.contains("between 0 and"), "\(output.stderr)")
    }

    @Test("--csv paths are checked before the run, each with what is wrong")
    func csvPaths() throws {
        let directory = FileManager.default.temporaryDirectory.path
        try CLI.run(quickRun.split(separator: " ").map(String.init) + ["--csv", directory])
            .expectOneLineError(status: 64, mentioning: "is a directory")
        try CLI.run(quickRun.split(separator: " ").map(String.init) + ["--csv", ""])
            .expectOneLineError(status: 64, mentioning: "--csv")
        try CLI.run(quickRun.split(separator: " ").map(String.init) + ["--csv", "/nonexistent-dir/out.csv"])
            .expectOneLineError(status: 1, mentioning: "/nonexistent-dir")
        // Devices take the rows as a stream: /dev/null discards them, /dev/stdout shows them.
        #expect(try CLI.run(quickRun.split(separator: " ").map(String.init) + ["--csv", "/dev/null"]).status == 0)
        let toStdout = try CLI.run(quickRun.split(separator: " ").map(String.init) + ["--csv", "/dev/stdout"])
        #expect(toStdout.status == 0, "\(toStdout.stderr)")
        #expect(toStdout.stdout.contains("timestamp,command,"), "the CSV follows the table")
    }

    @Test("a dangling symlink stays a symlink; the file it names is created")
    func danglingSymlink() throws {
        let link = CLI.temporaryPath(".csv"), target = CLI.temporaryPath(".target.csv")
        try FileManager.default.createSymbolicLink(atPath: link, withDestinationPath: target)
        defer {
            try? FileManager.default.removeItem(atPath: link)
            try? FileManager.default.removeItem(atPath: target)
        }
        let output = try CLI.run(quickRun.split(separator: " ").map(String.init) + ["--csv", link])
        #expect(output.status == 0, "\(output.stderr)")
        let kind = try FileManager.default.attributesOfItem(atPath: link)[.type] as? FileAttributeType
        #expect(kind == .typeSymbolicLink)
        #expect(try CLI.rows(target).count == 2)
    }
}
