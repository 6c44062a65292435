import Foundation
import Logging
public import ShipyardCore
public import ShipyardGit

/// The shipyard in force for a project, and where it came from.
public struct LoadedShipyard: Sendable {
    public var shipyard: Shipyard
    /// The newest commit known to carry this shipyard.
    public var commit: ObjectID
    public var blob: ObjectID
}

/// Watches one project's upstream branch: polls on its interval (or at once when asked), backs
/// off with jitter while the upstream fails, and keeps the last good shipyard when a new one is
/// invalid. Logs one line per change of state, never one per quiet poll.
///
/// A quiet poll runs from start to end on the poll pool: the scheduler hands it to a pool
/// thread when due, the thread polls, records the outcome under this watcher's lock, posts the
/// status and schedules the next poll. No task, actor hop or timer is created per poll, so a
/// thousand projects cost about what their libgit2 polls cost.
final class ProjectWatcher: @unchecked Sendable {
    private let lock = NSLock()
    private var project: DaemonConfig.Project {
        didSet { redactedUpstream = RemoteAccess.redact(project.upstream) }
    }
    /// The upstream as status shows it, worked out once per change of the project.
    private var redactedUpstream: String
    private let mirror: Mirror
    private let logger: Logger
    /// Told this project's status after each poll (one project's, never every project's).
    private let publish: @Sendable (ProjectStatus) -> Void
    /// Writes `status.json` now: a `shipyardctl sync` is answered only once status shows its poll.
    private let flush: @Sendable () async -> Void
    private let pool: BlockingPool
    private let scheduler: PollScheduler

    private var loadedShipyard: LoadedShipyard?
    private var lastCommit: ObjectID?
    private var lastSeenTip: ObjectID?
    private var lastPollAt: Date?
    private var lastSuccessAt: Date?
    private var nextPollAt: Date?
    private var failures = 0
    private var upstreamError: StatusError?
    private var shipyardError: StatusError?
    /// A poll is running on the pool; after a timeout its thread may still be stuck in the network.
    private var busy = false
    /// The running poll timed out: its thread is being interrupted free.
    private var abandoned = false
    private var stopped = false
    /// Only the newest scheduled poll fires; older ones (a sync, a reload moved it) do nothing.
    private var generation = 0
    /// Waiting for the next poll to start (a sync), and for the running one to end.
    private var syncWaiters: [@Sendable (CommandOutcome.Partial) -> Void] = []
    private var pollWaiters: [@Sendable (CommandOutcome.Partial) -> Void] = []
    /// A sync or a reload asked for a poll while one was running: another follows at once.
    private var pollAgain = false
    /// The running poll's or repack's token: a stop cancels it, which kills its child process.
    private var running: CancelToken?

    /// How long a repack of the mirror may take: its own deadline, never a poll's.
    static let repackTimeout: Duration = .seconds(1800)
    /// After a repack failed (or ran out of time), none is tried for this long: polls, which
    /// wait while one runs, keep their pace.
    static let repackBackoff: Duration = .seconds(6 * 3600)
    private var repackFailedAt: ContinuousClock.Instant?

    /// `/metrics`: this project's polls and shipyard loads.
    private let metrics: DaemonMetrics.Project?
    private var pollStarted = ContinuousClock.now

    init(
        project: DaemonConfig.Project, state: StateDirectory, pool: BlockingPool, scheduler: PollScheduler, logger: Logger,
        metrics: DaemonMetrics? = nil, publish: @escaping @Sendable (ProjectStatus) -> Void, flush: @escaping @Sendable () async -> Void = {}
    ) {
        self.metrics = metrics?.project(project.name)
        self.project = project
        self.redactedUpstream = RemoteAccess.redact(project.upstream)
        self.pool = pool
        self.scheduler = scheduler
        self.flush = flush
        self.mirror = Mirror(path: state.mirror(project: project.name))
        var logger = logger
        logger[metadataKey: "project"] = "\(project.name)"
        self.logger = logger
        self.publish = publish
    }

    private func locked<T>(_ body: () throws -> T) rethrows -> T {
        lock.lock()
        defer { lock.unlock() }
        return try body()
    }

    var status: ProjectStatus { locked { currentStatus } }

    var loaded: LoadedShipyard? { locked { loadedShipyard } }

    /// Whether a poll is running (for the daemon's stop).
    var isPolling: Bool { locked { busy } }

