import ArgumentParser
import Foundation
import ShipyardCore

@main
struct Shipyardctl: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "shipyardctl",
        abstract: "Lint shipyards, trigger deliveries and resolve approvals for shipyardd.",
        version: ShipyardVersion.current,
        subcommands: [Lint.self, Status.self, Sync.self, Trigger.self, Sequences.self, SequenceDetail.self, Events.self, Pause.self, Resume.self, Abort.self, Send.self, Approvals.self, Approve.self, Reject.self, EvaluationsCommand.self, HTPasswd.self, APIToken.self]
    )

    /// Exit codes are part of the contract: 0 success, 1 the command's own failure (a lint
    /// error, a refused request), 2 a usage error — as with most Unix tools, not
    /// ArgumentParser's default 64.
    static func main() async {
        var arguments = Array(CommandLine.arguments.dropFirst())
        if !(arguments.first?.hasPrefix("---") ?? false) {  // the shell asking for completions
            if let unknown = CommandLineShape.unknownSubcommand(arguments, in: Self.self) {
                FileHandle.standardError.write(Data("shipyardctl: \(unknown)\n".utf8))
                Foundation.exit(2)
            }
            arguments = CommandLineShape.movingGlobalOptions(arguments, in: Self.self)
        }
        do {
            var command = try parseAsRoot(arguments)
            if var asyncCommand = command as? any AsyncParsableCommand {
                try await asyncCommand.run()
            } else {
                try command.run()
            }
        } catch {
            if exitCode(for: error) == .validationFailure {
                FileHandle.standardError.write(Data((fullMessage(for: error) + "\n").utf8))
                Foundation.exit(2)
            }
            exit(withError: error)
        }
    }
}

enum ShipyardVersion {
    static let current = "0.1.0"
}

/// What ArgumentParser leaves to us: options that belong to every command given before the
/// subcommand (`shipyardctl --state-dir DIR sequences`), and a mistyped subcommand answered with
/// the one that was meant rather than "unexpected argument".
enum CommandLineShape {
    /// Options every command that talks to the daemon takes, each with a value.
    static let globalOptions = ["--state-dir", "--socket"]

    /// The arguments with global options given before the subcommand moved to just after it.
    static func movingGlobalOptions(_ arguments: [String], in root: any ParsableCommand.Type) -> [String] {
        var globals: [String] = []
        var rest = arguments[...]
        while let first = rest.first {
            if globalOptions.contains(first), rest.count >= 2 {
                globals += rest.prefix(2)
                rest = rest.dropFirst(2)
            } else if globalOptions.contains(where: { first.hasPrefix($0 + "=") }) {
                globals.append(first)
                rest = rest.dropFirst()
            } else {
                break
            }
        }
        guard !globals.isEmpty else { return arguments }
        var path: [String] = []
        var command = root
        while let next = rest.first, let sub = subcommand(named: next, of: command) {
            path.append(next)
            rest = rest.dropFirst()
            command = sub
        }
        return path + globals + rest
    }

    /// "unknown command 'sequnce'; did you mean 'sequence'?" for a word where a subcommand
    /// belongs that names none; nil when the arguments are ArgumentParser's to judge.
    static func unknownSubcommand(_ arguments: [String], in root: any ParsableCommand.Type) -> String? {
        var rest = arguments[...]
        var command = root
        var path = [root.configuration.commandName ?? "shipyardctl"]
        while true {
            while let first = rest.first, globalOptions.contains(where: { first == $0 || first.hasPrefix($0 + "=") }) {
                rest = rest.dropFirst(first.contains("=") ? 1 : 2)
            }
            let subcommands = command.configuration.subcommands
            guard let word = rest.first, !word.hasPrefix("-"), !subcommands.isEmpty, command.configuration.defaultSubcommand == nil else { return nil }
            if word == "help" { return nil }
            guard let sub = subcommand(named: word, of: command) else {
                let names = subcommands.compactMap { $0.configuration.commandName ?? defaultName($0) }
                let close = names.map { ($0, distance(word, $0)) }.filter { $0.1 <= max(2, word.count / 3) || $0.0.hasPrefix(word) }
                    .sorted { $0.1 < $1.1 }.map { "'\($0.0)'" }
                let printable = Untrusted.printable(word, limit: 60)
                let hint = close.isEmpty ? "" : "; did you mean \(close.prefix(3).joined(separator: " or "))?"
                return "unknown command '\(printable)'\(hint) (\(path.joined(separator: " ")) --help lists them)"
            }
            path.append(word)
            rest = rest.dropFirst()
            command = sub
        }
    }

    static func subcommand(named name: String, of command: any ParsableCommand.Type) -> (any ParsableCommand.Type)? {
        command.configuration.subcommands.first { ($0.configuration.commandName ?? defaultName($0)) == name }
    }

    /// ArgumentParser's name for a command without commandName: its type name, lowercased with dashes.
    static func defaultName(_ command: any ParsableCommand.Type) -> String {
        command._commandName
    }

    /// Edit distance (Levenshtein), for short words.
    static func distance(_ a: String, _ b: String) -> Int {
        let a = Array(a), b = Array(b)
        guard !a.isEmpty else { return b.count }
        guard !b.isEmpty else { return a.count }
        var previous = Array(0...b.count)
        for i in 1...a.count {
            var current = [i] + Array(repeating: 0, count: b.count)
            for j in 1...b.count {
                current[j] = min(previous[j] + 1, current[j - 1] + 1, previous[j - 1] + (a[i - 1] == b[j - 1] ? 0 : 1))
            }
            previous = current
        }
        return previous[b.count]
    }
}
