import Foundation
import Logging
import ShipyardCore
import ShipyardGit
import Synchronization

/// Keptn's webhook-service, in the daemon: a recorded task event that a project's `webhooks:`
/// subscribe to calls the webhook of `webhook/webhook.yaml` (service, then stage, then project
/// level, at the sequence's commit; the first file that has the webhook wins, as in Keptn).
///
/// - On a task's `.triggered` (not `approval` or `evaluation`, which shipyardd decides), the
///   webhook performs the task: `.started` when `sendStarted` (Keptn's default), the requests in
///   order until one fails, then `.finished` when `sendFinished` or when a request failed: pass
///   for 2xx, fail with the status and an excerpt of the body otherwise, exactly as a program's.
/// - Any other subscribed event is a notification: sent with retries (back-off 1 s, 4 s, 16 s …)
///   on a transport failure, a 5xx or a 429, never holding the sequence.
///
/// Every call is recorded beside its sequence as `sh.shipyard.webhook.called` with secrets
/// masked, logged, and counted in `shipyard_webhook_requests_total`.
extension Orchestrator {
    static let webhookSource = "shipyardd/webhook"
    static let webhookCalledType = "sh.shipyard.webhook.called"
    /// The part of a response body kept in messages and the record.
    static let webhookExcerpt = 2048
    /// A JSON answer larger than this is kept as its excerpt in the task's `.finished`.
    static let maxResponseInEvent = 64 << 10

    /// Calls the webhooks the recorded events subscribe to. `resumingStarted`: the task's
    /// `.started` is recorded by a run of the daemon that stopped before its `.finished`: its
    /// webhook is called again (at least once, as a program is run again) only when it sends the
    /// `.finished` itself; otherwise its receiver answers, and nothing is sent twice.
    func callWebhooks(_ records: [KeptnEvent], resumingStarted: Bool = false) {
        guard !draining else { return }
        for event in records {
            guard let (project, subscriptions) = webhookSubscriptions(for: event), case .task(let task, let phase)? = event.kind else { continue }
            var performed = false
            for subscription in subscriptions {
                let performs = phase == "triggered" && !Commands.builtInTasks.contains(task)
                if performs, performed {
                    logger.warning(
                        "webhook \(subscription.name) not called: another subscription of project \(project.name) already performs \(task) for this event",
                        metadata: ["context": "\(event.shkeptncontext)"])
                    continue
                }
                performed = performed || performs
                startWebhook(subscription, event: event, project: project, performs: performs, resumingStarted: resumingStarted && performs)
            }
        }
    }

    /// The subscriptions of the event's project that its task, phase, stage and service match.
    func webhookSubscriptions(for event: KeptnEvent) -> (DaemonConfig.Project, [DaemonConfig.WebhookSubscription])? {
        guard case .task(let task, let phase)? = event.kind, let name = event.data["project"]?.string,
            let project = configuration.project(named: name), !project.webhooks.isEmpty
        else { return nil }
        let stage = event.data["stage"]?.string ?? ""
        let service = event.data["service"]?.string ?? ""
        let matching = project.webhooks.filter { $0.task == task && $0.phase == phase && $0.matches(stage: stage, service: service) }
        return matching.isEmpty ? nil : (project, matching)
    }

    /// Whether the record holds a call of a webhook for this event (a webhook with
    /// `sendStarted: false` records no `.started`, but its call is recorded when it ends).
    func webhookCalled(for event: KeptnEvent) -> Bool {
        let calls = (try? store.events(context: event.shkeptncontext, type: Self.webhookCalledType, after: 0, limit: 1000)) ?? []
        return calls.contains { recorded in
            (try? JSON.decode(KeptnEvent.self, from: recorded.json))?.data["webhook"]?["eventid"]?.string == event.id
        }
    }

    /// Whether a webhook performs this task (a `.triggered` subscription of its project).
    func webhookPerforms(_ triggered: KeptnEvent) -> Bool {
        guard case .task(let task, "triggered")? = triggered.kind, !Commands.builtInTasks.contains(task) else { return false }
        return webhookSubscriptions(for: triggered) != nil
    }

