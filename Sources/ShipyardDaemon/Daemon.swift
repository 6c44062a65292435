import Synchronization
import Dispatch
public import Foundation
public import Logging
import ShipyardCore
import ShipyardGit

/// The running daemon: one watcher per project, the local API's requests, signals, and `status.json`.
public actor Daemon {
    public static let version = "0.1.0"

    private let configPath: String?
    private var config: DaemonConfig
    private let environment: [String: String]
    private let state: StateDirectory
    private let logger: Logger
    private let startedAt = Date()
    private var watchers: [String: ProjectWatcher] = [:]
    /// Polls run on these threads, however many projects there are.
    private let pollPool: BlockingPool
    /// Starts each project's polls when they are due.
    private let pollScheduler = PollScheduler(name: "poll-schedule")
    /// Each project's latest status, posted by its watcher without a hop through this actor.
    private nonisolated let board = StatusBoard()
    /// When `status.json` is next written (changes are gathered, not written one by one).
    private var statusWriteAt: Date?
    private var statusWriter: Task<Void, Never>?
    /// The local API's socket (systemd's, or `<state>/shipyardd.sock`), and the state's lock.
    private var listening: ListeningSocket?
    private var stateLock: Int32 = -1
    private var signalSources: [any DispatchSourceSignal] = []
    private var stopping = false
    private var stopped: CheckedContinuation<Void, Never>?
    private var orchestrator: Orchestrator?
    private let systemd: SystemdNotifier
    private var lastStatusLine = ""
    private var reloadGeneration = 0
    private var limiter = RequestLimiter()
    private var refusals = RefusalLog()
    /// `/metrics`, counted as things happen.
    public nonisolated let metrics = DaemonMetrics()
    /// Open pages are told of each change.
    public nonisolated let feed = ChangeFeed()
    /// The local API on its socket, and the web view when the config has `http:`.
    private let makeFrontend: (@Sendable (Daemon, ListeningSocket, DaemonConfig.HTTP?) throws -> any DaemonFrontend)?
    private var frontend: Task<Void, Never>?
    private var frontendServer: (any DaemonFrontend)?
    private var ready = false

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
    }

    /// Runs until SIGTERM or SIGINT.
    public func run() async throws {
        // Nothing the daemon writes is for others than its own group, whatever umask it inherited.
        umask(0o027)
        board.whenUrgent { [weak self] in
            Task { await self?.scheduleStatusWrite(in: 0.1) }
        }
        // From the start: a SIGTERM during start-up (a long import, say) stops the daemon cleanly,
        // and a SIGHUP is ignored until there is a running config to reload.
        signal(SIGHUP, SIG_IGN)
        installSignals([(SIGTERM, "stop"), (SIGINT, "stop")])
        let (notes, lock) = try state.prepare()
        stateLock = lock
        // From here on nobody else serves this state: the socket systemd holds for us, or our own.
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
        let orchestrator = Orchestrator(state: state, config: config, logger: logger, metrics: metrics, feed: feed) { [weak self] in
            await self?.pinnedShipyards() ?? [:]
        }
        let board = board
        await orchestrator.onPassWithoutSLO { project, message, context in
            board.notePassWithoutSLO(project: project, message: message, context: context)
        }
        self.orchestrator = orchestrator
        let systemd = systemd
        try await orchestrator.start { imported in
            // An import of years of journal may outlast the unit's start timeout: ask for more.
            _ = systemd.send("EXTEND_TIMEOUT_USEC=120000000\nSTATUS=importing the journal of an earlier release: \(imported) events so far")
        }
        // Quiet polls only move their projects' times: status.json takes them every 15 s.
        Task { [weak self] in
            while let self, await !self.stopping {
                try? await Task.sleep(for: .seconds(15))
                if self.board.isDirty { await self.publishStatus() }
            }
        }
        await publishStatus()
        installSignals([(SIGHUP, "reload")])
        startFrontend()
        await orchestrator.serving()
        ready = true
        metrics.up.set(to: 1)
        logger.info("ready")
        systemd.send("READY=1\nSTATUS=\(await statusLine())")
        startWatchdog()
        Task { [weak self] in await self?.answerDowntime() }
        await withCheckedContinuation { continuation in
            if stopping { continuation.resume() } else { stopped = continuation }
        }
        ready = false
        metrics.up.set(to: 0)
        // The socket stops taking connections (under systemd, new ones queue for the next start)
        // and the requests under way are answered; connections left open after that (a page's
        // event stream, an idle keep-alive) are closed.
        frontendServer?.stop()
        if let frontend {
            let deadline = ContinuousClock.now + .seconds(3)
            while !frontendEnded, ContinuousClock.now < deadline { try? await Task.sleep(for: .milliseconds(20)) }
            // Not waited for: a sync still waiting for its poll would hold up the stop.
            frontend.cancel()
        }
        await orchestrator.shutdown(grace: config.stopGracePeriod)
        for watcher in watchers.values { watcher.stop() }
        // A poll under way ends (a stuck one is interrupted at its pollTimeout) before the exit.
        let longest = config.projects.map(\.pollTimeout).max() ?? .zero
        let deadline = ContinuousClock.now + longest + .seconds(2)
        while watchers.values.contains(where: \.isPolling), ContinuousClock.now < deadline {
            try? await Task.sleep(for: .milliseconds(20))
        }
        await publishStatus()
        logger.info("stopped")
    }

    // MARK: The web view

    /// The state the web view reads, as the CLI does.
    public nonisolated var stateDirectory: StateDirectory { state }
    public var currentConfig: DaemonConfig { config }
    /// Ready: the record is read and requests are taken (`/readyz`).
    public var isReady: Bool { ready && !stopping }
    public nonisolated var log: Logger { logger }

    private var webAddress: String?

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

    private func startFrontend() {
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

    private var frontendEnded = false
    private func noteFrontendEnded() { frontendEnded = true }

    public func shutdown() {
        guard !stopping else { return }
        stopping = true
        systemd.send("STOPPING=1")
        logger.info("stopping")
        stopped?.resume()
        stopped = nil
    }

    private func startWatcher(_ project: DaemonConfig.Project, restoring commit: String?, firstDelay: Duration = .zero) async {
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

    private func installSignals(_ signals: [(Int32, String)]) {
        for (signo, action) in signals {
            signal(signo, SIG_IGN)
            let source = DispatchSource.makeSignalSource(signal: signo, queue: .global())
            source.setEventHandler { [weak self] in
                Task {
                    if action == "reload" { await self?.reload() } else { await self?.shutdown() }
                }
            }
            source.resume()
            signalSources.append(source)
        }
    }

    /// SIGHUP: re-reads the config file; a bad one is refused and the running config stays.
    /// Every project is polled at once either way.
    /// A reload under way, and whether another SIGHUP came meanwhile: reloads take turns, so that
    /// an older file's settings never land after a newer one's.
    private var reloading = false
    private var reloadAgain = false

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

    private func reloadOnce() async {
        systemd.send("RELOADING=1\nMONOTONIC_USEC=\(SystemdNotifier.monotonicMicroseconds)")
        defer { Task { await self.reloaded() } }
        var outcome = (ok: true, message: "config reloaded")
        if let configPath {
            var document: ConfigDocument
            let probe = open(configPath, O_RDONLY | O_CLOEXEC)
            let openError = errno
            if probe >= 0 { close(probe) }
            if probe >= 0, let data = FileManager.default.contents(atPath: configPath) {
                document = ConfigLoader.load(Array(data), environment: environment)
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

    private func apply(_ new: DaemonConfig) async {
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

    private func reloaded() async {
        systemd.send("READY=1\nSTATUS=\(await statusLine())")
    }

    /// `WATCHDOG=1` at half of `WATCHDOG_USEC`, sent only after a round trip through this actor:
    /// a wedged daemon stops petting the watchdog, a stuck Git remote (polled on its own thread)
    /// does not.
    private func startWatchdog() {
        guard let interval = systemd.watchdogInterval else { return }
        Task { [weak self] in
            while let self, await !self.stopping {
                if await self.heartbeat() { self.systemd.send("WATCHDOG=1") }
                try? await Task.sleep(for: interval)
            }
        }
    }

    private func heartbeat() -> Bool { !stopping }

    /// One line for `systemctl status`: projects, running sequences, pending approvals.
    private func statusLine() async -> String {
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

    /// Requests being handled now.
    private var handling = 0

    /// Requests that queued in the socket while the daemon was down (systemd holds it across a
    /// restart) are answered before the expiries that fell due meanwhile are judged: once no
    /// connection waits to be accepted and no request is being handled for a second (ten at most).
    private func answerDowntime() async {
        let start = ContinuousClock.now
        var quiet = 0
        while quiet < 10, ContinuousClock.now - start < .seconds(10), !stopping {
            try? await Task.sleep(for: .milliseconds(100))
            var waiting = pollfd(fd: listening?.fd ?? -1, events: Int16(POLLIN), revents: 0)
            let queued = listening != nil && poll(&waiting, 1, 0) > 0 && waiting.revents & Int16(POLLIN) != 0
            quiet = queued || handling > 0 ? 0 : quiet + 1
        }
        await orchestrator?.downtimeAnswered()
    }

    // MARK: Requests (the local API)

    /// Who sent a request: the uid the kernel names at the other end of the socket (or the
    /// account a web sign-in names), resolved to a name and groups when the request comes.
    public struct Caller: Sendable {
        public var uid: uid_t
        public var user: String
        public var groups: Set<String>

        public init(uid: uid_t) {
            self.uid = uid
            user = Daemon.userName(uid)
            groups = Daemon.groupNames(uid)
        }
    }

    /// One request from a caller: bounded in rate per user, checked against the config's lists
    /// for that user, applied, logged with who asked, and answered.
    public func handle(_ request: CommandRequest, from caller: Caller) async -> CommandOutcome {
        let kind = request.kind.rawValue
        let outcome: CommandOutcome
        handling += 1
        defer { handling -= 1 }
        if let wait = limiter.admit(caller.uid, exempt: Self.isAdministrator(caller.uid)) {
            outcome = CommandOutcome(
                id: request.id, ok: false,
                message: "too many requests from \(caller.user): at most \(RequestLimiter.rate) a second (bursts of \(RequestLimiter.burst)); try again in \(wait)")
        } else {
            switch request.kind {
            case .sync:
                outcome = await sync(request)
            case .trigger, .pause, .resume, .abort, .event:
                outcome = await sequenceCommand(request, requester: caller.uid)
            case .approve, .reject:
                outcome = await decide(request, caller: caller)
            case .invalidate:
                outcome = await invalidate(request, requester: caller.uid)
            }
        }
        metrics.request(kind, outcome: outcome.ok ? "accepted" : "refused")
        if outcome.ok {
            logger.info("request \(kind) accepted: \(outcome.message)", metadata: ["user": "\(caller.user)", "uid": "\(caller.uid)"])
        } else {
            refusals.note("request \(kind) from \(caller.user) (uid \(caller.uid)) refused: \(outcome.message)", uid: caller.uid, logger: logger)
        }
        return outcome
    }

    /// Polls now, and answers once every project named has answered.
    private func sync(_ request: CommandRequest) async -> CommandOutcome {
        let targets: [ProjectWatcher]
        if let name = request.project {
            guard let watcher = watchers[name] else {
                let known = config.projects.map(\.name).joined(separator: ", ")
                return CommandOutcome(id: request.id, ok: false, message: "no project \"\(name)\" (projects: \(known))")
            }
            targets = [watcher]
        } else {
            targets = Array(watchers.values)
        }
        guard !targets.isEmpty else { return CommandOutcome(id: request.id, ok: true, message: "no projects are configured") }
        let parts = await withCheckedContinuation { (continuation: CheckedContinuation<[CommandOutcome.Partial], Never>) in
            let collector = SyncCollector(expected: targets.count) { continuation.resume(returning: $0) }
            for watcher in targets {
                watcher.syncNow(honourBackoff: true) { partial in collector.add(partial) }
            }
        }
        return CommandOutcome(id: request.id, ok: parts.allSatisfy(\.ok), message: parts.map(\.message).sorted().joined(separator: "\n"))
    }

    /// `shipyardctl evaluations invalidate`: what later quality gates compare with is as much a
    /// decision as an approval, so the approvers make it.
    private func invalidate(_ request: CommandRequest, requester: uid_t) async -> CommandOutcome {
        guard let orchestrator else { return CommandOutcome(id: request.id, ok: false, message: "the daemon is starting") }
        let user = Self.userName(requester)
        if let approvers = config.approvers, !Self.isAdministrator(requester), !approvers.admits(user: user, groups: Self.groupNames(requester)) {
            return CommandOutcome(id: request.id, ok: false, message: "\(user) may not invalidate evaluations: approvers are \(approvers.description)")
        }
        let reason = request.reason?.trimmingCharacters(in: .whitespacesAndNewlines) ?? ""
        guard !reason.isEmpty else { return CommandOutcome(id: request.id, ok: false, message: "an invalidation needs a reason (--reason)") }
        do {
            return CommandOutcome(id: request.id, ok: true, message: try await orchestrator.invalidate(request.evaluationID ?? "", by: user, reason: reason))
        } catch {
            return CommandOutcome(id: request.id, ok: false, message: error.message)
        }
    }

    /// `shipyardctl approve|reject`: the caller the kernel names, checked against `approvers`;
    /// the decision (who, when, why) becomes the approval's `.finished` event.
    private func decide(_ request: CommandRequest, caller: Caller) async -> CommandOutcome {
        await decide(
            Decision(approve: request.kind == .approve, approval: request.approval ?? "", reason: request.reason, user: caller.user, uid: caller.uid, groups: caller.groups, via: "cli"),
            requestID: request.id)
    }

    /// A person's decision on an approval, from the CLI (the request file's owner) or the web
    /// (the logged-in user): checked against `approvers` the same way, recorded with who, when,
    /// why and how.
    public struct Decision: Sendable {
        public var approve: Bool
        public var approval: String
        public var reason: String?
        public var user: String
        /// The account behind the name, kept in the record beside it: the uid the kernel named
        /// (the local API), or the host's account of a web user's name (nil when it has none).
        public var uid: uid_t?
        /// The user's groups on this host.
        public var groups: Set<String>
        /// `cli` or `web`.
        public var via: String

        public init(approve: Bool, approval: String, reason: String?, user: String, uid: uid_t?, groups: Set<String>, via: String) {
            self.approve = approve
            self.approval = approval
            self.reason = reason
            self.user = user
            self.uid = uid
            self.groups = groups
            self.via = via
        }
    }

    /// Which gates a user may decide, by the config as it is now (the web shows buttons by it;
    /// each decision is checked again when it is made).
    public func decisionRights(user: String, groups: Set<String>) -> DecisionRights {
        DecisionRights(config: config, user: user, groups: groups)
    }

    public struct DecisionRights: Sendable {
        let config: DaemonConfig
        let user: String
        let groups: Set<String>

        public func may(project: String, stage: String) -> Bool {
            let policy = config.approvalPolicy(project: project, stage: stage)
            return (policy?.approvers ?? config.approvers)?.admits(user: user, groups: groups) ?? true
        }
    }

    /// Returns once the approval files agree with what the record says (see `Orchestrator.settled`).
    public func approvalsSettled() async {
        await orchestrator?.settled()
    }

    /// Whether this user may decide approvals at all (the web shows buttons only to them).
    public func mayDecide(user: String, groups: Set<String>) -> Bool {
        if !config.approvalPolicies.isEmpty {
            // Someone named by any gate's policy (or the fallback approvers) sees the buttons; each
            // decision is still checked against its own gate's policy.
            return config.approvalPolicies.contains { ($0.approvers ?? config.approvers)?.admits(user: user, groups: groups) ?? true }
        }
        return config.approvers?.admits(user: user, groups: groups) ?? true
    }

    public func decide(_ decision: Decision, requestID: String = CommandRequest.newID()) async -> CommandOutcome {
        guard let orchestrator else { return CommandOutcome(id: requestID, ok: false, message: "the daemon is starting") }
        let approve = decision.approve
        let reason = decision.reason?.trimmingCharacters(in: .whitespacesAndNewlines) ?? ""
        if !approve, reason.isEmpty {
            return CommandOutcome(id: requestID, ok: false, message: "a rejection needs a reason\(decision.via == "cli" ? " (--reason)" : "")")
        }
        var decision = decision
        decision.reason = reason
        let outcome = await orchestrator.decide(decision)
        return CommandOutcome(id: requestID, ok: outcome.ok, message: outcome.message, context: outcome.context)
    }

    /// "approved: production je-deployment for helloservice started".
    static func whatHappensNext(decision: String, execution: SequenceExecution, effects: [EngineEffect]) -> String {
        var next: [String] = []
        for case .record(let event) in effects {
            guard event.shkeptncontext == execution.context, let kind = event.kind else { continue }
            let stage = event.data["stage"]?.string ?? execution.stage
            let service = event.data["service"]?.string ?? execution.service
            switch kind {
            case .task(let name, "triggered"):
                next.append("\(stage) \(name) for \(service) started")
            case .sequence(let stage, let name, "finished"):
                next.append("\(stage).\(name) for \(service) finished \(event.data["result"]?.string ?? "")")
            case .sequence(let stage, let name, "triggered"):
                next.append("\(stage).\(name) for \(service) triggered")
            default:
                continue
            }
        }
        return "\(decision): " + (next.isEmpty ? "\(execution.stage).\(execution.sequence) for \(execution.service) goes on" : next.joined(separator: "; "))
    }

    static func groupNames(_ uid: uid_t) -> Set<String> {
        guard let name = Accounts.name(uid: uid), let primary = Accounts.primaryGroup(of: name) else { return [] }
        return Accounts.groups(of: name, primary: primary)
    }

    /// The groups of a user named by the web (a login or a proxy's header), from the host's
    /// group database; none when the host has no such user.
    public static func groupNames(user: String) -> Set<String> {
        guard let primary = Accounts.primaryGroup(of: user) else { return [] }
        return Accounts.groups(of: user, primary: primary)
    }

    private func sequenceCommand(_ request: CommandRequest, requester: uid_t) async -> CommandOutcome {
        guard let orchestrator else { return CommandOutcome(id: request.id, ok: false, message: "the daemon is starting") }
        let command: Engine.Command
        switch request.kind {
        case .trigger:
            guard let project = request.project, let service = request.service, let sequence = request.sequence else {
                return CommandOutcome(id: request.id, ok: false, message: "a trigger needs a project, a service and a sequence")
            }
            var data: JSONValue = .object([:])
            if let image = request.image {
                guard Untrusted.isImageReference(image) else {
                    return CommandOutcome(
                        id: request.id, ok: false,
                        message: "--image \"\(Untrusted.printable(image, limit: 200))\" is not an image reference ([registry[:port]/]name[:tag][@digest], e.g. ghcr.io/podtato-head/podtatoserver:v0.1.1)")
                }
                data["configurationChange"] = .object(["values": .object(["image": .string(image)])])
            }
            if let labels = request.labels, !labels.isEmpty {
                for (key, value) in labels.sorted(by: { $0.key < $1.key }) {
                    if let problem = Untrusted.labelProblem(key: key, value: value) {
                        return CommandOutcome(id: request.id, ok: false, message: problem)
                    }
                }
                data["labels"] = .object(labels.mapValues(JSONValue.string))
            }
            if let window = request.evaluation {
                switch Self.evaluationData(window) {
                case .success(let value): data["evaluation"] = value
                case .failure(let problem): return CommandOutcome(id: request.id, ok: false, message: problem.message)
                }
            }
            // Request ids are each user's own: another user's request with the same id is another request.
            let requestKey = "\(requester):\(request.id)"
            if let earlier = await orchestrator.sequence(forRequest: requestKey) {
                guard earlier.project == project, earlier.service == service, earlier.sequence == sequence else {
                    return CommandOutcome(
                        id: request.id, ok: false,
                        message: "request id \(request.id) was already used for \(earlier.sequence) of \(earlier.service) in \(earlier.project) (context \(earlier.context)); use a new id")
                }
                return CommandOutcome(
                    id: request.id, ok: true, message: "request \(request.id) was already applied (context \(earlier.context))", context: earlier.context)
            }
            command = .trigger(TriggerRequest(
                project: project, service: service, sequence: sequence, stage: request.stage, data: data,
                source: "shipyardctl/\(Self.userName(requester))", requestID: requestKey, uid: requester))
        case .pause, .resume, .abort:
            guard let context = request.context else {
                return CommandOutcome(id: request.id, ok: false, message: "name the sequence's context")
            }
            // Stopping a delivery is as much a decision as a rejection: the approvers make it,
            // unless sequenceControl names who may.
            let user = Self.userName(requester)
            let (allowed, list) = config.sequenceControl.map { ($0, "sequenceControl") } ?? config.approvers.map { ($0, "approvers") } ?? (nil, "")
            if let allowed, !Self.isAdministrator(requester), !allowed.admits(user: user, groups: Self.groupNames(requester)) {
                return CommandOutcome(
                    id: request.id, ok: false,
                    message: "\(user) may not \(request.kind.rawValue) sequences: \(list) in the config allows \(allowed.description)")
            }
            let reason = request.reason?.trimmingCharacters(in: .whitespacesAndNewlines)
            command = request.kind == .pause
                ? .pause(context: context, by: user, reason: reason)
                : request.kind == .resume ? .resume(context: context, by: user, reason: reason) : .abort(context: context, by: user, reason: reason)
        case .event:
            guard var event = request.event else { return CommandOutcome(id: request.id, ok: false, message: "the request holds no event") }
            let user = Self.userName(requester)
            guard let senders = config.eventSenders ?? (Self.isAdministrator(requester) ? DaemonConfig.Approvers(users: [], groups: []) : nil) else {
                return CommandOutcome(
                    id: request.id, ok: false,
                    message: "send event is closed on this host: no eventSenders in the config (add 'eventSenders: {users: [\(user)]}' to let \(user) answer external tasks)")
            }
            guard Self.isAdministrator(requester) || senders.admits(user: user, groups: Self.groupNames(requester)) else {
                return CommandOutcome(id: request.id, ok: false, message: "\(user) may not send events: eventSenders in the config allows \(senders.description)")
            }
            let size = (try? JSON.encode(event.data).count) ?? Int.max
            guard size <= Self.maxEventData else {
                return CommandOutcome(id: request.id, ok: false, message: "the event's data is \(size) bytes; at most \(Self.maxEventData) are recorded")
            }
            if case .task(let name, _)? = event.kind {
                if Self.builtInTasks.contains(name) {
                    return CommandOutcome(
                        id: request.id, ok: false,
                        message: "\(name) is decided by shipyardd itself\(name == "approval" ? " and by people through shipyardctl approve/reject, which check approvers" : " from the project's SLO and SLI provider"); it takes no events from outside")
                }
                if await orchestrator.runsLocally(name) {
                    return CommandOutcome(
                        id: request.id, ok: false,
                        message: "\(name) runs as a local program on this host (tasks.\(name) in the config); its result comes from that program, not from events")
                }
            }
            // The record says who sent it and when, by this host's account: the file's owner and
            // the daemon's clock. The source the file claims is kept after the user, so that two
            // executors run by one account stay two (Keptn counts a task's executors by source).
            event.source = Self.stampedSource(user: Self.userName(requester), claimed: event.source)
            event.time = Timestamps.format(Date())
            event.shipyarduid = requester
            if let duplicate = await orchestrator.duplicate(event) {
                return CommandOutcome(id: request.id, ok: true, message: "\(duplicate); nothing changed")
            }
            command = .event(event)
        case .sync, .approve, .reject, .invalidate:
            return CommandOutcome(id: request.id, ok: false, message: "not a sequence command")
        }
        do {
            let effects = try await orchestrator.submit(command)
            let recorded = effects.compactMap { effect -> KeptnEvent? in
                if case .record(let event) = effect { return event }
                return nil
            }
            switch request.kind {
            case .trigger:
                let first = recorded.first
                let stage = first?.data["stage"]?.string ?? "?"
                let sequence = request.sequence ?? "?"
                return CommandOutcome(
                    id: request.id, ok: true,
                    message: "\(stage).\(sequence) triggered for \(request.service ?? "?") (context \(first?.shkeptncontext ?? "?"))",
                    context: first?.shkeptncontext)
            case .pause, .resume, .abort:
                let done = [CommandRequest.Kind.pause: "paused", .resume: "resumed", .abort: "aborted"][request.kind] ?? ""
                return CommandOutcome(id: request.id, ok: true, message: "\(done) \(request.context ?? "")")
            default:
                return CommandOutcome(id: request.id, ok: true, message: "accepted \(request.event?.type ?? "")")
            }
        } catch {
            return CommandOutcome(id: request.id, ok: false, message: error.message)
        }
    }

    /// `shipyardctl/alice`, or `shipyardctl/alice/my-checker` when the event claims a source;
    /// the claim is cut to 64 characters of a safe set, so it can forge nothing in logs.
    static func stampedSource(user: String, claimed: String) -> String {
        let safe = claimed.unicodeScalars.filter { $0.isASCII && ($0.properties.isAlphabetic || ("0"..."9").contains($0) || "._-/:@".unicodeScalars.contains($0)) }
        let kept = String(String.UnicodeScalarView(safe.prefix(64)))
        return "shipyardctl/\(user)" + (kept.isEmpty ? "" : "/" + kept)
    }

    /// Tasks the daemon itself carries out.
    static let builtInTasks: Set<String> = ["approval", Engine.evaluationSequence]

    /// `--timeframe 5m`, or `--start T --end T` (Keptn's `data.evaluation`), checked here so that
    /// a bad one is refused at once rather than failing the evaluation later.
    static func evaluationData(_ window: CommandRequest.EvaluationWindow) -> Result<JSONValue, EngineError> {
        var value: [String: JSONValue] = [:]
        if let timeframe = window.timeframe {
            guard let duration = try? GoDuration.duration(timeframe), duration >= .seconds(60) else {
                return .failure(EngineError("--timeframe \(Untrusted.printable(timeframe, limit: 40)) is not a duration of at least 1m, like 5m or 1h30m"))
            }
            value["timeframe"] = .string(timeframe)
        }
        for (name, text) in [("start", window.start), ("end", window.end)] {
            guard let text else { continue }
            guard KeptnTime.parse(text) != nil else {
                return .failure(EngineError("--\(name) \(Untrusted.printable(text, limit: 40)) is not a time like 2026-11-27T10:00:00Z"))
            }
            value[name] = .string(text)
        }
        if window.end != nil, window.start == nil { return .failure(EngineError("--end needs --start")) }
        if window.start != nil, window.end == nil, window.timeframe == nil { return .failure(EngineError("--start needs --end or --timeframe")) }
        if window.end != nil, window.timeframe != nil { return .failure(EngineError("give --timeframe or --end, not both")) }
        if let start = window.start.flatMap(KeptnTime.parse), let end = window.end.flatMap(KeptnTime.parse), end.timeIntervalSince(start) < 60 {
            return .failure(EngineError("--end must be at least 1 minute after --start"))
        }
        return .success(.object(value))
    }

    /// Root, and the daemon's own user: they can change the state directly anyway, so the
    /// config's lists do not apply to them (approvals excepted: those always name a person).
    static func isAdministrator(_ uid: uid_t) -> Bool { uid == 0 || uid == geteuid() }

    /// The most of an event's data the record takes (Keptn payloads are a few KiB).
    static let maxEventData = 16 * 1024

    static func userName(_ uid: uid_t) -> String {
        Accounts.name(uid: uid) ?? "uid \(uid)"
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

    private func scheduleStatusWrite(in seconds: TimeInterval) {
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
    private func statusDocument() throws -> Data {
        let header = try JSON.encode(DaemonStatus(pid: getpid(), version: Self.version, startedAt: Timestamp.string(startedAt), web: webAddress, projects: []))
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

/// Gathers the answers of several projects to one `sync` request.
private final class SyncCollector: Sendable {
    private let expected: Int
    private let done: @Sendable ([CommandOutcome.Partial]) -> Void
    private let parts = Mutex<[CommandOutcome.Partial]>([])

    init(expected: Int, done: @escaping @Sendable ([CommandOutcome.Partial]) -> Void) {
        self.expected = expected
        self.done = done
    }

    func add(_ part: CommandOutcome.Partial) {
        let all: [CommandOutcome.Partial]? = parts.withLock { parts in
            parts.append(part)
            return parts.count == expected ? parts : nil
        }
        if let all { done(all) }
    }
}
