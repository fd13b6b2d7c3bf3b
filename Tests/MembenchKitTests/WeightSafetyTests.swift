import Foundation
import NUMA
import Testing
import TestSupport

/// A copy of the kernel's interleave weights, bind-mounted over the real directory inside a
/// private mount namespace (unshare -m), so that membench's writes reach the copy and never the
/// host's weights: on a kernel with the `auto` mode, a write to the real ones cannot be undone.
struct WeightsSandbox {
    static let directory = "/sys/kernel/mm/mempolicy/weighted_interleave"
    static let marker = ".membench-copy"
    /// The copy, with every node's weight at 1 and the `auto` file reading `true` where the
    /// kernel has one.
    let copy: String
    let automaticFile: String?

    static var available: Bool {
        geteuid() == 0 && InterleaveWeights.isSupported && (try? CLI.shell("unshare -m true").status) == 0
    }

    init() throws {
        copy = CLI.temporaryPath(".weights")
        try FileManager.default.createDirectory(atPath: copy, withIntermediateDirectories: false)
        for node in try #require(InterleaveWeights.current()).keys {
            try "1\n".write(toFile: "\(copy)/node\(node)", atomically: false, encoding: .utf8)
        }
        automaticFile = ["auto", "__auto_type"].first { FileManager.default.fileExists(atPath: "\(Self.directory)/\($0)") }
        if let automaticFile { try "true\n".write(toFile: "\(copy)/\(automaticFile)", atomically: false, encoding: .utf8) }
        try "".write(toFile: "\(copy)/\(Self.marker)", atomically: false, encoding: .utf8)
    }

    /// The weight of `node` in the copy.
    func weight(_ node: Int) throws -> Int? {
        Int(try String(contentsOfFile: "\(copy)/node\(node)", encoding: .utf8).trimmingCharacters(in: .whitespacesAndNewlines))
    }

    /// Runs `script` under bash with job control (so that a job started with & takes SIGINT and
    /// SIGQUIT) inside a mount namespace where the copy stands for the weights directory, each
    /// path in `readOnly` (names inside the copy) bind-mounted read-only, so that a write to it
    /// fails. `$W` is the weights directory and `$MEMBENCH` the binary. Exit 99 when the copy
    /// could not be put in place, before anything ran.
    func run(_ script: String, readOnly: [String] = [], timeout: Int = 120) throws -> CLI.Output {
        let protect = readOnly.map { "mount --bind \"$W/\($0)\" \"$W/\($0)\" && mount -o remount,bind,ro \"$W/\($0)\" \"$W/\($0)\" || exit 99\n" }.joined()
        let body = """
            W=\(Self.directory)
            MEMBENCH='\(CLI.binary)'
            mount --bind '\(copy)' "$W" && test -e "$W/\(Self.marker)" || exit 99
            \(protect)set -m
            \(script)
            """
        let path = CLI.temporaryPath(".sh")
        try body.write(toFile: path, atomically: false, encoding: .utf8)
        defer { try? FileManager.default.removeItem(atPath: path) }
        let output = try CLI.shell("unshare -m --propagation private bash '\(path)'", timeout: timeout)
        try #require(output.status != 99, "the weights copy could not be mounted: \(output.stderr)")
        return output
    }

    func remove() { try? FileManager.default.removeItem(atPath: copy) }
}

@Suite("membench leaves the interleave weights as it found them", .serialized,
       .enabled(if: WeightsSandbox.available, "needs root, unshare and a kernel with weighted interleave (6.9+)"))
struct WeightSafetyTests {
    static let quick = "--kernels read --size 32MiB"

    /// The first run ends while the second runs. With both writing, the first put back 1 under
    /// the second and the second put back 3, the first's weight, which stayed. The first runs
    /// until the second says it waits (whatever the load on the machine), then is ended.
    @Test("two overlapping runs: the second waits for the first, and the weights before both are those left")
    func overlapping() throws {
        let sandbox = try WeightsSandbox()
        defer { sandbox.remove() }
        let waiting = CLI.temporaryPath(".stderr")
        defer { try? FileManager.default.removeItem(atPath: waiting) }
        let output = try sandbox.run("""
            $MEMBENCH bandwidth --weighted-interleave 0:3 \(Self.quick) --duration 60 >/dev/null 2>&1 &
            FIRST=$!
            until [ "$(cat $W/node0)" = 3 ]; do kill -0 $FIRST || exit 98; sleep 0.05; done
            $MEMBENCH bandwidth --weighted-interleave 0:5 \(Self.quick) --duration 0.2 >/dev/null 2>'\(waiting)' &
            SECOND=$!
            for i in $(seq 600); do
                [ "$(cat $W/node0)" = 3 ] || echo "overwritten: $(cat $W/node0)"
                grep -q "waiting for another" '\(waiting)' && break; kill -0 $SECOND || break; sleep 0.1
            done
            echo "during: $(cat $W/node0)"
            kill -TERM $FIRST; wait $FIRST; echo "first: $?"
            wait $SECOND; echo "second: $?"
            """, timeout: 180)
        let stderr = (try? String(contentsOfFile: waiting, encoding: .utf8)) ?? ""
        #expect(stderr.contains("membench: waiting for another process that has set interleave weights"), "\(stderr)")
        #expect(output.stdout.contains("during: 3") && !output.stdout.contains("overwritten"), "the second run waited: \(output.stdout)")
        #expect(output.stdout.contains("first: \(128 + SIGTERM)") && output.stdout.contains("second: 0"), "\(output.stdout)\(output.stderr)")
        #expect(try sandbox.weight(0) == 1, "the weight before both runs is back")
    }

