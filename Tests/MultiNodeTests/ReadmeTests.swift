import Foundation
import NUMA
import Testing
import TestSupport

/// The README's samples printed in the emulated guests: run here, the same commands print
/// output of the same shape, figures aside. Part of the serialized membench suite, whose
/// NUMA-balancing test switches balancing on: no suite beside it may run membench meanwhile.
extension MultiNodeCLITests {
    /// Runs each marked block's commands (numactl's flags, then membench's own) with `extra`
    /// arguments that shorten the run, and records every block whose shape differs.
    static func checkSample(marked key: String, extra: [String]) throws {
        #expect(try !Readme.blocks(marked: key).isEmpty, "the README marks no \(key) sample")
        let differ = try Readme.outputsThatDiffer(marked: key) { words in
            let command = words.map { $0 == "membench" ? "$MEMBENCH" : $0 }.joined(separator: " ")
            let output = try CLI.shell(command + " " + extra.joined(separator: " "))
            #expect(output.status == 0, "\(command): \(output.stderr)")
            return output.stdout
        }
        for (commands, printed, sample) in differ {
            Issue.record("README sample of `\(commands)` differs from what membench prints:\n--- printed\n\(printed.joined(separator: "\n"))\n--- sample\n\(sample.joined(separator: "\n"))")
        }
    }

    @Test("the study's commands print what the README shows",
          .enabled(if: Topology.current.nodeCount == 2, "the sample comes from the two-node guest"))
    func studySample() throws {
        try Self.checkSample(marked: "output-two", extra: Readme.shortRun)
    }

    @Test("tiers prints what the README shows",
          .enabled(if: Topology.current.tiers.count >= 2, "the sample comes from the tiered guest"))
    func tiersSample() throws {
        try Self.checkSample(marked: "output-tiered", extra: ["--duration", "0.3"])
    }
}
