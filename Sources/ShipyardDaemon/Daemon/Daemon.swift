import Synchronization
import ServiceLifecycle
import Foundation
public import Logging
import ShipyardCore
import ShipyardGit
public import ShipyardStore

/// The running daemon: one watcher per project, the local API's requests, signals, and `status.json`.
public actor Daemon {
    public static let version = "0.1.0"

    let configPath: String?
    var config: DaemonConfig
    let environment: [String: String]
    let state: StateDirectory
    let logger: Logger
    let startedAt = Date()
    var watchers: [String: ProjectWatcher] = [:]
    /// Polls run on these threads, however many projects there are.
    let pollPool: BlockingPool
    /// Starts each project's polls when they are due.
    let pollScheduler = PollScheduler(name: "poll-schedule")
    /// Each project's latest status, posted by its watcher without a hop through this actor.
    nonisolated let board = StatusBoard()
    /// When `status.json` is next written (changes are gathered, not written one by one).
    var statusWriteAt: Date?
    var statusWriter: Task<Void, Never>?
    /// The local API's socket (systemd's, or `<state>/shipyardd.sock`), and the state's lock.
    var listening: ListeningSocket?
    var stateLock: Int32 = -1
    var stopping = false
    var orchestrator: Orchestrator?
    /// With a shared PostgreSQL record: the lease this daemon holds or waits for.
    var leadership: Leadership?
    /// With a shared PostgreSQL record: the local API's and web view's reading session.
    public nonisolated let recordReader: RecordReader?
    let systemd: SystemdNotifier
    var lastStatusLine = ""
    var reloadGeneration = 0
    /// `/metrics`, counted as things happen.
    public nonisolated let metrics = DaemonMetrics()
    /// Open pages are told of each change.
    public nonisolated let feed = ChangeFeed()
    /// Every request to change something, from every way in, goes through here.
    public nonisolated let commands: Commands
    /// Keptn integrations registered through the Uniform API (job-executor-service and others).
    public nonisolated let integrations: Integrations
    /// The local API on its socket, and the web view when the config has `http:`.
    let makeFrontend: (@Sendable (Daemon, ListeningSocket, DaemonConfig.HTTP?) throws -> any DaemonFrontend)?
    var frontend: Task<Void, Never>?
    /// The leader of a shared record: applying what standbys forwarded.
    var inbox: Task<Void, Never>?
    /// Commands reach the orchestrator; the orchestrator heard that requests are taken.
    var commandsAttached = false
    var servingAnnounced = false
    var frontendServer: (any DaemonFrontend)?
    var ready = false

    public init(
        config: DaemonConfig, configPath: String?, environment: [String: String], logger: Logger,
        frontend: (@Sendable (Daemon, ListeningSocket, DaemonConfig.HTTP?) throws -> any DaemonFrontend)? = nil
    ) {
        self.makeFrontend = frontend
        self.config = config
        self.configPath = configPath
        self.environment = environment
        self.state = StateDirectory(config.stateDirectory)
        self.logger = logger
        self.systemd = SystemdNotifier(environment: environment)
        self.pollPool = BlockingPool(name: "poll", size: config.pollThreads ?? BlockingPool.defaultSize)
        self.commands = Commands(config: config, metrics: metrics, logger: logger)
        self.integrations = Integrations(file: StateDirectory(config.stateDirectory).root + "/integrations.json")
        self.recordReader = config.postgres.map { RecordReader($0, logger: logger) }
    }

    /// The running services (see DaemonServices.swift), once `run` made them.
    var group: ServiceGroup?
    /// `shutdown()` was called, perhaps before `run` made the group.
    var stopRequested = false
    /// Whether SIGTERM, SIGINT and SIGHUP are the daemon's (not in tests that run it in-process).
    var handlingSignals = true

    /// Runs until SIGTERM or SIGINT: the daemon's services in one `ServiceGroup`, which owns
    /// those signals and stops the services in the reverse order of their start.
    /// `ownsProcess: false` (a test that runs it inside its own process) leaves the process's umask
    /// and signals alone: `shutdown()` stops it.
    public func run(ownsProcess: Bool = true) async throws {
        if ownsProcess {
            // Nothing the daemon writes is for others than its own group, whatever umask it inherited.
            umask(0o027)
        }
        board.whenUrgent { [weak self] in
            Task { await self?.scheduleStatusWrite(in: 0.1) }
        }
        // A SIGHUP is ignored until there is a running config to reload (SystemdService); SIGTERM
        // and SIGINT reach the group's handlers, not the default action.
        self.handlingSignals = ownsProcess
        if ownsProcess {
            for signo in [SIGHUP, SIGTERM, SIGINT] { signal(signo, SIG_IGN) }
        }
        let milestones = StartMilestones()
        let services: [any Service] = [
            StatusService(daemon: self, milestones: milestones),
            WatcherService(daemon: self, milestones: milestones),
            OrchestratorService(daemon: self, milestones: milestones),
            FrontendService(daemon: self, milestones: milestones),
            SystemdService(daemon: self, milestones: milestones),
        ]
        let group = ServiceGroup(configuration: ServiceGroupConfiguration(
            services: services.map { ServiceGroupConfiguration.ServiceConfiguration(service: $0, serviceName: "\(type(of: $0))") },
            gracefulShutdownSignals: ownsProcess ? [.sigterm, .sigint] : [], logger: logger))
        self.group = group
        if stopRequested { await group.triggerGracefulShutdown() }
        defer { systemd.flush(within: .seconds(1)) }
        try await group.run()
        logger.info("stopped")
    }

    /// The state's lock and the local API's socket (from here on nobody else serves this state),
    /// then one watcher per project.
    func prepare() async throws {
        let (notes, lock) = try state.prepare()
        stateLock = lock
        let socket = try ListeningSocket.inherited(environment: environment) ?? ListeningSocket.bind(path: state.socket)
        listening = socket
        var stale = stat()
        if socket.activated, socket.path != state.socket, lstat(state.socket, &stale) == 0, stale.st_mode & S_IFMT == S_IFSOCK {
            // Left by a run started by hand (root's too): the CLI would take it for this daemon's.
            unlink(state.socket)
        }
        for note in notes { logger.warning("\(note)") }
        Git.initialize()
        logger.info(
            "shipyardd \(Self.version) starting",
            metadata: ["state": "\(state.root)", "projects": "\(config.projects.count)", "git": "\(Git.libraryDescription)"])
        let previous = (try? Data(contentsOf: URL(fileURLWithPath: state.statusFile))).flatMap { try? JSON.decode(DaemonStatus.self, from: $0) }
        let restoring = Dictionary((previous?.projects ?? []).map { ($0.name, $0.shipyardCommit) }) { a, _ in a }
        for project in config.projects {
            // A few projects are polled at once; many are spread over their interval (20 ms
            // each, at most one interval), so that a thousand do not hit the Git server together.
            let spread = min(project.pollInterval.seconds, Double(config.projects.count) * 0.02)
            let first: Duration = config.projects.count <= 1 ? .zero : .milliseconds(Int64(Double.random(in: 0..<spread) * 1000))
            await startWatcher(project, restoring: restoring[project.name] ?? nil, firstDelay: first)
        }
        try FileManager.default.createDirectory(atPath: state.root + "/logs", withIntermediateDirectories: true)
    }

    /// The record read (an earlier release's journal imported first), what was running carried
    /// on, and commands taken from here on. With a shared PostgreSQL record, once this daemon
    /// holds the lease; false when told to stop while standing by.
    /// `answering`: the local API may start (a standby's reads and forwarded commands).
    func startOrchestrator(answering: @escaping @Sendable () -> Void = {}) async throws -> Bool {
        var shared: PostgresStore?
        if let postgres = config.postgres {
            guard let store = try await standBy(postgres, answering: answering) else { return false }
            shared = store
        }
        let orchestrator = Orchestrator(state: state, config: config, logger: logger, metrics: metrics, feed: feed) { [weak self] in
            await self?.pinnedShipyards() ?? [:]
        }
        let board = board
        await orchestrator.onPassWithoutSLO { project, message, context in
            board.notePassWithoutSLO(project: project, message: message, context: context)
        }
        self.orchestrator = orchestrator
        let systemd = systemd
        if let leadership {
            await orchestrator.fenceEffects { leadership.mayAct() }
        }
        if let shared { await orchestrator.shareApprovals(through: shared) }
        try await orchestrator.start(store: shared) { imported in
            // An import of years of journal may outlast the unit's start timeout: ask for more.
            _ = systemd.send("EXTEND_TIMEOUT_USEC=120000000\nSTATUS=importing the journal of an earlier release: \(imported) events so far")
        }
        // Commands reach the orchestrator once it has read the record (until then a standby's go
        // to the record's requests, which this daemon now claims itself).
        await commands.attach(orchestrator) { [weak self] request in
            await self?.sync(request) ?? CommandOutcome(id: request.id, ok: false, message: "the daemon is stopping")
        } shipyardProblem: { [weak self] project in
            await self?.shipyardProblem(project)
        }
        commandsAttached = true
        if let shared { inbox = Task { [weak self] in await self?.runRequestInbox(shared) } }
        // A standby's local API was serving already: what becomeReady does for a start.
        if ready {
            await announceServing()
            systemd.send("STATUS=\(await statusLine())")
        }
        await publishStatus()
        return true
    }

    /// Opens the shared record and waits for the lease: a standby tells systemd it is ready (as
    /// a standby) and keeps petting the watchdog meanwhile. Returns the store once this daemon
    /// leads, fenced with its epoch; nil when told to stop first.
    func standBy(_ postgres: DaemonConfig.Postgres, answering: @Sendable () -> Void) async throws -> PostgresStore? {
        let settings = try postgres.settings(holder: "\(ProcessInfo.processInfo.hostName)/\(getpid())")
        let holder = settings.holder
        let store = try PostgresStore(settings, environment: environment)
        let leadership = Leadership(store: store, lease: PostgresLease(settings), logger: logger, environment: environment)
        self.leadership = leadership
        store.onLost = { reason in leadership.lose(reason) }
        leadership.changed.withLock { $0 = { Task { await self.scheduleStatusWrite(in: 0.1) } } }
        let (systemd, logger) = (systemd, logger)
        systemd.send("STATUS=standby: waiting for the lease of the shared record")
        // The local API serves on a standby too: reads from the record, commands to the leader.
        let forwarder = RequestForwarder(store: store, via: holder)
        await commands.forwardWhileStandingBy { request, caller in await forwarder.forward(request, caller) }
        let mirror = ApprovalMirror(store: store, directory: state.root + "/approvals", logger: logger)
        let mirroring = Task.detached { await mirror.run() }
        answering()
        logger.notice("standing by for the lease of the shared record at \(settings.shownURL) as \(holder)")
        let fence = await withTaskCancellationOrGracefulShutdownHandler {
            await leadership.acquire { who in
                logger.notice("standby: \(who); this host takes over when its lease runs out")
                systemd.send("STATUS=standby: \(who)")
            }
        } onCancelOrGracefulShutdown: {
            leadership.resign()
        }
        // The leader's desk keeps approvals/ from here on.
        mirroring.cancel()
        // Told to stop as the lease was taken: resign gave it up again.
        guard let fence, !leadership.isStopped else {
            await mirroring.value
            return nil
        }
        logger.notice("leading the shared record with epoch \(fence.epoch)", metadata: ["holder": "\(fence.holder)"])
        // Renewing at once: the mirror's last copy may take a while to end.
        leadership.lead { reason in Self.stopAllWork(reason, logger: logger, systemd: systemd) }
        await mirroring.value
        return store
    }

    /// A leader that lost the lease stops all work at once, before its lease can have expired:
    /// its programs are killed (the new leader runs them again with the next SHIPYARD_ATTEMPT)
    /// and the process exits with 75 (EX_TEMPFAIL); systemd starts it again as a standby.
    nonisolated static func stopAllWork(_ reason: String, logger: Logger, systemd: SystemdNotifier) -> Never {
        TaskCancel.killAll()
        logger.critical("lost the leadership of the shared record: \(reason); stopping all work now (running tasks killed; the new leader runs them again) and exiting to come back as a standby")
        systemd.send("STATUS=lost the lease: \(reason)")
        _exit(75)
    }

    /// Requests are taken: systemd hears READY=1, and expiries that fell due while the daemon was
    /// down wait for the requests that queued meanwhile.
    func becomeReady() async {
        if commandsAttached { await announceServing() }
        ready = true
        metrics.up.set(to: 1)
        logger.info("ready")
        systemd.send("READY=1\nSTATUS=\(await statusLine())")
    }

    /// The orchestrator hears once that requests are taken (its expiries wait for the requests
    /// that queued while nobody could answer): at the start, or when a standby took over.
    func announceServing() async {
        guard !servingAnnounced, let orchestrator else { return }
        servingAnnounced = true
        await orchestrator.serving()
        Task { [weak self] in await self?.answerDowntime() }
    }

    /// The first step of a stop: systemd hears STOPPING=1, `/readyz` says no.
    func beginStop() {
        if !stopping {
            stopping = true
            systemd.send("STOPPING=1")
            logger.info("stopping")
        }
        ready = false
        metrics.up.set(to: 0)
    }

    /// The socket stops taking connections (under systemd, new ones queue for the next start)
    /// and the requests under way are answered; connections left open after that (a page's
    /// event stream, an idle keep-alive) are closed.
    func stopFrontend() async {
        frontendServer?.stop()
        if let frontend {
            let deadline = ContinuousClock.now + .seconds(3)
            while !frontendEnded, ContinuousClock.now < deadline { try? await Task.sleep(for: .milliseconds(20)) }
            // Not waited for: a sync still waiting for its poll would hold up the stop.
            frontend.cancel()
        }
    }

    func stopOrchestrator() async {
        inbox?.cancel()
        await orchestrator?.shutdown(grace: config.stopGracePeriod)
        // Nothing more is appended: a standby may take over at once.
        leadership?.resign()
    }

    /// A poll under way ends (a stuck one is interrupted at its pollTimeout) before the exit.
    func stopWatchers() async {
        for watcher in watchers.values { watcher.stop() }
        let longest = config.projects.map(\.pollTimeout).max() ?? .zero
        let deadline = ContinuousClock.now + longest + .seconds(2)
        while watchers.values.contains(where: \.isPolling), ContinuousClock.now < deadline {
            try? await Task.sleep(for: .milliseconds(20))
        }
    }

    // MARK: The web view

    /// The state the web view reads, as the CLI does.
    public nonisolated var stateDirectory: StateDirectory { state }
    public var currentConfig: DaemonConfig { config }
    /// Ready: the record is read and requests are taken (`/readyz`).
    public var isReady: Bool { ready && !stopping }
    public nonisolated var log: Logger { logger }

    var webAddress: String?

    /// Returns once the approval files agree with what the record says (see `Orchestrator.settled`).
    public func approvalsSettled() async {
        await orchestrator?.settled()
    }

    /// The local API is taking requests on this socket.
    public func apiListening(_ path: String) {
        logger.info("local API listening on unix:\(path)\(listening?.activated == true ? " (from systemd)" : "")")
    }

    /// The web view is listening here (with port 0 in the config, the port it was given).
    public func webListening(_ address: String) async {
        webAddress = address
        logger.info("web view listening on \(address)")
        await publishStatus()
    }

    func startFrontend() {
        guard let makeFrontend, let listening else {
            logger.warning("this build of shipyardd has no local API")
            return
        }
        let server: any DaemonFrontend
        do {
            server = try makeFrontend(self, listening, config.http)
        } catch {
            logger.error("the local API cannot start: \(error)")
            return
        }
        let logger = logger
        frontendServer = server
        frontend = Task { [weak self] in
            do {
                try await server.run()
            } catch is CancellationError {
            } catch {
                logger.error("the local API stopped: \(error)")
            }
            await self?.noteFrontendEnded()
        }
    }

    var frontendEnded = false
    func noteFrontendEnded() { frontendEnded = true }

    /// Stops the daemon as SIGTERM does.
    public func shutdown() async {
        stopRequested = true
        await group?.triggerGracefulShutdown()
    }

    func startWatcher(_ project: DaemonConfig.Project, restoring commit: String?, firstDelay: Duration = .zero) async {
        let board = board
        let watcher = ProjectWatcher(
            project: project, state: state, pool: pollPool, scheduler: pollScheduler, logger: logger, metrics: metrics,
            publish: { status in board.post(status) }, flush: { [weak self] in await self?.publishStatus() })
        watcher.restore(shipyardCommit: commit)
        watchers[project.name] = watcher
        board.post(watcher.status)
        watcher.start(firstDelay: firstDelay)
    }

    // MARK: Signals and reload

    /// SIGHUP: re-reads the config file; a bad one is refused and the running config stays.
    /// Every project is polled at once either way.
    /// A reload under way, and whether another SIGHUP came meanwhile: reloads take turns, so that
    /// an older file's settings never land after a newer one's.
    var reloading = false
    var reloadAgain = false

    public func reload() async {
        if reloading {
            reloadAgain = true
            return
        }
        reloading = true
        defer { reloading = false }
        repeat {
            reloadAgain = false
            await reloadOnce()
        } while reloadAgain
    }

    func reloadOnce() async {
        systemd.send("RELOADING=1\nMONOTONIC_USEC=\(SystemdNotifier.monotonicMicroseconds)")
        defer { Task { await self.reloaded() } }
        var outcome = (ok: true, message: "config reloaded")
        if let configPath {
            var document: ConfigDocument
            let probe = open(configPath, O_RDONLY | O_CLOEXEC)
            let openError = errno
            if probe >= 0 { close(probe) }
            if probe >= 0, let data = FileManager.default.contents(atPath: configPath) {
                document = ConfigLoader.load(Array(data), environment: environment, host: .warnings)
            } else {
                document = ConfigDocument(config: nil, diagnostics: [])
                let reason = String(cString: strerror(openError))
                logger.error("config reload refused, keeping the running config: cannot read \(configPath): \(reason)")
                outcome = (false, "cannot read \(configPath): \(reason)")
            }
            if let new = document.config {
                await apply(new)
            } else {
                let errors = document.diagnostics.filter { $0.severity == .error }.map { $0.formatted(file: configPath) }
                for error in errors {
                    logger.error("config reload refused, keeping the running config: \(error)")
                }
                if !errors.isEmpty { outcome = (false, errors.joined(separator: "\n")) }
            }
        }
        reloadGeneration += 1
        let result = ReloadResult(pid: getpid(), generation: reloadGeneration, ok: outcome.ok, message: outcome.ok ? "config reloaded" : "config refused, the running config stays:\n" + outcome.message)
        do {
            try AtomicFile.write(try JSON.encode(result), to: state.reloadFile, mode: 0o640, durable: false)
        } catch {
            logger.error("cannot write \(state.reloadFile): \(error)")
        }
        for watcher in watchers.values { watcher.syncNow() }
    }

    func apply(_ new: DaemonConfig) async {
        if new.stateDirectory != config.stateDirectory {
            logger.warning("stateDirectory changed in the config; that takes a restart, the running daemon keeps \(state.root)")
        }
        let names = Set(new.projects.map(\.name))
        for (name, watcher) in watchers where !names.contains(name) {
            watcher.stop()
            watchers[name] = nil
            board.remove(name)
            logger.info("project removed from the config", metadata: ["project": "\(name)"])
        }
        for project in new.projects {
            if let watcher = watchers[project.name] {
                watcher.update(project)
            } else {
                logger.info("project added to the config", metadata: ["project": "\(project.name)"])
                await startWatcher(project, restoring: nil)
            }
        }
        config.projects = new.projects
        config.pollThreads = new.pollThreads
        pollPool.size = new.pollThreads ?? BlockingPool.defaultSize
        config.tasks = new.tasks
        config.notify = new.notify
        config.stopGracePeriod = new.stopGracePeriod
        await orchestrator?.update(new)
        config.approvers = new.approvers
        config.eventSenders = new.eventSenders
        config.sequenceControl = new.sequenceControl
        config.approvalPolicies = new.approvalPolicies
        await commands.update(config)
        if new.http?.listen != config.http?.listen {
            logger.warning("http.listen changed in the config; that takes a restart, the web view keeps \(config.http.map { "\($0.listen)" } ?? "off")")
        } else if let http = new.http {
            // Who may log in and act, and which peers are proxies, apply from now on.
            config.http = http
            frontendServer?.update(http)
        }
        logger.info("config reloaded", metadata: ["projects": "\(new.projects.count)"])
        await publishStatus()
    }

    func reloaded() async {
        systemd.send("READY=1\nSTATUS=\(await statusLine())")
    }

    /// `WATCHDOG=1` at half of `WATCHDOG_USEC`, sent only after a round trip through this actor:
    /// a wedged daemon stops petting the watchdog, a stuck Git remote (polled on its own thread)
    /// does not. The send itself is off the actor (and never blocks).
    nonisolated func runWatchdog() async {
        guard let interval = systemd.watchdogInterval else { return }
        while !Task.isCancelled, await heartbeat() {
            systemd.send("WATCHDOG=1")
            try? await Task.sleep(for: interval)
        }
    }

    func heartbeat() -> Bool { !stopping }

    /// One line for `systemctl status`: projects, running sequences, pending approvals.
    func statusLine() async -> String {
        if let leadership, orchestrator == nil {
            let who = leadership.status?.leader.map { "\($0) leads" } ?? "waiting for the lease"
            return "standby of the shared record (\(who)): commands on this host go to the leader"
        }
        let active: (running: Int, approvals: Int) = await orchestrator?.activeSummary ?? (running: 0, approvals: 0)
        let errors = board.errorCount
        if await orchestrator?.recordUnavailable == true {
            return "the record cannot be written (disk full?): nothing new is done until it can; see the journal"
        }
        var line = "\(config.projects.count) project\(config.projects.count == 1 ? "" : "s")"
        if errors > 0 { line += " (\(errors) with errors)" }
        line += ", \(active.running) running, \(active.approvals) waiting for approval"
        return line
    }

    /// Requests that queued in the socket while the daemon was down (systemd holds it across a
    /// restart) are answered before the expiries that fell due meanwhile are judged: once no
    /// connection waits to be accepted and no request is being handled for a second (ten at most).
    func answerDowntime() async {
        let start = ContinuousClock.now
        var quiet = 0
        while quiet < 10, ContinuousClock.now - start < .seconds(10), !stopping {
            try? await Task.sleep(for: .milliseconds(100))
            var waiting = pollfd(fd: listening?.fd ?? -1, events: Int16(POLLIN), revents: 0)
            let queued = listening != nil && poll(&waiting, 1, 0) > 0 && waiting.revents & Int16(POLLIN) != 0
            let busy = await commands.handling > 0
            quiet = queued || busy ? 0 : quiet + 1
        }
        await orchestrator?.downtimeAnswered()
    }

    /// The shipyard each project runs new sequences with.
    func pinnedShipyards() async -> [String: PinnedShipyard] {
        var result: [String: PinnedShipyard] = [:]
        for (name, watcher) in watchers {
            if let loaded = watcher.loaded {
                result[name] = PinnedShipyard(shipyard: loaded.shipyard, commit: loaded.commit.hex)
            }
        }
        return result
    }

    // MARK: Status

    func scheduleStatusWrite(in seconds: TimeInterval) {
        let due = Date().addingTimeInterval(seconds)
        if let at = statusWriteAt, at <= due { return }
        statusWriteAt = due
        statusWriter?.cancel()
        statusWriter = Task { [weak self] in
            try? await Task.sleep(for: .milliseconds(Int64(seconds * 1000)))
            guard !Task.isCancelled else { return }
            await self?.publishStatus()
        }
    }

    /// `status.json`: one line per project, each encoded when it last changed, so that a
    /// thousand projects cost one encoding per change, not a thousand per write.
    /// Why the project's newest shipyard was refused, while it is.
    func shipyardProblem(_ project: String) -> String? {
        guard let error = watchers[project]?.status.error, error.kind == "shipyard" else { return nil }
        return error.message
    }

    func statusDocument() throws -> Data {
        var status = DaemonStatus(
            pid: getpid(), version: Self.version, startedAt: Timestamp.string(startedAt), web: webAddress, projects: [], cluster: leadership?.status)
        let registered = integrations.all
        status.integrations = registered.isEmpty ? nil : registered
        let header = try JSON.encode(status)
        let empty = Data(#""projects":[]"#.utf8)
        guard let slot = header.range(of: empty) else { return header }
        var document = Data(header[..<slot.lowerBound])
        document.append(Data("\"projects\":[\n".utf8))
        document.append(try board.entries(order: config.projects.map(\.name)))
        document.append(Data("\n]".utf8))
        document.append(header[slot.upperBound...])
        document.append(0x0A)
        return document
    }

    public func publishStatus() async {
        statusWriteAt = nil
        statusWriter = nil
        do {
            try AtomicFile.write(try statusDocument(), to: state.statusFile, mode: 0o640, durable: false)
        } catch {
            logger.error("cannot write status.json: \(error)")
        }
        if systemd.isEnabled, !stopping {
            let line = await statusLine()
            if line != lastStatusLine {
                lastStatusLine = line
                systemd.send("STATUS=\(line)")
            }
        }
    }
}

/// The shared record, opened for reading on a session of its own (the local API and the web view
/// read while the leader writes), at the first read and again after a failure.
public final class RecordReader: Sendable {
    let postgres: DaemonConfig.Postgres
    let logger: Logger
    private let handle = Mutex<PostgresStore?>(nil)

    init(_ postgres: DaemonConfig.Postgres, logger: Logger) {
        self.postgres = postgres
        self.logger = logger
    }

    public func store() -> PostgresStore? {
        handle.withLock { handle in
            if handle == nil {
                do {
                    handle = try PostgresStore(try postgres.settings(holder: "reader"), application: "shipyardd-reader")
                } catch {
                    logger.error("cannot read the shared record: \(error)")
                }
            }
            return handle
        }
    }
}
