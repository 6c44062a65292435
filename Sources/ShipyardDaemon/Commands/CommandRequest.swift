import Foundation
public import ShipyardCore

/// What a caller of the local API asks the daemon to do (`shipyardctl trigger`, `approve`, …).
/// The caller is whoever the kernel names at the other end of the socket, never a name inside
/// the request.
public struct CommandRequest: Codable, Sendable, Equatable {
    public enum Kind: String, Codable, Sendable {
        case sync, trigger, pause, resume, abort, event, approve, reject
        /// Marks an evaluation so that later evaluations no longer compare with it.
        case invalidate
    }

    /// trigger: Keptn's `data.evaluation`, the timeframe an evaluation scores.
    public struct EvaluationWindow: Codable, Sendable, Equatable {
        public var timeframe: String?
        public var start: String?
        public var end: String?

        public init(timeframe: String? = nil, start: String? = nil, end: String? = nil) {
            self.timeframe = timeframe
            self.start = start
            self.end = end
        }
    }

    /// The caller's id for this request: a trigger sent again with the same id starts nothing new.
    public var id: String
    public var kind: Kind
    /// sync (optional), trigger.
    public var project: String?
    /// trigger.
    public var sequence: String?
    public var service: String?
    public var stage: String?
    public var image: String?
    public var labels: [String: String]?
    public var evaluation: EvaluationWindow?
    /// trigger: refuse what would only be warned of (a service never delivered, a refused shipyard).
    public var strict: Bool?
    /// pause, resume, abort.
    public var context: String?
    /// event: a Keptn CloudEvent (`shipyardctl send event`).
    public var event: KeptnEvent?
    /// invalidate: the evaluation's id (its `.triggered` or `.finished` event) or a unique prefix.
    public var evaluationID: String?
    /// approve, reject: the approval's id or a unique prefix of it, and why.
    public var approval: String?
    public var reason: String?

    public init(id: String = CommandRequest.newID(), kind: Kind, project: String? = nil) {
        self.id = id
        self.kind = kind
        self.project = project
    }

    public static func newID() -> String {
        UUID().uuidString.lowercased()
    }

    /// Ids the caller chooses (`--request-id`): lowercase letters, digits and `-`, at most 64.
    public static func isValidID(_ id: String) -> Bool {
        id.count <= 64 && !id.isEmpty && id.unicodeScalars.allSatisfy { ("a"..."z").contains($0) || ("0"..."9").contains($0) || $0 == "-" }
    }
}

/// The daemon's answer to a request, on the same connection.
public struct CommandOutcome: Codable, Sendable, Equatable {
    public var id: String
    public var ok: Bool
    public var message: String
    /// trigger: the new sequence's context id.
    public var context: String?
    /// trigger: what the caller should know (a service never delivered, the newest shipyard refused).
    public var warnings: [String]?

    public init(id: String, ok: Bool, message: String, context: String? = nil) {
        self.id = id
        self.ok = ok
        self.message = message
        self.context = context
    }
}

/// The body of a trigger (`POST /api/v1/sequences`).
public struct TriggerBody: Codable, Sendable, Equatable {
    public var project: String
    public var service: String
    public var sequence: String
    public var stage: String?
    public var image: String?
    public var labels: [String: String]?
    public var evaluation: CommandRequest.EvaluationWindow?
    /// Applied once by this id (per caller).
    public var requestID: String?
    /// Refuse, rather than warn, when the service was never delivered or the newest shipyard is refused.
    public var strict: Bool?

    public init(project: String, service: String, sequence: String) {
        self.project = project
        self.service = service
        self.sequence = sequence
    }
}

/// `{"reason": "…"}`: the body of a decision, a sequence control or an invalidation.
public struct ReasonBody: Codable, Sendable, Equatable {
    public var reason: String?

    public init(reason: String?) {
        self.reason = reason
    }
}

/// `{"project": "…"}`: the body of a sync (`POST /api/v1/sync`); no project polls them all.
public struct SyncBody: Codable, Sendable, Equatable {
    public var project: String?

    public init(project: String?) {
        self.project = project
    }
}
