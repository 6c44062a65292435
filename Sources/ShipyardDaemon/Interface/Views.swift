import Foundation
public import ShipyardCore
public import ShipyardStore

/// `shipyardctl sequence CONTEXT --output json` and `/api/v1/sequences/{context}`: one delivery,
/// every stage with its tasks, in the order they were triggered.
public struct DeliveryView: Codable, Sendable, Equatable {
    public var context: String
    public var project: String
    /// The artifact delivered, who started it and when (the first stage's trigger).
    public var image: String?
    public var triggeredBy: String?
    public var triggeredAt: String?
    public var stages: [StageView]
    /// The webhooks the delivery's events called (`sh.shipyard.webhook.called`), oldest first,
    /// secrets masked; nil when none did.
    public var webhooks: [WebhookView]?

    public struct WebhookView: Codable, Sendable, Equatable {
        public var subscription: String
        /// The event that called it, and its stage.
        public var event: String
        public var stage: String
        /// ok, or how the last request went (failed, refused, timeout, error).
        public var outcome: String
        public var message: String?
        public var file: String?
        public var time: String
        public var requests: [Request]

        public struct Request: Codable, Sendable, Equatable {
            public var method: String
            public var url: String
            public var status: Int?
            public var outcome: String
            public var attempts: Int
            public var durationMs: Int
            public var message: String?
        }
    }

    /// The webhook calls of a context, read from its `sh.shipyard.webhook.called` events.
    public static func webhooks(of context: String, store: any Store) -> [WebhookView]? {
        guard let events = try? store.events(context: context, type: "sh.shipyard.webhook.called", after: 0, limit: 1000), !events.isEmpty else { return nil }
        return events.compactMap { recorded -> WebhookView? in
            guard let event = try? JSON.decode(KeptnEvent.self, from: recorded.json), let hook = event.data["webhook"]?.object else { return nil }
            func int(_ value: JSONValue?) -> Int? { if case .number(let n)? = value { Int(n) } else { nil } }
            var list: [JSONValue] = []
            if case .array(let items)? = hook["requests"] { list = items }
            let requests: [WebhookView.Request] = list.map { (r: JSONValue) -> WebhookView.Request in
                WebhookView.Request(
                    method: r["method"]?.string ?? "", url: r["url"]?.string ?? "", status: int(r["status"]), outcome: r["outcome"]?.string ?? "",
                    attempts: int(r["attempts"]) ?? 1, durationMs: int(r["durationMs"]) ?? 0, message: r["message"]?.string)
            }
            return WebhookView(
                subscription: hook["subscription"]?.string ?? "", event: String((hook["event"]?.string ?? "").dropFirst(KeptnEvent.prefix.count)),
                stage: event.data["stage"]?.string ?? "", outcome: hook["outcome"]?.string ?? "", message: hook["message"]?.string,
                file: hook["file"]?.string, time: event.time, requests: requests)
        }
    }

    public struct StageView: Codable, Sendable, Equatable {
        public var stage: String
        public var sequence: String
        public var service: String
        public var state: String
        public var result: String?
        public var message: String?
        public var commit: String?
        public var image: String?
        public var triggeredAt: String?
        public var startedAt: String?
        public var finishedAt: String?
        /// Why a sequence that is not running waits: behind which delivery and gate, for which
        /// approval, or until when (`triggeredAfter`).
        public var waitingFor: String?
        public var tasks: [TaskView]
    }

    public struct TaskView: Codable, Sendable, Equatable {
        public var name: String
        public var state: String
        public var result: String?
        public var status: String?
        public var message: String?
        public var triggeredID: String?
        public var startedAt: String?
        public var finishedAt: String?
        /// A task held back by `triggeredAfter`: when it will be triggered.
        public var dueAt: String?
    }

