import Foundation

/// How the engine decides: triggers, incoming task events, the progress of each execution,
/// approvals, follow-on sequences (`triggeredOn`) and the events each step emits.
extension Engine {
    // MARK: Deciding

    struct Run {
        var now: Date
        var effects: [EngineEffect] = []
    }

    mutating func trigger(
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
    mutating func accept(_ event: KeptnEvent, run: inout Run) throws(EngineError) {
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
        // The sequence says where the event belongs, whatever its sender wrote: an answer cannot
        // file itself under another project, stage or service (listings and indexes read these).
        for (key, value) in [("project", execution.project), ("stage", execution.stage), ("service", execution.service)] {
            event.data[key] = .string(value)
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
    mutating func progressAll(shipyards: [String: PinnedShipyard], run: inout Run, ids: inout some IDGenerator) {
        var changed: Bool
        repeat {
            changed = false
            for execution in active {
                if progress(execution.id, shipyards: shipyards, run: &run, ids: &ids) { changed = true }
            }
        } while changed
    }

    /// Moves one execution forward as far as it can go now. Returns whether anything happened.
    mutating func progress(_ id: String, shipyards: [String: PinnedShipyard], run: inout Run, ids: inout some IDGenerator) -> Bool {
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
            let due = execution.triggerDue(forTask: index)
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
    mutating func expire(
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

    mutating func triggerTask(_ execution: SequenceExecution, index: Int, run: inout Run, ids: inout some IDGenerator) {
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
    mutating func approve(_ triggered: KeptnEvent, strategies: JSONValue?, run: inout Run, ids: inout some IDGenerator) {
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

    mutating func followOns(of finished: SequenceExecution, shipyards: [String: PinnedShipyard], run: inout Run, ids: inout some IDGenerator) {
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

    mutating func finish(
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

    mutating func emitSequenceEvent(
        _ execution: SequenceExecution, phase: String, data: JSONValue, source: String? = nil, run: inout Run, ids: inout some IDGenerator
    ) {
        let event = KeptnEvent(
            id: ids.next(), source: source.map { "shipyardctl/\($0)" } ?? "shipyardd", type: "\(KeptnEvent.prefix)\(execution.stage).\(execution.sequence).\(phase)",
            time: Timestamps.format(run.now), context: execution.context, triggeredid: execution.id,
            gitcommitid: execution.commit, data: data)
        emit(event, run: &run)
    }

    func taskEvent(_ triggered: KeptnEvent, phase: String, data: JSONValue, run: Run, ids: inout some IDGenerator) -> KeptnEvent {
        let name = triggered.type.dropFirst(KeptnEvent.prefix.count).dropLast(".triggered".count)
        return KeptnEvent(
            id: ids.next(), type: "\(KeptnEvent.prefix)\(name).\(phase)", time: Timestamps.format(run.now),
            context: triggered.shkeptncontext, triggeredid: triggered.id, gitcommitid: triggered.gitcommitid, data: data)
    }

    func baseData(_ execution: SequenceExecution) -> JSONValue {
        .object(["project": .string(execution.project), "stage": .string(execution.stage), "service": .string(execution.service)])
    }

    func baseData(of event: KeptnEvent) -> JSONValue {
        var data: [String: JSONValue] = [:]
        for key in ["project", "stage", "service"] { data[key] = event.data[key] }
        return .object(data)
    }

    func activeExecutions(_ context: String) throws(EngineError) -> [SequenceExecution] {
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

    mutating func emit(_ event: KeptnEvent, run: inout Run) {
        apply(event)
        run.effects.append(.record(event))
    }
}
