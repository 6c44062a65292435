import Foundation
import Logging
import ShipyardCore
import ShipyardStore

/// The approval desk's state, and all of approvals that needs no engine: the request files in
/// `approvals/`, the notify program, each gate and its deadline under the policy in force, and
/// which pending approval an id prefix names. The orchestrator owns one and drives it
/// (Orchestrator+Approvals: votes, decisions, timers), in its own turns.
///
/// May touch: `<state>/approvals/`, `<state>/logs/notify.log`, the host's account database
/// (through `accounts`). Never the record: what it decides the orchestrator records.
struct ApprovalDesk {
    let directory: String
    let notifyLog: String
    let logger: Logger
    /// The approvals so far of pending approvals that need several (rebuilt from the record).
    var votes: [String: [ApprovalVote]] = [:]
    /// When the notify program was last reminded of a pending approval.
    var reminded: [String: Date] = [:]
    /// Gates whose closing decision is being recorded.
    var settling: Set<String> = []
    /// The host's accounts, read each time a gate is counted (tests give their own).
    var accounts = AccountDirectory.host
    /// The clock a decision is judged by (tests move it).
    var clock: @Sendable () -> Date = { Date() }
    /// Whether a notification may start now (a shared record's leader checks its lease).
    var mayAct: @Sendable () -> Bool = { true }
    /// Since when requests are taken (the local API serves): an expiry that fell due before
    /// then fell due while nobody could decide.
    var servingSince: Date?
    /// False until the requests that waited in the socket while the daemon was down have been
    /// answered: expiries that fell due meanwhile are judged after them, not before.
    var downtimeJudged = false
    /// A shared record's leader: the request files go to the record too, for the standbys.
    var share: PostgresStore?

    init(state: StateDirectory, logger: Logger) {
        directory = state.root + "/approvals"
        notifyLog = state.root + "/logs/notify.log"
        self.logger = logger
    }

    /// The shortest id prefix `approve`/`reject` take, as git's shortest abbreviation.
    static let minimumIDPrefix = 4

    /// The votes and reminders the record holds, at the start.
    mutating func restore(_ events: [KeptnEvent]) {
        for event in events {
            guard let id = event.triggeredid else { continue }
            if let vote = ApprovalVote(event) { votes[id, default: []].append(vote) }
            if event.type == ApprovalVote.reminderType, let date = event.date { reminded[id] = max(reminded[id] ?? date, date) }
        }
    }

    /// A gate was closed: its votes and reminders go, and so does its file (returned as it was).
    mutating func closed(_ id: String) -> ApprovalRequest? {
        votes[id] = nil
        reminded[id] = nil
        let path = directory + "/\(id).json"
        let request = FileManager.default.contents(atPath: path).flatMap { try? JSON.decode(ApprovalRequest.self, from: $0) }
        unlink(path)
        if let share, let pending = try? FileManager.default.contentsOfDirectory(atPath: directory) {
            shared { try share.keepSharedApprovals(Set(pending.filter { $0.hasSuffix(".json") }.map { String($0.dropLast(5)) })) }
        }
        return request
    }

    /// A pending gate as its policy in force sees it (nil: no policy, one decision closes it).
    func gate(of execution: SequenceExecution, config: DaemonConfig) -> ApprovalRules.Gate? {
        config.approvalPolicy(project: execution.project, stage: execution.stage).map {
            ApprovalRules.Gate(policy: $0, fallback: config.approvers, triggeredBy: execution.triggeredBy, uid: execution.triggeredByUID)
        }
    }

    /// When a pending approval expires under the policy in force.
    func deadline(of execution: SequenceExecution, task index: Int, config: DaemonConfig) -> Date? {
        config.approvalPolicy(project: execution.project, stage: execution.stage)?.expireAfter.map {
            (execution.tasks[index].triggeredAt ?? Date()).addingTimeInterval($0.seconds)
        }
    }

    /// Whether an expiry fell due while nobody could decide (the daemon down, or starting): it
    /// waits until the requests that queued meanwhile are answered.
    func dueWhileDown(_ deadline: Date) -> Bool {
        !downtimeJudged && deadline < (servingSince ?? .distantFuture)
    }

    /// The request file's content: the gate, who approved so far under the policy in force,
    /// who may still, and when it expires.
    func request(_ triggeredID: String, execution: SequenceExecution, index: Int, config: DaemonConfig) -> ApprovalRequest {
        // The result the approval judges: the previous task's, or for a first task the result the
        // stage before handed on (as the approval's .triggered payload carries it).
        let previous = index > 0 ? execution.tasks[index - 1].result.rawValue : execution.data["result"]?.string
        var request = ApprovalRequest(
            id: triggeredID, project: execution.project, stage: execution.stage, service: execution.service,
            sequence: execution.sequence, context: execution.context, previousResult: previous,
            image: execution.data["configurationChange"]?["values"]?["image"]?.string,
            triggeredBy: execution.triggeredBy,
            requestedAt: Timestamps.format(execution.tasks[index].triggeredAt ?? Date()))
        if let gate = gate(of: execution, config: config) {
            let tally = ApprovalRules.tally(votes[triggeredID] ?? [], gate: gate, accounts: accounts)
            request.required = gate.policy.required
            request.approvedBy = tally.counted.map(\.by)
            request.notCounted = tally.setAside.isEmpty ? nil : tally.notCounted
            request.mayApprove = ApprovalRules.stillMay(gate, tally: tally, accounts: accounts)
            request.expiresAt = deadline(of: execution, task: index, config: config).map(Timestamps.format)
        }
        return request
    }