    public init(context: String, executions: [StoredSequence], waits: [String: String] = [:]) {
        self.context = context
        project = executions.first?.project ?? ""
        image = executions.lazy.compactMap(\.image).first
        triggeredBy = executions.first?.triggeredBy
        triggeredAt = executions.first.map { Timestamps.format($0.triggeredAt) }
        stages = executions.map { e in
            StageView(
                stage: e.stage, sequence: e.sequence, service: e.service, state: e.state.rawValue, result: e.result?.rawValue,
                message: e.message, commit: e.commit, image: e.image, triggeredAt: Timestamps.format(e.triggeredAt),
                startedAt: e.startedAt.map(Timestamps.format), finishedAt: e.finishedAt.map(Timestamps.format), waitingFor: waits[e.id],
                tasks: e.tasks.map { t in
                    TaskView(
                        name: t.name, state: t.state, result: t.result?.rawValue, status: t.status?.rawValue, message: t.message,
                        triggeredID: t.triggeredID, startedAt: t.startedAt.map(Timestamps.format), finishedAt: t.finishedAt.map(Timestamps.format),
                        dueAt: t.dueAt.map(Timestamps.format))
                })
        }
    }
}

/// "Why is this waiting?": for each sequence that is not moving, the answer people need, read
/// from the record alone (the CLI reads it without the daemon too).
public enum WaitReasons {
    /// Reasons by sequence id, for those of `sequences` that wait: behind another delivery in
    /// the same stage and service (which one, and at which gate), for an approval, or for a
    /// task's `triggeredAfter`. `sequences` may come without their tasks; the record fills them.
    public static func explain(_ sequences: [StoredSequence], store: any Store) -> [String: String] {
        var reasons: [String: String] = [:]
        var loaded: [String: [StoredSequence]] = [:]
        // The active sequences of a project and service, read once however many wait there.
        var slots: [String: [StoredSequence]] = [:]
        func active(_ sequence: StoredSequence) -> [StoredSequence] {
            let key = "\(sequence.project)/\(sequence.service)"
            if let known = slots[key] { return known }
            let found = ((try? store.sequences(SequenceQuery(project: sequence.project, service: sequence.service, limit: 1)))?.sequences ?? [])
                .filter(\.isActive)
            slots[key] = found
            return found
        }
        func withTasks(_ sequence: StoredSequence) -> StoredSequence {
            if !sequence.tasks.isEmpty { return sequence }
            if loaded[sequence.context] == nil { loaded[sequence.context] = (try? store.sequences(context: sequence.context)) ?? [] }
            return loaded[sequence.context]?.first { $0.id == sequence.id } ?? sequence
        }
        for sequence in sequences where sequence.isActive {
            switch sequence.state {
            case .waiting:
                reasons[sequence.id] = behind(sequence, among: active(sequence), withTasks: withTasks)
            case .waitingForApproval:
                let full = withTasks(sequence)
                if let gate = full.tasks.first(where: { $0.name == "approval" && $0.state == "started" }), let id = gate.triggeredID {
                    reasons[sequence.id] = "approval \(id.prefix(8)) (shipyardctl approve \(id.prefix(8)), or reject it)"
                }
            case .triggered, .started:
                let full = withTasks(sequence)
                if let task = full.tasks.first(where: { $0.state == "pending" }), let due = task.dueAt, due > Date() {
                    reasons[sequence.id] = "\(task.name) to start at \(Timestamps.format(due)) (its triggeredAfter)"
                }
            case .paused:
                reasons[sequence.id] = "a resume (it is paused: shipyardctl resume \(sequence.context.prefix(8)))"
            default:
                break
            }
        }
        return reasons
    }

