public import Foundation

/// Users and groups allowed to do something (approve, send events, pause/resume/abort), and
/// the roles of API tokens (`role:NAME`) where a program may act (send events, control).
public struct Approvers: Sendable, Equatable {
    public var users: [String]
    public var groups: [String]
    /// API token roles: a caller named `role:NAME` (never a person; no account or group has a
    /// `:` in its name, and web names with one are refused).
    public var roles: [String] = []

    public init(users: [String], groups: [String], roles: [String] = []) {
        self.users = users
        self.groups = groups
        self.roles = roles
    }

    public func admits(user: String, groups memberOf: Set<String>) -> Bool {
        if user.hasPrefix(Self.rolePrefix) { return roles.contains(String(user.dropFirst(Self.rolePrefix.count))) }
        return users.contains(user) || groups.contains(where: memberOf.contains)
    }

    /// How a role's caller is named: `role:job-executor`.
    public static let rolePrefix = "role:"

    public var description: String {
        "users [\(users.joined(separator: ", "))] and groups [\(groups.joined(separator: ", "))]" + (roles.isEmpty ? "" : " and roles [\(roles.joined(separator: ", "))]")
    }
}

/// One entry of `approvalPolicies`: matched by project and stage (either left out matches
/// all); the most specific entry that matches wins.
public struct ApprovalPolicy: Sendable, Equatable {
    public var project: String?
    public var stage: String?
    /// Who may approve or reject this gate; nil: the config's `approvers`.
    public var approvers: Approvers?
    /// Distinct people who must approve.
    public var required = 1
    /// Whether the person who started the delivery may approve it.
    public var allowSelfApproval = false
    /// When it passes, the approval is declined with reason "expired".
    public var expireAfter: Duration?
    /// The notify program is told again at this interval while the approval waits.
    public var remindAfter: Duration?

    public init(project: String? = nil, stage: String? = nil, approvers: Approvers? = nil, required: Int = 1) {
        self.project = project
        self.stage = stage
        self.approvers = approvers
        self.required = required
    }

    /// 3: project and stage, 2: project, 1: stage, 0: every gate.
    public var specificity: Int { (project != nil ? 2 : 0) + (stage != nil ? 1 : 0) }

    public func matches(project: String, stage: String) -> Bool {
        (self.project == nil || self.project == project) && (self.stage == nil || self.stage == stage)
    }

    public var scope: String {
        switch (project, stage) {
        case let (project?, stage?): return "\(stage) of \(project)"
        case let (project?, nil): return "project \(project)"
        case let (nil, stage?): return stage
        case (nil, nil): return "every gate"
        }
    }
}
