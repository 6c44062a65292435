import ArgumentParser
import Foundation
import ShipyardCore
import ShipyardDaemon

/// Where the daemon is: its socket (`--socket`, else `SHIPYARD_SOCKET`, else the state
/// directory's own, else systemd's `/run/shipyardd/shipyardd.sock`) and its state directory
/// (`--state-dir`, else `SHIPYARD_STATE_DIR`, else the default).
struct StateOptions: ParsableArguments {
    @Option(name: .customLong("state-dir"), help: "The daemon's state directory (env SHIPYARD_STATE_DIR; default /var/lib/shipyardd).")
    var stateDir: String?

    @Option(
        name: .customLong("socket"),
        help: "shipyardd's socket (env SHIPYARD_SOCKET; default <state-dir>/shipyardd.sock when the daemon made its own, else /run/shipyardd/shipyardd.sock).")
    var socket: String?

    var state: StateDirectory {
        StateDirectory(stateDir ?? ProcessInfo.processInfo.environment["SHIPYARD_STATE_DIR"] ?? DaemonConfig.defaultStateDirectory)
    }

    var socketPath: String {
        LocalAPI.socketPath(explicit: socket, environment: ProcessInfo.processInfo.environment, state: state)
    }

    var client: LocalAPIClient { LocalAPIClient(path: socketPath) }

    /// The state directory, once it is known that this user may read it: a user outside the
    /// daemon's group is told so, and how to join it, rather than shown an empty list.
    func readable() throws -> StateDirectory {
        if let problem = state.accessProblem() { throw CLIError(problem) }
        return state
    }

    /// A read of the local API; nil when nothing answers on the socket (the daemon is stopped),
    /// so that the caller may read what it can without it.
    func get(_ target: String, timeout: Duration = .seconds(30)) throws -> LocalAPIClient.Response? {
        do {
            let response = try client.get(target, timeout: timeout)
            guard response.status == 200 else { throw CLIError(Self.message(response)) }
            return response
        } catch let failure as LocalAPIClient.Failure {
            if case .unreachable(let code) = failure, code == ENOENT || code == ECONNREFUSED { return nil }
            throw CLIError(explain(failure, sent: "read"))
        }
    }

    /// A request to the daemon, answered on the same connection within `timeout` seconds; a
    /// refusal is thrown with the daemon's reason.
    func send(_ target: String, body: some Encodable, timeout: Int) throws -> CommandOutcome {
        let response: LocalAPIClient.Response
        do {
            response = try client.post(target, json: body, timeout: .seconds(timeout))
        } catch let failure as LocalAPIClient.Failure {
            throw CLIError(explain(failure, sent: "request", timeout: timeout))
        }
        guard let outcome = try? JSON.decode(Answer.self, from: response.body) else {
            throw CLIError("shipyardd answered \(response.status) without saying why: \(Untrusted.printable(String(decoding: response.body.prefix(300), as: UTF8.self), limit: 300))")
        }
        guard outcome.ok, response.status == 200 else { throw CLIError(outcome.message) }
        var answer = CommandOutcome(id: "", ok: true, message: outcome.message, context: outcome.context)
        answer.warnings = outcome.warnings
        return answer
    }

    /// `{"ok","message","context"}`: every answer of the local API to a request.
    struct Answer: Decodable {
        var ok: Bool
        var message: String
        var context: String?
        var warnings: [String]?
    }

    static func message(_ response: LocalAPIClient.Response) -> String {
        if let answer = try? JSON.decode(Answer.self, from: response.body) { return answer.message }
        return "shipyardd answered \(response.status)"
    }

    /// What went wrong on the way to the daemon, and what to do about it.
    func explain(_ failure: LocalAPIClient.Failure, sent what: String, timeout: Int? = nil) -> String {
        let path = socketPath
        switch failure {
        case .unreachable(let code) where code == ENOENT:
            return "no shipyardd socket at \(path): is shipyardd running? (systemctl status shipyardd; a shipyardd started by hand listens on <state directory>/shipyardd.sock: give --state-dir or --socket)"
        case .unreachable(let code) where code == ECONNREFUSED:
            return "shipyardd is not running: nothing answers on \(path) (systemctl status shipyardd, then sudo systemctl start shipyardd)"
        case .unreachable(let code) where code == EACCES || code == EPERM:
            var info = stat()
            let found = stat(path, &info) == 0 ? info : stat(state.root, &info) == 0 ? info : nil
            return StateDirectory.notInGroup(path, info: found)
        case .unreachable(let code):
            return "cannot reach shipyardd at \(path): \(String(cString: strerror(code)))"
        case .noAnswer(let sent):
            let seconds = timeout.map { "\($0)s" } ?? "the time allowed"
            if sent, what == "request" {
                // A request handed over while the daemon restarts waits in the socket's queue
                // and is applied when the daemon takes it: say only what is true.
                return "no answer from shipyardd within \(seconds): the request was handed over and may still be applied when shipyardd takes it (is it starting? systemctl status shipyardd); check what happened (shipyardctl sequences, shipyardctl approvals) before you try again"
            }
            return "shipyardd did not answer within \(seconds) on \(path) (is it starting, or stuck? systemctl status shipyardd)"
        case .broken(let reason):
            return "\(reason) (systemctl status shipyardd)"
        }
    }
}

/// One vocabulary for every command that prints: `table` for people, `json` for scripts
/// (`text`, what `lint` once called its lines, is taken as `table`).
enum OutputFormat: String, ExpressibleByArgument, CaseIterable {
    case table, json

    init?(argument: String) {
        switch argument {
        case "table", "text": self = .table
        case "json": self = .json
        default: return nil
        }
    }

    static let help = ArgumentHelp("table (for people) or json (for scripts).", valueName: "format")
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

/// A query string, each value percent-encoded.
enum Query {
    static func string(_ items: [(String, String?)]) -> String {
        var allowed = CharacterSet.alphanumerics
        allowed.insert(charactersIn: "-._~")
        let parts = items.compactMap { key, value in
            value.map { "\(key)=\($0.addingPercentEncoding(withAllowedCharacters: allowed) ?? "")" }
        }
        return parts.isEmpty ? "" : "?" + parts.joined(separator: "&")
    }

    static func path(_ segment: String) -> String {
        var allowed = CharacterSet.alphanumerics
        allowed.insert(charactersIn: "-._~")
        return segment.addingPercentEncoding(withAllowedCharacters: allowed) ?? segment
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
