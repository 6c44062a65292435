import Foundation

/// How a recorded event changes the engine's executions: the one place state moves, for live
/// events and for the record's replay alike.
extension Engine {
    // MARK: Applying

    mutating func apply(_ event: KeptnEvent) {
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
