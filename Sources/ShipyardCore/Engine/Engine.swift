public import Foundation

/// Makes event ids: UUIDs in the daemon, a counter in tests.
public protocol IDGenerator {
    mutating func next() -> String
}

public struct UUIDGenerator: IDGenerator {
    /// Hexadecimal digits every id starts with (tests of id prefixes: ids that share one).
    let prefix: String

    public init(prefix: String? = nil) {
        self.prefix = prefix.map { String($0.lowercased().filter(\.isHexDigit).prefix(8)) } ?? ""
    }

    public mutating func next() -> String {
        let id = UUID().uuidString.lowercased()
        return prefix + id.dropFirst(prefix.count)
    }
}

/// The shipyard a project runs new sequences with, and the commit it came from.
public struct PinnedShipyard: Sendable {
    public var shipyard: Shipyard
    public var commit: String

    public init(shipyard: Shipyard, commit: String) {
        self.shipyard = shipyard
        self.commit = commit
    }
}

/// A request to start a sequence (`shipyardctl trigger`).
public struct TriggerRequest: Sendable {
    public var project: String
    public var service: String
    public var sequence: String
    /// nil: the first stage that has the sequence.
    public var stage: String?
    public var data: JSONValue
    public var source: String
    /// The `shipyardctl` request's id: a request applied once is not applied again.
    public var requestID: String?
    /// The account of the person who asked (the kernel's uid for the local socket's caller).
    public var uid: UInt32?

    public init(
        project: String, service: String, sequence: String, stage: String? = nil, data: JSONValue = .object([:]),
        source: String = "shipyardctl", requestID: String? = nil, uid: UInt32? = nil
    ) {
        self.uid = uid
        self.project = project
        self.service = service
        self.sequence = sequence
        self.stage = stage
        self.data = data
        self.source = source
        self.requestID = requestID
    }
}

/// What the shell must do after the engine handled something.
public enum EngineEffect: Sendable, Equatable {
    /// Append this event to the journal (before acting on anything after it).
    case record(KeptnEvent)
    /// A task was triggered: hand its `.triggered` event to the task's executor (a local program,
    /// or nobody, when an external service answers with `send event`).
    case runTask(KeptnEvent)
    /// A running task's sequence was aborted: stop its process.
    case cancelTask(triggeredID: String)
    /// An approval waits for a person.
    case approvalNeeded(triggeredID: String)
    /// A pending approval is no longer pending (decided, or its sequence ended).
    case approvalClosed(triggeredID: String)
    /// Call `tick` again at this time (a delayed task is due, or a task may time out).
    case wake(at: Date)
}

/// Why the engine refused a request or an event.
public struct EngineError: Error, Sendable, Equatable, CustomStringConvertible {
    public var message: String
    public init(_ message: String) { self.message = message }
    public var description: String { message }
}

/// Keptn's shipyard-controller as a pure state machine. Every change of state is an event:
/// `handle` decides which events follow from a command, applies them, and returns them as effects
/// for the shell to record and act on; `replay` applies recorded events, so the journal alone
/// rebuilds the engine after a restart.
public struct Engine: Sendable {
    /// The executions the engine holds: the active ones, and those that ended since the last
    /// `takeChanges()`. Ended executions live on in the store, not here, so memory and the work
    /// per command follow the active work, never the history.
    public internal(set) var executions: [String: SequenceExecution] = [:]
    var taskOwner: [String: String] = [:]
    /// What the engine knows of each context that has a sequence it holds.
    var contexts: [String: ContextInfo] = [:]
    /// Executions that have not ended: the engine's work per command is proportional to these,
    /// not to the history.
    var activeIDs: Set<String> = []
    var nextOrder = 0
    /// The context each `shipyardctl` request started (while the context is held).
    var requestContexts: [String: String] = [:]
    /// Executions changed since the last `takeChanges()`, in the order they first changed.
    var changed: [String] = []
    var changedSet: Set<String> = []

    struct ContextInfo: Sendable {
        /// Who started the context (the first trigger's source and account), for follow-on stages.
        var origin: String
        var originUID: UInt32?
        /// How many sequences it has run: `triggeredOn` loops stop at `maxSequencesPerContext`.
        var sequences = 0
        /// The executions of it the engine holds.
        var members: Set<String> = []
        var requests: [String] = []
    }

