import Foundation

/// The repository's README, read by the tests that keep its examples and sample outputs true.
///
/// A block the tests check is marked by an HTML comment on the line before its opening fence:
/// `<!-- snippet: Snippets/Name.swift -->` (the block is that file, whole), or
/// `<!-- output: ARGUMENTS -->` (the block is what membench printed for those arguments;
/// several commands' outputs follow one another, their argument lists separated by ` ; `).
package enum Readme {
    package static let path = URL(fileURLWithPath: #filePath).deletingLastPathComponent()
        .deletingLastPathComponent().deletingLastPathComponent().appendingPathComponent("README.md").path

    /// The root of the repository.
    package static var root: String { URL(fileURLWithPath: path).deletingLastPathComponent().path }

    /// Every block marked `<!-- key: value -->`, with the marker's value and the block's lines.
    package static func blocks(marked key: String) throws -> [(value: String, body: String)] {
        let lines = try String(contentsOfFile: path, encoding: .utf8).components(separatedBy: "\n")
        var found: [(String, String)] = []
        var index = 0
        while index < lines.count {
            let line = lines[index].trimmingCharacters(in: .whitespaces)
            let prefix = "<!-- \(key): "
            // A block may be indented (inside a list item); its lines keep their indentation.
            if line.hasPrefix(prefix), line.hasSuffix("-->"), index + 1 < lines.count,
               lines[index + 1].trimmingCharacters(in: .whitespaces).hasPrefix("```") {
                let value = String(line.dropFirst(prefix.count).dropLast(3)).trimmingCharacters(in: .whitespaces)
                var body: [String] = []
                index += 2
                while index < lines.count && !lines[index].trimmingCharacters(in: .whitespaces).hasPrefix("```") {
                    body.append(lines[index])
                    index += 1
                }
                found.append((value, body.joined(separator: "\n")))
            }
            index += 1
        }
        return found
    }

    /// The shape of a command's output, to compare a sample with a new run: numbers become `#`,
    /// and runs of spaces or of dashes become one, so that the sample may hold other figures
    /// and other column widths but must have the same lines, words and columns.
    package static func shape(_ text: String) -> [String] {
        text.components(separatedBy: "\n").map { line in
            var shaped = line.replacingOccurrences(of: #"[0-9]+(\.[0-9]+)?"#, with: "#", options: .regularExpression)
            shaped = shaped.replacingOccurrences(of: #"#([.,:;x#-]*#)+"#, with: "#", options: .regularExpression)
            shaped = shaped.replacingOccurrences(of: #"-{2,}"#, with: "-", options: .regularExpression)
            shaped = shaped.replacingOccurrences(of: #" +"#, with: " ", options: .regularExpression)
            return shaped.trimmingCharacters(in: .whitespaces)
        }.filter { !$0.isEmpty }
    }
}

extension Readme {
    /// Arguments that only shorten a latency sample's run: the figures change, the shape does not.
    package static let shortRun = ["--duration", "0.6", "--warmup", "0"]

    /// For each block marked `key`, the shape of what `run` prints for its commands (in turn),
    /// against the shape of the block: (the commands, what membench printed, the block) for
    /// each block whose shape differs. `run` gets one command's words, `membench` first.
    package static func outputsThatDiffer(marked key: String, run: ([String]) throws -> String) throws
        -> [(commands: String, printed: [String], sample: [String])] {
        var differ: [(String, [String], [String])] = []
        for (commands, body) in try blocks(marked: key) {
            var printed: [String] = []
            for command in commands.components(separatedBy: " ; ") {
                printed += shape(try run(command.split(separator: " ").map(String.init)))
            }
            if printed != shape(body) { differ.append((commands, printed, shape(body))) }
        }
        return differ
    }
}