    private var currentStatus: ProjectStatus {
        var s = ProjectStatus(
            name: project.name, upstream: redactedUpstream, branch: project.branch,
            shipyardPath: project.shipyardPath)
        s.commit = lastSeenTip?.hex
        s.shipyardCommit = loadedShipyard?.commit.hex
        s.stages = loadedShipyard?.shipyard.stages.map(\.name) ?? []
        s.lastPollAt = lastPollAt.map(Timestamp.string)
        s.lastSuccessAt = lastSuccessAt.map(Timestamp.string)
        s.nextPollAt = nextPollAt.map(Timestamp.string)
        s.consecutiveFailures = failures
        s.error = upstreamError ?? shipyardError
        return s
    }

    /// Loads the shipyard the previous run had in force straight from the mirror, so the daemon
    /// has a shipyard at once after a restart even when the upstream is down.
    func restore(shipyardCommit: String?) {
        let (project, mirror) = locked { (self.project, self.mirror) }
        guard let hex = shipyardCommit, mirror.tip(branch: project.branch) != nil else { return }
        let commit = ObjectID(hex: hex)
        guard case .blob(let blob, let bytes)? = try? mirror.file(at: commit, path: project.shipyardPath),
            let shipyard = ShipyardLoader.load(bytes).shipyard
        else { return }
        locked { loadedShipyard = LoadedShipyard(shipyard: shipyard, commit: commit, blob: blob) }
        logger.info("restored the shipyard from the mirror", metadata: ["commit": "\(commit.short)"])
    }

    /// Starts polling: the first poll after `firstDelay` (the daemon spreads a thousand projects
    /// over their interval rather than polling them in one instant).
    func start(firstDelay: Duration = .zero) {
        locked { schedule(after: firstDelay) }
    }

    /// Applies a changed project definition from a reloaded config, and polls at once.
    func update(_ new: DaemonConfig.Project) {
        locked {
            guard new != project else { return }
            let moved = new.upstream != project.upstream || new.branch != project.branch || new.shipyardPath != project.shipyardPath
            project = new
            if moved {
                lastCommit = nil
                upstreamError = nil
                shipyardError = nil
                failures = 0
            }
            if busy { pollAgain = true } else { schedule(after: .zero) }
        }
    }

    /// Polls now; `reply` gets the poll's outcome. While the upstream fails, a sync from the CLI
    /// (`honourBackoff`) does not connect sooner than a poll interval (at least 5 s) after the
    /// last attempt: a wrong password tried in a loop can lock the account out.
    func syncNow(honourBackoff: Bool = false, reply: (@Sendable (CommandOutcome.Partial) -> Void)? = nil) {
        let refusal: CommandOutcome.Partial? = locked {
            if honourBackoff, failures > 0, let error = upstreamError, let last = lastPollAt,
                Date().timeIntervalSince(last) < max(project.pollInterval.seconds, 5)
            {
                let next = nextPollAt.map { " next attempt at \(Timestamp.string($0))" } ?? ""
                return CommandOutcome.Partial(
                    ok: false,
                    message: "\(project.name): the upstream failed \(failures) time\(failures == 1 ? "" : "s") in a row (\(error.message)); not polled again so soon, to spare the account a lockout;\(next)")
            }
            if stopped { return CommandOutcome.Partial(ok: false, message: "\(project.name): the daemon is stopping") }
            if busy, abandoned {
                return CommandOutcome.Partial(ok: false, message: "\(project.name): the previous poll is still waiting for the upstream")
            }
            if let reply { syncWaiters.append(reply) }
            // A poll already running may have listed the refs before the push being synced for:
            // the next one, right after it, answers.
            if busy { pollAgain = true } else { schedule(after: .zero) }
            return nil
        }
        if let refusal { reply?(refusal) }
    }

    func stop() {
        let waiters: [@Sendable (CommandOutcome.Partial) -> Void] = locked {
            stopped = true
            generation += 1
            // A fetch or repack under way is killed now, not waited for until its timeout.
            running?.cancel()
            defer {
                syncWaiters = []
                pollWaiters = []
            }
            return syncWaiters + pollWaiters
        }
        for waiter in waiters { waiter(CommandOutcome.Partial(ok: false, message: "\(project.name): the daemon is stopping")) }
    }

    // MARK: Polling (under the lock unless said otherwise)

    private func schedule(after delay: Duration) {
        generation += 1
        let current = generation
        nextPollAt = Date().addingTimeInterval(delay.seconds)
        publish(currentStatus)
        scheduler.schedule(after: delay) { [weak self] in self?.due(current) }
    }

