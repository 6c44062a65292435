import Foundation
import ShipyardCore

/// One person's approval of a gate that needs several: recorded as it comes (who, when, why, how)
/// in the delivery's context, beside Keptn's events.
struct ApprovalVote: Codable, Sendable, Equatable {
    var by: String
    /// The account behind `by`, when the host has one (kept beside the name).
    var uid: UInt32?
    var at: String
    var reason: String
    var via: String

    static let type = "sh.shipyard.approval.approved"
    /// A reminder sent to the notify program (so that a restart does not send it again).
    static let reminderType = "sh.shipyard.approval.reminded"

    var json: JSONValue {
        var object: [String: JSONValue] = ["by": .string(by), "at": .string(at), "reason": .string(reason), "via": .string(via)]
        if let uid { object["uid"] = .number(Double(uid)) }
        return .object(object)
    }

    init(by: String, uid: UInt32? = nil, at: String, reason: String, via: String) {
        self.by = by
        self.uid = uid
        self.at = at
        self.reason = reason
        self.via = via
    }

    init?(_ event: KeptnEvent) {
        guard event.type == Self.type, let vote = event.data["approval"], let by = vote["by"]?.string else { return nil }
        self.init(by: by, uid: vote["uid"]?.number.map { UInt32(exactly: $0) } ?? nil, at: vote["at"]?.string ?? event.time, reason: vote["reason"]?.string ?? "", via: vote["via"]?.string ?? "cli")
    }
}

/// The rules of an approval policy, apart from the record and the clock: who may decide, who
/// started the delivery, what one more approval does.
enum ApprovalRules {
    /// The person behind a `source` (`shipyardctl/alice`, `web/alice`, `shipyardctl/alice/checker`).
    static func person(_ source: String?) -> String? {
        guard let source else { return nil }
        let parts = source.split(separator: "/", omittingEmptySubsequences: false)
        guard parts.count >= 2, parts[0] == "shipyardctl" || parts[0] == "web", !parts[1].isEmpty else { return nil }
        return String(parts[1])
    }

    enum Verdict: Equatable {
        case refused(String)
        /// Recorded; `of` more are needed.
        case counted(approvals: [String], of: Int)
        /// Enough people approved: the gate opens.
        case approved(approvals: [String])
    }

    /// What an approval by `user` does under `policy`, given the approvals so far.
    static func approve(
        user: String, policy: DaemonConfig.ApprovalPolicy, votes: [ApprovalVote], triggeredBy: String?, stage: String, project: String
    ) -> Verdict {
        let so = summary(votes.map(\.by), required: policy.required)
        if !policy.allowSelfApproval, let origin = person(triggeredBy), origin == user {
            return .refused("\(user) cannot approve their own delivery (\(user) triggered it; allowSelfApproval is false for \(policy.scope)); another approver must\(votes.isEmpty ? "" : " (\(so))")")
        }
        if votes.contains(where: { $0.by == user }) {
            return .refused("already approved by you (\(so)); it counts once, another approver must")
        }
        let approvals = votes.map(\.by) + [user]
        return approvals.count >= policy.required ? .approved(approvals: approvals) : .counted(approvals: approvals, of: policy.required)
    }

    /// "1 of 2 approvals: alice".
    static func summary(_ approvals: [String], required: Int) -> String {
        "\(approvals.count) of \(required) approvals" + (approvals.isEmpty ? "" : ": " + approvals.joined(separator: ", "))
    }

    /// Who may still approve: the policy's approvers, less those who did and, unless allowed,
    /// the person who started the delivery.
    static func stillMay(_ approvers: DaemonConfig.Approvers?, votes: [ApprovalVote], policy: DaemonConfig.ApprovalPolicy, triggeredBy: String?) -> String {
        guard let approvers else { return "anyone who may send requests" }
        var excluded = Set(votes.map(\.by))
        if !policy.allowSelfApproval, let origin = person(triggeredBy) { excluded.insert(origin) }
        let users = approvers.users.filter { !excluded.contains($0) }
        var parts: [String] = []
        if !users.isEmpty { parts.append("users " + users.joined(separator: ", ")) }
        if !approvers.groups.isEmpty { parts.append("groups " + approvers.groups.joined(separator: ", ")) }
        let who = parts.isEmpty ? "nobody" : parts.joined(separator: "; ")
        return excluded.isEmpty ? who : who + " (not \(excluded.sorted().joined(separator: ", ")))"
    }
}
