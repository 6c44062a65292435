import Synchronization
import Dispatch
public import Foundation
import Logging
import ShipyardCore
import ShipyardGit

/// The commands callers send (the CLI over the local socket, the web view): each checked
/// against the config for the caller the kernel named, applied, logged and answered.
extension Daemon {

    /// Who sent a request: the uid the kernel names at the other end of the socket (or the
    /// account a web sign-in names), resolved to a name and groups when the request comes.
    public struct Caller: Sendable {
        public var uid: uid_t
        public var user: String
        public var groups: Set<String>

        public init(uid: uid_t) {
            self.uid = uid
            user = Daemon.userName(uid)
            groups = Daemon.groupNames(uid)
        }
    }

    /// One request from a caller: bounded in rate per user, checked against the config's lists
    /// for that user, applied, logged with who asked, and answered.
    public func handle(_ request: CommandRequest, from caller: Caller) async -> CommandOutcome {
        let kind = request.kind.rawValue
        let outcome: CommandOutcome
        handling += 1
        defer { handling -= 1 }
        if let wait = limiter.admit(caller.uid, exempt: Self.isAdministrator(caller.uid)) {
            outcome = CommandOutcome(
                id: request.id, ok: false,
                message: "too many requests from \(caller.user): at most \(RequestLimiter.rate) a second (bursts of \(RequestLimiter.burst)); try again in \(wait)")
        } else {
            switch request.kind {
            case .sync:
                outcome = await sync(request)
            case .trigger, .pause, .resume, .abort, .event:
                outcome = await sequenceCommand(request, requester: caller.uid)
            case .approve, .reject:
                outcome = await decide(request, caller: caller)
            case .invalidate:
                outcome = await invalidate(request, requester: caller.uid)
            }
        }
        metrics.request(kind, outcome: outcome.ok ? "accepted" : "refused")
        if outcome.ok {
            logger.info("request \(kind) accepted: \(outcome.message)", metadata: ["user": "\(caller.user)", "uid": "\(caller.uid)"])
        } else {
            refusals.note("request \(kind) from \(caller.user) (uid \(caller.uid)) refused: \(outcome.message)", uid: caller.uid, logger: logger)
        }
        return outcome
    }

    /// Polls now, and answers once every project named has answered.
    func sync(_ request: CommandRequest) async -> CommandOutcome {
        let targets: [ProjectWatcher]
        if let name = request.project {
            guard let watcher = watchers[name] else {
                let known = config.projects.map(\.name).joined(separator: ", ")
                return CommandOutcome(id: request.id, ok: false, message: "no project \"\(name)\" (projects: \(known))")
            }
            targets = [watcher]
        } else {
            targets = Array(watchers.values)
        }
        guard !targets.isEmpty else { return CommandOutcome(id: request.id, ok: true, message: "no projects are configured") }
        let parts = await withCheckedContinuation { (continuation: CheckedContinuation<[CommandOutcome.Partial], Never>) in
            let collector = SyncCollector(expected: targets.count) { continuation.resume(returning: $0) }
            for watcher in targets {
                watcher.syncNow(honourBackoff: true) { partial in collector.add(partial) }
            }
        }
        return CommandOutcome(id: request.id, ok: parts.allSatisfy(\.ok), message: parts.map(\.message).sorted().joined(separator: "\n"))
    }

    /// `shipyardctl evaluations invalidate`: what later quality gates compare with is as much a
    /// decision as an approval, so the approvers make it.
    func invalidate(_ request: CommandRequest, requester: uid_t) async -> CommandOutcome {
        guard let orchestrator else { return CommandOutcome(id: request.id, ok: false, message: "the daemon is starting") }
        let user = Self.userName(requester)
        if let approvers = config.approvers, !Self.isAdministrator(requester), !approvers.admits(user: user, groups: Self.groupNames(requester)) {
            return CommandOutcome(id: request.id, ok: false, message: "\(user) may not invalidate evaluations: approvers are \(approvers.description)")
        }
        let reason = request.reason?.trimmingCharacters(in: .whitespacesAndNewlines) ?? ""
        guard !reason.isEmpty else { return CommandOutcome(id: request.id, ok: false, message: "an invalidation needs a reason (--reason)") }
        do {
            return CommandOutcome(id: request.id, ok: true, message: try await orchestrator.invalidate(request.evaluationID ?? "", by: user, reason: reason))
        } catch {
            return CommandOutcome(id: request.id, ok: false, message: error.message)
        }
    }

    /// `shipyardctl approve|reject`: the caller the kernel names, checked against `approvers`;
    /// the decision (who, when, why) becomes the approval's `.finished` event.
    func decide(_ request: CommandRequest, caller: Caller) async -> CommandOutcome {
        await decide(
            Decision(approve: request.kind == .approve, approval: request.approval ?? "", reason: request.reason, user: caller.user, uid: caller.uid, groups: caller.groups, via: "cli"),
            requestID: request.id)
    }

