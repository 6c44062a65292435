public import Foundation

/// Keptn's sequence states, as `shipyardctl sequences` shows them.
public enum SequenceState: String, Codable, Sendable, CaseIterable {
    case triggered, started, waiting, waitingForApproval, paused, finished, aborted, timedOut

    public var isTerminal: Bool { self == .finished || self == .aborted || self == .timedOut }
}

/// Keptn's task statuses.
public enum TaskStatus: String, Codable, Sendable, CaseIterable {
    case succeeded, errored, aborted, unknown
}

/// One run of one sequence in one stage: what the engine knows, rebuilt from the journal alone.
public struct SequenceExecution: Sendable, Equatable {
    /// The id of the sequence's `.triggered` event.
    public var id: String
    public var context: String
    public var project: String
    public var stage: String
    public var service: String
    public var sequence: String
    public var commit: String?
    /// The source of the trigger event (`shipyardctl/alice`).
    public var triggeredBy: String?
    /// The account behind `triggeredBy`, when a person of this host started the delivery.
    public var triggeredByUID: UInt32?
    public var tasks: [TaskRun]
    /// The payload tasks receive: the trigger's data with every finished task's data merged in.
    public var data: JSONValue
    public var triggeredAt: Date
    public var startedAt: Date?
    public var finishedAt: Date?
    /// Where the sequence is, not counting `waiting` and `waitingForApproval`, which are derived.
    var phase: SequenceState = .triggered
    /// The phase to return to on resume.
    var pausedFrom: SequenceState?
    public var result: TaskResult?
    public var status: TaskStatus?
    public var message: String?
    /// Arrival order, for the queue.
    public var order: Int
    /// When the last sequence it waited behind in the queue ended (its first task's
    /// `triggeredAfter` counts from then, not from the trigger).
    public var queueReleasedAt: Date?
    /// The id of the `shipyardctl` request that triggered it, so a retried request applies once.
    public var requestID: String?

    /// The first task that has not finished.
    public var currentTaskIndex: Int? {
        tasks.firstIndex { $0.phase != .finished }
    }

    public var isActive: Bool { !phase.isTerminal }

    /// When the task at `index` may be triggered (Keptn's `triggeredAfter`, by the daemon's
    /// clock): its delay after the task before it finished, or after the sequence left the queue.
    public func triggerDue(forTask index: Int) -> Date {
        let since = index > 0
            ? (tasks[index - 1].finishedAt ?? triggeredAt)
            : max(triggeredAt, queueReleasedAt ?? triggeredAt)
        return since.addingTimeInterval(tasks[index].delay)
    }

    /// True once a task was triggered (the sequence holds its project/stage/service slot).
    public var hasStarted: Bool { startedAt != nil }

    public var key: String { "\(project)/\(stage)/\(service)" }
}

/// One task of a sequence execution.
public struct TaskRun: Sendable, Equatable {
    public enum Phase: String, Sendable, Equatable {
        case pending, triggered, started, finished
    }

    public var name: String
    public var properties: JSONValue?
    public var delay: TimeInterval
    public var phase: Phase = .pending
    /// The id of this task's `.triggered` event.
    public var triggeredID: String?
    public var triggeredAt: Date?
    public var startedCount = 0
    public var finishedCount = 0
    /// The ids of every `.started`/`.finished` applied to it: a repeated event is a no-op.
    public var eventIDs: Set<String> = []
    /// Who sent a `.started`: a second one from the same source is a retry, not another executor.
    public var startedSources: Set<String> = []
    public var startedAt: Date?
    public var results: [TaskResult] = []
    public var statuses: [TaskStatus] = []
    public var message: String?
    public var finishedAt: Date?

    init(_ planned: PlannedTask) {
        name = planned.name
        properties = planned.properties
        delay = planned.delay
    }

    /// Keptn's aggregation over a task's finished events: any result other than pass/warning is
    /// fail, else any warning is warning; errored beats aborted beats succeeded, else unknown,
    /// which forces fail.
    public var result: TaskResult {
        if results.contains(.fail) || status == .unknown { return .fail }
        return results.contains(.warning) ? .warning : .pass
    }

    public var status: TaskStatus {
        if statuses.contains(.errored) { return .errored }
        if statuses.contains(.aborted) { return .aborted }
        if !statuses.isEmpty, statuses.allSatisfy({ $0 == .succeeded }) { return .succeeded }
        return .unknown
    }
}
