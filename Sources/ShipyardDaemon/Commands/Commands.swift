public import Foundation
import Logging
import ShipyardCore

/// The command layer: every request to change something (trigger, approve/reject, send event,
/// pause/resume/abort, invalidate, sync) comes here with the caller who sent it, from whichever
/// way in (the CLI over the local socket, the web view; Keptn's API next), and gets one answer.
/// Here, once: each caller's rate, who may do what (`Authorization`), the checks of what the
/// request holds, the log line with who asked, and the request metric. It then hands the
/// command to the orchestrator (or to the project watchers, for `sync`).
///
/// May touch: the orchestrator's commands, the config in force, the metrics. Never the record
/// or the state directory directly.
public actor Commands {
    var config: DaemonConfig
    /// Set once the record is read: until then commands are refused ("the daemon is starting").
    var orchestrator: Orchestrator?
    /// Polls now: the project watchers' answer to a `sync`.
    var sync: (@Sendable (CommandRequest) async -> CommandOutcome)?
    /// Why a project's newest shipyard was refused, if it was (the last good one runs meanwhile).
    var shipyardProblem: (@Sendable (String) async -> String?)?
    let metrics: DaemonMetrics
    let logger: Logger
    var limiter = RequestLimiter()
    var refusals = RefusalLog()
    /// Requests being handled now.
    private(set) var handling = 0
    /// On a standby of a shared record: hands the checked request to whoever leads (through the
    /// record's `requests`) and waits for its answer.
    var forward: (@Sendable (CommandRequest, Caller) async -> CommandOutcome)?

    init(config: DaemonConfig, metrics: DaemonMetrics, logger: Logger) {
        self.config = config
        self.metrics = metrics
        self.logger = logger
    }

    func attach(
        _ orchestrator: Orchestrator, sync: @escaping @Sendable (CommandRequest) async -> CommandOutcome,
        shipyardProblem: @escaping @Sendable (String) async -> String?
    ) {
        self.orchestrator = orchestrator
        self.sync = sync
        self.shipyardProblem = shipyardProblem
    }

    /// While standing by: commands go to the leader.
    func forwardWhileStandingBy(_ forward: @escaping @Sendable (CommandRequest, Caller) async -> CommandOutcome) {
        self.forward = forward
    }

    /// Whether this caller may answer tasks (and so register as an integration): eventSenders.
    public func mayAnswerTasks(_ caller: Caller) -> String? {
        authorization.sendEvents(caller)
    }

    /// A reloaded config: who may do what, from the next request on.
    func update(_ config: DaemonConfig) {
        self.config = config
    }

    var authorization: Authorization { Authorization(config: config) }

    /// Which gates this user may decide now (the web view's buttons).
    public func rights(user: String, groups: Set<String>) -> DecisionRights {
        authorization.rights(user: user, groups: groups)
    }

    /// One request from a caller: bounded in rate per user (callers the kernel named; the web
    /// view bounds its sign-ins itself), checked, applied, logged with who asked, and answered.
    /// `peer`: where a web request came from, for the log.
    public func perform(_ request: CommandRequest, as caller: Caller, peer: String? = nil) async -> CommandOutcome {
        handling += 1
        defer { handling -= 1 }
        let outcome: CommandOutcome
        // A forwarded request was admitted by its own host's limiter (uids are each host's own).
        if caller.via != .web, caller.host == nil, let wait = limiter.admit(caller.limitKey, exempt: caller.isAdministrator) {
            outcome = CommandOutcome(
                id: request.id, ok: false,
                message: "too many requests from \(caller.user): at most \(RequestLimiter.rate) a second (bursts of \(RequestLimiter.burst)); try again in \(wait)")
        } else if caller.via == .web, ![.approve, .reject, .pause, .resume, .abort, .trigger].contains(request.kind) {
            outcome = CommandOutcome(
                id: request.id, ok: false, message: "this request is taken over the local socket only, from the user the kernel names (shipyardctl)")
        } else if caller.via == .api, ![.trigger, .pause, .resume, .abort, .event, .approve, .reject].contains(request.kind) {
            outcome = CommandOutcome(
                id: request.id, ok: false, message: "this request is taken over the local socket only, from the user the kernel names (shipyardctl)")
        } else if caller.via != .cli, [.trigger, .pause, .resume, .abort].contains(request.kind),
            let refusal = authorization.webControl(caller, verb: request.kind.rawValue)
        {
            // A web user or an API token triggers and controls as sequenceControl (else the
            // approvers) names: neither is a member of the socket's group.
            outcome = CommandOutcome(id: request.id, ok: false, message: refusal)
        } else if let orchestrator {
            switch request.kind {
            case .sync:
                outcome = await sync?(request) ?? CommandOutcome(id: request.id, ok: false, message: "the daemon is starting")
            case .trigger:
                outcome = await trigger(request, caller: caller, orchestrator)
            case .pause, .resume, .abort:
                outcome = await control(request, caller: caller, orchestrator)
            case .event:
                outcome = await sendEvent(request, caller: caller, orchestrator)
            case .approve, .reject:
                outcome = await decide(request, caller: caller, orchestrator)
            case .invalidate:
                outcome = await invalidate(request, caller: caller, orchestrator)
            }
        } else if let forward {
            outcome = await forward(request, caller)
        } else {
            outcome = CommandOutcome(id: request.id, ok: false, message: "the daemon is starting")
        }
        note(request, caller: caller, outcome: outcome, peer: peer)
        return outcome
    }

    /// The log line and the metric of each request: the web's decisions as the web's, the rest
    /// as requests of the caller the kernel named (a flood of refusals is not a flood of lines).
    func note(_ request: CommandRequest, caller: Caller, outcome: CommandOutcome, peer: String?) {
        let kind = request.kind.rawValue
        if caller.via == .web {
            let decision = request.kind == .approve || request.kind == .reject
            metrics.request(decision ? "web-decision" : "web-command", outcome: outcome.ok ? "accepted" : "refused")
            let subject = request.approval ?? request.context ?? [request.project, request.service].compactMap { $0 }.joined(separator: "/")
            let what = "web: \(kind) \(Untrusted.printable(subject, limit: 200)) by \(caller.described)"
            if outcome.ok {
                logger.info("\(what): \(outcome.message)")
            } else {
                logger.warning("\(what) refused: \(outcome.message)", metadata: ["peer": "\(peer ?? "?")"])
            }
            return
        }
        metrics.request(caller.via == .api ? "api-\(kind)" : kind, outcome: outcome.ok ? "accepted" : "refused")
        let via = caller.via == .api ? "api request" : "request"
        if outcome.ok {
            logger.info("\(via) \(kind) accepted: \(outcome.message)", metadata: ["user": "\(caller.user)", "uid": "\(caller.uid.map(String.init) ?? "-")"])
        } else {
            refusals.note("\(via) \(kind) from \(caller.described) refused: \(outcome.message)", who: caller.limitKey, logger: logger)
        }
    }

    /// `shipyardctl evaluations invalidate`.
    func invalidate(_ request: CommandRequest, caller: Caller, _ orchestrator: Orchestrator) async -> CommandOutcome {
        if let refusal = authorization.invalidate(caller) { return CommandOutcome(id: request.id, ok: false, message: refusal) }
        let reason = request.reason?.trimmingCharacters(in: .whitespacesAndNewlines) ?? ""
        guard !reason.isEmpty else { return CommandOutcome(id: request.id, ok: false, message: "an invalidation needs a reason (--reason)") }
        do {
            return CommandOutcome(id: request.id, ok: true, message: try await orchestrator.invalidate(request.evaluationID ?? "", by: caller.user, reason: reason))
        } catch {
            return CommandOutcome(id: request.id, ok: false, message: error.message)
        }
    }

    /// `shipyardctl approve|reject`, or a page's buttons: the decision (who, when, why, how)
    /// becomes the approval's `.finished` event once the gate's approvers and its policy allow.
    func decide(_ request: CommandRequest, caller: Caller, _ orchestrator: Orchestrator) async -> CommandOutcome {
        let approve = request.kind == .approve
        if caller.isRole {
            return CommandOutcome(
                id: request.id, ok: false,
                message: "\(caller.user) may not decide approvals: an approval is a person's decision, and this API token is a program's role (use a user: token)")
        }
        let reason = request.reason?.trimmingCharacters(in: .whitespacesAndNewlines) ?? ""
        if !approve, reason.isEmpty {
            return CommandOutcome(id: request.id, ok: false, message: "a rejection needs a reason\(caller.via == .cli ? " (--reason)" : "")")
        }
        let decision = Decision(
            approve: approve, approval: request.approval ?? "", reason: reason, user: caller.user, uid: caller.uid, groups: caller.groups,
            via: caller.via.rawValue)
        // The gate's approvers are judged by the approval desk, under the orchestrator's config (the
        // policy the gate is counted by), with the same Authorization.
        let outcome = await orchestrator.decide(decision)
        return CommandOutcome(id: request.id, ok: outcome.ok, message: outcome.message, context: outcome.context)
    }
}

/// A person's decision on an approval, as the approval desk takes it: who (their name, the
/// account behind it, their groups on this host), what, why and how it came (`cli`, `web`).
public struct Decision: Sendable {
    public var approve: Bool
    public var approval: String
    public var reason: String?
    public var user: String
    /// The account behind the name, kept in the record beside it: the uid the kernel named
    /// (the local API), or the host's account of a web user's name (nil when it has none).
    public var uid: uid_t?
    /// The user's groups on this host.
    public var groups: Set<String>
    /// `cli` or `web`.
    public var via: String

    public init(approve: Bool, approval: String, reason: String?, user: String, uid: uid_t?, groups: Set<String>, via: String) {
        self.approve = approve
        self.approval = approval
        self.reason = reason
        self.user = user
        self.uid = uid
        self.groups = groups
        self.via = via
    }
}
