import Foundation
import ShipyardCore

/// Commands on sequences: a trigger (checked, and applied once per request id), pause, resume
/// and abort, and an event for a task that no local program runs (`shipyardctl send event`).
extension Commands {
    func trigger(_ request: CommandRequest, caller: Caller, _ orchestrator: Orchestrator) async -> CommandOutcome {
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
        let requester = (caller.host.map { "\($0)/" } ?? "") + String(caller.uid ?? 0)
        let requestKey = caller.via == .cli ? "\(requester):\(request.id)" : "\(caller.via.rawValue)/\(caller.user):\(request.id)"
        if let earlier = await orchestrator.sequence(forRequest: requestKey) {
            guard earlier.project == project, earlier.service == service, earlier.sequence == sequence else {
                return CommandOutcome(
                    id: request.id, ok: false,
                    message: "request id \(request.id) was already used for \(earlier.sequence) of \(earlier.service) in \(earlier.project) (context \(earlier.context)); use a new id")
            }
            return CommandOutcome(
                id: request.id, ok: true, message: "request \(request.id) was already applied (context \(earlier.context))", context: earlier.context)
        }
        // What a person would want to hear before a whole delivery runs: a service name never
        // seen (a typo runs a delivery of nothing), and a newest shipyard that was refused (the
        // last good one runs). --strict refuses instead.
        var warnings: [String] = []
        if let problem = await shipyardProblem?(project) {
            warnings.append("the newest shipyard of \(project) is refused, so the last good one runs: \(problem)")
        }
        switch await orchestrator.deliveredServices(project: project, including: service) {
        case .delivered: break
        case .never(let others) where others.isEmpty:
            warnings.append("\(Untrusted.printable(service, limit: 100)) is the first service delivered in \(project)")
        case .never(let others):
            let named = others.prefix(8).joined(separator: ", ") + (others.count > 8 ? ", …" : "")
            warnings.append("\(project) has never delivered \(Untrusted.printable(service, limit: 100)) (it has delivered \(named)); is the name right?")
        }
        if request.strict == true, !warnings.isEmpty {
            return CommandOutcome(id: request.id, ok: false, message: "refused (--strict): " + warnings.joined(separator: "; "))
        }
        // A web user is web/alice, with the host account of that name if there is one (as for
        // decisions); never uid 0 for a web-only user.
        let command = Engine.Command.trigger(TriggerRequest(
            project: project, service: service, sequence: sequence, stage: request.stage, data: data,
            source: caller.via == .cli ? "shipyardctl/\(caller.user)" : "\(caller.via.rawValue)/\(caller.user)", requestID: requestKey,
            uid: caller.uid))
        return await submit(command, request, orchestrator) { recorded in
            let first = recorded.first
            let stage = first?.data["stage"]?.string ?? "?"
            var outcome = CommandOutcome(
                id: request.id, ok: true,
                message: "\(stage).\(sequence) triggered for \(service) (context \(first?.shkeptncontext ?? "?"))",
                context: first?.shkeptncontext)
            outcome.warnings = warnings.isEmpty ? nil : warnings
            return outcome
        }
    }

    func control(_ request: CommandRequest, caller: Caller, _ orchestrator: Orchestrator) async -> CommandOutcome {
        guard let given = request.context else {
            return CommandOutcome(id: request.id, ok: false, message: "name the sequence's context")
        }
        if let refusal = authorization.control(caller, verb: request.kind.rawValue) {
            return CommandOutcome(id: request.id, ok: false, message: refusal)
        }
        // The whole context or a unique prefix of it, as approval ids are given.
        let context: String
        do {
            context = try await orchestrator.context(named: given)
        } catch {
            return CommandOutcome(id: request.id, ok: false, message: "\(error)")
        }
        let user = caller.user
        let reason = request.reason?.trimmingCharacters(in: .whitespacesAndNewlines)
        let command: Engine.Command = request.kind == .pause
            ? .pause(context: context, by: user, reason: reason)
            : request.kind == .resume ? .resume(context: context, by: user, reason: reason) : .abort(context: context, by: user, reason: reason)
        return await submit(command, request, orchestrator) { _ in
            let done = [CommandRequest.Kind.pause: "paused", .resume: "resumed", .abort: "aborted"][request.kind] ?? ""
            return CommandOutcome(id: request.id, ok: true, message: "\(done) \(context)")
        }
    }

    func sendEvent(_ request: CommandRequest, caller: Caller, _ orchestrator: Orchestrator) async -> CommandOutcome {
        guard var event = request.event else { return CommandOutcome(id: request.id, ok: false, message: "the request holds no event") }
        if let refusal = authorization.sendEvents(caller) { return CommandOutcome(id: request.id, ok: false, message: refusal) }
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
        // The record says who sent it and when, by this host's account: the caller the kernel
        // named and the daemon's clock. The source the event claims is kept after the user, so
        // that two executors run by one account stay two (Keptn counts a task's executors by source).
        event.source = Self.stampedSource(user: caller.user, claimed: event.source, via: caller.via)
        event.time = Timestamps.format(Date())
        event.shipyarduid = caller.uid
        if let duplicate = await orchestrator.duplicate(event) {
            return CommandOutcome(id: request.id, ok: true, message: "\(duplicate); nothing changed")
        }
        let type = event.type
        return await submit(.event(event), request, orchestrator) { _ in
            CommandOutcome(id: request.id, ok: true, message: "accepted \(type)")
        }
    }

    /// Hands a command to the orchestrator; `answer` words its success from the events recorded.
    private func submit(
        _ command: Engine.Command, _ request: CommandRequest, _ orchestrator: Orchestrator, answer: ([KeptnEvent]) -> CommandOutcome
    ) async -> CommandOutcome {
        do {
            let effects = try await orchestrator.submit(command)
            return answer(effects.compactMap { effect -> KeptnEvent? in
                if case .record(let event) = effect { return event }
                return nil
            })
        } catch {
            return CommandOutcome(id: request.id, ok: false, message: error.message)
        }
    }

    /// `shipyardctl/alice`, or `shipyardctl/alice/my-checker` when the event claims a source;
    /// the claim is cut to 64 characters of a safe set, so it can forge nothing in logs.
    static func stampedSource(user: String, claimed: String, via: Caller.Channel = .cli) -> String {
        let safe = claimed.unicodeScalars.filter { $0.isASCII && ($0.properties.isAlphabetic || ("0"..."9").contains($0) || "._-/:@".unicodeScalars.contains($0)) }
        let kept = String(String.UnicodeScalarView(safe.prefix(64)))
        return (via == .cli ? "shipyardctl" : via.rawValue) + "/\(user)" + (kept.isEmpty ? "" : "/" + kept)
    }

    /// Tasks the daemon itself carries out.
    static let builtInTasks: Set<String> = ["approval", Engine.evaluationSequence]

    /// The most of an event's data the record takes (Keptn payloads are a few KiB).
    static let maxEventData = 16 * 1024

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
}
