import Foundation
import NUMA
import Testing
import TestSupport

/// The README's sample of the reference study's two commands, printed in the emulated two-node
/// guest: run here, the commands print output of the same shape, figures aside.
@Suite("MultiNode README sample", .serialized, .balancingOff, .multiNode, .everyCPUNodeHasMemory,
       .enabled(if: Topology.current.nodeCount == 2, "the sample comes from the two-node guest"))
struct MultiNodeReadmeTests {
    @Test("the study's commands print what the README shows")
    func studySample() throws {
        #expect(try !Readme.blocks(marked: "output-two").isEmpty, "the README marks no two-node sample")
        let differ = try Readme.outputsThatDiffer(marked: "output-two") { words in
            // numactl's flags, then membench's own: `numactl ... membench ARGS`.
            let command = words.map { $0 == "membench" ? "$MEMBENCH" : $0 }.joined(separator: " ")
            let output = try CLI.shell(command + " " + Readme.shortRun.joined(separator: " "))
            #expect(output.status == 0, "\(command): \(output.stderr)")
            return output.stdout
        }
        for (commands, printed, sample) in differ {
            Issue.record("README sample of `\(commands)` differs from what membench prints:\n--- printed\n\(printed.joined(separator: "\n"))\n--- sample\n\(sample.joined(separator: "\n"))")
        }
    }
}