    /// On the scheduler's thread: hands the poll to the pool.
    private func due(_ scheduled: Int) {
        lock.lock()
        guard scheduled == generation, !stopped else {
            lock.unlock()
            return
        }
        if busy {
            // The previous poll's thread is still being interrupted free: look again shortly.
            schedule(after: .seconds(1))
            lock.unlock()
            return
        }
        busy = true
        abandoned = false
        pollAgain = false
        pollWaiters = syncWaiters
        syncWaiters = []
        let job = PollJob(project: project, mirror: mirror, lastCommit: lastCommit, loadedBlob: loadedShipyard?.blob)
        let timeout = project.pollTimeout
        pollStarted = ContinuousClock.now
        // Known before the lock is let go: a stop in between cancels this poll, not the last one.
        let token = CancelToken()
        running = token
        lock.unlock()
        pool.start(
            timeout: timeout, cancel: token, { job.run(cancel: token) },
            timedOut: { [weak self] in
                self?.ended(.failed("the poll timed out after \(GoDuration.format(timeout)): the upstream did not answer"), threadFree: false)
            },
            completed: { [weak self] outcome, inTime in
                if inTime { self?.ended(outcome, threadFree: true) } else { self?.threadFreed() }
            })
    }

    /// On a pool thread (or the timeout thread): records a poll's outcome and schedules the next.
    private func ended(_ outcome: PollJob.Outcome, threadFree: Bool) {
        lock.lock()
        if threadFree { busy = false } else { abandoned = true }
        let ok = apply(outcome)
        // After a timeout no poll can start until the stuck thread is free: those waiting for
        // the next one are told now, with the timeout.
        let waiters = pollWaiters + (threadFree ? [] : syncWaiters)
        let told = waiters.isEmpty ? "" : message(for: outcome)
        pollWaiters = []
        if !threadFree { syncWaiters = [] }
        if !stopped {
            if pollAgain, threadFree {
                schedule(after: .zero)
            } else {
                schedule(after: upstreamError == nil ? Self.jittered(project.pollInterval) : backoff())
            }
            if threadFree, case .fetched = outcome, repackFailedAt.map({ ContinuousClock.now - $0 > Self.repackBackoff }) ?? true, mirror.needsRepack {
                startRepack()
            }
        }
        lock.unlock()
        guard !waiters.isEmpty else { return }
        let flush = flush
        Task {
            await flush()
            for waiter in waiters { waiter(CommandOutcome.Partial(ok: ok, message: told)) }
        }
    }

    /// Under the lock: merges the mirror's packs in a child of its own while no poll runs (a
    /// poll that falls due meanwhile waits for it, as for a poll still running).
    private func startRepack() {
        busy = true
        let token = CancelToken()
        running = token
        let mirror = mirror
        let started = ContinuousClock.now
        pool.start(
            timeout: Self.repackTimeout + .seconds(30), cancel: token,
            { () -> Result<Int, GitError> in
                do throws(GitError) {
                    return .success(try FetchProcess.repack(mirror: mirror, cancel: token, timeout: Self.repackTimeout))
                } catch {
                    return .failure(error)
                }
            },
            timedOut: {},
            completed: { [weak self] result, _ in
                guard let self else { return }
                let took = GoDuration.format(ContinuousClock.now - started)
                let failed: Bool
                switch result {
                case .failure(let error):
                    failed = true
                    self.logger.warning("the mirror's repack failed after \(took): \(error.message); it is tried again after a fetch in \(GoDuration.format(Self.repackBackoff))")
                case .success(let merged):
                    failed = false
                    if merged > 0 { self.logger.info("the mirror's \(merged) packs were merged into one in \(took)") }
                }
                self.locked {
                    self.repackFailedAt = failed ? ContinuousClock.now : nil
                    self.busy = false
                    self.abandoned = false
                    if self.pollAgain, !self.stopped { self.schedule(after: .zero) }
                }
            })
    }

    private func threadFreed() {
        locked {
            busy = false
            abandoned = false
        }
    }

    static func jittered(_ interval: Duration) -> Duration {
        .milliseconds(Int64(interval.seconds * Double.random(in: 0.95...1.05) * 1000))
    }

    /// Jittered exponential backoff: the poll interval doubled per consecutive failure, capped at
    /// 16 intervals or five minutes, whichever is shorter (but never below one interval).
    private func backoff() -> Duration {
        let interval = project.pollInterval.seconds
        let cap = max(interval, min(interval * 16, 300))
        let base = min(interval * pow(2, Double(max(0, failures - 1))), cap)
        return .milliseconds(Int64(base * Double.random(in: 0.8...1.2) * 1000))
    }

