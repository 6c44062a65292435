import Foundation
import Logging
import ShipyardCore
import ShipyardStore
import ShipyardGit

/// Runs the engine for the daemon: every command's events, and the state of the sequences they
/// changed, are committed to the store in one durable transaction before any of their effects
/// happen, so a crash at any point leaves a record from which the next start continues without
/// a gap or a duplicate. The engine holds only active work; the store answers for the rest.
actor Orchestrator {
    var engine = Engine()
    /// Opened by `start()`.
    var store: (any Store)!
    /// Event ids; `SHIPYARD_FAULT_ID_PREFIX` makes them share their first digits, so that tests
    /// can give an id prefix that names more than one approval.
    var ids = UUIDGenerator(prefix: ProcessInfo.processInfo.environment["SHIPYARD_FAULT_ID_PREFIX"])
    let state: StateDirectory
    var notify: DaemonConfig.TaskExecutor?
    let shipyards: @Sendable () async -> [String: PinnedShipyard]
    let logger: Logger
    var wakeTask: Task<Void, Never>?
    var wakeAt: Date?
    var failed: String?
    /// Set while the record could not be read back after a failed write: the engine may hold
    /// what was never recorded, so nothing is decided until it is read back.
    var unread: String?
    /// Fault injection for the crash tests: SIGKILL this process right after this many commits (`SHIPYARD_FAULT_KILL_AFTER_APPENDS`), i.e. after a step is durable and before
    /// anything acts on it.
    var killAfterAppends = ProcessInfo.processInfo.environment["SHIPYARD_FAULT_KILL_AFTER_APPENDS"].flatMap(Int.init)
    /// Set when the daemon begins to stop: no new task program starts (it starts at the next run).
    var draining = false
    /// Set once running tasks are interrupted: they are not recorded as finished, so the next
    /// start runs them again.
    var stopping = false
    /// Whether an effect outside the record may start now (a shared record's leader checks its
    /// lease; on one host, always).
    var mayAct: @Sendable () -> Bool = { true }

    /// Local task programs: configured, running, their files.
    var tasks: TaskRunner
    var configuration: DaemonConfig
    /// Pending approvals: their votes, reminders, files and timers' state.
    var desk: ApprovalDesk
    var retentionTask: Task<Void, Never>?
    /// Webhook requests in flight, bounded per subscription (webhooks.concurrency each), so that a
    /// receiver that hangs holds up its own webhook's requests and no other's.
    var webhookLimits: [String: WebhookLimiter] = [:]
    /// Tasks a webhook performs, while its requests are out: a stop waits for them within its
    /// grace period, not after (nothing can interrupt a request but its timeout).
    var webhookTasks: Set<String> = []
    var retaining = false

    let metrics: DaemonMetrics?
    let feed: ChangeFeed?

    init(
        state: StateDirectory, config: DaemonConfig, logger: Logger, metrics: DaemonMetrics? = nil, feed: ChangeFeed? = nil,
        shipyards: @escaping @Sendable () async -> [String: PinnedShipyard]
    ) {
        self.metrics = metrics
        self.feed = feed
        self.state = state
        self.tasks = TaskRunner(state: state, executors: config.tasks, logger: logger)
        self.desk = ApprovalDesk(state: state, logger: logger)
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
        tasks.executors = config.tasks
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

    static func configure(_ engine: inout Engine, _ config: DaemonConfig) {
        // `evaluation` is built in: its provider has a timeout of its own.
        engine.locallyRunTasks = Set(config.tasks.keys).union([Engine.evaluationSequence])
        engine.taskStartTimeout = config.taskStartTimeout.seconds
        engine.taskFinishTimeout = config.taskFinishTimeout?.seconds
        engine.maxSequencesPerContext = config.maxSequencesPerContext
    }

    /// An engine holding the store's active work, and those events.
    func engineFromRecord() throws -> (Engine, [KeptnEvent]) {
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
    func rebuildFromRecord() {
        do {
            engine = try engineFromRecord().0
            if unread != nil { logger.notice("the record is read back; carrying on") }
            unread = nil
        } catch {
            // The engine may hold what was never recorded: nothing is decided on it until the
            // record is read back (the next command or tick tries again).
            if unread == nil { logger.critical("cannot read the record back after a failed write: \(error); trying again every 5 s") }
            unread = "\(error)"
        }
    }

    /// Whether a task name runs as a local program here.
    func runsLocally(_ task: String) -> Bool { tasks.runsLocally(task) }

    enum Delivered: Equatable {
        case delivered
        /// Never; the services the project has delivered (at most 50).
        case never([String])
    }

    /// Whether the project ever delivered the service (a trigger warns when not).
    func deliveredServices(project: String, including service: String) -> Delivered {
        guard let seen = try? store.hasDelivered(project: project, service: service), !seen else { return .delivered }
        return .never((try? store.services(project: project, limit: 50)) ?? [])
    }

    /// The context a command names: all of it, or a unique prefix (the record has every
    /// sequence the engine has: each step is committed before it is answered).
    func context(named given: String) throws -> String {
        try store.context(named: given)
    }

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
        // Any id the record holds (a sender may choose ids: one already recorded, a retry or not,
        // must never reach the record's unique index, whose refusal would read as a full disk).
        guard (try? store.containsEvent(id: event.id)) == true else { return nil }
        return "event \(event.id) was already applied"
    }

    /// Opens the store (importing an earlier release's journal first), reads the active work,
    /// then carries on: tasks whose process was lost with the previous run are run again with
    /// the next attempt number, pending approvals stay pending.
    func start(store shared: (any Store)? = nil, importProgress: (Int) -> Void = { _ in }) async throws {
        if let shared {
            store = shared
        } else {
            try openLocalStore(importProgress: importProgress)
        }
        try await carryOn()
    }

    /// Effects outside the record (task programs, notifications) start only while this holds.
    func fenceEffects(_ check: @escaping @Sendable () -> Bool) {
        mayAct = check
        desk.mayAct = check
    }

    /// A shared record's leader shares its approval request files with the standbys.
    func shareApprovals(through store: PostgresStore) {
        desk.share = store
    }

    /// The SQLite record in the state directory, an earlier release's journal imported first.
    func openLocalStore(importProgress: (Int) -> Void) throws {
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
    }

    /// Reads the active work back and carries on with it.
    func carryOn() async throws {
        let (fresh, events) = try engineFromRecord()
        engine = fresh
        desk.restore(events)
        logger.info("record read", metadata: ["events": "\(events.count)", "active": "\(engine.active.count)"])
        let unfinished = engine.unfinishedTasks
        let wanted = Set(unfinished.compactMap { $0.execution.tasks[$0.index].triggeredID })
        let triggeredEvents = Dictionary(events.filter { wanted.contains($0.id) }.map { ($0.id, $0) }) { a, _ in a }
        for (execution, index) in unfinished {
            let task = execution.tasks[index]
            guard let id = task.triggeredID, let triggered = triggeredEvents[id] else { continue }
            if task.name == "approval" {
                if task.phase == .started { writeApproval(triggeredID: id) }
            } else if webhookPerforms(triggered) {
                // Never started: its webhook was not called yet (its requests follow its .started).
                // A started one is called again only if it sends its own .finished (see callWebhooks).
                if mayAct(), task.startedCount > 0 || !webhookCalled(for: triggered) {
                    if task.startedCount == 0 {
                        logger.warning("\(task.name) of \(execution.stage).\(execution.sequence) was triggered when the daemon stopped; calling its webhook now",
                                       metadata: ["context": "\(execution.context)"])
                    }
                    callWebhooks([triggered], resumingStarted: task.startedCount > 0)
                }
            } else if tasks.runsLocally(task.name) || task.name == Engine.evaluationSequence {
                logger.warning("\(task.name) of \(execution.stage).\(execution.sequence) was running when the daemon stopped; running it again",
                               metadata: ["context": "\(execution.context)"])
                launch(triggered, alreadyStarted: task.startedCount > 0)
            }
        }
        reconcileApprovals()
        tasks.worktrees.removeAbandonedExports()
        await perform(engine.resume(shipyards: await shipyards(), now: Date(), ids: &ids))
        await approvalDeadlines(cause: "start")
        retentionTask = Task { [weak self] in
            while !Task.isCancelled {
                await self?.retain()
                try? await Task.sleep(for: Self.retentionInterval)
            }
        }
    }

    /// Hands a command to the engine, records what it decided, then acts on it.
    @discardableResult
    func submit(_ command: Engine.Command) async throws(EngineError) -> [EngineEffect] {
        if unread != nil {
            rebuildFromRecord()
            if let unread {
                schedule(Date().addingTimeInterval(5))
                throw EngineError("nothing was done: the record cannot be read back (\(unread)); shipyardd carries on by itself once it can (\(recordHint))")
            }
        }
        let current = await shipyards()
        let effects: [EngineEffect]
        do {
            effects = try engine.handle(command, shipyards: current, now: Date(), ids: &ids)
        } catch {
            throw explained(error, command)
        }
        guard await perform(effects) else {
            throw EngineError(
                "nothing was done: the record cannot be written (\(failed ?? "?")); shipyardd carries on by itself once it can (\(recordHint))")
        }
        return effects
    }

    /// What an operator does when the record cannot be written.
    var recordHint: String {
        store is PostgresStore ? "PostgreSQL must be reachable and accept writes; the daemon connects again by itself" : "free space in \(state.root)"
    }

    /// Whether the last write to the record failed (a full disk): answers of running tasks wait
    /// and try again rather than be lost.
    var recordUnavailable: Bool { failed != nil }

    /// A refusal about something the engine no longer holds, said from the record: the task or
    /// the context has ended (and how), or never existed.
    func explained(_ error: EngineError, _ command: Engine.Command) -> EngineError {
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
    func perform(_ effects: [EngineEffect]) async -> Bool {
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
                logger.critical("cannot write the record: \(error); nothing new is done until it can be written (\(recordHint))")
            }
            failed = "\(error)"
            rebuildFromRecord()
            schedule(Date().addingTimeInterval(5))
            return false
        }
        for event in records { log(event) }
        if !records.isEmpty, mayAct() { callWebhooks(records) }
        if let metrics, !records.isEmpty {
            for (task, result, duration) in ended {
                // Task names come from Git: those the host config does not run (and Keptn's own)
                // share one series, so that a push cannot add series without end.
                let known = tasks.runsLocally(task) || ["approval", "evaluation", "get-sli"].contains(task)
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
                tasks.running[id]?.cancel()
            case .approvalNeeded(let id):
                if let request = writeApproval(triggeredID: id) { desk.tell("waiting", request, decision: nil, notify: notify) }
                scheduleDeadlines(of: id)
            case .approvalClosed(let id):
                let request = desk.closed(id)
                let decision = records.last { $0.triggeredid == id && $0.type.hasSuffix("approval.finished") }?.data["approval"]
                if let request { desk.tell("resolved", request, decision: decision, notify: notify) }
            case .wake(let date):
                schedule(date)
            }
        }
        if finished {
            pruneAfterSequencesEnded()
        }
        return true
    }

    /// The tasks these records finish, with how long each ran (from its `.started`).
    func endedTasks(_ records: [KeptnEvent]) -> [(String, String, Duration?)] {
        records.compactMap { event in
            guard case .task(let name, "finished")? = event.kind, let id = event.triggeredid else { return nil }
            let started = engine.task(triggeredID: id).flatMap { $0.execution.tasks[$0.index].startedAt }
            var duration: Duration?
            if let started, let finished = event.date { duration = .milliseconds(Int64(max(0, finished.timeIntervalSince(started)) * 1000)) }
            return (name, event.data["result"]?.string ?? "fail", duration)
        }
    }

    func log(_ event: KeptnEvent) {
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

    var passedWithoutSLO: (@Sendable (String, String, String) -> Void)?

    /// Records events that the engine does not follow (the `get-sli` exchange, an invalidation):
    /// in the record, in the context they belong to.
    @discardableResult
    func recordAside(_ events: [KeptnEvent]) -> Bool {
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

    /// Returns once no step is half done: a step commits the record and writes (or removes) the
    /// approval files in one turn of this actor, so a reader that saw a sequence waiting for
    /// approval and then waits here finds its file.
    func settled() {}

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
        if !tasks.running.isEmpty || !webhookTasks.isEmpty, grace > .zero {
            logger.info("waiting up to \(GoDuration.format(grace)) for \(tasks.running.count + webhookTasks.count) running task(s) to finish")
        }
        while !tasks.running.isEmpty || !webhookTasks.isEmpty, ContinuousClock.now < deadline {
            try? await Task.sleep(for: .milliseconds(50))
        }
        stopping = true
        wakeTask?.cancel()
        retentionTask?.cancel()
        tasks.interruptAll()
        for _ in 0..<Int(TaskProcess.gracePeriod * 20 + 40) where !tasks.running.isEmpty {
            try? await Task.sleep(for: .milliseconds(50))
        }
    }
}
