import Foundation
import Logging
import ShipyardCore
import ShipyardGit

/// Runs the engine for the daemon: every command's events, and the state of the sequences they
/// changed, are committed to the store in one durable transaction before any of their effects
/// happen, so a crash at any point leaves a record from which the next start continues without
/// a gap or a duplicate. The engine holds only active work; the store answers for the rest.
actor Orchestrator {
    private var engine = Engine()
    /// Opened by `start()`.
    private var store: (any Store)!
    /// Event ids; `SHIPYARD_FAULT_ID_PREFIX` makes them share their first digits, so that tests
    /// can give an id prefix that names more than one approval.
    private var ids = UUIDGenerator(prefix: ProcessInfo.processInfo.environment["SHIPYARD_FAULT_ID_PREFIX"])
    private let state: StateDirectory
    private var executors: [String: DaemonConfig.TaskExecutor]
    private var notify: DaemonConfig.TaskExecutor?
    private let shipyards: @Sendable () async -> [String: PinnedShipyard]
    private let logger: Logger
    private var running: [String: TaskCancel] = [:]
    private var wakeTask: Task<Void, Never>?
    private var wakeAt: Date?
    private var failed: String?
    /// Fault injection for the crash tests: SIGKILL this process right after this many commits (`SHIPYARD_FAULT_KILL_AFTER_APPENDS`), i.e. after a step is durable and before
    /// anything acts on it.
    private var killAfterAppends = ProcessInfo.processInfo.environment["SHIPYARD_FAULT_KILL_AFTER_APPENDS"].flatMap(Int.init)
    /// Set when the daemon begins to stop: no new task program starts (it starts at the next run).
    private var draining = false
    /// Set once running tasks are interrupted: they are not recorded as finished, so the next
    /// start runs them again.
    private var stopping = false

    private let worktrees: Worktrees
    private var configuration: DaemonConfig
    /// The approvals so far of pending approvals that need several (rebuilt from the record).
    private var votes: [String: [ApprovalVote]] = [:]
    /// When the notify program was last reminded of a pending approval.
    private var reminded: [String: Date] = [:]
    /// The host's accounts, read each time a gate is counted (tests give their own).
    var accounts = AccountDirectory.host
    /// The clock a decision is judged by (tests move it).
    var clock: @Sendable () -> Date = { Date() }

    func setClock(_ clock: @escaping @Sendable () -> Date) { self.clock = clock }
    func setAccounts(_ accounts: AccountDirectory) { self.accounts = accounts }
    /// Since when requests are taken (the local API serves): an expiry that fell due before
    /// then fell due while nobody could decide.
    private var servingSince: Date?
    /// False until the requests that waited in the socket while the daemon was down have been
    /// answered: expiries that fell due meanwhile are judged after them, not before.
    private var downtimeJudged = false

    private let metrics: DaemonMetrics?
    private let feed: ChangeFeed?

    init(
        state: StateDirectory, config: DaemonConfig, logger: Logger, metrics: DaemonMetrics? = nil, feed: ChangeFeed? = nil,
        shipyards: @escaping @Sendable () async -> [String: PinnedShipyard]
    ) {
        self.metrics = metrics
        self.feed = feed
        self.state = state
        self.worktrees = Worktrees(root: state.root + "/worktrees")
        self.executors = config.tasks
        self.notify = config.notify
        self.configuration = config
        self.logger = logger
        self.shipyards = shipyards
        Self.configure(&engine, config)
    }

    /// A reloaded config: executors, the notify program and the engine's limits; pending gates
    /// are counted again under it before the reload is reported done.
    func update(_ config: DaemonConfig) async {
        configuration = config
        executors = config.tasks
        notify = config.notify
        Self.configure(&engine, config)
        // Shorter timeouts may be due already: look again now.
        schedule(Date())
        // Policies apply to pending approvals from now on: the files say so at once, and one
        // that now has enough approvals opens, recorded as opened by the reload.
        for id in pendingApprovalIDs {
            writeApproval(triggeredID: id)
            scheduleDeadlines(of: id)
        }
        await approvalDeadlines(cause: "reload")
    }

    /// Wakes the daemon when an approval's expiry or next reminder is due (`approvalDeadlines`
    /// acts then).
    private func scheduleDeadlines(of id: String) {
        guard let (execution, index) = engine.task(triggeredID: id),
            let policy = configuration.approvalPolicy(project: execution.project, stage: execution.stage)
        else { return }
        let since = execution.tasks[index].triggeredAt ?? Date()
        if let expiry = policy.expireAfter { schedule(since.addingTimeInterval(expiry.seconds)) }
        if let interval = policy.remindAfter { schedule((reminded[id] ?? since).addingTimeInterval(interval.seconds)) }
    }

    /// A pending gate as its policy in force sees it (nil: no policy, one decision closes it).
    private func gate(of execution: SequenceExecution) -> ApprovalRules.Gate? {
        configuration.approvalPolicy(project: execution.project, stage: execution.stage).map {
            ApprovalRules.Gate(policy: $0, fallback: configuration.approvers, triggeredBy: execution.triggeredBy, uid: execution.triggeredByUID)
        }
    }

    /// When a pending approval expires under the policy in force.
    private func deadline(of execution: SequenceExecution, task index: Int) -> Date? {
        configuration.approvalPolicy(project: execution.project, stage: execution.stage)?.expireAfter.map {
            (execution.tasks[index].triggeredAt ?? Date()).addingTimeInterval($0.seconds)
        }
    }

    /// Whether an expiry fell due while nobody could decide (the daemon down, or starting): it
    /// waits until the requests that queued meanwhile are answered.
    private func dueWhileDown(_ deadline: Date) -> Bool {
        !downtimeJudged && deadline < (servingSince ?? .distantFuture)
    }

    private var pendingApprovalIDs: [String] {
        engine.active.flatMap { execution in
            execution.tasks.filter { $0.name == "approval" && $0.phase == .started }.compactMap(\.triggeredID)
        }
    }

    private static func configure(_ engine: inout Engine, _ config: DaemonConfig) {
        // `evaluation` is built in: its provider has a timeout of its own.
        engine.locallyRunTasks = Set(config.tasks.keys).union([Engine.evaluationSequence])
        engine.taskStartTimeout = config.taskStartTimeout.seconds
        engine.taskFinishTimeout = config.taskFinishTimeout?.seconds
        engine.maxSequencesPerContext = config.maxSequencesPerContext
    }

    /// An engine holding the store's active work, and those events.
    private func engineFromRecord() throws -> (Engine, [KeptnEvent]) {
        let work = try store.activeWork()
        var fresh = Engine()
        Self.configure(&fresh, configuration)
        for event in work.events { fresh.replay(event) }
        for (id, date) in work.queueReleases { fresh.restoreQueueRelease(of: id, at: date) }
        _ = fresh.takeChanges()
        return (fresh, work.events)
    }

    /// The engine again from the record alone, after events that could not be recorded were
    /// applied in memory: what is running stays running, what was not recorded never happened.
    private func rebuildFromRecord() {
        do {
            engine = try engineFromRecord().0
        } catch {
            logger.critical("cannot read the record back after a failed write: \(error); restart the daemon once it can be written")
        }
    }

    /// Whether a task name runs as a local program here.
    func runsLocally(_ task: String) -> Bool { executors[task] != nil }

    /// The sequence a request id already started (a request retried after a crash), whether it
    /// is still active or long ended.
    func sequence(forRequest id: String) -> StoredSequence? {
        if let execution = engine.execution(forRequest: id) {
            return StoredSequence(Engine.Change(execution: execution, state: engine.state(of: execution)))
        }
        return try? store.sequence(forRequest: id)
    }

    /// Why an incoming event would change nothing, if it would not (a retried event, also of a
    /// task that has ended since).
    func duplicate(_ event: KeptnEvent) -> String? {
        if let duplicate = engine.duplicate(event) { return duplicate }
        guard let triggeredID = event.triggeredid, engine.task(triggeredID: triggeredID) == nil,
            (try? store.containsEvent(id: event.id)) == true
        else { return nil }
        return "event \(event.id) was already applied"
    }

    /// Opens the store (importing an earlier release's journal first), reads the active work,
    /// then carries on: tasks whose process was lost with the previous run are run again with
    /// the next attempt number, pending approvals stay pending.
    func start(importProgress: (Int) -> Void = { _ in }) async throws {
        if let report = try JournalImport.run(journal: state.oldJournal, into: state.storeFile, progress: importProgress) {
            if report.events > 0 {
                logger.notice(
                    "imported the journal of an earlier release into \(state.storeFile): \(report.events) events of \(report.sequences) sequences in \(String(format: "%.1f", report.seconds))s; the journal is kept as \(report.keptAs)")
            } else {
                logger.notice("the import of the old journal had completed; the journal is kept as \(report.keptAs)")
            }
            if let dropped = report.dropped { logger.warning("journal import: \(dropped)") }
        }
        store = try SQLiteStore(writingAt: state.storeFile)
        let (fresh, events) = try engineFromRecord()
        engine = fresh
        for event in events {
            guard let id = event.triggeredid else { continue }
            if let vote = ApprovalVote(event) { votes[id, default: []].append(vote) }
            if event.type == ApprovalVote.reminderType, let date = event.date { reminded[id] = max(reminded[id] ?? date, date) }
        }
        logger.info("record read", metadata: ["events": "\(events.count)", "active": "\(engine.active.count)"])
        let unfinished = engine.unfinishedTasks
        let wanted = Set(unfinished.compactMap { $0.execution.tasks[$0.index].triggeredID })
        let triggeredEvents = Dictionary(events.filter { wanted.contains($0.id) }.map { ($0.id, $0) }) { a, _ in a }
        for (execution, index) in unfinished {
            let task = execution.tasks[index]
            guard let id = task.triggeredID, let triggered = triggeredEvents[id] else { continue }
            if task.name == "approval" {
                if task.phase == .started { writeApproval(triggeredID: id) }
            } else if executors[task.name] != nil || task.name == Engine.evaluationSequence {
                logger.warning("\(task.name) of \(execution.stage).\(execution.sequence) was running when the daemon stopped; running it again",
                               metadata: ["context": "\(execution.context)"])
                launch(triggered, alreadyStarted: task.startedCount > 0)
            }
        }
        reconcileApprovals()
        worktrees.removeAbandonedExports()
        await perform(engine.resume(shipyards: await shipyards(), now: Date(), ids: &ids))
        await approvalDeadlines(cause: "start")
        retentionTask = Task { [weak self] in
            while !Task.isCancelled {
                await self?.retain()
                try? await Task.sleep(for: Self.retentionInterval)
            }
        }
    }

    // MARK: Retention

    /// How often ended deliveries older than `history.keep` are looked for.
    static let retentionInterval: Duration = .seconds(600)
    /// Contexts removed per transaction: small, so that commands go on between batches.
    static let retentionBatch = 50
    private var retentionTask: Task<Void, Never>?
    private var retaining = false

    /// Removes the deliveries (contexts) whose sequences all ended longer than `history.keep`
    /// ago, with their events and task logs, a small batch at a time; active sequences and
    /// pending approvals are never touched. Then gives freed pages back. Returns how many went.
    @discardableResult
    func retain(now: Date = Date()) async -> Int {
        guard let keep = configuration.historyKeep, !retaining, failed == nil else { return 0 }
        retaining = true
        defer { retaining = false }
        let cutoff = now.addingTimeInterval(-keep.seconds)
        var removed = 0
        while !stopping {
            let contexts: [String]
            do {
                contexts = try store.removeHistory(endedBefore: cutoff, limit: Self.retentionBatch)
            } catch {
                logger.error("history: cannot remove ended deliveries: \(error)")
                break
            }
            for context in contexts where !context.contains("/") && context != ".." && context != "." && !context.isEmpty {
                try? FileManager.default.removeItem(atPath: state.root + "/logs/" + context)
            }
            removed += contexts.count
            if contexts.count < Self.retentionBatch { break }
            // Other commands go first between batches.
            try? await Task.sleep(for: .milliseconds(20))
        }
        if removed > 0 {
            do {
                try store.reclaimSpace(pages: 10_000)
            } catch {
                logger.warning("history: cannot give free pages back: \(error)")
            }
            logger.info("history: removed \(removed) deliveries that ended before \(Timestamps.format(cutoff)) (history.keep \(GoDuration.format(keep)))")
        }
        return removed
    }

    /// `approvals/` holds exactly the pending approvals: a file left by a crash between the record
    /// of a decision and the file's removal goes, a missing one is written again.
    private func reconcileApprovals() {
        let pending = Set(engine.active.flatMap { execution in
            execution.tasks.filter { $0.name == "approval" && $0.phase == .started }.compactMap(\.triggeredID)
        })
        let directory = state.root + "/approvals"
        for name in (try? FileManager.default.contentsOfDirectory(atPath: directory)) ?? [] where name.hasSuffix(".json") {
            let id = String(name.dropLast(".json".count))
            if !pending.contains(id) {
                unlink(directory + "/" + name)
                logger.info("removed the approval request \(id): it was resolved before the daemon stopped")
            }
        }
    }

    /// Hands a command to the engine, records what it decided, then acts on it.
    @discardableResult
    func submit(_ command: Engine.Command) async throws(EngineError) -> [EngineEffect] {
        let current = await shipyards()
        let effects: [EngineEffect]
        do {
            effects = try engine.handle(command, shipyards: current, now: Date(), ids: &ids)
        } catch {
            throw explained(error, command)
        }
        guard await perform(effects) else {
            throw EngineError(
                "nothing was done: the record cannot be written (\(failed ?? "?")); shipyardd carries on by itself once it can (free space in \(state.root))")
        }
        return effects
    }

    /// Whether the last write to the record failed (a full disk): answers of running tasks wait
    /// and try again rather than be lost.
    var recordUnavailable: Bool { failed != nil }

    /// A refusal about something the engine no longer holds, said from the record: the task or
    /// the context has ended (and how), or never existed.
    private func explained(_ error: EngineError, _ command: Engine.Command) -> EngineError {
        switch command {
        case .event(let event):
            guard error.message.hasPrefix("no triggered task has the id"), let id = event.triggeredid,
                let (sequence, task) = try? store.task(triggeredID: id)
            else { return error }
            let how = sequence.isActive ? "it \(task.state)" : "its sequence ended \(sequence.state.rawValue)\(sequence.result.map { " (\($0.rawValue))" } ?? "")"
            return EngineError("task \(task.name) of \(sequence.stage).\(sequence.sequence) (\(sequence.context)) is no longer running: \(how)")
        case .pause(let context, _, _), .resume(let context, _, _), .abort(let context, _, _):
            guard engine.executions(inContext: context).isEmpty else { return error }
            let known = (try? store.sequences(context: context)) ?? []
            return EngineError(known.isEmpty ? "no sequence has the context \(context)" : "every sequence of context \(context) has ended")
        case .trigger, .tick:
            return error
        }
    }

    /// Records the effects' events, then acts on them. When the record cannot be written (a full
    /// disk), nothing acts on them: the transaction is rolled back, the engine is rebuilt from
    /// what is recorded, and the next command tries again, so the daemon recovers by itself
    /// once writes succeed.
    @discardableResult
    private func perform(_ effects: [EngineEffect]) async -> Bool {
        var records: [KeptnEvent] = []
        for case .record(let event) in effects { records.append(event) }
        let ended = metrics == nil ? [] : endedTasks(records)
        let changes = engine.takeChanges()
        do {
            try store.commit(events: records, changes: changes)
            if let failed {
                logger.notice("the record can be written again (it could not: \(failed)); carrying on")
                self.failed = nil
            }
        } catch {
            if failed == nil {
                logger.critical("cannot write the record: \(error); nothing new is done until it can be written (free space in \(state.root))")
            }
            failed = "\(error)"
            rebuildFromRecord()
            schedule(Date().addingTimeInterval(5))
            return false
        }
        for event in records { log(event) }
        if let metrics, !records.isEmpty {
            for (task, result, duration) in ended {
                // Task names come from Git: those the host config does not run (and Keptn's own)
                // share one series, so that a push cannot add series without end.
                let known = executors[task] != nil || ["approval", "evaluation", "get-sli"].contains(task)
                metrics.taskEnded(known ? task : "other", result: result, duration: duration)
            }
            for event in records {
                guard case .sequence(_, _, "finished")? = event.kind else { continue }
                let state = event.data["status"]?.string == TaskStatus.aborted.rawValue ? "aborted" : event.data["state"]?.string == "timedOut" ? "timedOut" : "finished"
                metrics.sequenceEnded(state: state, result: event.data["result"]?.string ?? "fail")
            }
            var counts: [String: Int] = [:]
            for execution in engine.active { counts[engine.state(of: execution).rawValue, default: 0] += 1 }
            metrics.activeSequences(counts)
        }
        if !records.isEmpty { feed?.publish() }
        if !records.isEmpty, let remaining = killAfterAppends {
            killAfterAppends = remaining - 1
            if remaining <= 1 { kill(getpid(), SIGKILL) }
        }
        var finished = false
        for effect in effects {
            switch effect {
            case .record(let event):
                if case .sequence(_, _, "finished")? = event.kind { finished = true }
            case .runTask(let event):
                launch(event, alreadyStarted: false)
            case .cancelTask(let id):
                running[id]?.cancel()
            case .approvalNeeded(let id):
                if let request = writeApproval(triggeredID: id) { tell("waiting", request, decision: nil) }
                scheduleDeadlines(of: id)
            case .approvalClosed(let id):
                votes[id] = nil
                reminded[id] = nil
                let path = state.root + "/approvals/\(id).json"
                let request = FileManager.default.contents(atPath: path).flatMap { try? JSON.decode(ApprovalRequest.self, from: $0) }
                unlink(path)
                let decision = records.last { $0.triggeredid == id && $0.type.hasSuffix("approval.finished") }?.data["approval"]
                if let request { tell("resolved", request, decision: decision) }
            case .wake(let date):
                schedule(date)
            }
        }
        if finished {
            pruneWorktrees()
            pruneRuns()
        }
        return true
    }

    /// The tasks these records finish, with how long each ran (from its `.started`).
    private func endedTasks(_ records: [KeptnEvent]) -> [(String, String, Duration?)] {
        records.compactMap { event in
            guard case .task(let name, "finished")? = event.kind, let id = event.triggeredid else { return nil }
            let started = engine.task(triggeredID: id).flatMap { $0.execution.tasks[$0.index].startedAt }
            var duration: Duration?
            if let started, let finished = event.date { duration = .milliseconds(Int64(max(0, finished.timeIntervalSince(started)) * 1000)) }
            return (name, event.data["result"]?.string ?? "fail", duration)
        }
    }

    private func log(_ event: KeptnEvent) {
        guard let kind = event.kind else { return }
        var metadata: Logger.Metadata = ["context": "\(event.shkeptncontext)"]
        if event.type.hasSuffix(".finished"), let result = event.data["result"]?.string { metadata["result"] = "\(result)" }
        switch kind {
        case .sequence(let stage, let name, let phase):
            metadata["service"] = "\(event.data["service"]?.string ?? "")"
            logger.info("\(stage).\(name) \(phase)", metadata: metadata)
        case .task(let name, let phase):
            if phase == "finished", let message = event.data["message"]?.string, !message.isEmpty { metadata["message"] = "\(message)" }
            logger.info("\(event.data["stage"]?.string ?? "?") \(name) \(phase)", metadata: metadata)
        }
    }

    // MARK: Local executors

    /// Starts a task's program when one is configured for its name; otherwise the task waits
    /// for an external `.started`/`.finished` (`shipyardctl send event`).
    private func launch(_ triggered: KeptnEvent, alreadyStarted: Bool) {
        guard case .task(let name, _)? = triggered.kind, name != "approval" else { return }
        if draining {
            logger.info("\(name) not started: the daemon is stopping; it starts at the next run", metadata: ["context": "\(triggered.shkeptncontext)"])
            return
        }
        if name == Engine.evaluationSequence {
            evaluate(triggered, alreadyStarted: alreadyStarted)
            return
        }
        guard let executor = executors[name], let (execution, _) = engine.task(triggeredID: triggered.id) else {
            logger.info("\(name) has no local executor; waiting for an external .started/.finished (shipyardctl send event)",
                        metadata: ["context": "\(triggered.shkeptncontext)", "triggeredid": "\(triggered.id)"])
            return
        }
        let runDirectory = state.root + "/runs/\(triggered.id)"
        let attempt: Int
        do {
            attempt = try Self.recordAttempt(in: runDirectory)
        } catch {
            logger.error("cannot record an attempt of \(name): \(error)")
            return
        }
        let process = TaskProcess(
            triggered: triggered, command: executor.command, timeout: executor.timeout, project: execution.project,
            stage: execution.stage, service: execution.service, sequence: execution.sequence, task: name, attempt: attempt,
            worktree: worktrees.path(commit: execution.commit ?? "none"), runDirectory: runDirectory, home: state.home,
            logFile: state.root + "/logs/\(execution.context)/\(execution.stage)-\(name).log")
        let cancel = TaskCancel()
        running[triggered.id] = cancel
        let mirror = Mirror(path: state.mirror(project: execution.project))
        let commit = execution.commit
        let worktrees = worktrees
        let logger = logger
        Task {
            // The program runs only once its .started is recorded.
            if !alreadyStarted, await !self.answer(triggered, phase: "started", outcome: nil) {
                self.taskNotRun(triggered)
                return
            }
            let outcome = await Self.onThread(name: "task-\(name)") {
                if let failure = worktrees.ensure(mirror: mirror, commit: commit, tampered: { logger.warning("\($0)") }) {
                    return TaskProcess.Outcome(result: .fail, status: .errored, message: failure)
                }
                return process.run(cancel: cancel)
            }
            await self.taskEnded(triggered, outcome: outcome)
        }
    }

    private func taskEnded(_ triggered: KeptnEvent, outcome: TaskProcess.Outcome) async {
        running[triggered.id] = nil
        if stopping {
            logger.info("task interrupted by the daemon's stop; it runs again at the next start", metadata: ["triggeredid": "\(triggered.id)"])
            return
        }
        await answer(triggered, phase: "finished", outcome: outcome)
    }

    private func taskNotRun(_ triggered: KeptnEvent) {
        running[triggered.id] = nil
    }

    /// Sends a task's `.started` or `.finished` through the engine, as any executor would.
    /// Returns whether it was recorded.
    @discardableResult
    /// `orAside`: when the sequence has ended meanwhile, the answer is recorded beside it rather
    /// than dropped (an aborted evaluation's `.finished`, as Keptn records it).
    private func answer(
        _ triggered: KeptnEvent, phase: String, outcome: TaskProcess.Outcome?, source: String = "shipyardd/executor", orAside: Bool = false
    ) async -> Bool {
        var data: JSONValue = .object([:])
        for key in ["project", "stage", "service"] { data[key] = triggered.data[key] }
        if let outcome {
            if let extra = outcome.data, extra.object != nil { data = extra.merging(data) }
            data["result"] = .string(outcome.result.rawValue)
            data["status"] = .string(outcome.status.rawValue)
            data["message"] = .string(outcome.message)
        } else {
            data["status"] = .string(TaskStatus.succeeded.rawValue)
        }
        let name = triggered.type.dropFirst(KeptnEvent.prefix.count).dropLast(".triggered".count)
        let event = KeptnEvent(
            id: ids.next(), source: source, type: "\(KeptnEvent.prefix)\(name).\(phase)",
            time: Timestamps.format(Date()), context: triggered.shkeptncontext, triggeredid: triggered.id,
            gitcommitid: triggered.gitcommitid, data: data)
        while true {
            do {
                try await submit(.event(event))
                return true
            } catch where recordUnavailable && !stopping {
                // A full disk: the task's result is kept here and recorded once it can be.
                try? await Task.sleep(for: .seconds(2))
                continue
            } catch {
                // The sequence was aborted or timed out meanwhile: the answer is moot.
                logger.info("\(name).\(phase) not applied: \(error.message)\(orAside ? "; recorded beside the sequence" : "")", metadata: ["context": "\(triggered.shkeptncontext)"])
                if orAside { recordAside([event]) }
                return false
            }
        }
    }

    // MARK: Quality gates

    private var passedWithoutSLO: (@Sendable (String, String, String) -> Void)?

    /// Told of each evaluation that passed without an SLO file (project, message, context).
    func onPassWithoutSLO(_ action: @escaping @Sendable (String, String, String) -> Void) {
        passedWithoutSLO = action
    }

    /// The built-in `evaluation` (Keptn's lighthouse): `.started` at once, then the SLO and SLI
    /// files at the sequence's commit, the previous evaluations it compares with, the provider's
    /// values (the `get-sli` exchange is recorded as Keptn's would be), and the score as
    /// `evaluation.finished`.
    private func evaluate(_ triggered: KeptnEvent, alreadyStarted: Bool) {
        guard let (execution, index) = engine.task(triggeredID: triggered.id) else { return }
        let cancel = TaskCancel()
        running[triggered.id] = cancel
        let project = configuration.project(named: execution.project)
        let mirror = Mirror(path: state.mirror(project: execution.project))
        let runDirectory = state.root + "/runs/\(triggered.id)"
        let logFile = state.root + "/logs/\(execution.context)/\(execution.stage)-evaluation.log"
        let home = state.home
        let source = Evaluations.source
        Task {
            if !alreadyStarted, await !self.answer(triggered, phase: "started", outcome: nil, source: source) {
                self.taskNotRun(triggered)
                return
            }
            guard let project else {
                let outcome = Lighthouse.decided(
                    .fail, message: "project \(execution.project) is no longer in the config", errored: true, timeStart: Date(), timeEnd: Date(), sloFileContent: [])
                await self.evaluationEnded(triggered, outcome)
                return
            }
            let plan = await Self.onThread(name: "evaluation") {
                Evaluator.plan(triggered: triggered, execution: execution, index: index, project: project, mirror: mirror, now: Date())
            }
            if let decided = plan.decided {
                if decided.result == .pass { self.passedWithoutSLO?(execution.project, decided.message, execution.context) }
                await self.evaluationEnded(triggered, decided)
                return
            }
            guard let slo = plan.slo, let provider = project.sliProvider else {
                let outcome = Lighthouse.decided(.fail, message: "internal error: an evaluation plan without an SLO or a provider", errored: true, timeStart: plan.start, timeEnd: plan.end)
                await self.evaluationEnded(triggered, outcome)
                return
            }
            let previous = self.previousEvaluations(slo, execution: execution)
            let request = Evaluator.request(plan: plan, slo: slo, triggered: triggered, execution: execution, provider: provider)
            let getSLI = self.recordGetSLI(request, triggered: triggered)
            let deployment = triggered.data["deployment"]?["deploymentNames"]?.array?.first?.string ?? ""
            let answer = await Self.onThread(name: "sli-provider") {
                switch provider {
                case .command(let executor):
                    return CommandSLIProvider(executor: executor).fetch(
                        request, triggered: triggered, sequence: execution.sequence, runDirectory: runDirectory, logFile: logFile, home: home, cancel: cancel)
                case .prometheus(let settings):
                    return PrometheusSLIProvider(settings: settings).fetch(request, deployment: deployment, cancel: cancel)
                }
            }
            // A stop interrupts the provider: nothing is recorded, the next start asks again.
            if self.stopping {
                await self.evaluationEnded(triggered, Lighthouse.decided(.fail, message: "interrupted", timeStart: plan.start, timeEnd: plan.end))
                return
            }
            let aborted = cancel.isCancelled
            self.recordGetSLIFinished(answer, request: request, triggered: getSLI, aborted: aborted)
            if aborted {
                // `shipyardctl abort` during the provider call: Keptn's lighthouse answers the
                // aborted get-sli with an errored evaluation.finished; the sequence has ended, so
                // it is recorded beside it.
                await self.evaluationEnded(
                    triggered, Lighthouse.providerAborted(timeStart: plan.start, timeEnd: plan.end, sloFileContent: plan.sloBytes), evenIfEnded: true)
                return
            }
            if let failure = answer.failure {
                // No usable answer: nothing was measured, nothing is scored (Keptn's provider that
                // ends errored), with the provider's own message.
                await self.evaluationEnded(
                    triggered, Lighthouse.providerErrored(failure, timeStart: plan.start, timeEnd: plan.end, sloFileContent: plan.sloBytes))
                return
            }
            var outcome = Lighthouse.evaluate(
                slo, values: answer.values, previous: previous, timeStart: plan.start, timeEnd: plan.end, sloFileContent: plan.sloBytes,
                sliFailure: answer.reportedFail, precedingFailed: triggered.data["result"]?.string == TaskResult.fail.rawValue)
            outcome.message = Self.scoreLine(outcome, slo) + (outcome.message.isEmpty ? "" : "; \(outcome.message)")
            await self.evaluationEnded(triggered, outcome)
        }
    }

    /// "score 87.5 (pass ≥ 90%, warning ≥ 75%)": the score beside its thresholds, which Keptn's
    /// messages leave out (keptn#1661, #2305).
    static func scoreLine(_ outcome: EvaluationOutcome, _ slo: SLO) -> String {
        func number(_ value: Double) -> String {
            let text = String(format: "%.2f", value)
            return text.hasSuffix(".00") ? String(text.dropLast(3)) : text.hasSuffix("0") ? String(text.dropLast()) : text
        }
        var thresholds: [String] = []
        if let pass = slo.totalScorePass.flatMap(SLO.percentage) { thresholds.append("pass ≥ \(number(pass))%") }
        if let warning = slo.totalScoreWarning.flatMap(SLO.percentage) { thresholds.append("warning ≥ \(number(warning))%") }
        return "score \(number(outcome.score))" + (thresholds.isEmpty ? "" : " (\(thresholds.joined(separator: ", ")))")
    }

    /// The previous evaluations an SLO's `comparison` asks for, newest first.
    private func previousEvaluations(_ slo: SLO, execution: SequenceExecution) -> [PreviousEvaluation] {
        let query = EvaluationQuery(
            project: execution.project, stage: execution.stage, service: execution.service, results: slo.comparison.acceptedResults,
            limit: slo.comparison.resultsToCompare)
        do {
            return try store.previousEvaluations(query)
        } catch {
            logger.error("cannot read previous evaluations of \(execution.service) in \(execution.stage): \(error); comparing with none")
            return []
        }
    }

    /// `get-sli.triggered` and the provider's `.started`, as Keptn's lighthouse and provider record them.
    private func recordGetSLI(_ request: SLIRequest, triggered: KeptnEvent) -> KeptnEvent {
        var data = (try? JSON.decode(JSONValue.self, from: JSON.encode(request))) ?? .object([:])
        data["queries"] = nil
        var payload: JSONValue = .object(["project": .string(request.project), "stage": .string(request.stage), "service": .string(request.service)])
        payload["get-sli"] = data
        if let labels = triggered.data["labels"] { payload["labels"] = labels }
        let now = Timestamps.format(Date())
        let getSLI = KeptnEvent(
            id: ids.next(), source: Evaluations.source, type: "\(KeptnEvent.prefix)get-sli.triggered", time: now,
            context: triggered.shkeptncontext, triggeredid: triggered.id, gitcommitid: triggered.gitcommitid, data: payload)
        var started = payload
        started["get-sli"] = nil
        started["status"] = .string(TaskStatus.succeeded.rawValue)
        let startedEvent = KeptnEvent(
            id: ids.next(), source: "shipyardd/sli-provider/\(request.sliProvider)", type: "\(KeptnEvent.prefix)get-sli.started", time: now,
            context: triggered.shkeptncontext, triggeredid: getSLI.id, gitcommitid: triggered.gitcommitid, data: started)
        recordAside([getSLI, startedEvent])
        return getSLI
    }

    private func recordGetSLIFinished(_ answer: SLIAnswer, request: SLIRequest, triggered getSLI: KeptnEvent, aborted: Bool) {
        var data: JSONValue = .object(["project": .string(request.project), "stage": .string(request.stage), "service": .string(request.service)])
        let failed = answer.failure != nil || answer.reportedFail != nil
        let anyFailed = answer.values.contains { !$0.success }
        data["result"] = .string(failed || aborted ? "fail" : anyFailed ? "warning" : "pass")
        data["status"] = .string(aborted ? TaskStatus.aborted.rawValue : answer.failure != nil ? TaskStatus.errored.rawValue : TaskStatus.succeeded.rawValue)
        data["message"] = .string(answer.failure ?? answer.reportedFail ?? answer.message ?? "")
        let values = (try? JSON.decode(JSONValue.self, from: JSON.encode(answer.values))) ?? .array([])
        data["get-sli"] = .object([
            "sliProvider": .string(request.sliProvider), "start": .string(request.start), "end": .string(request.end), "indicatorValues": values,
        ])
        let event = KeptnEvent(
            id: ids.next(), source: "shipyardd/sli-provider/\(request.sliProvider)", type: "\(KeptnEvent.prefix)get-sli.finished",
            time: Timestamps.format(Date()), context: getSLI.shkeptncontext, triggeredid: getSLI.id, gitcommitid: getSLI.gitcommitid, data: data)
        recordAside([event])
    }

    /// `evenIfEnded`: recorded beside the sequence when it has ended meanwhile (an abort).
    private func evaluationEnded(_ triggered: KeptnEvent, _ outcome: EvaluationOutcome, evenIfEnded: Bool = false) async {
        running[triggered.id] = nil
        if stopping {
            logger.info("evaluation interrupted by the daemon's stop; it runs again at the next start", metadata: ["triggeredid": "\(triggered.id)"])
            return
        }
        var data: JSONValue = .object(["evaluation": outcome.evaluation])
        if let labels = triggered.data["labels"] { data["labels"] = labels }
        await answer(
            triggered, phase: "finished",
            outcome: TaskProcess.Outcome(result: outcome.result, status: outcome.errored ? .errored : .succeeded, message: outcome.message, data: data),
            source: Evaluations.source, orAside: evenIfEnded)
    }

    /// Records events that the engine does not follow (the `get-sli` exchange, an invalidation):
    /// in the record, in the context they belong to.
    @discardableResult
    private func recordAside(_ events: [KeptnEvent]) -> Bool {
        do {
            try store.commit(events: events, changes: [])
            for event in events { logger.debug("\(event.type)", metadata: ["context": "\(event.shkeptncontext)"]) }
            feed?.publish()
            return true
        } catch {
            logger.error("cannot record \(events.map(\.type).joined(separator: ", ")): \(error)")
            return false
        }
    }

    /// `shipyardctl evaluations invalidate`: Keptn's `evaluation.invalidated`; later evaluations no
    /// longer compare with it.
    func invalidate(_ prefix: String, by user: String, reason: String) throws(EngineError) -> String {
        guard prefix.count >= Self.minimumIDPrefix else {
            throw EngineError("give at least \(Self.minimumIDPrefix) characters of the evaluation's id, not \"\(prefix)\" (shipyardctl evaluations lists them)")
        }
        let found: [StoredEvaluation]
        do {
            found = try store.evaluations(idPrefix: prefix, limit: 2)
        } catch {
            throw EngineError("cannot read the record: \(error)")
        }
        guard let evaluation = found.first else {
            throw EngineError("no evaluation has the id \(prefix) (shipyardctl evaluations --project P --stage S --service V lists them)")
        }
        guard found.count == 1 else {
            throw EngineError("\(prefix) is ambiguous: it starts \(found.map(\.triggeredID).joined(separator: ", ")); give more of the id")
        }
        if evaluation.invalidated { return "evaluation \(evaluation.triggeredID) was already invalidated" }
        var data: JSONValue = .object([:])
        for key in ["project", "stage", "service"] { data[key] = evaluation.data[key] }
        data["by"] = .string(user)
        data["reason"] = .string(reason)
        data["message"] = .string("invalidated by \(user)" + (reason.isEmpty ? "" : ": \(reason)"))
        let event = KeptnEvent(
            id: ids.next(), source: "shipyardctl/\(user)", type: Evaluations.invalidatedType, time: Timestamps.format(Date()),
            context: evaluation.context, triggeredid: evaluation.triggeredID, data: data)
        do {
            try store.commit(events: [event], changes: [])
        } catch {
            throw EngineError("nothing was done: the record cannot be written (\(error))")
        }
        log(event)
        return "evaluation \(evaluation.triggeredID) of \(evaluation.data["service"]?.string ?? "?") in \(evaluation.data["stage"]?.string ?? "?") invalidated: later evaluations no longer compare with it"
    }

    /// Appends one line to the task's attempt record, durably, before its program starts: a
    /// restart counts the lines and never runs the same attempt twice.
    static func recordAttempt(in directory: String) throws -> Int {
        try FileManager.default.createDirectory(atPath: directory, withIntermediateDirectories: true)
        let path = directory + "/attempts"
        let previous = (try? String(contentsOfFile: path, encoding: .utf8))?.split(separator: "\n").count ?? 0
        let attempt = previous + 1
        let fd = open(path, O_WRONLY | O_APPEND | O_CREAT | O_CLOEXEC, 0o640)
        guard fd >= 0 else { throw AtomicFile.Failure(description: "cannot open \(path)") }
        defer { close(fd) }
        let line = Array("\(attempt) \(Timestamps.format(Date()))\n".utf8)
        guard line.withUnsafeBytes({ write(fd, $0.baseAddress, $0.count) }) == line.count, fsync(fd) == 0 else {
            throw AtomicFile.Failure(description: "cannot write \(path)")
        }
        return attempt
    }

    /// Removes exported worktrees that no active sequence runs with.
    private func pruneWorktrees() {
        for left in worktrees.prune(keeping: Set(engine.active.compactMap(\.commit))) {
            logger.warning("cannot remove all of the export \(left); remove it by hand")
        }
    }

    /// Removes the per-task folders (event file, result file, attempt record) of tasks whose
    /// sequence has ended: they matter only while a task may still be run again.
    private func pruneRuns() {
        let root = state.root + "/runs"
        for name in (try? FileManager.default.contentsOfDirectory(atPath: root)) ?? [] where running[name] == nil {
            if let (execution, _) = engine.task(triggeredID: name), execution.isActive { continue }
            try? FileManager.default.removeItem(atPath: root + "/" + name)
        }
    }

    private static func onThread<T: Sendable>(name: String, _ work: @escaping @Sendable () -> T) async -> T {
        await withCheckedContinuation { continuation in
            let thread = Thread { continuation.resume(returning: work()) }
            thread.name = name
            thread.start()
        }
    }

    // MARK: Approvals and timers

    /// Runs the config's notify program, if any, in the background.
    private func tell(_ what: String, _ request: ApprovalRequest, decision: JSONValue?, waited: TimeInterval? = nil) {
        guard let notify else { return }
        struct Message: Encodable {
            var event: String
            var approval: ApprovalRequest
            var decision: JSONValue?
            var waitedSeconds: Int?
        }
        guard let input = try? JSON.encode(Message(event: what, approval: request, decision: decision, waitedSeconds: waited.map { Int($0) })) else { return }
        let notifier = Notifier(command: notify.command, timeout: notify.timeout, logFile: state.root + "/logs/notify.log")
        let logger = logger
        let thread = Thread {
            if let failure = notifier.run(input) { logger.warning("\(failure)") }
        }
        thread.name = "notify"
        thread.start()
    }

    @discardableResult
    /// Returns once no step is half done: a step commits the record and writes (or removes) the
    /// approval files in one turn of this actor, so a reader that saw a sequence waiting for
    /// approval and then waits here finds its file.
    func settled() {}

    private func writeApproval(triggeredID: String) -> ApprovalRequest? {
        guard let (execution, index) = engine.task(triggeredID: triggeredID) else { return nil }
        // The result the approval judges: the previous task's, or for a first task the result the
        // stage before handed on (as the approval's .triggered payload carries it).
        let previous = index > 0 ? execution.tasks[index - 1].result.rawValue : execution.data["result"]?.string
        var request = ApprovalRequest(
            id: triggeredID, project: execution.project, stage: execution.stage, service: execution.service,
            sequence: execution.sequence, context: execution.context, previousResult: previous,
            image: execution.data["configurationChange"]?["values"]?["image"]?.string,
            triggeredBy: execution.triggeredBy,
            requestedAt: Timestamps.format(execution.tasks[index].triggeredAt ?? Date()))
        if let gate = gate(of: execution) {
            let tally = ApprovalRules.tally(votes[triggeredID] ?? [], gate: gate, accounts: accounts)
            request.required = gate.policy.required
            request.approvedBy = tally.counted.map(\.by)
            request.notCounted = tally.setAside.isEmpty ? nil : tally.notCounted
            request.mayApprove = ApprovalRules.stillMay(gate, tally: tally, accounts: accounts)
            request.expiresAt = deadline(of: execution, task: index).map(Timestamps.format)
        }
        do {
            try FileManager.default.createDirectory(atPath: state.root + "/approvals", withIntermediateDirectories: true)
            try AtomicFile.write(try JSON.encode(request, pretty: true), to: state.root + "/approvals/\(triggeredID).json", mode: 0o640)
        } catch {
            logger.error("cannot write the approval request \(triggeredID): \(error)")
        }
        return request
    }

    private func schedule(_ date: Date) {
        // A wake already due no later (even one due now that has not run yet) serves this one.
        if let wakeAt, wakeAt <= date { return }
        wakeAt = date
        wakeTask?.cancel()
        let delay = max(0, date.timeIntervalSinceNow)
        wakeTask = Task { [weak self] in
            try? await Task.sleep(for: .milliseconds(Int64(delay * 1000) + 5))
            guard !Task.isCancelled else { return }
            await self?.wake()
        }
    }

    private func wake() async {
        wakeAt = nil
        _ = try? await submit(.tick)
        await approvalDeadlines()
    }

    // MARK: Approval policies

    /// A person's decision: checked against the gate's policy (or the config's approvers), then
    /// recorded; an approval opens the gate once `required` distinct people approved, a
    /// rejection closes it at once.
    func decide(_ decision: Daemon.Decision) async -> (ok: Bool, message: String, context: String?) {
        let user = decision.user
        let reason = decision.reason ?? ""
        var pending: (triggeredID: String, execution: SequenceExecution)
        var waited = 0
        while true {
            do {
                pending = try pendingApproval(decision.approval)
            } catch {
                return (false, error.message, nil)
            }
            // Only the decision that closes a gate waits (for its record): another decision on
            // the same gate meanwhile waits for it, and then finds it decided.
            guard settling.contains(pending.triggeredID), waited < 400 else { break }
            waited += 1
            try? await Task.sleep(for: .milliseconds(25))
        }
        let (id, execution) = pending
        guard !settling.contains(id) else {
            return (false, "approval \(id) is being decided right now; look again (shipyardctl approvals) in a moment", execution.context)
        }
        let policy = configuration.approvalPolicy(project: execution.project, stage: execution.stage)
        if let approvers = policy?.approvers ?? configuration.approvers, !approvers.admits(user: user, groups: decision.groups) {
            let message = policy.map { "\(user) may not decide \($0.scope): its approvers are \(approvers.description)" }
                ?? "\(user) may not resolve approvals: approvers are \(approvers.description)"
            logger.warning("approval \(id) refused: \(message)", metadata: ["via": "\(decision.via)"])
            return (false, message, execution.context)
        }
        let now = clock()
        // A decision is judged by the clock when it is recorded, not when the expiry timer runs:
        // one that comes after expiresAt is late, and the expiry follows at once. (Requests that
        // waited in the socket while the daemon was down are answered before expiries that fell
        // due meanwhile are judged: those are in time.)
        if let index = engine.task(triggeredID: id)?.1, let deadline = deadline(of: execution, task: index), now >= deadline,
            !dueWhileDown(deadline)
        {
            schedule(now)
            let message = "approval \(id) expired at \(Timestamps.format(deadline)) (expireAfter for \(policy?.scope ?? "this gate")); it is being declined and the decision was not recorded"
            logger.warning("approval \(id) refused: \(message)", metadata: ["by": "\(user)", "via": "\(decision.via)"])
            return (false, message, execution.context)
        }
        let vote = ApprovalVote(by: user, uid: decision.uid, at: Timestamps.format(now), reason: reason, via: decision.via)
        guard decision.approve, let gate = gate(of: execution) else {
            return await settle(id, execution, approved: decision.approve, votes: [vote], by: user, via: decision.via)
        }
        // Earlier approvals may be enough already (one set aside counts again once its person is
        // an approver again): the gate opens by that count, whoever asked.
        let before = ApprovalRules.tally(votes[id] ?? [], gate: gate, accounts: accounts)
        if before.isMet, let last = before.counted.last {
            return await settle(id, execution, approved: true, votes: before.counted, by: last.by, via: last.via, notCounted: before.setAside, recount: "recount")
        }
        switch ApprovalRules.approve(vote, votes: votes[id] ?? [], gate: gate, accounts: accounts) {
        case .refused(let message):
            logger.warning("approval \(id) refused: \(message)", metadata: ["by": "\(user)", "via": "\(decision.via)"])
            return (false, message, execution.context)
        case .approved(let tally):
            guard recordVote(vote, id: id, execution: execution) else { return (false, recordFailure, execution.context) }
            return await settle(id, execution, approved: true, votes: tally.counted, by: user, via: decision.via, notCounted: tally.setAside)
        case .counted(let tally):
            guard recordVote(vote, id: id, execution: execution) else { return (false, recordFailure, execution.context) }
            writeApproval(triggeredID: id)
            let aside = tally.setAside.isEmpty ? "" : "; not counted: " + tally.notCounted.joined(separator: "; ")
            return (true, "approved by \(user): \(tally.summary); waiting for \(tally.required - tally.counted.count) more from \(ApprovalRules.stillMay(gate, tally: tally, accounts: accounts))\(aside)", execution.context)
        }
    }

    private var recordFailure: String {
        "nothing was done: the record cannot be written (\(failed ?? "see the daemon's log")); try again once it can"
    }

    /// Records one approval; false (and nothing counted) when the record cannot be written.
    private func recordVote(_ vote: ApprovalVote, id: String, execution: SequenceExecution) -> Bool {
        var data: JSONValue = .object(["project": .string(execution.project), "stage": .string(execution.stage), "service": .string(execution.service)])
        data["approval"] = vote.json
        var event = KeptnEvent(
            id: ids.next(), source: vote.via == "web" ? "web/\(vote.by)" : "shipyardctl/\(vote.by)", type: ApprovalVote.type, time: vote.at,
            context: execution.context, triggeredid: id, gitcommitid: execution.commit, data: data)
        event.shipyarduid = vote.uid
        guard recordAside([event]) else { return false }
        votes[id, default: []].append(vote)
        defer { logger.info("approval counted", metadata: ["by": "\(vote.by)", "via": "\(vote.via)", "context": "\(execution.context)", "stage": "\(execution.stage)"]) }
        return true
    }

    /// The approval's `.finished`: approved by everyone who did, or declined (by a person, or expired).
    /// Gates whose closing decision is being recorded.
    private var settling: Set<String> = []

    /// `recount` names what opened a gate without a vote of its own (a reload, a start): the
    /// record says so, with the votes it counted and those it did not.
    private func settle(
        _ id: String, _ execution: SequenceExecution, approved: Bool, votes decided: [ApprovalVote], by user: String, via: String,
        notCounted: [ApprovalRules.Tally.SetAside] = [], recount: String? = nil
    ) async -> (ok: Bool, message: String, context: String?) {
        settling.insert(id)
        defer { settling.remove(id) }
        let now = Date()
        let decision = approved ? "approved" : "declined"
        let people = decided.map(\.by).joined(separator: ", ")
        let occasion = ["reload": "the config's reload", "start": "the daemon's start"][recount ?? ""]
            ?? "a later count (the approvals counted again under the policy and the accounts as they are now)"
        let reason = recount.map { _ in "opened at \(occasion): the policy in force for \(execution.stage) needs \(decided.count == 1 ? "this approval" : "these \(decided.count) approvals")" }
            ?? decided.last?.reason ?? ""
        var data: JSONValue = .object([
            "project": .string(execution.project), "stage": .string(execution.stage), "service": .string(execution.service),
            "result": .string(approved ? "pass" : "fail"), "status": .string("succeeded"),
            "message": .string("\(decision) by \(people)" + (reason.isEmpty ? "" : ": \(reason)")),
        ])
        var record: [String: JSONValue] = [
            "decision": .string(decision), "by": .string(people),
            "at": .string(recount != nil ? Timestamps.format(now) : decided.last?.at ?? Timestamps.format(now)),
            "reason": .string(reason), "via": .string(recount ?? via),
        ]
        if decided.count > 1 || recount != nil { record["approvals"] = .array(decided.map(\.json)) }
        if decided.count == 1, let uid = decided[0].uid { record["uid"] = .number(Double(uid)) }
        if !notCounted.isEmpty {
            record["notCounted"] = .array(notCounted.map { aside in
                var entry = aside.vote.json
                entry["why"] = .string(aside.reason)
                return entry
            })
        }
        data["approval"] = .object(record)
        let event = KeptnEvent(
            id: CommandRequest.newID(), source: recount != nil || via == "daemon" ? "shipyardd" : via == "web" ? "web/\(user)" : "shipyardctl/\(user)",
            type: "\(KeptnEvent.prefix)approval.finished", time: Timestamps.format(now), context: execution.context, triggeredid: id,
            gitcommitid: execution.commit, data: data)
        do {
            let effects = try await submit(.event(event))
            votes[id] = nil
            reminded[id] = nil
            logger.info("approval \(decision)", metadata: ["by": "\(people)", "via": "\(recount ?? via)", "context": "\(execution.context)", "stage": "\(execution.stage)"])
            return (true, Daemon.whatHappensNext(decision: decision, execution: execution, effects: effects), execution.context)
        } catch {
            return (false, error.message, execution.context)
        }
    }

    /// Expiry and reminders of pending approvals, when due (also at start: a daemon that was down
    /// when one was due does it now, once); then sleeps until the next one is.
    /// `cause` names what counts the gates again: a reload, the start, or a timer ("recount").
    func approvalDeadlines(now: Date = Date(), cause: String = "recount") async {
        guard !stopping, failed == nil else { return }
        for id in pendingApprovalIDs {
            // A gate whose closing decision is being recorded is that decision's.
            guard !settling.contains(id), let (execution, index) = engine.task(triggeredID: id) else { continue }
            let waitingSince = execution.tasks[index].triggeredAt ?? now
            guard let gate = gate(of: execution) else { continue }
            let policy = gate.policy
            // A policy loosened by a reload (or changed while the daemon was down) may already be
            // met: by the approvals that count under it, counted as a vote is.
            let tally = ApprovalRules.tally(votes[id] ?? [], gate: gate, accounts: accounts)
            if tally.isMet, let last = tally.counted.last {
                logger.notice("approval \(id) opened by the \(cause): \(tally.summary)", metadata: ["context": "\(execution.context)", "stage": "\(execution.stage)"])
                _ = await settle(id, execution, approved: true, votes: tally.counted, by: last.by, via: last.via, notCounted: tally.setAside, recount: cause)
                continue
            }
            if let expiry = policy.expireAfter {
                let deadline = waitingSince.addingTimeInterval(expiry.seconds)
                // One that fell due while the daemon was down waits for the requests that waited
                // in the socket meanwhile (`downtimeAnswered`).
                if now >= deadline, dueWhileDown(deadline) { continue }
                if now >= deadline {
                    let vote = ApprovalVote(by: "shipyardd", at: Timestamps.format(now), reason: "expired: nobody decided within \(GoDuration.format(expiry)) (expireAfter for \(policy.scope))", via: "daemon")
                    logger.notice("approval \(id) expired", metadata: ["context": "\(execution.context)", "stage": "\(execution.stage)"])
                    _ = await settle(id, execution, approved: false, votes: [vote], by: "shipyardd", via: "daemon")
                    continue
                }
                schedule(deadline)
            }
            if let interval = policy.remindAfter {
                let due = (reminded[id] ?? waitingSince).addingTimeInterval(interval.seconds)
                if now >= due {
                    remind(id, execution, waited: now.timeIntervalSince(waitingSince))
                    reminded[id] = now
                    schedule(now.addingTimeInterval(interval.seconds))
                } else {
                    schedule(due)
                }
            }
        }
    }

    private func remind(_ id: String, _ execution: SequenceExecution, waited: TimeInterval) {
        guard let request = writeApproval(triggeredID: id) else { return }
        var data: JSONValue = .object(["project": .string(execution.project), "stage": .string(execution.stage), "service": .string(execution.service)])
        data["waitedSeconds"] = .number(waited.rounded())
        recordAside([KeptnEvent(
            id: ids.next(), source: "shipyardd", type: ApprovalVote.reminderType, time: Timestamps.format(Date()), context: execution.context,
            triggeredid: id, gitcommitid: execution.commit, data: data)])
        logger.info("approval reminder", metadata: ["context": "\(execution.context)", "stage": "\(execution.stage)", "waited": "\(Int(waited))s"])
        tell("reminder", request, decision: nil, waited: waited)
    }

    /// The requests that waited in the socket while the daemon was down have been answered:
    /// expiries that fell due meanwhile are judged now.
    func serving() {
        if servingSince == nil { servingSince = Date() }
    }

    func downtimeAnswered() async {
        guard !downtimeJudged else { return }
        downtimeJudged = true
        await approvalDeadlines()
    }

    /// The shortest id prefix `approve`/`reject` take, as git's shortest abbreviation.
    static let minimumIDPrefix = 4

    /// The pending approval an id or unique id prefix names.
    func pendingApproval(_ prefix: String) throws(EngineError) -> (triggeredID: String, execution: SequenceExecution) {
        guard prefix.count >= Self.minimumIDPrefix else {
            throw EngineError("give at least \(Self.minimumIDPrefix) characters of the approval's id, not \"\(prefix)\" (shipyardctl approvals lists them)")
        }
        var pending: [(String, SequenceExecution)] = []
        for execution in engine.active {
            for task in execution.tasks where task.name == "approval" && task.phase == .started {
                guard let id = task.triggeredID, id.hasPrefix(prefix) else { continue }
                pending.append((id, execution))
            }
        }
        // A prefix names one approval among all the record holds, resolved ones too: one that
        // was ambiguous does not quietly come to mean the other gate once the first is decided.
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

    var activeSummary: (running: Int, approvals: Int) {
        let states = engine.active.map(engine.state)
        return (states.filter { $0 == .started }.count, states.filter { $0 == .waitingForApproval }.count)
    }

    /// The daemon's stop: running tasks get `grace` to finish (their results are recorded as
    /// usual, and nothing new starts), then their process groups are terminated (and killed after
    /// the runner's grace period) without recording an outcome, so the next start runs them again.
    func shutdown(grace: Duration) async {
        draining = true
        let deadline = ContinuousClock.now + grace
        if !running.isEmpty, grace > .zero {
            logger.info("waiting up to \(GoDuration.format(grace)) for \(running.count) running task(s) to finish")
        }
        while !running.isEmpty, ContinuousClock.now < deadline {
            try? await Task.sleep(for: .milliseconds(50))
        }
        stopping = true
        wakeTask?.cancel()
        retentionTask?.cancel()
        for cancel in running.values {
            if let pid = cancel.pid { kill(-pid, SIGTERM) }
        }
        for _ in 0..<Int(TaskProcess.gracePeriod * 20 + 40) where !running.isEmpty {
            try? await Task.sleep(for: .milliseconds(50))
        }
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
