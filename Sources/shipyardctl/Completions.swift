import ArgumentParser
import Foundation
import ShipyardCore
import ShipyardDaemon

/// Dynamic completions: the shell asks `shipyardctl` for candidates as the user presses Tab.
/// They come from the running daemon, quickly or not at all: a completion never waits more than
/// a second and never prints an error into the user's command line.
enum Completions {
    /// Contexts of the newest and every active sequence.
    @Sendable static func contexts(_ arguments: [String], _ index: Int, _ prefix: String) -> [String] {
        let rows = read("/api/v1/sequences?limit=50", arguments, as: [SequenceSummary].self) ?? []
        var seen = Set<String>()
        return rows.reversed().map(\.context).filter { $0.hasPrefix(prefix) && seen.insert($0).inserted }
    }

    /// Ids of the approvals waiting for a person.
    @Sendable static func approvals(_ arguments: [String], _ index: Int, _ prefix: String) -> [String] {
        (read("/api/v1/approvals", arguments, as: [ApprovalRequest].self) ?? []).map(\.id).filter { $0.hasPrefix(prefix) }
    }

    /// The daemon's answer, for the state directory or socket on the command line being completed.
    static func read<T: Decodable>(_ target: String, _ arguments: [String], as type: T.Type) -> T? {
        var options = StateOptions()
        options.stateDir = value(of: "--state-dir", in: arguments)
        options.socket = value(of: "--socket", in: arguments)
        guard let response = try? options.client.get(target, timeout: .seconds(1)), response.status == 200 else { return nil }
        return try? JSON.decode(T.self, from: response.body)
    }

    static func value(of option: String, in arguments: [String]) -> String? {
        for (index, argument) in arguments.enumerated() {
            if argument.hasPrefix(option + "=") { return String(argument.dropFirst(option.count + 1)) }
            if argument == option, index + 1 < arguments.count { return arguments[index + 1] }
        }
        return nil
    }
}