    /// A person's decision on an approval, from the CLI (the request file's owner) or the web
    /// (the logged-in user): checked against `approvers` the same way, recorded with who, when,
    /// why and how.
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

    /// Which gates a user may decide, by the config as it is now (the web shows buttons by it;
    /// each decision is checked again when it is made).
    public func decisionRights(user: String, groups: Set<String>) -> DecisionRights {
        DecisionRights(config: config, user: user, groups: groups)
    }

    public struct DecisionRights: Sendable {
        let config: DaemonConfig
        let user: String
        let groups: Set<String>

        public func may(project: String, stage: String) -> Bool {
            let policy = config.approvalPolicy(project: project, stage: stage)
            return (policy?.approvers ?? config.approvers)?.admits(user: user, groups: groups) ?? true
        }
    }

    /// Returns once the approval files agree with what the record says (see `Orchestrator.settled`).
    public func approvalsSettled() async {
        await orchestrator?.settled()
    }

    /// Whether this user may decide approvals at all (the web shows buttons only to them).
    public func mayDecide(user: String, groups: Set<String>) -> Bool {
        if !config.approvalPolicies.isEmpty {
            // Someone named by any gate's policy (or the fallback approvers) sees the buttons; each
            // decision is still checked against its own gate's policy.
            return config.approvalPolicies.contains { ($0.approvers ?? config.approvers)?.admits(user: user, groups: groups) ?? true }
        }
        return config.approvers?.admits(user: user, groups: groups) ?? true
    }

    public func decide(_ decision: Decision, requestID: String = CommandRequest.newID()) async -> CommandOutcome {
        guard let orchestrator else { return CommandOutcome(id: requestID, ok: false, message: "the daemon is starting") }
        let approve = decision.approve
        let reason = decision.reason?.trimmingCharacters(in: .whitespacesAndNewlines) ?? ""
        if !approve, reason.isEmpty {
            return CommandOutcome(id: requestID, ok: false, message: "a rejection needs a reason\(decision.via == "cli" ? " (--reason)" : "")")
        }
        var decision = decision
        decision.reason = reason
        let outcome = await orchestrator.decide(decision)
        return CommandOutcome(id: requestID, ok: outcome.ok, message: outcome.message, context: outcome.context)
    }

    /// "approved: production je-deployment for helloservice started".
    static func whatHappensNext(decision: String, execution: SequenceExecution, effects: [EngineEffect]) -> String {
        var next: [String] = []
        for case .record(let event) in effects {
            guard event.shkeptncontext == execution.context, let kind = event.kind else { continue }
            let stage = event.data["stage"]?.string ?? execution.stage
            let service = event.data["service"]?.string ?? execution.service
            switch kind {
            case .task(let name, "triggered"):
                next.append("\(stage) \(name) for \(service) started")
            case .sequence(let stage, let name, "finished"):
                next.append("\(stage).\(name) for \(service) finished \(event.data["result"]?.string ?? "")")
            case .sequence(let stage, let name, "triggered"):
                next.append("\(stage).\(name) for \(service) triggered")
            default:
                continue
            }
        }
        return "\(decision): " + (next.isEmpty ? "\(execution.stage).\(execution.sequence) for \(execution.service) goes on" : next.joined(separator: "; "))
    }

    static func groupNames(_ uid: uid_t) -> Set<String> {
        guard let name = Accounts.name(uid: uid), let primary = Accounts.primaryGroup(of: name) else { return [] }
        return Accounts.groups(of: name, primary: primary)
    }

    /// The groups of a user named by the web (a login or a proxy's header), from the host's
    /// group database; none when the host has no such user.
    public static func groupNames(user: String) -> Set<String> {
        guard let primary = Accounts.primaryGroup(of: user) else { return [] }
        return Accounts.groups(of: user, primary: primary)
    }

