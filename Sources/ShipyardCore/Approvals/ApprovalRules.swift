public import Foundation

/// One person's approval of a gate that needs several: recorded as it comes (who, when, why, how)
/// in the delivery's context, beside Keptn's events.
public struct ApprovalVote: Codable, Sendable, Equatable {
    public var by: String
    /// The account behind `by`, when the host has one (kept beside the name).
    public var uid: UInt32?
    public var at: String
    public var reason: String
    public var via: String

    public static let type = "sh.shipyard.approval.approved"
    /// A reminder sent to the notify program (so that a restart does not send it again).
    public static let reminderType = "sh.shipyard.approval.reminded"

    public var json: JSONValue {
        var object: [String: JSONValue] = ["by": .string(by), "at": .string(at), "reason": .string(reason), "via": .string(via)]
        if let uid { object["uid"] = .number(Double(uid)) }
        return .object(object)
    }

    public init(by: String, uid: UInt32? = nil, at: String, reason: String, via: String) {
        self.by = by
        self.uid = uid
        self.at = at
        self.reason = reason
        self.via = via
    }

    public init?(_ event: KeptnEvent) {
        guard event.type == Self.type, let vote = event.data["approval"], let by = vote["by"]?.string else { return nil }
        self.init(by: by, uid: vote["uid"]?.number.map { UInt32(exactly: $0) } ?? nil, at: vote["at"]?.string ?? event.time, reason: vote["reason"]?.string ?? "", via: vote["via"]?.string ?? "cli")
    }
}

/// A uid's account: its name, none (no such entry), or the lookup failed (an NSS source such as
/// sssd or LDAP did not answer), which must not be taken for "no such account".
public enum AccountLookup: Equatable, Sendable {
    case found(String)
    case none
    case failed(String)
}

/// A person as the record keeps them: the name they had then and, when the host has the
/// account, its uid. Names change (`usermod -l`); the uid names the same account throughout.
public struct Person: Equatable, Sendable {
    public var name: String
    public var uid: UInt32?

    public init(name: String, uid: UInt32?) {
        self.name = name
        self.uid = uid
    }

    /// The same account: by uid when both have one, otherwise by name (a web-only user).
    public func isSame(as other: Person) -> Bool {
        if let uid, let theirs = other.uid { return uid == theirs }
        return name == other.name
    }
}

extension ApprovalVote {
    public var person: Person { Person(name: by, uid: uid) }
}

/// The host's accounts as they are now: a uid's current name and a name's groups. The daemon
/// reads the host's databases each time a gate is counted, so a `gpasswd -d` or `usermod -l`
/// counts from the next count on, with no reload.
public struct AccountDirectory: Sendable {
    public var lookup: @Sendable (UInt32) -> AccountLookup
    public var groups: @Sendable (String) -> Set<String>

    public init(lookup: @escaping @Sendable (UInt32) -> AccountLookup, groups: @escaping @Sendable (String) -> Set<String>) {
        self.lookup = lookup
        self.groups = groups
    }

    /// The name a uid has now, or the name recorded when the lookup cannot say.
    public func currentName(_ uid: UInt32?, recorded: String) -> String {
        guard let uid, case .found(let name) = lookup(uid) else { return recorded }
        return name
    }
}

/// The rules of an approval policy, apart from the record and the clock: who may decide, who
/// started the delivery, which approvals count. One function (`tally`) decides which votes count;
/// a new vote, a reload, a start and the approval file all call it.
public enum ApprovalRules {
    /// The person behind a `source` (`shipyardctl/alice`, `web/alice`, `shipyardctl/alice/checker`).
    public static func person(_ source: String?) -> String? {
        guard let source else { return nil }
        let parts = source.split(separator: "/", omittingEmptySubsequences: false)
        guard parts.count >= 2, ["shipyardctl", "web", "api"].contains(parts[0]), !parts[1].isEmpty else { return nil }
        return String(parts[1])
    }

    /// One pending gate as its policy sees it now.
    public struct Gate: Sendable {
        public var policy: ApprovalPolicy
        /// The policy's approvers, or the config's; nil: anyone who may send requests.
        public var approvers: Approvers?
        /// Who started the delivery, when a person did.
        public var triggeredBy: Person?

        public init(policy: ApprovalPolicy, fallback: Approvers?, triggeredBy source: String?, uid: UInt32?) {
            self.policy = policy
            approvers = policy.approvers ?? fallback
            triggeredBy = ApprovalRules.person(source).map { Person(name: $0, uid: uid) }
        }
    }

    /// The approvals of a gate, counted under the policy in force and the accounts as they are now.
    public struct Tally: Equatable, Sendable {
        public struct SetAside: Equatable, Sendable {
            public var vote: ApprovalVote
            public var reason: String
        }

        public var counted: [ApprovalVote]
        public var setAside: [SetAside]
        public var required: Int

        public var isMet: Bool { counted.count >= required }
        /// "1 of 2 approvals: alice".
        public var summary: String { ApprovalRules.summary(counted.map(\.by), required: required) }
        /// "bob: bob is not an approver of production now (…)", one per vote that does not count.
        public var notCounted: [String] { setAside.map { "\($0.vote.by): \($0.reason)" } }
    }

