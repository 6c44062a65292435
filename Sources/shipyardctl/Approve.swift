import ArgumentParser
import Foundation
import ShipyardDaemon

struct Approve: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Approve a pending approval: the sequence goes on with its next task.")
    @OptionGroup var options: StateOptions
    @OptionGroup var request: RequestOptions
    @Argument(help: "The approval's id, or a unique prefix of it (shipyardctl approvals lists them).") var id: String
    @Option(help: "Why (kept in the event record).") var reason: String?

    func run() async throws {
        try await Self.failing { print(Output.safe(try await options.send(decision(.approve, id, reason), timeout: request.timeout).message)) }
    }
}

struct Reject: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Reject a pending approval: the sequence ends with result fail (which can fire rollback).")
    @OptionGroup var options: StateOptions
    @OptionGroup var request: RequestOptions
    @Argument(help: "The approval's id, or a unique prefix of it.") var id: String
    @Option(help: "Why (required; kept in the event record).") var reason: String

    func validate() throws {
        if reason.trimmingCharacters(in: .whitespaces).isEmpty { throw ValidationError("--reason must say why") }
    }

    func run() async throws {
        try await Self.failing { print(Output.safe(try await options.send(decision(.reject, id, reason), timeout: request.timeout).message)) }
    }
}

private func decision(_ kind: SpoolRequest.Kind, _ id: String, _ reason: String?) -> SpoolRequest {
    var request = SpoolRequest(kind: kind)
    request.approval = id
    request.reason = reason
    return request
}
