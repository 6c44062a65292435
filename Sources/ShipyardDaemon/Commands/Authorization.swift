import Foundation
import ShipyardCore

/// Who may do what, by the config in force: the one place each way in (the local socket, the
/// web view, and next Keptn's API) is judged. It answers with the refusal to give, or nil.
///
/// Triggering and `sync` are open to whoever reaches the daemon (the socket is the group's).
/// Counting approvals (one per account, self-approval, the accounts as they are now) is a rule
/// of the gate, not of the caller: `ApprovalRules` in ShipyardCore, applied by the approval desk.
struct Authorization {
    let config: DaemonConfig

    /// pause, resume, abort: stopping a delivery is as much a decision as a rejection, so the
    /// approvers make it, unless `sequenceControl` names who may.
    func control(_ caller: Caller, verb: String) -> String? {
        let (allowed, list) = config.sequenceControl.map { ($0, "sequenceControl") } ?? config.approvers.map { ($0, "approvers") } ?? (nil, "")
        guard let allowed, !caller.isAdministrator, !allowed.admits(user: caller.user, groups: caller.groups) else { return nil }
        return "\(caller.user) may not \(verb) sequences: \(list) in the config allows \(allowed.description)"
    }

    /// Whether a web user may pause, resume, abort and trigger: someone sequenceControl (else
    /// approvers) names. Without either list the web view controls nothing: over the socket
    /// every member of the group may, but a web sign-in is not a member of anything.
    func mayControl(user: String, groups: Set<String>) -> Bool {
        guard let allowed = config.sequenceControl ?? config.approvers else { return false }
        return allowed.admits(user: user, groups: groups)
    }

    /// `control` for a web caller: closed without a list naming who may.
    func webControl(_ caller: Caller, verb: String) -> String? {
        guard config.sequenceControl != nil || config.approvers != nil else {
            return "\(verb) is closed \(caller.via == .api ? "to API tokens" : "in the web view") on this host: no sequenceControl or approvers in the config name who may (shipyardctl \(verb) over the socket works for the group's members)"
        }
        return control(caller, verb: verb)
    }

    /// `send event`: closed unless `eventSenders` names who may (root and the daemon's user may).
    func sendEvents(_ caller: Caller) -> String? {
        if caller.isAdministrator { return nil }
        guard let senders = config.eventSenders else {
            return "send event is closed on this host: no eventSenders in the config (add 'eventSenders: {users: [\(caller.user)]}' to let \(caller.user) answer external tasks)"
        }
        guard !senders.admits(user: caller.user, groups: caller.groups) else { return nil }
        return "\(caller.user) may not send events: eventSenders in the config allows \(senders.description)"
    }

    /// `evaluations invalidate`: what later quality gates compare with is as much a decision as
    /// an approval, so the approvers make it.
    func invalidate(_ caller: Caller) -> String? {
        guard let approvers = config.approvers, !caller.isAdministrator, !approvers.admits(user: caller.user, groups: caller.groups) else { return nil }
        return "\(caller.user) may not invalidate evaluations: approvers are \(approvers.description)"
    }

    /// Deciding a gate of this stage: its policy's approvers, else the config's.
    func decide(user: String, groups: Set<String>, project: String, stage: String) -> String? {
        let policy = config.approvalPolicy(project: project, stage: stage)
        guard let approvers = policy?.approvers ?? config.approvers, !approvers.admits(user: user, groups: groups) else { return nil }
        return policy.map { "\(user) may not decide \($0.scope): its approvers are \(approvers.description)" }
            ?? "\(user) may not resolve approvals: approvers are \(approvers.description)"
    }

    func rights(user: String, groups: Set<String>) -> DecisionRights {
        DecisionRights(authorization: self, user: user, groups: groups)
    }
}

/// Which gates a user may decide, by the config as it is now (the web shows buttons by it; each
/// decision is checked again when it is made).
public struct DecisionRights: Sendable {
    let authorization: Authorization
    let user: String
    let groups: Set<String>

    /// Pause, resume, abort, and trigger from the web view.
    public var mayControl: Bool { authorization.mayControl(user: user, groups: groups) }

    public func may(project: String, stage: String) -> Bool {
        authorization.decide(user: user, groups: groups, project: project, stage: stage) == nil
    }

    /// Whether this user may decide any gate at all: someone named by any gate's policy (or the
    /// fallback approvers).
    public var any: Bool {
        let config = authorization.config
        if !config.approvalPolicies.isEmpty {
            return config.approvalPolicies.contains { ($0.approvers ?? config.approvers)?.admits(user: user, groups: groups) ?? true }
        }
        return config.approvers?.admits(user: user, groups: groups) ?? true
    }
}