    /// Which votes count: every vote re-checked, in the order they came, against the approvers
    /// (groups as they are now), self-approval and one vote per account.
    public static func tally(_ votes: [ApprovalVote], gate: Gate, accounts: AccountDirectory) -> Tally {
        var counted: [ApprovalVote] = []
        var setAside: [Tally.SetAside] = []
        for vote in votes {
            if let reason = whyNotCounted(vote, gate: gate, accounts: accounts, counted: counted) {
                setAside.append(Tally.SetAside(vote: vote, reason: reason))
            } else {
                counted.append(vote)
            }
        }
        return Tally(counted: counted, setAside: setAside, required: gate.policy.required)
    }

    /// A vote counts only under the name it was given with: the uid must still be that account.
    /// When the uid has another name now, the vote does not count: a renamed account may approve
    /// again (once, as one account), and a uid handed to a new account after `userdel` never
    /// inherits a departed person's approval.
    private static func whyNotCounted(_ vote: ApprovalVote, gate: Gate, accounts: AccountDirectory, counted: [ApprovalVote]) -> String? {
        if let uid = vote.uid {
            switch accounts.lookup(uid) {
            case .found(let name) where name == vote.by:
                break
            case .found(let name):
                return "uid \(uid) is \(name) now, not \(vote.by): an approval counts only under the name it was given with (a renamed account approves again)"
            case .none where vote.by == "uid \(uid)":
                break  // a caller the host has no name for, recorded by number
            case .none:
                return "no account has uid \(uid) (\(vote.by)) now"
            case .failed(let why):
                return "cannot look up uid \(uid) (\(vote.by)) now: \(why)"
            }
        }
        let name = vote.by
        if let approvers = gate.approvers, !approvers.admits(user: name, groups: accounts.groups(name)) {
            return "\(name) is not an approver of \(gate.policy.scope) now (approvers are \(approvers.description))"
        }
        if !gate.policy.allowSelfApproval, let origin = gate.triggeredBy, origin.isSame(as: vote.person) {
            return "\(name) triggered the delivery\(origin.name == name ? "" : " (as \(origin.name))") and allowSelfApproval is false for \(gate.policy.scope)"
        }
        if counted.contains(where: { $0.person.isSame(as: vote.person) }) {
            return "\(name) already approved; a person counts once"
        }
        return nil
    }

    public enum Verdict: Equatable {
        case refused(String)
        /// Recorded; more are needed.
        case counted(Tally)
        /// Enough people approved: the gate opens with the votes that count.
        case approved(Tally)
    }

    /// What one more approval does: the same count as every other, with the new vote last.
    public static func approve(_ vote: ApprovalVote, votes: [ApprovalVote], gate: Gate, accounts: AccountDirectory) -> Verdict {
        let before = tally(votes, gate: gate, accounts: accounts)
        let so = before.summary
        let user = vote.by
        if !gate.policy.allowSelfApproval, let origin = gate.triggeredBy, origin.isSame(as: vote.person) {
            return .refused("\(user) cannot approve their own delivery (\(origin.name) triggered it; allowSelfApproval is false for \(gate.policy.scope)); another approver must\(before.counted.isEmpty ? "" : " (\(so))")")
        }
        if before.counted.contains(where: { $0.person.isSame(as: vote.person) }) {
            return .refused("already approved by you (\(so)); it counts once, another approver must")
        }
        let after = tally(votes + [vote], gate: gate, accounts: accounts)
        if let mine = after.setAside.last, mine.vote == vote { return .refused(mine.reason) }
        return after.isMet ? .approved(after) : .counted(after)
    }

    /// "1 of 2 approvals: alice".
    public static func summary(_ approvals: [String], required: Int) -> String {
        "\(approvals.count) of \(required) approvals" + (approvals.isEmpty ? "" : ": " + approvals.joined(separator: ", "))
    }

    /// Who may still approve: the gate's approvers, less those whose approval counts and, unless
    /// allowed, the person who started the delivery.
    public static func stillMay(_ gate: Gate, tally: Tally, accounts: AccountDirectory) -> String {
        guard let approvers = gate.approvers else { return "anyone who may send requests" }
        var excluded = Set(tally.counted.map(\.by))
        if !gate.policy.allowSelfApproval, let origin = gate.triggeredBy {
            excluded.insert(accounts.currentName(origin.uid, recorded: origin.name))
        }
        let users = approvers.users.filter { !excluded.contains($0) }
        var parts: [String] = []
        if !users.isEmpty { parts.append("users " + users.joined(separator: ", ")) }
        if !approvers.groups.isEmpty { parts.append("groups " + approvers.groups.joined(separator: ", ")) }
        let who = parts.isEmpty ? "nobody" : parts.joined(separator: "; ")
        return excluded.isEmpty ? who : who + " (not \(excluded.sorted().joined(separator: ", ")))"
    }
}
