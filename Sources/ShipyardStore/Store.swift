public import Foundation
public import ShipyardCore

/// The durable record and the questions people ask of it, behind one protocol: the daemon
/// writes through it, the CLI (and later the web view) reads through it. `SQLiteStore` is the
/// implementation; a second one (PostgreSQL, for more than one host) implements the same
/// protocol without the engine knowing.
public protocol Store: AnyObject, Sendable {
    // MARK: Writing (the daemon only)

    /// Commits these events, in order, and the current state of the executions they changed,
    /// in one durable transaction: when this returns, all of it survives a crash; when it
    /// throws, none of it was recorded.
    func commit(events: [KeptnEvent], changes: [Engine.Change]) throws

    /// What the daemon needs to carry on after a start: every event of each context that has
    /// a sequence still active, in record order. Its cost follows the active work.
    func activeWork() throws -> ActiveWork

    /// Removes at most `limit` contexts whose sequences all ended before `cutoff`, with their
    /// events, sequences and tasks, in one transaction. Returns the contexts removed.
    func removeHistory(endedBefore cutoff: Date, limit: Int) throws -> [String]

    /// Gives free pages back to the file system, a few at a time.
    func reclaimSpace(pages: Int) throws

    // MARK: Reading

    /// Sequences, newest first as the query bounds them, returned oldest first.
    func sequences(_ query: SequenceQuery) throws -> SequencePage

    /// Every sequence of a context, in arrival order, with its tasks.
    func sequences(context: String) throws -> [StoredSequence]

    /// The sequence a `shipyardctl trigger` request started, if one did.
    func sequence(forRequest id: String) throws -> StoredSequence?

    /// The task a `.triggered` event id started, and its sequence.
    func task(triggeredID: String) throws -> (sequence: StoredSequence, task: StoredTask)?

    /// Approval tasks whose `.triggered` id starts with `prefix` (at most `limit`).
    func approvals(idPrefix prefix: String, limit: Int) throws -> [(sequence: StoredSequence, task: StoredTask)]

    /// Whether an event with this id was recorded.
    func containsEvent(id: String) throws -> Bool

    /// Events in record order after the position `after`, as the JSON they were recorded as,
    /// optionally of one context only, and of one type: `type` itself or any type ending in
    /// `.type` (`approval.finished` matches `sh.keptn.event.approval.finished`).
    func events(context: String?, type: String?, after: Int64, limit: Int) throws -> [RecordedEvent]

    /// The `.triggered` events of tasks still open (triggered or started, not finished) in
    /// active sequences, in record order: what an integration polls for (Keptn's
    /// `GET /controlPlane/v1/event/triggered/{type}`). Its cost follows the open tasks.
    func openTasks(_ query: OpenTaskQuery) throws -> [RecordedEvent]

    /// Events newest first, as Keptn's datastore gives them (`keptn get event`): at most `limit`
    /// before the position `before` (nil: from the newest), and how many match in all.
    func eventsNewestFirst(_ query: EventQuery) throws -> (events: [RecordedEvent], total: Int)

    /// Whether the project has a sequence of the service (one index lookup).
    func hasDelivered(project: String, service: String) throws -> Bool

    /// The services a project has sequences of, sorted (at most `limit`).
    func services(project: String, limit: Int) throws -> [String]

    /// For each project, service and stage, the newest sequence (`deployed`: the newest that
    /// finished with pass or warning, what runs there now): the environment's screen.
    func newestPerStage(deployed: Bool) throws -> [StoredSequence]

    /// The contexts of sequences that start with `prefix` (at most `limit`, in no particular order).
    func contexts(prefix: String, limit: Int) throws -> [String]

    /// Lighthouse evaluations of one project, stage and service, newest first.
    func evaluations(_ query: EvaluationQuery) throws -> [StoredEvaluation]

    /// What the comparison of a new evaluation needs of the previous ones, newest first: their
    /// ids, overall results and the values of their successful SLIs.
    func previousEvaluations(_ query: EvaluationQuery) throws -> [PreviousEvaluation]

    /// Evaluations whose `.triggered` or `.finished` id starts with `prefix`.
    func evaluations(idPrefix prefix: String, limit: Int) throws -> [StoredEvaluation]

    /// The newest evaluation of each of these contexts, in short: `{stage, result, evaluation: {score, result}}`.
    func latestEvaluations(contexts: [String]) throws -> [String: JSONValue]
}

extension Store {
    public func events(context: String?, after: Int64, limit: Int) throws -> [RecordedEvent] {
        try events(context: context, type: nil, after: after, limit: limit)
    }

