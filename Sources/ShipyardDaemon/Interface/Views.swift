import Foundation
public import ShipyardCore
public import ShipyardStore

/// `shipyardctl sequence CONTEXT --output json` and `/api/v1/sequences/{context}`: one delivery,
/// every stage with its tasks, in the order they were triggered.
public struct DeliveryView: Codable, Sendable, Equatable {
    public var context: String
    public var project: String
    public var stages: [StageView]

    public struct StageView: Codable, Sendable, Equatable {
        public var stage: String
        public var sequence: String
        public var service: String
        public var state: String
        public var result: String?
        public var message: String?
        public var commit: String?
        public var tasks: [TaskView]
    }

    public struct TaskView: Codable, Sendable, Equatable {
        public var name: String
        public var state: String
        public var result: String?
        public var status: String?
        public var message: String?
        public var triggeredID: String?
    }

    public init(context: String, executions: [StoredSequence]) {
        self.context = context
        project = executions.first?.project ?? ""
        stages = executions.map { e in
            StageView(
                stage: e.stage, sequence: e.sequence, service: e.service, state: e.state.rawValue, result: e.result?.rawValue,
                message: e.message, commit: e.commit,
                tasks: e.tasks.map { t in
                    TaskView(name: t.name, state: t.state, result: t.result?.rawValue, status: t.status?.rawValue, message: t.message, triggeredID: t.triggeredID)
                })
        }
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

    public init(_ sequence: StoredSequence) {
        context = sequence.context
        project = sequence.project
        service = sequence.service
        self.sequence = sequence.sequence
        stage = sequence.stage
        state = sequence.state.rawValue
        result = sequence.result?.rawValue
    }
}
