import ArgumentParser
import Foundation
import ShipyardDaemon

struct Approve: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Approve a pending approval: the sequence goes on with its next task.")
    @OptionGroup var options: StateOptions
    @OptionGroup var request: RequestOptions
    @Argument(help: "The approval's id, or a unique prefix of it (shipyardctl approvals lists them).", completion: .custom(Completions.approvals)) var id: String
    @Option(help: "Why (kept in the event record).") var reason: String?
    @OptionGroup var waiting: WaitOptions

    func run() async throws {
        try await Self.failing {
            // The delivery to follow afterwards: the pending approval this id names.
            let pending = waiting.wait ? try pendingApproval(id, options: options) : nil
            print(Output.safe(try decide("approve", id, reason, options: options, timeout: request.timeout)))
            if let pending {
                fflush(nil)
                try await DeliveryWait.follow(pending.context, options: options, limit: waiting.limit, onlyNew: true)
            }
        }
    }
}

struct Reject: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Reject a pending approval: the sequence ends with result fail (which can fire rollback).")
    @OptionGroup var options: StateOptions
    @OptionGroup var request: RequestOptions
    @Argument(help: "The approval's id, or a unique prefix of it.", completion: .custom(Completions.approvals)) var id: String
    @Option(help: "Why (required; kept in the event record).") var reason: String

    func validate() throws {
        if reason.trimmingCharacters(in: .whitespaces).isEmpty { throw ValidationError("--reason must say why") }
    }

    func run() async throws {
        try await Self.failing { print(Output.safe(try decide("reject", id, reason, options: options, timeout: request.timeout))) }
    }
}

/// The pending approval an id or prefix names, as the daemon will resolve it.
private func pendingApproval(_ id: String, options: StateOptions) throws -> ApprovalRequest {
    guard let response = try options.get("/api/v1/approvals") else {
        throw CLIError(options.explain(.unreachable(errno: ECONNREFUSED), sent: "request"))
    }
    let matching = try RecordView.decode([ApprovalRequest].self, response).filter { $0.id.hasPrefix(id) }
    guard matching.count == 1, let found = matching.first else {
        throw CLIError(matching.isEmpty ? "no pending approval has the id \(id) (shipyardctl approvals lists them)"
            : "\(id) is ambiguous: it starts \(matching.map(\.id).joined(separator: ", ")); give more of the id")
    }
    return found
}

private func decide(_ verb: String, _ id: String, _ reason: String?, options: StateOptions, timeout: Int) throws -> String {
    // An empty id has no place in the request's path; the daemon judges every other prefix.
    if id.trimmingCharacters(in: .whitespaces).isEmpty {
        throw CLIError("give at least 4 characters of the approval's id, not \"\" (shipyardctl approvals lists them)")
    }
    return try options.send("/api/v1/approvals/\(Query.path(id))/\(verb)", body: ReasonBody(reason: reason), timeout: timeout).message
}