    private func startWebhook(
        _ subscription: DaemonConfig.WebhookSubscription, event: KeptnEvent, project: DaemonConfig.Project, performs: Bool, resumingStarted: Bool
    ) {
        let commit = event.gitcommitid ?? engine.task(triggeredID: event.triggeredid ?? event.id)?.execution.commit
        let mirror = Mirror(path: state.mirror(project: project.name))
        let settings = configuration.webhooks
        let base = configuration.http?.publicURL.map { $0.hasSuffix("/") ? String($0.dropLast()) : $0 } ?? ""
        let limiter = webhookLimiter(settings.concurrency, project: project.name, subscription: subscription.identity)
        let metrics = metrics
        let logger = logger
        if performs { webhookTasks.insert(event.id) }
        Task {
            let loaded = await TaskRunner.onThread(name: "webhook") {
                WebhookFiles.load(mirror: mirror, commit: commit, event: event, subscription: subscription)
            }
            let webhook: Webhook
            let file: String
            switch loaded {
            case .failure(let failure):
                logger.warning("webhook \(subscription.name): \(failure.message)", metadata: ["context": "\(event.shkeptncontext)"])
                metrics?.webhookRequest(project: project.name, webhook: subscription.name, outcome: "error")
                self.recordWebhook(event, subscription: subscription, file: nil, calls: [], failure: failure.message)
                if performs {
                    // Keptn: a webhook that cannot be read still answers, .started then an errored .finished.
                    if !resumingStarted { await self.answer(event, phase: "started", outcome: nil, source: Self.webhookSource) }
                    await self.webhookEnded(event, outcome: TaskProcess.Outcome(result: .fail, status: .errored, message: failure.message, data: nil))
                }
                return
            case .success(let found):
                webhook = found.webhook
                file = found.file
                if !found.passedOver.isEmpty {
                    logger.warning(
                        "webhook \(subscription.name): using \(found.file); passed over \(found.passedOver.joined(separator: "; "))",
                        metadata: ["context": "\(event.shkeptncontext)"])
                }
            }
            if resumingStarted, !webhook.sendFinished {
                // Its receiver sends the .finished (triggeredid = {{.id}}); it was called already.
                self.webhookTasks.remove(event.id)
                return
            }
            if resumingStarted {
                logger.warning("webhook \(subscription.name): the daemon stopped before its .finished; calling it again", metadata: ["context": "\(event.shkeptncontext)"])
            }
            if performs, webhook.sendStarted, !resumingStarted, await !self.answer(event, phase: "started", outcome: nil, source: Self.webhookSource) {
                self.webhookTasks.remove(event.id)
                return
            }
            var calls: [WebhookCall] = []
            var failure: String?
            let sender = WebhookSender(
                settings: settings, project: project, event: event, base: base, limiter: limiter, retries: performs ? 0 : settings.retries)
            for (index, request) in webhook.requests.enumerated() {
                let call = await sender.call(request, webhook: webhook)
                calls.append(call)
                metrics?.webhookRequest(project: project.name, webhook: subscription.name, outcome: call.outcome)
                let line = "webhook \(subscription.name) \(call.method) \(call.url): \(call.summary)"
                if call.outcome == "ok" {
                    logger.info("\(line)", metadata: ["context": "\(event.shkeptncontext)"])
                } else {
                    logger.warning("\(line)", metadata: ["context": "\(event.shkeptncontext)"])
                    failure = "request \(index + 1) of \(webhook.requests.count) (\(call.method) \(call.url)) \(call.summary)"
                    break
                }
            }
            self.recordWebhook(event, subscription: subscription, file: file, calls: calls, failure: failure)
            guard performs else { return }
            if let failure {
                await self.webhookEnded(event, outcome: TaskProcess.Outcome(result: .fail, status: .errored, message: failure, data: Self.responses(calls, task: event)))
            } else if webhook.sendFinished {
                let message = calls.map { "\($0.method) \($0.url): \($0.summary)" }.joined(separator: "; ")
                await self.webhookEnded(event, outcome: TaskProcess.Outcome(result: .pass, status: .succeeded, message: message, data: Self.responses(calls, task: event)))
            } else {
                // The receiver sends the .finished itself (triggeredid = {{.id}}).
                self.webhookTasks.remove(event.id)
            }
        }
    }

    private func webhookEnded(_ triggered: KeptnEvent, outcome: TaskProcess.Outcome) async {
        webhookTasks.remove(triggered.id)
        if stopping { return }
        await answer(triggered, phase: "finished", outcome: outcome, source: Self.webhookSource)
    }