    /// The sequence ahead of a waiting one: Keptn runs one sequence at a time per project, stage
    /// and service, and a later delivery queues behind the one holding the slot.
    static func behind(_ waiting: StoredSequence, among active: [StoredSequence], withTasks: (StoredSequence) -> StoredSequence) -> String {
        let others = active.filter { $0.isActive && $0.stage == waiting.stage && $0.context != waiting.context && $0.id != waiting.id }
        let ahead = others.first { $0.startedAt != nil } ?? others.filter { $0.triggeredAt <= waiting.triggeredAt }.min { $0.triggeredAt < $1.triggeredAt }
        guard let ahead else { return "its turn in \(waiting.stage) (the delivery ahead has just ended)" }
        let holder = withTasks(ahead)
        var what = "\(holder.stage).\(holder.sequence)"
        if let image = holder.image { what += " of \(image)" }
        let current = holder.tasks.first { $0.state != "finished" }
        var gate: String
        switch holder.state {
        case .waitingForApproval:
            let id = current?.triggeredID.map { String($0.prefix(8)) } ?? ""
            gate = "waiting for approval \(id): approve or reject it first (shipyardctl approvals)"
        case .paused:
            gate = "paused: resume or abort it (shipyardctl resume|abort \(holder.context.prefix(8)))"
        case .waiting:
            gate = "itself waiting"
        default:
            gate = current.map { "running \($0.name)" } ?? holder.state.rawValue
        }
        return "delivery \(holder.context.prefix(8)) ahead in \(holder.stage) (\(what), \(gate))"
    }
}

/// The pending approvals, as `shipyardctl approvals` and `/api/v1/approvals` list them: the files
/// in `<state>/approvals/`, oldest first.
public enum PendingApprovals {
    public static func read(_ state: StateDirectory, project: String? = nil) throws -> [ApprovalRequest] {
        let directory = state.root + "/approvals"
        let names: [String]
        do {
            names = try FileManager.default.contentsOfDirectory(atPath: directory).filter { $0.hasSuffix(".json") }
        } catch where FileManager.default.fileExists(atPath: directory) {
            throw StoreError("cannot read \(directory): \(error.localizedDescription)")
        } catch {
            return []  // the daemon has not written an approval yet
        }
        return names.compactMap { name -> ApprovalRequest? in
            FileManager.default.contents(atPath: directory + "/" + name).flatMap { try? JSON.decode(ApprovalRequest.self, from: $0) }
        }.filter { project == nil || $0.project == project }.sorted { $0.requestedAt < $1.requestedAt }
    }
}

/// `shipyardctl evaluations --output json` and `/api/v1/evaluations`: one evaluation of a
/// service in a stage.
public struct EvaluationRow: Codable, Sendable, Equatable {
    public var id: String
    public var eventID: String
    public var context: String
    public var time: String
    public var result: String
    public var invalidated: Bool
    public var message: String?
    public var labels: JSONValue?
    public var evaluation: JSONValue?

    public init(_ e: StoredEvaluation) {
        id = e.triggeredID
        eventID = e.eventID
        context = e.context
        time = e.time
        result = e.result
        invalidated = e.invalidated
        message = e.data["message"]?.string
        labels = e.data["labels"]
        evaluation = e.data["evaluation"]
    }
}

/// `approvals/<id>.json`: what a person needs to decide.
public struct ApprovalRequest: Codable, Sendable, Equatable {
    public var id: String
    public var project: String
    public var stage: String
    public var service: String
    public var sequence: String
    public var context: String
    public var previousResult: String?
    public var image: String?
    /// Who started the delivery (the trigger event's source, e.g. `shipyardctl/alice`).
    public var triggeredBy: String?
    public var requestedAt: String
    /// With an approval policy: distinct approvals needed, who approved so far, who may still,
    /// and when the approval expires.
    public var required: Int?
    public var approvedBy: [String]?
    /// Approvals recorded that do not count under the policy in force, each with why
    /// ("bob: bob is not an approver of production now (…)").
    public var notCounted: [String]?
    public var mayApprove: String?
    public var expiresAt: String?

    /// "1 of 2 approvals: alice", when a policy asks for approvals.
    public var progress: String? {
        required.map { ApprovalRules.summary(approvedBy ?? [], required: $0) }
    }

    public init(
        id: String, project: String, stage: String, service: String, sequence: String, context: String,
        previousResult: String?, image: String?, triggeredBy: String?, requestedAt: String
    ) {
        self.id = id
        self.project = project
        self.stage = stage
        self.service = service
        self.sequence = sequence
        self.context = context
        self.previousResult = previousResult
        self.image = image
        self.triggeredBy = triggeredBy
        self.requestedAt = requestedAt
    }
}

