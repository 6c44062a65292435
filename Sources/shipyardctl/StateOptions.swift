import ArgumentParser
import Foundation
import ShipyardCore
import ShipyardDaemon

/// Where the daemon's state directory is: `--state-dir`, else `SHIPYARD_STATE_DIR`, else the default.
struct StateOptions: ParsableArguments {
    @Option(name: .customLong("state-dir"), help: "The daemon's state directory (env SHIPYARD_STATE_DIR; default /var/lib/shipyardd).")
    var stateDir: String?

    var state: StateDirectory {
        StateDirectory(stateDir ?? ProcessInfo.processInfo.environment["SHIPYARD_STATE_DIR"] ?? DaemonConfig.defaultStateDirectory)
    }

    /// The state directory, once it is known that this user may read it (and drop requests
    /// into its spool): a user outside the daemon's group is told so, and how to join it, rather
    /// than shown an empty list.
    func readable(spool: Bool = false) throws -> StateDirectory {
        if let problem = state.accessProblem(needsSpool: spool) { throw CLIError(problem) }
        return state
    }
}

enum OutputFormat: String, ExpressibleByArgument, CaseIterable {
    case table, json
}

/// A failure the CLI reports in one line and exits 1 for.
struct CLIError: Error, CustomStringConvertible {
    var description: String

    init(_ description: String) {
        self.description = description
    }
}

/// What the CLI prints of the daemon's answers: each line escaped (an answer may quote a request's
/// content), the lines kept.
enum Output {
    static func safe(_ text: String) -> String {
        text.split(separator: "\n", omittingEmptySubsequences: false).map { Untrusted.printable(String($0), limit: 4000) }.joined(separator: "\n")
    }
}

extension ParsableCommand {
    /// Prints a CLIError as `shipyardctl: message` and exits 1; anything else as ArgumentParser would.
    static func failing(_ body: () async throws -> Void) async throws {
        do {
            try await body()
        } catch let error as CLIError {
            FileHandle.standardError.write(Data("shipyardctl: \(Output.safe(error.description))\n".utf8))
            throw ExitCode(1)
        }
    }
}