    /// Keptn's `.finished` data of a webhook task: `{TASK: {responses: [...]}}`, each response
    /// parsed as JSON when it is an object, else kept as text.
    static func responses(_ calls: [WebhookCall], task triggered: KeptnEvent) -> JSONValue {
        let name = String(triggered.type.dropFirst(KeptnEvent.prefix.count).dropLast(".triggered".count))
        // Parsed from the whole body, so that the shape never depends on its size.
        let responses: [JSONValue] = calls.map { call in
            if let data = call.fullBody.data(using: .utf8), let value = try? JSON.decode(JSONValue.self, from: data), value.object != nil {
                let size = (try? JSON.encode(value).count) ?? Int.max
                if size <= Self.maxResponseInEvent { return value }
            }
            return .string(call.body)
        }
        return .object([name: .object(["responses": .array(responses)])])
    }

    /// The call beside its sequence, secrets masked (they never reach a WebhookCall).
    private func recordWebhook(_ event: KeptnEvent, subscription: DaemonConfig.WebhookSubscription, file: String?, calls: [WebhookCall], failure: String?) {
        var data: JSONValue = .object([:])
        for key in ["project", "stage", "service"] { data[key] = event.data[key] }
        var webhook: [String: JSONValue] = [
            "subscription": .string(subscription.name), "event": .string(event.type), "eventid": .string(event.id),
            "outcome": .string(failure == nil ? "ok" : calls.last?.outcome ?? "error"),
            "requests": .array(calls.map(\.json)),
        ]
        if let file { webhook["file"] = .string(file) }
        if let failure { webhook["message"] = .string(failure) }
        data["webhook"] = .object(webhook)
        let record = KeptnEvent(
            id: ids.next(), source: Self.webhookSource, type: Self.webhookCalledType, time: Timestamps.format(Date()), context: event.shkeptncontext,
            triggeredid: event.triggeredid ?? event.id, gitcommitid: event.gitcommitid, data: data)
        recordAside([record])
    }

    /// A subscription's limiter, sized by the config (a reload's new size applies to a new
    /// limiter; requests already waiting on the old one finish there).
    func webhookLimiter(_ size: Int, project: String, subscription: String) -> WebhookLimiter {
        let key = "\(project)\u{0}\(subscription)"
        if let limiter = webhookLimits[key], limiter.size == size { return limiter }
        let limiter = WebhookLimiter(size: size)
        webhookLimits[key] = limiter
        return limiter
    }
}

/// At most `size` webhook requests in flight; the rest wait their turn, in order.
final class WebhookLimiter: Sendable {
    let size: Int
    private let state: Mutex<(free: Int, waiting: [CheckedContinuation<Void, Never>])>

    init(size: Int) {
        self.size = size
        state = Mutex((size, []))
    }

    func acquire() async {
        await withCheckedContinuation { continuation in
            let now = state.withLock { state -> Bool in
                if state.free > 0 {
                    state.free -= 1
                    return true
                }
                state.waiting.append(continuation)
                return false
            }
            if now { continuation.resume() }
        }
    }

    func release() {
        let next = state.withLock { state -> CheckedContinuation<Void, Never>? in
            if state.waiting.isEmpty {
                state.free += 1
                return nil
            }
            return state.waiting.removeFirst()
        }
        next?.resume()
    }
}

/// What one webhook request did, secrets already masked.
struct WebhookCall: Sendable {
    var method: String
    var url: String
    var status = 0
    var attempts = 0
    var milliseconds = 0
    /// ok (2xx), failed (another status), refused (the address checks), timeout, error.
    var outcome = "error"
    var message = ""
    /// The start of the response body.
    var body = ""
    /// The whole body read (masked), for Keptn's responses; never recorded as such.
    var fullBody = ""

    var summary: String {
        switch outcome {
        case "ok": return "\(status)\(attempts > 1 ? " after \(attempts) attempts" : "")"
        case "failed": return "answered \(status)\(body.isEmpty ? "" : ": \(body.prefix(500))")\(message.isEmpty ? "" : " (\(message))")"
        default: return message
        }
    }

    var json: JSONValue {
        var object: [String: JSONValue] = [
            "method": .string(method), "url": .string(url), "outcome": .string(outcome), "attempts": .number(Double(attempts)),
            "durationMs": .number(Double(milliseconds)),
        ]
        if status > 0 { object["status"] = .number(Double(status)) }
        if !message.isEmpty { object["message"] = .string(message) }
        if !body.isEmpty { object["body"] = .string(body) }
        return .object(object)
    }
}
