import ArgumentParser
import Foundation

/// The rules of membench's command line that the argument parser leaves open: a flag given
/// twice is refused (the parser keeps the last one), and the parser's own messages are put in
/// membench's form, `<flag>: <reason>`.
enum CommandLineRules {
    /// The parts of the parser's description of a command (its `--experimental-dump-help`
    /// JSON) that say which flags a command takes and whether they take a value.
    struct Description: Decodable {
        struct Command: Decodable {
            var arguments: [Argument]?
        }
        struct Argument: Decodable {
            struct Name: Decodable {
                var kind: String
                var name: String
            }
            var kind: String
            var names: [Name]?
            var preferredName: Name?
        }
        var command: Command
    }

    /// Refuses any flag given more than once among `arguments` (the command line without the
    /// program's name), by the flags of the subcommand they name (or the default one). Every
    /// flag takes one value; a list is one value with commas (`--threads 1,2`).
    static func refuseRepeats(_ arguments: [String], root: ParsableCommand.Type) throws {
        var rest = arguments[...]
        var command = root.configuration.defaultSubcommand ?? root
        if let first = rest.first, let named = root.configuration.subcommands.first(where: { $0._commandName == first }) {
            command = named
            rest = rest.dropFirst()
        }
        guard let description = try? JSONDecoder().decode(Description.self, from: Data(command._dumpHelp().utf8)) else { return }
        var flags: [String: (shown: String, takesValue: Bool)] = [:]
        for argument in description.command.arguments ?? [] where argument.kind != "positional" {
            let names = (argument.names ?? []).map { ($0.kind == "long" ? "--" : "-") + $0.name }
            guard let shown = argument.preferredName.map({ ($0.kind == "long" ? "--" : "-") + $0.name }) ?? names.first,
                  !["--help", "-h", "--version"].contains(shown) else { continue }
            for name in names { flags[name] = (shown, argument.kind == "option") }
        }
        var seen: Set<String> = []
        var index = rest.startIndex
        while index < rest.endIndex {
            let token = rest[index]
            index += 1
            if token == "--" { break }
            guard token.hasPrefix("-"), let flag = flags[String(token.prefix { $0 != "=" })] else { continue }
            guard seen.insert(flag.shown).inserted else {
                throw ValidationError("\(flag.shown): given more than once; give a flag once (a list is one value with commas, such as 1,2)")
            }
            if flag.takesValue && !token.contains("=") { index += 1 }
        }
    }

    /// The parser's message (all its lines) for a value it could not read, a value missing or
    /// an unknown flag, in membench's form, one line; any other message's first line as it is.
    static func reworded(_ full: String) -> String {
        let lines = full.split(separator: "\n").map(String.init)
        let message = lines.first ?? full
        if let match = message.firstMatch(of: /^The value '(.*)' is invalid for '(-[^ ']+)(?: <([^>]*)>)?'(.*)$/) {
            let value = match.1, flag = match.2, kind = match.3.map(String.init) ?? "", rest = match.4
            // The choices: "'a', 'b' or 'c'", "'a' and 'b'" (two), or one per line after
            // "the following:" (six or more).
            var choices: [String] = []
            if rest.contains("Please provide one of the following:") {
                choices = lines.dropFirst().compactMap { $0.firstMatch(of: /^\s*- ([^:\s]+)/).map { String($0.1) } }
            } else if let list = rest.firstMatch(of: /Please provide one of (.*)\.$/) {
                choices = list.1.matches(of: /'([^']*)'/).map { String($0.1) }
            }
            if !choices.isEmpty {
                return "\(flag): '\(value)' is not one of \(choices.joined(separator: ", "))"
            }
            switch kind {
            case "size": return "\(flag): '\(value)' is not a size: a whole number of bytes, or with B, KiB, MiB or GiB (256MiB)"
            case "time": return "\(flag): '\(value)' is not a time: seconds, or a number with s, ms, us or ns (500ms)"
            default: return "\(flag): '\(value)' is not a whole number"
            }
        }
        if let match = message.firstMatch(of: /^Missing value for '(-[^ ']+)[^']*'/) {
            return "\(match.1): needs a value"
        }
        if let match = message.firstMatch(of: /^Unknown option '(-[^']+)'/) {
            return "\(match.1): not a flag of this command (see --help)"
        }
        if let match = message.firstMatch(of: /^Unexpected arguments? (.*)$/) {
            return "\(match.1): not a flag or a flag's value (a list is one value with commas, such as 1,2)"
        }
        return message
    }
}