    /// An execution as it is now, with its derived state: what the store keeps current.
    public struct Change: Sendable, Equatable {
        public var execution: SequenceExecution
        public var state: SequenceState

        public init(execution: SequenceExecution, state: SequenceState) {
            self.execution = execution
            self.state = state
        }
    }
    /// How long a triggered task may go without a `.started` or `.finished` (Keptn: 10 minutes).
    public var taskStartTimeout: TimeInterval = 600
    /// How long a task that an external service started may go without its `.finished` (Keptn
    /// waits forever); nil: no bound. Tasks in `locallyRunTasks` and approvals are exempt: a
    /// local program has its own timeout, and an approval waits for a person.
    public var taskFinishTimeout: TimeInterval? = 86400
    /// Task names the daemon runs as local programs.
    public var locallyRunTasks: Set<String> = []
    /// The sequence (and task) every stage has when its shipyard does not define it.
    public static let evaluationSequence = "evaluation"
    /// At most this many sequences run in one context: a sequence that `triggeredOn` would start
    /// beyond it (a remediation loop that never heals) ends at once with a message instead.
    public var maxSequencesPerContext = 50

    public init() {}

    public enum Command: Sendable {
        case trigger(TriggerRequest)
        /// A `.started` or `.finished` event from an executor, a person, or `send event`.
        case event(KeptnEvent)
        /// Time passed: due delayed tasks start, silent tasks time out.
        case tick
        /// `by`: who asked (recorded as the event's source and in its data, with `reason`).
        case pause(context: String, by: String? = nil, reason: String? = nil)
        case resume(context: String, by: String? = nil, reason: String? = nil)
        case abort(context: String, by: String? = nil, reason: String? = nil)
    }

    // MARK: Reading

    /// Keptn's state name for an execution, including the derived `waiting` and `waitingForApproval`.
    public func state(of execution: SequenceExecution) -> SequenceState {
        switch execution.phase {
        case .triggered:
            return isBlocked(execution) ? .waiting : .triggered
        case .started:
            if let index = execution.currentTaskIndex, execution.tasks[index].name == "approval",
                execution.tasks[index].phase == .started
            {
                return .waitingForApproval
            }
            return .started
        default:
            return execution.phase
        }
    }

    public func executions(inContext context: String) -> [SequenceExecution] {
        executions.values.filter { $0.context == context }.sorted { $0.order < $1.order }
    }

    public var ordered: [SequenceExecution] {
        executions.values.sorted { $0.order < $1.order }
    }

    /// The executions that have not ended, oldest first.
    public var active: [SequenceExecution] {
        activeIDs.compactMap { executions[$0] }.sorted { $0.order < $1.order }
    }

    /// The execution and index of the task a `.triggered` id belongs to.
    public func task(triggeredID: String) -> (execution: SequenceExecution, index: Int)? {
        guard let owner = taskOwner[triggeredID], let execution = executions[owner],
            let index = execution.tasks.firstIndex(where: { $0.triggeredID == triggeredID })
        else { return nil }
        return (execution, index)
    }

    /// The context a `shipyardctl` request already started, if it did.
    public func context(forRequest id: String) -> String? {
        requestContexts[id]
    }

    /// The sequence a `shipyardctl` request started, if it did.
    public func execution(forRequest id: String) -> SequenceExecution? {
        guard let context = requestContexts[id] else { return nil }
        return executions(inContext: context).first { $0.requestID == id }
    }

    /// Why an incoming task event would change nothing, if it would not: a repeated event id, or a
    /// second `.started` from the same source (a retry). Such events are acknowledged, not applied.
    public func duplicate(_ event: KeptnEvent) -> String? {
        guard let triggeredID = event.triggeredid, let (execution, index) = task(triggeredID: triggeredID) else { return nil }
        let task = execution.tasks[index]
        if task.eventIDs.contains(event.id) { return "event \(event.id) was already applied to \(task.name)" }
        if case .task(_, "started")? = event.kind, task.startedSources.contains(event.source) {
            return "\(task.name) was already started by \(event.source)"
        }
        return nil
    }