    func write(_ request: ApprovalRequest) {
        do {
            try FileManager.default.createDirectory(atPath: directory, withIntermediateDirectories: true)
            let body = try JSON.encode(request, pretty: true)
            try AtomicFile.write(body, to: directory + "/\(request.id).json", mode: 0o640)
            if let share { shared { try share.shareApproval(id: request.id, body: body) } }
        } catch {
            logger.error("cannot write the approval request \(request.id): \(error)")
        }
    }

    /// The standbys' copy of `approvals/` is a convenience: a failure is logged, and the next
    /// change (or the next leader's start) writes it again.
    func shared(_ change: () throws -> Void) {
        do { try change() } catch { logger.warning("cannot share the approval requests with the standbys: \(error)") }
    }

    /// `approvals/` holds exactly the pending approvals: a file left by a crash between the record
    /// of a decision and the file's removal goes (a missing one is written again by the caller).
    func reconcile(pending: Set<String>) {
        if let share { shared { try share.keepSharedApprovals(pending) } }
        for name in (try? FileManager.default.contentsOfDirectory(atPath: directory)) ?? [] where name.hasSuffix(".json") {
            let id = String(name.dropLast(".json".count))
            if !pending.contains(id) {
                unlink(directory + "/" + name)
                logger.info("removed the approval request \(id): it was resolved before the daemon stopped")
            }
        }
    }

    /// Runs the config's notify program, if any, in the background.
    func tell(_ what: String, _ request: ApprovalRequest, decision: JSONValue?, waited: TimeInterval? = nil, notify: DaemonConfig.TaskExecutor?) {
        guard let notify else { return }
        struct Message: Encodable {
            var event: String
            var approval: ApprovalRequest
            var decision: JSONValue?
            var waitedSeconds: Int?
        }
        guard let input = try? JSON.encode(Message(event: what, approval: request, decision: decision, waitedSeconds: waited.map { Int($0) })) else { return }
        let notifier = Notifier(command: notify.command, timeout: notify.timeout, logFile: notifyLog)
        let logger = logger
        let mayAct = mayAct
        let thread = Thread {
            guard mayAct() else {
                logger.warning("notify not run for \(what): this daemon no longer leads")
                return
            }
            if let failure = notifier.run(input) { logger.warning("\(failure)") }
        }
        thread.name = "notify"
        thread.start()
    }

    /// The pending approval an id or unique id prefix names, among `active`; a prefix names one
    /// approval among all the record holds, resolved ones too.
    static func pendingApproval(
        _ prefix: String, active: [SequenceExecution], store: any Store
    ) throws(EngineError) -> (triggeredID: String, execution: SequenceExecution) {
        guard prefix.count >= minimumIDPrefix else {
            throw EngineError("give at least \(minimumIDPrefix) characters of the approval's id, not \"\(prefix)\" (shipyardctl approvals lists them)")
        }
        var pending: [(String, SequenceExecution)] = []
        for execution in active {
            for task in execution.tasks where task.name == "approval" && task.phase == .started {
                guard let id = task.triggeredID, id.hasPrefix(prefix) else { continue }
                pending.append((id, execution))
            }
        }
        // One that was ambiguous does not quietly come to mean the other gate once the first is decided.
        let recorded = ((try? store.approvals(idPrefix: prefix, limit: 3)) ?? []).filter { $0.task.triggeredID != nil }
        let pendingIDs = Set(pending.map(\.0))
        let resolved = recorded.filter { !pendingIDs.contains($0.task.triggeredID!) }.map { $0.task.triggeredID! }
        if pending.count == 1, resolved.isEmpty { return pending[0] }
        if pending.count + resolved.count > 1 {
            let named = pending.map { "\($0.0) (pending)" } + resolved.map { "\($0) (no longer pending)" }
            throw EngineError("\(prefix) is ambiguous: it starts \(named.joined(separator: ", ")); give more of the id")
        }
        // Not pending: the record says what became of it.
        if let (sequence, task) = recorded.first, let id = task.triggeredID {
            let how = task.state == TaskRun.Phase.finished.rawValue
                ? (task.message.map { "it was resolved: \($0)" } ?? "it was resolved") : "its sequence ended \(sequence.state.rawValue)"
            throw EngineError("approval \(id) is no longer pending; \(how)")
        }
        throw EngineError("no pending approval has the id \(prefix) (shipyardctl approvals lists them)")
    }
}