    func sequenceCommand(_ request: CommandRequest, requester: uid_t) async -> CommandOutcome {
        guard let orchestrator else { return CommandOutcome(id: request.id, ok: false, message: "the daemon is starting") }
        let command: Engine.Command
        switch request.kind {
        case .trigger:
            guard let project = request.project, let service = request.service, let sequence = request.sequence else {
                return CommandOutcome(id: request.id, ok: false, message: "a trigger needs a project, a service and a sequence")
            }
            var data: JSONValue = .object([:])
            if let image = request.image {
                guard Untrusted.isImageReference(image) else {
                    return CommandOutcome(
                        id: request.id, ok: false,
                        message: "--image \"\(Untrusted.printable(image, limit: 200))\" is not an image reference ([registry[:port]/]name[:tag][@digest], e.g. ghcr.io/podtato-head/podtatoserver:v0.1.1)")
                }
                data["configurationChange"] = .object(["values": .object(["image": .string(image)])])
            }
            if let labels = request.labels, !labels.isEmpty {
                for (key, value) in labels.sorted(by: { $0.key < $1.key }) {
                    if let problem = Untrusted.labelProblem(key: key, value: value) {
                        return CommandOutcome(id: request.id, ok: false, message: problem)
                    }
                }
                data["labels"] = .object(labels.mapValues(JSONValue.string))
            }
            if let window = request.evaluation {
                switch Self.evaluationData(window) {
                case .success(let value): data["evaluation"] = value
                case .failure(let problem): return CommandOutcome(id: request.id, ok: false, message: problem.message)
                }
            }
            // Request ids are each user's own: another user's request with the same id is another request.
            let requestKey = "\(requester):\(request.id)"
            if let earlier = await orchestrator.sequence(forRequest: requestKey) {
                guard earlier.project == project, earlier.service == service, earlier.sequence == sequence else {
                    return CommandOutcome(
                        id: request.id, ok: false,
                        message: "request id \(request.id) was already used for \(earlier.sequence) of \(earlier.service) in \(earlier.project) (context \(earlier.context)); use a new id")
                }
                return CommandOutcome(
                    id: request.id, ok: true, message: "request \(request.id) was already applied (context \(earlier.context))", context: earlier.context)
            }
            command = .trigger(TriggerRequest(
                project: project, service: service, sequence: sequence, stage: request.stage, data: data,
                source: "shipyardctl/\(Self.userName(requester))", requestID: requestKey, uid: requester))
        case .pause, .resume, .abort:
            guard let context = request.context else {
                return CommandOutcome(id: request.id, ok: false, message: "name the sequence's context")
            }
            // Stopping a delivery is as much a decision as a rejection: the approvers make it,
            // unless sequenceControl names who may.
            let user = Self.userName(requester)
            let (allowed, list) = config.sequenceControl.map { ($0, "sequenceControl") } ?? config.approvers.map { ($0, "approvers") } ?? (nil, "")
            if let allowed, !Self.isAdministrator(requester), !allowed.admits(user: user, groups: Self.groupNames(requester)) {
                return CommandOutcome(
                    id: request.id, ok: false,
                    message: "\(user) may not \(request.kind.rawValue) sequences: \(list) in the config allows \(allowed.description)")
            }
            let reason = request.reason?.trimmingCharacters(in: .whitespacesAndNewlines)
            command = request.kind == .pause
                ? .pause(context: context, by: user, reason: reason)
                : request.kind == .resume ? .resume(context: context, by: user, reason: reason) : .abort(context: context, by: user, reason: reason)
        case .event:
            guard var event = request.event else { return CommandOutcome(id: request.id, ok: false, message: "the request holds no event") }
            let user = Self.userName(requester)
            guard let senders = config.eventSenders ?? (Self.isAdministrator(requester) ? DaemonConfig.Approvers(users: [], groups: []) : nil) else {
                return CommandOutcome(
                    id: request.id, ok: false,
                    message: "send event is closed on this host: no eventSenders in the config (add 'eventSenders: {users: [\(user)]}' to let \(user) answer external tasks)")
            }
            guard Self.isAdministrator(requester) || senders.admits(user: user, groups: Self.groupNames(requester)) else {
                return CommandOutcome(id: request.id, ok: false, message: "\(user) may not send events: eventSenders in the config allows \(senders.description)")
            }
            let size = (try? JSON.encode(event.data).count) ?? Int.max
            guard size <= Self.maxEventData else {
                return CommandOutcome(id: request.id, ok: false, message: "the event's data is \(size) bytes; at most \(Self.maxEventData) are recorded")
            }
            if case .task(let name, _)? = event.kind {
                if Self.builtInTasks.contains(name) {
                    return CommandOutcome(
                        id: request.id, ok: false,
                        message: "\(name) is decided by shipyardd itself\(name == "approval" ? " and by people through shipyardctl approve/reject, which check approvers" : " from the project's SLO and SLI provider"); it takes no events from outside")
                }
                if await orchestrator.runsLocally(name) {
                    return CommandOutcome(
                        id: request.id, ok: false,
                        message: "\(name) runs as a local program on this host (tasks.\(name) in the config); its result comes from that program, not from events")
                }
            }
            // The record says who sent it and when, by this host's account: the file's owner and
            // the daemon's clock. The source the file claims is kept after the user, so that two
            // executors run by one account stay two (Keptn counts a task's executors by source).
            event.source = Self.stampedSource(user: Self.userName(requester), claimed: event.source)
            event.time = Timestamps.format(Date())
            event.shipyarduid = requester
            if let duplicate = await orchestrator.duplicate(event) {
                return CommandOutcome(id: request.id, ok: true, message: "\(duplicate); nothing changed")
            }
            command = .event(event)
        case .sync, .approve, .reject, .invalidate:
            return CommandOutcome(id: request.id, ok: false, message: "not a sequence command")
        }
        do {
            let effects = try await orchestrator.submit(command)
            let recorded = effects.compactMap { effect -> KeptnEvent? in
                if case .record(let event) = effect { return event }
                return nil
            }
            switch request.kind {
            case .trigger:
                let first = recorded.first
                let stage = first?.data["stage"]?.string ?? "?"
                let sequence = request.sequence ?? "?"
                return CommandOutcome(
                    id: request.id, ok: true,
                    message: "\(stage).\(sequence) triggered for \(request.service ?? "?") (context \(first?.shkeptncontext ?? "?"))",
                    context: first?.shkeptncontext)
            case .pause, .resume, .abort:
                let done = [CommandRequest.Kind.pause: "paused", .resume: "resumed", .abort: "aborted"][request.kind] ?? ""
                return CommandOutcome(id: request.id, ok: true, message: "\(done) \(request.context ?? "")")
            default:
                return CommandOutcome(id: request.id, ok: true, message: "accepted \(request.event?.type ?? "")")
            }
        } catch {
            return CommandOutcome(id: request.id, ok: false, message: error.message)
        }
    }

    /// `shipyardctl/alice`, or `shipyardctl/alice/my-checker` when the event claims a source;
    /// the claim is cut to 64 characters of a safe set, so it can forge nothing in logs.
    static func stampedSource(user: String, claimed: String) -> String {
        let safe = claimed.unicodeScalars.filter { $0.isASCII && ($0.properties.isAlphabetic || ("0"..."9").contains($0) || "._-/:@".unicodeScalars.contains($0)) }
        let kept = String(String.UnicodeScalarView(safe.prefix(64)))
        return "shipyardctl/\(user)" + (kept.isEmpty ? "" : "/" + kept)
    }

    /// Tasks the daemon itself carries out.
    static let builtInTasks: Set<String> = ["approval", Engine.evaluationSequence]

    /// `--timeframe 5m`, or `--start T --end T` (Keptn's `data.evaluation`), checked here so that
    /// a bad one is refused at once rather than failing the evaluation later.
    static func evaluationData(_ window: CommandRequest.EvaluationWindow) -> Result<JSONValue, EngineError> {
        var value: [String: JSONValue] = [:]
        if let timeframe = window.timeframe {
            guard let duration = try? GoDuration.duration(timeframe), duration >= .seconds(60) else {
                return .failure(EngineError("--timeframe \(Untrusted.printable(timeframe, limit: 40)) is not a duration of at least 1m, like 5m or 1h30m"))
            }
            value["timeframe"] = .string(timeframe)
        }
        for (name, text) in [("start", window.start), ("end", window.end)] {
            guard let text else { continue }
            guard KeptnTime.parse(text) != nil else {
                return .failure(EngineError("--\(name) \(Untrusted.printable(text, limit: 40)) is not a time like 2026-11-27T10:00:00Z"))
            }
            value[name] = .string(text)
        }
        if window.end != nil, window.start == nil { return .failure(EngineError("--end needs --start")) }
        if window.start != nil, window.end == nil, window.timeframe == nil { return .failure(EngineError("--start needs --end or --timeframe")) }
        if window.end != nil, window.timeframe != nil { return .failure(EngineError("give --timeframe or --end, not both")) }
        if let start = window.start.flatMap(KeptnTime.parse), let end = window.end.flatMap(KeptnTime.parse), end.timeIntervalSince(start) < 60 {
            return .failure(EngineError("--end must be at least 1 minute after --start"))
        }
        return .success(.object(value))
    }

    /// Root, and the daemon's own user: they can change the state directly anyway, so the
    /// config's lists do not apply to them (approvals excepted: those always name a person).
    static func isAdministrator(_ uid: uid_t) -> Bool { uid == 0 || uid == geteuid() }

    /// The most of an event's data the record takes (Keptn payloads are a few KiB).
    static let maxEventData = 16 * 1024

    static func userName(_ uid: uid_t) -> String {
        Accounts.name(uid: uid) ?? "uid \(uid)"
    }
}

/// Gathers the answers of several projects to one `sync` request.
private final class SyncCollector: Sendable {
    private let expected: Int
    private let done: @Sendable ([CommandOutcome.Partial]) -> Void
    private let parts = Mutex<[CommandOutcome.Partial]>([])

    init(expected: Int, done: @escaping @Sendable ([CommandOutcome.Partial]) -> Void) {
        self.expected = expected
        self.done = done
    }

    func add(_ part: CommandOutcome.Partial) {
        let all: [CommandOutcome.Partial]? = parts.withLock { parts in
            parts.append(part)
            return parts.count == expected ? parts : nil
        }
        if let all { done(all) }
    }
}
