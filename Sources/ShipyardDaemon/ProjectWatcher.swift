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
actor ProjectWatcher {
    private(set) var project: DaemonConfig.Project
    private let mirror: Mirror
    private let logger: Logger
    /// Told this project's status after each poll (one project's, never every project's).
    private let publish: @Sendable (ProjectStatus) -> Void
    /// Writes `status.json` now: a `shipyardctl sync` is answered only once status shows its poll.
    private let flush: @Sendable () async -> Void
    private let pool: BlockingPool
    private let doorbell = Doorbell()

    private(set) var loaded: LoadedShipyard?
    private var lastCommit: ObjectID?
    private var lastSeenTip: ObjectID?
    private var lastPollAt: Date?
    private var lastSuccessAt: Date?
    private var nextPollAt: Date?
    private var failures = 0
    private var upstreamError: StatusError?
    private var shipyardError: StatusError?
    /// A poll thread is running; after a timeout it may still be stuck in the network.
    private var busy = false
    private var stopped = false
    private var syncWaiters: [@Sendable (SpoolOutcome.Partial) -> Void] = []

    init(
        project: DaemonConfig.Project, state: StateDirectory, pool: BlockingPool, logger: Logger,
        publish: @escaping @Sendable (ProjectStatus) -> Void, flush: @escaping @Sendable () async -> Void = {}
    ) {
        self.project = project
        self.pool = pool
        self.flush = flush
        self.mirror = Mirror(path: state.mirror(project: project.name))
        var logger = logger
        logger[metadataKey: "project"] = "\(project.name)"
        self.logger = logger
        self.publish = publish
    }

    var status: ProjectStatus {
        var s = ProjectStatus(
            name: project.name, upstream: RemoteAccess.redact(project.upstream), branch: project.branch,
            shipyardPath: project.shipyardPath)
        s.commit = lastSeenTip?.hex
        s.shipyardCommit = loaded?.commit.hex
        s.stages = loaded?.shipyard.stages.map(\.name) ?? []
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
        guard let hex = shipyardCommit, mirror.tip(branch: project.branch) != nil else { return }
        let commit = ObjectID(hex: hex)
        guard case .blob(let blob, let bytes)? = try? mirror.file(at: commit, path: project.shipyardPath),
            let shipyard = ShipyardLoader.load(bytes).shipyard
        else { return }
        loaded = LoadedShipyard(shipyard: shipyard, commit: commit, blob: blob)
        logger.info("restored the shipyard from the mirror", metadata: ["commit": "\(commit.short)"])
    }

    /// Applies a changed project definition from a reloaded config.
    func update(_ new: DaemonConfig.Project) {
        guard new != project else { return }
        let moved = new.upstream != project.upstream || new.branch != project.branch || new.shipyardPath != project.shipyardPath
        project = new
        if moved {
            lastCommit = nil
            upstreamError = nil
            shipyardError = nil
            failures = 0
        }
        doorbell.ring()
    }

    /// Polls now; `reply` gets the poll's outcome. While the upstream fails, a sync from the CLI
    /// (`honourBackoff`) does not connect sooner than a poll interval (at least 5 s) after the
    /// last attempt: a wrong password tried in a loop can lock the account out.
    func syncNow(honourBackoff: Bool = false, reply: (@Sendable (SpoolOutcome.Partial) -> Void)? = nil) {
        if honourBackoff, failures > 0, let error = upstreamError, let last = lastPollAt,
            Date().timeIntervalSince(last) < max(project.pollInterval.seconds, 5)
        {
            let next = nextPollAt.map { " next attempt at \(Timestamp.string($0))" } ?? ""
            reply?(SpoolOutcome.Partial(
                ok: false,
                message: "\(project.name): the upstream failed \(failures) time\(failures == 1 ? "" : "s") in a row (\(error.message)); not polled again so soon, to spare the account a lockout;\(next)"))
            return
        }
        if let reply { syncWaiters.append(reply) }
        doorbell.ring()
    }

    func stop() {
        stopped = true
        doorbell.ring()
        answerWaiters(ok: false, message: "\(project.name): the daemon is stopping")
    }

    /// Polls until stopped. The first poll comes after `firstDelay` (the daemon spreads a
    /// thousand projects over their interval rather than polling them in one instant); then one
    /// every poll interval, give or take 5% so that projects started together drift apart.
    func run(firstDelay: Duration = .zero) async {
        var delay = firstDelay
        while !stopped {
            nextPollAt = Date().addingTimeInterval(delay.seconds)
            publish(status)
            _ = await doorbell.wait(for: delay)
            if stopped { break }
            if busy {
                answerWaiters(ok: false, message: "\(project.name): the previous poll is still waiting for the upstream")
                delay = .seconds(1)
                continue
            }
            delay = await pollOnce()
        }
    }

    private func pollOnce() async -> Duration {
        let job = PollJob(project: project, mirror: mirror, lastCommit: lastCommit, loadedBlob: loaded?.blob)
        let token = CancelToken()
        busy = true
        let timeout = project.pollTimeout
        let outcome = await pool.run(
            timeout: timeout, cancel: token, { job.run(cancel: token) },
            finished: { [weak self] in Task { await self?.threadFinished() } })
        if outcome != nil { busy = false }
        let result = apply(outcome ?? .failed("the poll timed out after \(GoDuration.format(timeout)): the upstream did not answer"))
        if !syncWaiters.isEmpty {
            publish(status)
            await flush()
        }
        answerWaiters(ok: result.ok, message: result.message)
        return upstreamError == nil ? Self.jittered(project.pollInterval) : backoff()
    }

    static func jittered(_ interval: Duration) -> Duration {
        .milliseconds(Int64(interval.seconds * Double.random(in: 0.95...1.05) * 1000))
    }

    private func threadFinished() {
        busy = false
    }

    private func answerWaiters(ok: Bool, message: String) {
        let waiters = syncWaiters
        syncWaiters = []
        for waiter in waiters { waiter(SpoolOutcome.Partial(ok: ok, message: message)) }
    }

    /// Jittered exponential backoff: the poll interval doubled per consecutive failure, capped at
    /// 16 intervals or five minutes, whichever is shorter (but never below one interval).
    private func backoff() -> Duration {
        let interval = project.pollInterval.seconds
        let cap = max(interval, min(interval * 16, 300))
        let base = min(interval * pow(2, Double(max(0, failures - 1))), cap)
        return .milliseconds(Int64(base * Double.random(in: 0.8...1.2) * 1000))
    }

    private func apply(_ outcome: PollJob.Outcome) -> (ok: Bool, message: String) {
        let now = Date()
        lastPollAt = now
        switch outcome {
        case .failed(let message):
            failures += 1
            if upstreamError?.message != message {
                logger.error("upstream poll failed: \(message)", metadata: ["failures": "\(failures)"])
                upstreamError = StatusError(kind: "upstream", message: message, since: Timestamp.string(now))
            }
            return (false, "\(project.name): \(message)")
        case .unchanged(let commit):
            recovered(now)
            lastSeenTip = commit
            return (shipyardError == nil, "\(project.name): \(project.branch) is at \(commit.short), unchanged" + shipyardSummary)
        case .fetched(let commit, let file, let recreated):
            recovered(now)
            if recreated { logger.warning("the mirror was unreadable and has been re-created from the upstream") }
            lastCommit = commit
            lastSeenTip = commit
            apply(file, at: commit)
            return (shipyardError == nil, "\(project.name): \(project.branch) is at \(commit.short)" + shipyardSummary)
        }
    }

    private var shipyardSummary: String {
        if let error = shipyardError {
            return "; \(error.message)"
        }
        guard let loaded else { return "" }
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
        let keeping = loaded.map { "[keeping the shipyard from \($0.commit.short)]" } ?? "[no shipyard is loaded yet]"
        switch file {
        case .sameBlob:
            if loaded?.commit != commit {
                logger.info("\(project.branch) moved; \(path) is unchanged", metadata: ["commit": "\(commit.short)"])
            }
            loaded?.commit = commit
            shipyardError = nil
        case .valid(let shipyard, let blob, let warnings):
            loaded = LoadedShipyard(shipyard: shipyard, commit: commit, blob: blob)
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

extension SpoolOutcome {
    /// An outcome before it is matched with its request id.
    public struct Partial: Sendable {
        public var ok: Bool
        public var message: String
    }
}

extension Duration {
    public var seconds: Double {
        let (s, atto) = components
        return Double(s) + Double(atto) / 1e18
    }
}
