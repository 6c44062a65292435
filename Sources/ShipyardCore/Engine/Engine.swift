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
    public private(set) var executions: [String: SequenceExecution] = [:]
    private var taskOwner: [String: String] = [:]
    /// What the engine knows of each context that has a sequence it holds.
    private var contexts: [String: ContextInfo] = [:]
    /// Executions that have not ended: the engine's work per command is proportional to these,
    /// not to the history.
    private var activeIDs: Set<String> = []
    private var nextOrder = 0
    /// The context each `shipyardctl` request started (while the context is held).
    private var requestContexts: [String: String] = [:]
    /// Executions changed since the last `takeChanges()`, in the order they first changed.
    private var changed: [String] = []
    private var changedSet: Set<String> = []

    private struct ContextInfo: Sendable {
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

    private mutating func forget(_ execution: SequenceExecution) {
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

    private mutating func markChanged(_ id: String) {
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

    // MARK: Deciding

    private struct Run {
        var now: Date
        var effects: [EngineEffect] = []
    }

    private mutating func trigger(
        _ request: TriggerRequest, shipyards: [String: PinnedShipyard], context: String, run: inout Run, ids: inout some IDGenerator
    ) throws(EngineError) {
        guard let pinned = shipyards[request.project] else {
            let known = shipyards.keys.sorted()
            throw EngineError(
                known.contains(request.project) || known.isEmpty
                    ? "project \"\(request.project)\" has no valid shipyard loaded yet"
                    : "no project \"\(request.project)\" (projects: \(known.joined(separator: ", ")))")
        }
        let shipyard = pinned.shipyard
        let stage: Shipyard.Stage
        if let name = request.stage {
            guard let found = shipyard.stage(named: name) else {
                throw EngineError("no stage \"\(name)\" in project \(request.project) (stages: \(shipyard.stages.map(\.name).joined(separator: ", ")))")
            }
            stage = found
        } else if let first = shipyard.stages.first(where: { $0.sequence(named: request.sequence) != nil }) {
            stage = first
        } else if request.sequence == Self.evaluationSequence, let first = shipyard.stages.first {
            stage = first
        } else {
            let all = Set(shipyard.stages.flatMap { $0.sequences.map(\.name) }).sorted()
            throw EngineError("no sequence \"\(request.sequence)\" in project \(request.project) (sequences: \(all.joined(separator: ", ")))")
        }
        let planned: [PlannedTask]
        if let sequence = stage.sequence(named: request.sequence) {
            planned = sequence.tasks.map(PlannedTask.init)
        } else if request.sequence == Self.evaluationSequence {
            // Keptn: every stage has an `evaluation` sequence of one `evaluation` task (a
            // quality-gate-only project), unless the shipyard defines its own.
            planned = [PlannedTask(name: Self.evaluationSequence)]
        } else {
            throw EngineError("no sequence \"\(request.sequence)\" in stage \(stage.name) (it has: \(stage.sequences.map(\.name).joined(separator: ", ")))")
        }
        guard EntityName.check(request.service) == .valid else {
            throw EngineError("service name \"\(request.service)\" is invalid: use \(EntityName.rule)")
        }
        var data = request.data.object.map(JSONValue.object) ?? .object([:])
        data["project"] = .string(request.project)
        data["stage"] = .string(stage.name)
        data["service"] = .string(request.service)
        var event = KeptnEvent(
            id: ids.next(), source: request.source, type: "\(KeptnEvent.prefix)\(stage.name).\(request.sequence).triggered",
            time: Timestamps.format(run.now), context: context, gitcommitid: pinned.commit,
            shipyardtasks: planned, data: data)
        event.shipyardrequestid = request.requestID
        event.shipyarduid = request.uid
        emit(event, run: &run)
    }

    /// Validates an incoming task event against what the engine expects, then applies it. A
    /// repeated event is acknowledged and changes nothing.
    private mutating func accept(_ event: KeptnEvent, run: inout Run) throws(EngineError) {
        guard case .task(let name, let phase)? = event.kind, phase == "started" || phase == "finished" else {
            throw EngineError("only task .started and .finished events can be sent (got \(event.type))")
        }
        guard let triggeredID = event.triggeredid, let (execution, index) = task(triggeredID: triggeredID) else {
            throw EngineError("no triggered task has the id \(event.triggeredid ?? "(missing triggeredid)")")
        }
        if duplicate(event) != nil { return }
        guard event.data.object != nil else {
            throw EngineError("an event's data must be a JSON object, not \(event.data.compactDescription)")
        }
        var event = event
        let task = execution.tasks[index]
        guard task.name == name else {
            throw EngineError("\(event.type) does not answer \(triggeredID), which triggered task \(task.name)")
        }
        guard event.shkeptncontext == execution.context else {
            throw EngineError("the event's shkeptncontext \(event.shkeptncontext) is not the sequence's context \(execution.context)")
        }
        guard execution.isActive, index == execution.currentTaskIndex else {
            throw EngineError("task \(task.name) of \(execution.stage).\(execution.sequence) (\(execution.context)) is no longer running")
        }
        if phase == "finished" {
            event.data = Self.normalizedFinishedData(event.data, task: task.name)
            if task.name == "approval" { run.effects.append(.approvalClosed(triggeredID: triggeredID)) }
        }
        emit(event, run: &run)
    }

    /// Keptn checks no enum: a `.finished` whose result or status is not one of its values is
    /// taken and counts as failed. Here it fails its task with `errored` and the offending value
    /// in the message, so that the task ends instead of waiting for an answer already given.
    static func normalizedFinishedData(_ data: JSONValue, task: String) -> JSONValue {
        var problems: [String] = []
        var data = data
        switch data["result"] {
        case .string(let text) where TaskResult(rawValue: text) != nil:
            break
        case nil, .null?:
            problems.append("no result")
        case let other?:
            problems.append("result \(other.compactDescription)")
        }
        if let status = data["status"], status != .null, status.string.flatMap(TaskStatus.init) == nil {
            problems.append("status \(status.compactDescription)")
        }
        guard !problems.isEmpty else { return data }
        let original = data["message"]?.string ?? ""
        data["result"] = .string(TaskResult.fail.rawValue)
        data["status"] = .string(TaskStatus.errored.rawValue)
        data["message"] = .string(
            "\(task).finished had \(problems.joined(separator: " and ")); Keptn's results are pass, warning and fail, its statuses succeeded, errored, aborted and unknown"
                + (original.isEmpty ? "" : " (its message: \(original))"))
        return data
    }

    /// Moves every active sequence forward until nothing changes: a step that finishes a sequence
    /// can unblock or trigger others, which may take instant steps of their own. Every step
    /// records an event that moves a task or a sequence strictly forward, and new sequences are
    /// bounded by `maxSequencesPerContext`, so this ends.
    private mutating func progressAll(shipyards: [String: PinnedShipyard], run: inout Run, ids: inout some IDGenerator) {
        var changed: Bool
        repeat {
            changed = false
            for execution in active {
                if progress(execution.id, shipyards: shipyards, run: &run, ids: &ids) { changed = true }
            }
        } while changed
    }

    /// Moves one execution forward as far as it can go now. Returns whether anything happened.
    private mutating func progress(_ id: String, shipyards: [String: PinnedShipyard], run: inout Run, ids: inout some IDGenerator) -> Bool {
        guard let execution = executions[id], execution.isActive, execution.phase != .paused else { return false }
        if execution.phase == .triggered {
            if isBlocked(execution) { return false }
            if execution.tasks.isEmpty {
                finish(execution, result: .fail, status: .errored, message: "task sequence \(execution.sequence) does not contain any tasks", marker: nil, run: &run, ids: &ids)
                return true
            }
        }
        guard let index = execution.currentTaskIndex else {
            let last = execution.tasks.last
            finish(execution, result: last?.result ?? .pass, status: last?.status ?? .succeeded, message: last?.message, marker: nil, run: &run, ids: &ids)
            followOns(of: executions[id]!, shipyards: shipyards, run: &run, ids: &ids)
            return true
        }
        if index > 0 {
            let previous = execution.tasks[index - 1]
            if previous.result == .fail || previous.status == .errored {
                // An errored task fails its sequence whatever result it reported, so that a
                // broken step never promotes a delivery.
                finish(execution, result: .fail, status: previous.status, message: previous.message, marker: nil, run: &run, ids: &ids)
                followOns(of: executions[id]!, shipyards: shipyards, run: &run, ids: &ids)
                return true
            }
        }
        let task = execution.tasks[index]
        switch task.phase {
        case .pending:
            // Keptn: due = now + triggeredAfter at the moment the task could be triggered, by the
            // daemon's clock: when the task before it finished, or when the sequence left the queue.
            let since = index > 0
                ? (execution.tasks[index - 1].finishedAt ?? execution.triggeredAt)
                : max(execution.triggeredAt, execution.queueReleasedAt ?? execution.triggeredAt)
            let due = since.addingTimeInterval(task.delay)
            if task.delay > 0, run.now < due {
                run.effects.append(.wake(at: due))
                return false
            }
            triggerTask(execution, index: index, run: &run, ids: &ids)
            return true
        case .triggered:
            return expire(
                execution, at: (task.triggeredAt ?? run.now).addingTimeInterval(taskStartTimeout), cancel: task.triggeredID,
                message: "sequence timed out while waiting for task \(task.name) to receive a correlating .started or .finished event",
                run: &run, ids: &ids)
        case .started:
            guard let limit = taskFinishTimeout, task.name != "approval", !locallyRunTasks.contains(task.name),
                let triggered = task.triggeredAt
            else { return false }
            // A .started dated before its task was triggered (an older journal's) counts from the trigger.
            let started = max(task.startedAt ?? triggered, triggered)
            return expire(
                execution, at: started.addingTimeInterval(limit), cancel: nil,
                message: "sequence timed out: task \(task.name) started at \(Timestamps.format(started)) and sent no .finished within \(GoDuration.format(.seconds(limit))) (taskFinishTimeout)",
                run: &run, ids: &ids)
        case .finished:
            return false
        }
    }

    /// Ends a sequence `timedOut` once `deadline` passed (stopping the task's program, if any);
    /// until then, asks to be woken at the deadline.
    private mutating func expire(
        _ execution: SequenceExecution, at deadline: Date, cancel: String?, message: String, run: inout Run, ids: inout some IDGenerator
    ) -> Bool {
        guard run.now >= deadline else {
            run.effects.append(.wake(at: deadline))
            return false
        }
        if let cancel { run.effects.append(.cancelTask(triggeredID: cancel)) }
        finish(execution, result: .fail, status: .errored, message: message, marker: "timedOut", run: &run, ids: &ids)
        return true
    }

    private mutating func triggerTask(_ execution: SequenceExecution, index: Int, run: inout Run, ids: inout some IDGenerator) {
        let task = execution.tasks[index]
        var data = execution.data
        if index > 0 {
            let previous = execution.tasks[index - 1]
            data["result"] = .string(previous.result.rawValue)
            data["status"] = .string(previous.status.rawValue)
        }
        data["message"] = .string("")
        if let properties = task.properties {
            data[task.name] = (data[task.name] ?? .object([:])).merging(properties)
        }
        let event = KeptnEvent(
            id: ids.next(), type: "\(KeptnEvent.prefix)\(task.name).triggered", time: Timestamps.format(run.now),
            context: execution.context, triggeredid: execution.id, gitcommitid: execution.commit, data: data)
        emit(event, run: &run)
        if task.name == "approval" {
            approve(event, strategies: task.properties, run: &run, ids: &ids)
        } else {
            run.effects.append(.runTask(event))
            run.effects.append(.wake(at: run.now.addingTimeInterval(taskStartTimeout)))
        }
    }

    /// Keptn's approval service: started at once, then decided from the previous result and the
    /// task's strategies. A previous `fail` is declined, `automatic` passes, anything else
    /// (manual, a missing strategy, no previous result) waits for a person, with no timeout.
    ///
    /// The strategies are the task's own properties, pinned from the shipyard when the sequence
    /// was triggered, never what the merged payload says under `approval`: an external task's
    /// data could otherwise plant `approval: {warning: automatic}` and pass a gate unseen.
    private mutating func approve(_ triggered: KeptnEvent, strategies: JSONValue?, run: inout Run, ids: inout some IDGenerator) {
        let previous = triggered.data["result"]?.string ?? triggered.data["evaluation"]?["result"]?.string ?? ""
        let strategy = previous.isEmpty ? nil : strategies?[previous]?.string
        let explained = "Approval strategy for result '\(previous)': \(strategy ?? "manual")"
        var data = baseData(of: triggered)
        data["status"] = .string("succeeded")
        data["message"] = .string(explained)
        emit(taskEvent(triggered, phase: "started", data: data, run: run, ids: &ids), run: &run)
        let decision: TaskResult?
        if previous == TaskResult.fail.rawValue {
            decision = .fail
        } else if strategy == ApprovalStrategy.automatic.rawValue, previous == "pass" || previous == "warning" {
            decision = .pass
        } else {
            decision = nil
        }
        guard let decision else {
            run.effects.append(.approvalNeeded(triggeredID: triggered.id))
            return
        }
        data["result"] = .string(decision.rawValue)
        data["approval"] = .object(["decision": .string(decision == .pass ? "approved" : "declined"), "by": .string("automatic")])
        emit(taskEvent(triggered, phase: "finished", data: data, run: run, ids: &ids), run: &run)
    }

    private mutating func followOns(of finished: SequenceExecution, shipyards: [String: PinnedShipyard], run: inout Run, ids: inout some IDGenerator) {
        guard finished.phase == .finished, let pinned = shipyards[finished.project], let result = finished.result else { return }
        // Keptn (GetLastTaskExecutionResult): the last task that ran, not the last one planned.
        let lastTask = finished.tasks.last { $0.phase == .finished }?.name
        for stage in pinned.shipyard.stages {
            for sequence in stage.sequences {
                for trigger in sequence.triggeredOn
                where trigger.stage == finished.stage && trigger.sequence == finished.sequence
                    && Self.matches(trigger, result: result, lastTask: lastTask)
                {
                    let count = contexts[finished.context]?.sequences ?? 0
                    var data = finished.data
                    data["stage"] = .string(stage.name)
                    data["result"] = .string(result.rawValue)
                    data["status"] = .string((finished.status ?? .succeeded).rawValue)
                    let event = KeptnEvent(
                        id: ids.next(), type: "\(KeptnEvent.prefix)\(stage.name).\(sequence.name).triggered",
                        time: Timestamps.format(run.now), context: finished.context, gitcommitid: pinned.commit,
                        shipyardtasks: sequence.tasks.map(PlannedTask.init), data: data)
                    emit(event, run: &run)
                    if count >= maxSequencesPerContext, let limited = executions[event.id] {
                        finish(limited, result: .fail, status: .errored,
                               message: "not started: context \(finished.context) already ran \(count) sequences, the limit (maxSequencesPerContext); \(stage.name).\(sequence.name) is triggered on \(finished.stage).\(finished.sequence).finished, which loops",
                               marker: nil, run: &run, ids: &ids)
                    }
                }
            }
        }
    }

    /// Without a selector a follow-on fires on pass or warning; with one, when `result` or
    /// `<last task that ran>.result` names the result.
    static func matches(_ trigger: Shipyard.Trigger, result: TaskResult, lastTask: String?) -> Bool {
        if trigger.match.isEmpty { return result != .fail }
        return trigger.match.contains { match in
            match.result == result && (match.task == nil || match.task == lastTask)
        }
    }

    private mutating func finish(
        _ execution: SequenceExecution, result: TaskResult, status: TaskStatus, message: String?, marker: String?,
        extra: JSONValue = .object([:]), source: String? = nil, run: inout Run, ids: inout some IDGenerator
    ) {
        var data = baseData(execution).merging(extra)
        data["result"] = .string(result.rawValue)
        data["status"] = .string(status.rawValue)
        data["message"] = .string(message ?? "")
        if let marker { data["state"] = .string(marker) }
        emitSequenceEvent(execution, phase: "finished", data: data, source: source, run: &run, ids: &ids)
    }

    /// `data` with who asked for a pause, resume or abort, and why.
    static func attributed(_ data: JSONValue, by: String?, reason: String?) -> JSONValue {
        var data = data
        if let by { data["by"] = .string(by) }
        if let reason, !reason.isEmpty { data["reason"] = .string(reason) }
        return data
    }

    private mutating func emitSequenceEvent(
        _ execution: SequenceExecution, phase: String, data: JSONValue, source: String? = nil, run: inout Run, ids: inout some IDGenerator
    ) {
        let event = KeptnEvent(
            id: ids.next(), source: source.map { "shipyardctl/\($0)" } ?? "shipyardd", type: "\(KeptnEvent.prefix)\(execution.stage).\(execution.sequence).\(phase)",
            time: Timestamps.format(run.now), context: execution.context, triggeredid: execution.id,
            gitcommitid: execution.commit, data: data)
        emit(event, run: &run)
    }

    private func taskEvent(_ triggered: KeptnEvent, phase: String, data: JSONValue, run: Run, ids: inout some IDGenerator) -> KeptnEvent {
        let name = triggered.type.dropFirst(KeptnEvent.prefix.count).dropLast(".triggered".count)
        return KeptnEvent(
            id: ids.next(), type: "\(KeptnEvent.prefix)\(name).\(phase)", time: Timestamps.format(run.now),
            context: triggered.shkeptncontext, triggeredid: triggered.id, gitcommitid: triggered.gitcommitid, data: data)
    }

    private func baseData(_ execution: SequenceExecution) -> JSONValue {
        .object(["project": .string(execution.project), "stage": .string(execution.stage), "service": .string(execution.service)])
    }

    private func baseData(of event: KeptnEvent) -> JSONValue {
        var data: [String: JSONValue] = [:]
        for key in ["project", "stage", "service"] { data[key] = event.data[key] }
        return .object(data)
    }

    private func activeExecutions(_ context: String) throws(EngineError) -> [SequenceExecution] {
        let all = executions(inContext: context)
        guard !all.isEmpty else { throw EngineError("no active sequence has the context \(context)") }
        let active = all.filter(\.isActive)
        guard !active.isEmpty else { throw EngineError("every sequence of context \(context) has ended") }
        return active
    }

    /// One sequence at a time per project + stage + service, in arrival order. Unlike Keptn
    /// (keptn#7828, #5259), a sequence that waits for approval or is paused keeps its place:
    /// a later delivery never runs beside it.
    func isBlocked(_ execution: SequenceExecution) -> Bool {
        activeIDs.contains { id in
            guard let other = executions[id] else { return false }
            // Keptn does not block a sequence on another of its own context.
            return other.id != execution.id && other.context != execution.context && other.isActive && other.key == execution.key
                && (other.hasStarted || (other.phase == .triggered && other.order < execution.order))
        }
    }

    private mutating func emit(_ event: KeptnEvent, run: inout Run) {
        apply(event)
        run.effects.append(.record(event))
    }

    // MARK: Applying

    private mutating func apply(_ event: KeptnEvent) {
        let time = event.date ?? Date(timeIntervalSince1970: 0)
        switch event.kind {
        case .sequence(let stage, let name, let phase)?:
            switch phase {
            case "triggered":
                guard executions[event.id] == nil else { return }
                // A follow-on stage keeps the person who started the delivery.
                var info = contexts[event.shkeptncontext] ?? ContextInfo(origin: event.source, originUID: event.shipyarduid)
                let origin = info.origin
                executions[event.id] = SequenceExecution(
                    id: event.id, context: event.shkeptncontext, project: event.data["project"]?.string ?? "",
                    stage: stage, service: event.data["service"]?.string ?? "", sequence: name, commit: event.gitcommitid,
                    triggeredBy: origin, triggeredByUID: info.originUID, tasks: (event.shipyardtasks ?? []).map(TaskRun.init), data: event.data, triggeredAt: time, order: nextOrder,
                    requestID: event.shipyardrequestid)
                activeIDs.insert(event.id)
                nextOrder += 1
                info.sequences += 1
                info.members.insert(event.id)
                if let request = event.shipyardrequestid {
                    requestContexts[request] = event.shkeptncontext
                    info.requests.append(request)
                }
                contexts[event.shkeptncontext] = info
                markChanged(event.id)
            case "finished":
                guard let id = event.triggeredid, var execution = executions[id] else { return }
                execution.result = event.data["result"]?.string.flatMap(TaskResult.init)
                execution.status = event.data["status"]?.string.flatMap(TaskStatus.init)
                execution.message = event.data["message"]?.string
                execution.finishedAt = time
                execution.phase = execution.status == .aborted ? .aborted : event.data["state"]?.string == "timedOut" ? .timedOut : .finished
                executions[id] = execution
                activeIDs.remove(id)
                markChanged(id)
                // Sequences of other contexts queued behind it may go now: their first task's
                // `triggeredAfter` counts from here.
                for waiting in activeIDs {
                    // Only those it was ahead of: it had started, or arrived before them.
                    guard var other = executions[waiting], other.key == execution.key, other.context != execution.context,
                        !other.hasStarted, execution.hasStarted || execution.order < other.order
                    else { continue }
                    other.queueReleasedAt = max(other.queueReleasedAt ?? time, time)
                    executions[waiting] = other
                    // Its derived state (waiting) may have changed with this.
                    markChanged(waiting)
                }
            case "paused":
                guard let id = event.triggeredid, var execution = executions[id], execution.isActive else { return }
                if execution.phase != .paused { execution.pausedFrom = execution.phase }
                execution.phase = .paused
                executions[id] = execution
                markChanged(id)
            case "resumed":
                guard let id = event.triggeredid, var execution = executions[id], execution.phase == .paused else { return }
                execution.phase = execution.pausedFrom ?? .started
                execution.pausedFrom = nil
                executions[id] = execution
                markChanged(id)
            default:
                return
            }
        case .task(let name, let phase)?:
            switch phase {
            case "triggered":
                guard let owner = event.triggeredid, var execution = executions[owner],
                    let index = execution.tasks.firstIndex(where: { $0.name == name && $0.phase == .pending })
                else { return }
                execution.tasks[index].phase = .triggered
                execution.tasks[index].triggeredID = event.id
                execution.tasks[index].triggeredAt = time
                if execution.startedAt == nil { execution.startedAt = time }
                if execution.phase == .triggered { execution.phase = .started }
                if execution.pausedFrom == .triggered { execution.pausedFrom = .started }
                taskOwner[event.id] = owner
                executions[owner] = execution
                markChanged(owner)
            case "started", "finished":
                guard let triggeredID = event.triggeredid, let owner = taskOwner[triggeredID], var execution = executions[owner],
                    let index = execution.tasks.firstIndex(where: { $0.triggeredID == triggeredID })
                else { return }
                var task = execution.tasks[index]
                guard !task.eventIDs.contains(event.id) else { return }
                task.eventIDs.insert(event.id)
                if phase == "started" {
                    // A second .started from one source is a retry; from another, another executor.
                    if task.startedSources.insert(event.source).inserted { task.startedCount += 1 }
                    if task.startedAt == nil { task.startedAt = time }
                    if task.phase == .triggered { task.phase = .started }
                } else {
                    task.finishedCount += 1
                    task.startedCount = max(task.startedCount, task.finishedCount)
                    task.results.append(event.data["result"]?.string.flatMap(TaskResult.init) ?? .fail)
                    task.statuses.append(event.data["status"]?.string.flatMap(TaskStatus.init) ?? .succeeded)
                    if let message = event.data["message"]?.string, !message.isEmpty { task.message = message }
                    var finishedData = event.data
                    for key in ["project", "stage", "service", "result", "status", "message"] { finishedData[key] = nil }
                    execution.data = execution.data.merging(finishedData)
                    if task.finishedCount >= task.startedCount {
                        task.phase = .finished
                        task.finishedAt = time
                    }
                }
                execution.tasks[index] = task
                executions[owner] = execution
                markChanged(owner)
            default:
                return
            }
        case nil:
            return
        }
    }
}