    /// The one context `given` names: the whole id, or a unique prefix of at least
    /// `ContextLookup.minimumPrefix` characters, as approval ids are given. Thrown otherwise, with
    /// what to do.
    public func context(named given: String) throws -> String {
        guard given.count >= ContextLookup.minimumPrefix else {
            throw ContextLookup("give at least \(ContextLookup.minimumPrefix) characters of the context, not \"\(given)\" (shipyardctl sequences lists them)")
        }
        let found = try contexts(prefix: given, limit: 6)
        if found.contains(given) { return given }
        guard let only = found.first else {
            throw ContextLookup("no sequence has \(given.count >= 36 ? "the context" : "a context starting with") \(given) (shipyardctl sequences lists them)")
        }
        guard found.count == 1 else {
            let named = found.sorted().prefix(5).joined(separator: ", ") + (found.count > 5 ? ", …" : "")
            throw ContextLookup("\(given) is ambiguous: it starts the contexts \(named); give more of it")
        }
        return only
    }
}

/// Why a context given on the command line names no one sequence.
public struct ContextLookup: Error, CustomStringConvertible, Sendable, Equatable {
    public static let minimumPrefix = 4
    public var description: String

    public init(_ description: String) {
        self.description = description
    }
}

/// Which evaluations `evaluations(_:)` returns.
public struct EvaluationQuery: Sendable {
    public var project: String
    public var stage: String
    public var service: String
    /// Only evaluations whose overall result (`data.result`) is one of these; nil: any.
    public var results: Set<String>?
    public var includeInvalidated = false
    public var limit: Int

    public init(project: String, stage: String, service: String, results: Set<String>? = nil, includeInvalidated: Bool = false, limit: Int) {
        self.project = project
        self.stage = stage
        self.service = service
        self.results = results
        self.includeInvalidated = includeInvalidated
        self.limit = limit
    }
}

/// One `evaluation.finished` of shipyardd's lighthouse, as recorded.
public struct StoredEvaluation: Sendable, Equatable {
    public var eventID: String
    public var triggeredID: String
    public var context: String
    public var time: String
    public var result: String
    public var invalidated: Bool
    /// The event's data: Keptn's `evaluation.finished` payload, without `evaluation.sloFileContent`
    /// (up to a megabyte each; `events --context` has it).
    public var data: JSONValue
}

/// The start-up input of the engine.
public struct ActiveWork: Sendable {
    public var events: [KeptnEvent]
    /// When active sequences left the queue (kept in the store, since the sequence that
    /// released them may belong to a context that is not replayed).
    public var queueReleases: [String: Date]

    public init(events: [KeptnEvent], queueReleases: [String: Date]) {
        self.events = events
        self.queueReleases = queueReleases
    }
}

/// Keptn's datastore filters (`GET /api/mongodb-datastore/event`).
public struct EventQuery: Sendable {
    public var project: String?
    public var stage: String?
    public var service: String?
    public var context: String?
    /// The whole type (`sh.keptn.event.approval.triggered`).
    public var type: String?
    public var eventID: String?
    /// Events recorded after this time (RFC 3339, compared as recorded).
    public var fromTime: String?
    public var before: Int64?
    public var limit: Int

    public init(limit: Int) {
        self.limit = limit
    }

    /// The conditions on `events`, each with its value, in order (`before` apart).
    var conditions: [(String, String)] {
        var result: [(String, String)] = []
        if let project { result.append(("project = ?", project)) }
        if let stage { result.append(("stage = ?", stage)) }
        if let service { result.append(("service = ?", service)) }
        if let context { result.append(("context = ?", context)) }
        if let type { result.append(("type = ?", type)) }
        if let eventID { result.append(("id = ?", eventID)) }
        if let fromTime { result.append(("time > ?", fromTime)) }
        return result
    }
}

/// Which open tasks an integration asks for.
public struct OpenTaskQuery: Sendable {
    /// The task's name (`deployment` of `sh.keptn.event.deployment.triggered`).
    public var task: String
    public var project: String?
    public var stage: String?
    public var service: String?
    /// One `.triggered` event by its id.
    public var eventID: String?
    public var limit: Int

    public init(task: String, project: String? = nil, stage: String? = nil, service: String? = nil, eventID: String? = nil, limit: Int = 100) {
        self.task = task
        self.project = project
        self.stage = stage
        self.service = service
        self.eventID = eventID
        self.limit = limit
    }

    /// The conditions on `tasks t`, `sequences s` and `events e`, each with its value, in order.
    var conditions: [(String, String)] {
        var result = [("t.name = ?", task)]
        if let project { result.append(("e.project = ?", project)) }
        if let stage { result.append(("e.stage = ?", stage)) }
        if let service { result.append(("e.service = ?", service)) }
        if let eventID { result.append(("e.id = ?", eventID)) }
        return result
    }
}

public struct RecordedEvent: Sendable {
    /// The event's place in the record (increasing; `events --follow` continues after it).
    public var position: Int64
    public var context: String
    public var json: Data
}

/// `shipyardctl sequences`' filters.
public struct SequenceQuery: Sendable {
    public var project: String?
    public var service: String?
    public var state: SequenceState?
    public var stage: String?
    /// Only sequences whose image contains this text (a version: `v0.2`).
    public var image: String?
    /// Only sequences triggered at or after this time.
    public var since: Date?
    /// The newest `limit` sequences that match (nil: all of them); active sequences that match
    /// are returned as well, however old.
    public var limit: Int?