    /// The executions that changed since the last call, with their state now, and lets go of
    /// those that ended (and of contexts with nothing active left): the shell stores the changes,
    /// and from then on the store, not the engine, answers for what ended.
    public mutating func takeChanges() -> [Change] {
        let ids = changed
        changed = []
        changedSet = []
        let changes = ids.compactMap { id in executions[id].map { Change(execution: $0, state: state(of: $0)) } }
        for change in changes where !change.execution.isActive {
            forget(change.execution)
        }
        return changes
    }

    /// After a start that replayed only the contexts with active work: when a queued execution
    /// left the queue (the sequence that released it may belong to a context not replayed).
    public mutating func restoreQueueRelease(of id: String, at date: Date) {
        guard var execution = executions[id], execution.isActive, execution.queueReleasedAt == nil else { return }
        execution.queueReleasedAt = date
        executions[id] = execution
    }

    mutating func forget(_ execution: SequenceExecution) {
        executions[execution.id] = nil
        for task in execution.tasks {
            if let id = task.triggeredID { taskOwner[id] = nil }
        }
        guard var info = contexts[execution.context] else { return }
        info.members.remove(execution.id)
        if info.members.contains(where: { activeIDs.contains($0) }) {
            contexts[execution.context] = info
        } else {
            for id in info.members { executions[id] = nil }
            for request in info.requests { requestContexts[request] = nil }
            contexts[execution.context] = nil
        }
    }

    mutating func markChanged(_ id: String) {
        if changedSet.insert(id).inserted { changed.append(id) }
    }

    /// Tasks that were triggered and have not finished: after a restart, these are re-dispatched.
    public var unfinishedTasks: [(execution: SequenceExecution, index: Int)] {
        active.compactMap { execution in
            guard let index = execution.currentTaskIndex, execution.tasks[index].phase != .pending else { return nil }
            return (execution, index)
        }
    }

    // MARK: Commands

    public mutating func handle(
        _ command: Command, shipyards: [String: PinnedShipyard], now: Date, ids: inout some IDGenerator
    ) throws(EngineError) -> [EngineEffect] {
        var run = Run(now: now)
        switch command {
        case .trigger(let request):
            if let id = request.requestID, requestContexts[id] != nil { break }
            try trigger(request, shipyards: shipyards, context: ids.next(), run: &run, ids: &ids)
        case .event(let event):
            try accept(event, run: &run)
        case .tick:
            break
        case .pause(let context, let by, let reason):
            let active = try activeExecutions(context)
            for execution in active where execution.phase != .paused {
                emitSequenceEvent(execution, phase: "paused", data: Self.attributed(baseData(execution), by: by, reason: reason), source: by, run: &run, ids: &ids)
            }
        case .resume(let context, let by, let reason):
            let active = try activeExecutions(context)
            for execution in active where execution.phase == .paused {
                emitSequenceEvent(execution, phase: "resumed", data: Self.attributed(baseData(execution), by: by, reason: reason), source: by, run: &run, ids: &ids)
            }
        case .abort(let context, let by, let reason):
            var message = "sequence aborted"
            if let by { message += " by \(by)" }
            if let reason, !reason.isEmpty { message += ": \(reason)" }
            for execution in try activeExecutions(context) {
                if let index = execution.currentTaskIndex, let id = execution.tasks[index].triggeredID,
                    execution.tasks[index].phase != .pending
                {
                    run.effects.append(execution.tasks[index].name == "approval" ? .approvalClosed(triggeredID: id) : .cancelTask(triggeredID: id))
                }
                finish(execution, result: .fail, status: .aborted, message: message, marker: nil, extra: Self.attributed(.object([:]), by: by, reason: reason),
                       source: by, run: &run, ids: &ids)
            }
        }
        progressAll(shipyards: shipyards, run: &run, ids: &ids)
        return run.effects
    }

    /// Applies a recorded event without deciding anything: the journal replay.
    public mutating func replay(_ event: KeptnEvent) {
        apply(event)
    }

    /// What must happen now that the journal has been replayed: tasks that are due or timed out,
    /// and the next wake-up.
    public mutating func resume(shipyards: [String: PinnedShipyard], now: Date, ids: inout some IDGenerator) -> [EngineEffect] {
        var run = Run(now: now)
        progressAll(shipyards: shipyards, run: &run, ids: &ids)
        return run.effects
    }
}