/// One line of `shipyardctl sequences`.
public struct SequenceSummary: Codable, Sendable, Equatable {
    public var context: String
    public var project: String
    public var service: String
    public var sequence: String
    public var stage: String
    public var state: String
    public var result: String?
    public var image: String?
    public var triggeredAt: String?
    public var startedAt: String?
    public var finishedAt: String?
    /// Why it waits, when it does (see `DeliveryView.StageView.waitingFor`).
    public var waitingFor: String?

    public init(_ sequence: StoredSequence, waitingFor: String? = nil) {
        context = sequence.context
        project = sequence.project
        service = sequence.service
        self.sequence = sequence.sequence
        stage = sequence.stage
        state = sequence.state.rawValue
        result = sequence.result?.rawValue
        image = sequence.image
        triggeredAt = Timestamps.format(sequence.triggeredAt)
        startedAt = sequence.startedAt.map(Timestamps.format)
        finishedAt = sequence.finishedAt.map(Timestamps.format)
        self.waitingFor = waitingFor
    }

    /// The rows of a page, each waiting one with its reason.
    public static func rows(_ sequences: [StoredSequence], store: any Store) -> [SequenceSummary] {
        let waits = WaitReasons.explain(sequences, store: store)
        return sequences.map { SequenceSummary($0, waitingFor: waits[$0.id]) }
    }
}

/// A service's quality-gate history as Keptn's Bridge draws it: evaluations oldest first, each
/// SLI's value and status in each. The CLI's heatmap and the web view's heatmap and trend charts
/// read it.
public struct EvaluationHistory: Sendable {
    public struct Cell: Sendable, Equatable {
        /// nil when the provider gave no value (the SLI failed to be measured).
        public var value: Double?
        /// pass, warning, fail or info.
        public var status: String
    }

    public struct Column: Sendable {
        public var id: String
        public var context: String
        /// The trigger's buildId label, else the evaluation's time.
        public var label: String
        public var time: String
        public var score: Double?
        public var result: String
        public var invalidated: Bool
        public var message: String?
        /// By metric; a metric the evaluation did not have is absent.
        public var cells: [String: Cell]
    }

    /// SLIs in the order the newest evaluation lists them, then older ones'.
    public var metrics: [String]
    public var columns: [Column]

    /// `rows`: oldest first.
    public init(_ rows: [EvaluationRow]) {
        var metrics: [String] = []
        for row in rows.reversed() {
            for indicator in row.evaluation?["indicatorResults"]?.array ?? [] {
                if let metric = indicator["value"]?["metric"]?.string, !metrics.contains(metric) { metrics.append(metric) }
            }
        }
        self.metrics = metrics
        columns = rows.map { row in
            var cells: [String: Cell] = [:]
            for indicator in row.evaluation?["indicatorResults"]?.array ?? [] {
                guard let metric = indicator["value"]?["metric"]?.string else { continue }
                let success = indicator["value"]?["success"]?.bool ?? false
                cells[metric] = Cell(value: success ? indicator["value"]?["value"]?.number : nil, status: indicator["status"]?.string ?? "fail")
            }
            return Column(
                id: row.id, context: row.context,
                label: row.labels?["buildId"]?.string ?? String(row.time.prefix(16)).replacingOccurrences(of: "T", with: " "),
                time: row.time, score: row.evaluation?["score"]?.number, result: row.result, invalidated: row.invalidated,
                message: row.message, cells: cells)
        }
    }
}

/// How a listing shows what it lists: the CLI's tables and the web view's pages alike.
public enum Display {
    /// `ghcr.io/podtato-head/podtatoserver:v0.2.0` as a column shows it: `podtatoserver:v0.2.0`.
    public static func image(_ image: String) -> String {
        String(image.split(separator: "/").last ?? Substring(image))
    }

    /// A measured value: whole numbers without decimals, others with two.
    public static func number(_ value: Double) -> String {
        if value.rounded() == value, abs(value) < 1e12 { return String(Int64(value)) }
        return String(format: "%.2f", value)
    }
}