    @Test("a signal that ends a run puts the weights back, ends the process by that signal and reports no result",
          arguments: [SIGQUIT, SIGUSR1, SIGALRM, SIGINT, SIGTERM, SIGHUP, SIGUSR2])
    func signal(_ signal: Int32) throws {
        let sandbox = try WeightsSandbox()
        defer { sandbox.remove() }
        let output = try sandbox.run("""
            $MEMBENCH bandwidth --weighted-interleave 0:3 \(Self.quick) --duration 20 &
            RUN=$!
            until [ "$(cat $W/node0)" = 3 ]; do kill -0 $RUN || exit 98; sleep 0.05; done
            kill -\(signal) $RUN
            wait $RUN
            echo "status: $?"
            """)
        #expect(output.stdout == "status: \(128 + signal)\n", "nothing but the status: \(output.stdout)")
        #expect(output.stderr.contains("ended the run; the interleave weights are back as they were"), "\(output.stderr)")
        #expect(!output.stderr.contains("crashed"), "\(output.stderr)")
        #expect(try sandbox.weight(0) == 1)
    }

    @Test("where the kernel cannot turn its automatic weights back on, the run says so before, and never claims them restored",
          .enabled(if: InterleaveWeights.isAutomatic == true && !InterleaveWeights.canRestoreAutomatic,
                   "needs a kernel in its auto mode without firmware bandwidth"))
    func automaticModeLost() throws {
        let sandbox = try WeightsSandbox()
        defer { sandbox.remove() }
        let automaticFile = try #require(sandbox.automaticFile)
        // A read-only `auto` refuses `true` as such a kernel does (with EROFS for ENODEV).
        let output = try sandbox.run("$MEMBENCH bandwidth --weighted-interleave 0:3 \(Self.quick) --duration 0.2 --json",
                                     readOnly: [automaticFile])
        #expect(output.status == 0, "\(output.stderr)")
        let lines = output.stderr.split(separator: "\n").map(String.init)
        #expect(lines.first?.contains("turns off the kernel's automatic weights, which it cannot turn back on here") == true, "\(output.stderr)")
        #expect(lines.last?.contains("the interleave weights are back; the kernel's automatic weights stay off until reboot") == true, "\(output.stderr)")
        #expect(!output.stderr.contains("as they were"), "\(output.stderr)")
        #expect(try sandbox.weight(0) == 1)
    }

    @Test("weights already in force are not written again (a write would turn the automatic mode off)")
    func unchangedWeights() throws {
        let sandbox = try WeightsSandbox()
        defer { sandbox.remove() }
        // node0 is read-only: a write fails the command.
        let run = try sandbox.run("$MEMBENCH bandwidth --weighted-interleave 0:1 \(Self.quick) --duration 0.2 --json >/dev/null",
                                  readOnly: ["node0"])
        #expect(run.status == 0, "\(run.stderr)")
        #expect(run.stderr.isEmpty, "no warning when nothing is written: \(run.stderr)")
        // tiers --apply checks up front that it may write: node0's modification time tells.
        // One memory node here, whose proposed weight is 1 (the copy's).
        guard Topology.current.bindableNodes.count == 1 else { return }
        let apply = try sandbox.run("""
            BEFORE=$(stat -c %y $W/node0); sleep 0.01
            $MEMBENCH tiers --apply --size 32MiB --duration 0.2 && [ "$(stat -c %y $W/node0)" = "$BEFORE" ] && echo untouched
            """)
        #expect(apply.status == 0, "\(apply.stderr)")
        #expect(apply.stdout.contains("applied: 0:1 (unchanged)"), "\(apply.stdout)")
        #expect(apply.stdout.hasSuffix("untouched\n"), "\(apply.stdout)")
    }
}

@Suite("membench ends on a signal")
struct SignalTests {
    @Test("SIGQUIT ends a run by SIGQUIT, with no backtrace and no result", arguments: ["run", "bandwidth"])
    func quit(command: String) throws {
        let arguments = command == "run" ? "run --size 8MiB --duration 20" : "bandwidth --kernels read --size 32MiB --duration 20"
        let output = try CLI.shell("""
            exec bash -c 'set -m; $MEMBENCH \(arguments) & RUN=$!; sleep 1; kill -QUIT $RUN; wait $RUN; echo "status: $?"'
            """)
        #expect(output.stdout == "status: \(128 + SIGQUIT)\n", "\(output.stdout)")
        #expect(!output.stderr.contains("crashed"), "\(output.stderr)")
    }

    /// A mask with SIGINT and SIGQUIT blocked, inherited across exec, made both do nothing.
    @Test("a signal blocked by the parent still ends the run", arguments: [SIGINT, SIGQUIT])
    func inheritedMask(_ signal: Int32) throws {
        let block = "import signal, os, sys; signal.pthread_sigmask(signal.SIG_BLOCK, [signal.SIGINT, signal.SIGQUIT]); os.execv(sys.argv[1], sys.argv[1:])"
        let output = try CLI.shell("""
            exec bash -c 'set -m; python3 -c "\(block)" $MEMBENCH run --size 8MiB --duration 20 & RUN=$!; sleep 1; kill -\(signal) $RUN; wait $RUN; echo "status: $?"'
            """)
        #expect(output.stdout == "status: \(128 + signal)\n", "\(output.stdout)")
    }
}