    /// What a sync is told of a poll (built only when someone waits for it).
    private func message(for outcome: PollJob.Outcome) -> String {
        switch outcome {
        case .failed(let message):
            return "\(project.name): \(message)"
        case .unchanged(let commit):
            return "\(project.name): \(project.branch) is at \(commit.short), unchanged" + shipyardSummary
        case .fetched(let commit, _, _):
            return "\(project.name): \(project.branch) is at \(commit.short)" + shipyardSummary
        }
    }

    /// Records a poll's outcome; returns whether all is well.
    private func apply(_ outcome: PollJob.Outcome) -> Bool {
        let now = Date()
        lastPollAt = now
        if let metrics {
            metrics.duration.record(ContinuousClock.now - pollStarted)
            switch outcome {
            case .failed: metrics.failed.increment()
            case .unchanged: metrics.unchanged.increment()
            case .fetched(_, let file, _):
                metrics.fetched.increment()
                switch file {
                case .sameBlob: break
                case .valid: metrics.reloads.increment()
                case .invalid, .missing, .notAFile, .tooLarge: metrics.rejected.increment()
                }
            }
        }
        switch outcome {
        case .failed(let message):
            failures += 1
            if upstreamError?.message != message {
                logger.error("upstream poll failed: \(message)", metadata: ["failures": "\(failures)"])
                upstreamError = StatusError(kind: "upstream", message: message, since: Timestamp.string(now))
            }
            return false
        case .unchanged(let commit):
            recovered(now)
            lastSeenTip = commit
            return shipyardError == nil
        case .fetched(let commit, let file, let recreated):
            recovered(now)
            if recreated { logger.warning("the mirror was unreadable and has been re-created from the upstream") }
            lastCommit = commit
            lastSeenTip = commit
            apply(file, at: commit)
            return shipyardError == nil
        }
    }

    private var shipyardSummary: String {
        if let error = shipyardError {
            return "; \(error.message)"
        }
        guard let loaded = loadedShipyard else { return "" }
        return "; shipyard from \(loaded.commit.short) (stages: \(loaded.shipyard.stages.map(\.name).joined(separator: ", ")))"
    }

    private func recovered(_ now: Date) {
        if upstreamError != nil {
            logger.info("upstream reachable again", metadata: ["after": "\(failures) failed polls"])
        }
        upstreamError = nil
        failures = 0
        lastSuccessAt = now
    }

    private func apply(_ file: PollJob.FileOutcome, at commit: ObjectID) {
        let path = project.shipyardPath
        let keeping = loadedShipyard.map { "[keeping the shipyard from \($0.commit.short)]" } ?? "[no shipyard is loaded yet]"
        switch file {
        case .sameBlob:
            if loadedShipyard?.commit != commit {
                logger.info("\(project.branch) moved; \(path) is unchanged", metadata: ["commit": "\(commit.short)"])
            }
            loadedShipyard?.commit = commit
            shipyardError = nil
        case .valid(let shipyard, let blob, let warnings):
            loadedShipyard = LoadedShipyard(shipyard: shipyard, commit: commit, blob: blob)
            shipyardError = nil
            logger.info(
                "loaded \(path)",
                metadata: ["commit": "\(commit.short)", "stages": "\(shipyard.stages.map(\.name).joined(separator: ","))"])
            for warning in warnings {
                logger.warning("\(path):\(warning.description)", metadata: ["commit": "\(commit.short)"])
            }
        case .invalid(_, let errors):
            let first = errors.first
            var message = "\(path) at \(commit.short) is invalid: \(first?.message ?? "unknown error")"
            if errors.count > 1 { message += " (and \(errors.count - 1) more; run shipyardctl lint)" }
            shipyardError = StatusError(
                kind: "shipyard", message: message, commit: commit.hex, line: first?.mark.line, column: first?.mark.column,
                since: Timestamp.string(Date()))
            for error in errors {
                logger.error("\(path):\(error.description) \(keeping)", metadata: ["commit": "\(commit.short)"])
            }
        case .missing:
            setShipyardError("\(path) does not exist at \(commit.short) on \(project.branch) \(keeping)", commit: commit)
        case .notAFile(let what):
            setShipyardError("\(path) at \(commit.short) is \(what), not a file \(keeping)", commit: commit)
        case .tooLarge(let size):
            setShipyardError("\(path) at \(commit.short) is \(size) bytes, too large for a shipyard \(keeping)", commit: commit)
        }
    }

    private func setShipyardError(_ message: String, commit: ObjectID) {
        shipyardError = StatusError(kind: "shipyard", message: message, commit: commit.hex, since: Timestamp.string(Date()))
        logger.error("\(message)")
    }
}

extension CommandOutcome {
    /// An outcome before it is matched with its request id.
    public struct Partial: Sendable {
        public var ok: Bool
        public var message: String
    }
}