    public init(project: String? = nil, service: String? = nil, state: SequenceState? = nil, since: Date? = nil, limit: Int? = nil) {
        self.project = project
        self.service = service
        self.state = state
        self.since = since
        self.limit = limit
    }
}

public struct SequencePage: Sendable {
    /// Oldest first.
    public var sequences: [StoredSequence]
    /// Whether older matching sequences were left out by the limit.
    public var more: Bool
}

/// One sequence execution as the store keeps it: current after every commit.
public struct StoredSequence: Codable, Sendable, Equatable {
    public var id: String
    public var context: String
    public var project: String
    public var stage: String
    public var service: String
    public var sequence: String
    public var commit: String?
    public var state: SequenceState
    public var result: TaskResult?
    public var status: TaskStatus?
    public var message: String?
    public var triggeredBy: String?
    public var requestID: String?
    public var triggeredAt: Date
    public var startedAt: Date?
    public var finishedAt: Date?
    public var queueReleasedAt: Date?
    /// The artifact delivered (`data.configurationChange.values.image` of the sequence's trigger).
    public var image: String?
    /// Filled by `sequences(context:)` and `task(triggeredID:)`; empty in listings.
    public var tasks: [StoredTask]

    public var isActive: Bool { !state.isTerminal }

    public init(_ change: Engine.Change) {
        let e = change.execution
        id = e.id
        context = e.context
        project = e.project
        stage = e.stage
        service = e.service
        sequence = e.sequence
        commit = e.commit
        state = change.state
        result = e.result
        status = e.status
        message = e.message
        triggeredBy = e.triggeredBy
        requestID = e.requestID
        triggeredAt = e.triggeredAt
        startedAt = e.startedAt
        finishedAt = e.finishedAt
        queueReleasedAt = e.queueReleasedAt
        image = e.data["configurationChange"]?["values"]?["image"]?.string
        tasks = e.tasks.enumerated().map { StoredTask($0.element, position: $0.offset) }
        // A task held back by its triggeredAfter: when it will start (not while the sequence
        // waits in the queue, when that is not known yet).
        if change.state != .waiting, let index = e.currentTaskIndex, e.tasks[index].phase == .pending, e.tasks[index].delay > 0 {
            tasks[index].dueAt = e.triggerDue(forTask: index)
        }
    }

    init(
        id: String, context: String, project: String, stage: String, service: String, sequence: String, commit: String?,
        state: SequenceState, result: TaskResult?, status: TaskStatus?, message: String?, triggeredBy: String?, requestID: String?,
        triggeredAt: Date, startedAt: Date?, finishedAt: Date?, queueReleasedAt: Date?, image: String? = nil
    ) {
        self.id = id
        self.context = context
        self.project = project
        self.stage = stage
        self.service = service
        self.sequence = sequence
        self.commit = commit
        self.state = state
        self.result = result
        self.status = status
        self.message = message
        self.triggeredBy = triggeredBy
        self.requestID = requestID
        self.triggeredAt = triggeredAt
        self.startedAt = startedAt
        self.finishedAt = finishedAt
        self.queueReleasedAt = queueReleasedAt
        self.image = image
        tasks = []
    }
}

public struct StoredTask: Codable, Sendable, Equatable {
    public var position: Int
    public var name: String
    /// pending, triggered, started or finished.
    public var state: String
    public var result: TaskResult?
    public var status: TaskStatus?
    public var message: String?
    public var triggeredID: String?
    public var triggeredAt: Date?
    public var startedAt: Date?
    public var finishedAt: Date?
    /// For a task waiting out its `triggeredAfter`: when it will be triggered.
    public var dueAt: Date?

    init(_ task: TaskRun, position: Int) {
        self.position = position
        name = task.name
        state = task.phase.rawValue
        let finished = task.phase == .finished
        result = finished ? task.result : nil
        status = finished ? task.status : nil
        message = task.message
        triggeredID = task.triggeredID
        triggeredAt = task.triggeredAt
        startedAt = task.startedAt
        finishedAt = task.finishedAt
    }

    init(
        position: Int, name: String, state: String, result: TaskResult?, status: TaskStatus?, message: String?, triggeredID: String?,
        triggeredAt: Date?, startedAt: Date?, finishedAt: Date?, dueAt: Date? = nil
    ) {
        self.dueAt = dueAt
        self.position = position
        self.name = name
        self.state = state
        self.result = result
        self.status = status
        self.message = message
        self.triggeredID = triggeredID
        self.triggeredAt = triggeredAt
        self.startedAt = startedAt
        self.finishedAt = finishedAt
    }
}

/// Why the store cannot be used: said so that an operator knows what to do.
public struct StoreError: Error, CustomStringConvertible, Sendable {
    public var description: String
    public init(_ description: String) { self.description = description }
}
