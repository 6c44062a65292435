import ArgumentParser
import Foundation

@main
struct Shipyardctl: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "shipyardctl",
        abstract: "Lint shipyards, trigger deliveries and resolve approvals for shipyardd.",
        version: ShipyardVersion.current,
        subcommands: [Lint.self, Status.self, Sync.self, Trigger.self, Sequences.self, SequenceDetail.self, Events.self, Pause.self, Resume.self, Abort.self, Send.self, Approvals.self, Approve.self, Reject.self, EvaluationsCommand.self, HTPasswd.self]
    )

    /// Exit codes are part of the contract: 0 success, 1 the command's own failure (a lint
    /// error, a refused request), 2 a usage error — as with most Unix tools, not
    /// ArgumentParser's default 64.
    static func main() async {
        do {
            var command = try parseAsRoot()
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
