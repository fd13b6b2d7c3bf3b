import Foundation
import NUMA
import Testing
import TestSupport

/// The README's Swift examples are the snippets that `swift build` compiles, and its sample
/// outputs are what membench prints today, figures aside.
@Suite("README: examples are the compiled snippets, sample outputs what membench prints")
struct ReadmeTests {
    @Test("each Swift example in the README is a file of Snippets/, whole")
    func snippets() throws {
        let blocks = try Readme.blocks(marked: "snippet")
        #expect(blocks.count >= 3, "the README shows \(blocks.count) snippets")
        for (file, body) in blocks {
            let text = try String(contentsOfFile: Readme.root + "/" + file, encoding: .utf8)
            #expect(body.trimmingCharacters(in: .whitespacesAndNewlines) == text.trimmingCharacters(in: .whitespacesAndNewlines),
                    "the README's copy of \(file) differs from the file")
        }
    }

    @Test("each sample output of a one-node machine has the lines, words and columns membench prints now",
          .enabled(if: Topology.current.nodeCount == 1, "the samples come from a one-node machine"))
    func outputs() throws {
        #expect(try !Readme.blocks(marked: "output").isEmpty, "the README marks no sample output")
        let differ = try Readme.outputsThatDiffer(marked: "output") { words in
            try #require(words.first == "membench", "a sample's command starts with membench: \(words)")
            let output = try CLI.run(Array(words.dropFirst()) + Readme.shortRun)
            #expect(output.status == 0, "\(words): \(output.stderr)")
            return output.stdout
        }
        for (commands, printed, sample) in differ {
            Issue.record("README sample of `\(commands)` differs from what membench prints:\n--- printed\n\(printed.joined(separator: "\n"))\n--- sample\n\(sample.joined(separator: "\n"))")
        }
    }
}
