import Foundation
import Logging
import ShipyardStore
import Synchronization

/// One leader among the daemons that share a PostgreSQL record. A standby tries to take the
/// lease every second (with a little jitter), and as the leader's lease runs out; the leader
/// renews it every second on the lease's own session (a renewal that reached the database late
/// extends nothing and ends leadership: `PostgresLease.promptness`), and trusts itself only until *the start of its last successful renewal + lease
/// − 1.5 s* on the monotonic clock (River's trust window). When that passes without a renewal,
/// or a renewal finds the lease another's, or an append is refused by the fence, the leader
/// stops all work by itself: a frozen or cut-off leader has stopped before its lease can have
/// expired, and whatever it still tries to append is refused by the epoch.
final class Leadership: Sendable {
    static let margin = 1.5
    static let interval: Duration = .seconds(1)

    let lease: PostgresLease
    let store: PostgresStore
    let logger: Logger
    let host: String
    let startedAt = Date()
    /// Fault injection for the control run: `SHIPYARD_FAULT_BELIEVE_LEADING=1` makes a leader
    /// that cannot renew carry on believing it leads (Oban #1488), so that only the fence stops
    /// its writes.
    let believing: Bool

    struct State {
        var fence: Fence?
        var trustedUntil: ContinuousClock.Instant?
        var lost: String?
        var stopped = false
    }

    private let state = Mutex(State())
    /// The lease and the hosts as last read, for status.json; `changed` is told when who leads
    /// changes.
    private let seen = Mutex<LeaseStatus?>(nil)
    let changed = Mutex<(@Sendable () -> Void)?>(nil)

    /// Reads who leads and who is there; tells `changed` when the leader is another.
    func refresh() {
        guard let now = try? lease.status() else { return }
        let before = seen.withLock { seen in
            defer { seen = now }
            return seen?.leader.map { "\($0.holder)/\($0.epoch)" }
        }
        if before != now.leader.map({ "\($0.holder)/\($0.epoch)" }) { changed.withLock { $0 }?() }
    }

    /// status.json's `cluster`.
    var status: ClusterStatus? {
        guard let seen = seen.withLock({ $0 }) else { return nil }
        let role = state.withLock { $0.fence != nil && $0.lost == nil } ? "leader" : "standby"
        return ClusterStatus(
            name: lease.settings.holder, role: role, leader: seen.leader?.holder, epoch: seen.leader?.epoch,
            leaderSince: seen.leader.map { Timestamp.string($0.since) },
            hosts: seen.hosts.map {
                .init(name: $0.holder, host: $0.host, pid: $0.pid, version: $0.version, startedAt: Timestamp.string($0.startedAt),
                      lastHeartbeat: Timestamp.string($0.seenAt))
            },
            readAt: Timestamp.string(Date()))
    }
    /// Told once when leadership is lost (the daemon stops all work and exits).
    private let onLost = Mutex<(@Sendable (String) -> Void)?>(nil)

    init(store: PostgresStore, lease: PostgresLease, logger: Logger, environment: [String: String]) {
        self.store = store
        self.lease = lease
        self.logger = logger
        believing = environment["SHIPYARD_FAULT_BELIEVE_LEADING"] == "1"
        host = ProcessInfo.processInfo.hostName
    }

    var fence: Fence? { state.withLock { $0.fence } }

    /// Told to stop (`resign`): a lease taken just then is not led.
    var isStopped: Bool { state.withLock { $0.stopped } }

    /// Whether this daemon may start an effect outside the record now (a task program, a
    /// notification): it leads, its trust window is open, and the database still says so.
    func mayAct() -> Bool {
        guard let fence = state.withLock({ $0.lost == nil ? $0.fence : nil }) else { return false }
        if believing { return true }
        guard let until = state.withLock({ $0.trustedUntil }), ContinuousClock.now < until else { return false }
        return (try? store.holdsLease(fence)) == true
    }

    /// Waits until this daemon holds the lease (nil when the daemon stops first). `waiting` is
    /// told who leads meanwhile, once per change.
    func acquire(waiting: @escaping @Sendable (String) -> Void) async -> Fence? {
        await withCheckedContinuation { (continuation: CheckedContinuation<Fence?, Never>) in
            let thread = Thread { [self] in
                var said = ""
                var lastError = ""
                var round = 0
                warnAboutTheClock()
                while !state.withLock({ $0.stopped }) {
                    let attempt = ContinuousClock.now
                    // Until the lease can have run out, at most a second: a standby tries again
                    // as the leader's lease expires rather than up to a second later.
                    var pause = 1 + Double.random(in: 0..<0.25)
                    do {
                        if round % 5 == 0 { try lease.heartbeat(host: host, pid: getpid(), version: Daemon.version, startedAt: startedAt) }
                        round += 1
                        if let fence = try lease.take() {
                            state.withLock {
                                $0.fence = fence
                                $0.trustedUntil = attempt + .seconds(lease.duration - Self.margin)
                            }
                            store.fence = fence
                            refresh()
                            continuation.resume(returning: fence)
                            return
                        }
                        lastError = ""
                        refresh()
                        if let left = seen.withLock({ $0?.leader?.secondsLeft }) { pause = min(pause, max(0.02, left + 0.02)) }
                        let holder = seen.withLock { $0?.leader.map { "\($0.holder) leads (epoch \($0.epoch))" } }
                        let now = holder ?? "the lease is being taken"
                        if now != said {
                            said = now
                            waiting(now)
                        }
                    } catch {
                        if "\(error)" != lastError {
                            lastError = "\(error)"
                            logger.error("cannot reach the record to take the lease: \(error); trying again every second")
                        }
                    }
                    Thread.sleep(forTimeInterval: pause)
                }
                continuation.resume(returning: nil)
            }
            thread.name = "lease-take"
            thread.start()
        }
    }

    /// Seconds of difference between this host's clock and the database's that are worth a
    /// warning: leadership and the record's order never read a host's clock, but deadlines do.
    static let clockTolerance = 5.0

    func warnAboutTheClock() {
        guard let offset = try? lease.clockOffset(), abs(offset) > Self.clockTolerance else { return }
        logger.warning("this host's clock is \(String(format: "%.0f", abs(offset))) s \(offset > 0 ? "ahead of" : "behind") the shared record's database: leadership does not depend on it, but approval timeouts, triggeredAfter and retention go by the leader's clock; keep the hosts' clocks synchronised (systemd-timesyncd, chrony)")
    }

    /// Renews every second on its own thread, and watches the trust window on another (a
    /// renewal stuck on a silent network does not hold the watch up). `lost` is told once.
    func lead(lost: @escaping @Sendable (String) -> Void) {
        onLost.withLock { $0 = lost }
        let renewer = Thread { [self] in
            var round = 0
            while !state.withLock({ $0.stopped || $0.lost != nil }) {
                round += 1
                guard let fence = state.withLock({ $0.fence }) else { return }
                let attempt = ContinuousClock.now
                do {
                    switch try lease.renew(fence) {
                    case .renewed:
                        state.withLock { $0.trustedUntil = attempt + .seconds(lease.duration - Self.margin) }
                    case .lost where !believing:
                        lose("the lease of epoch \(fence.epoch) is no longer this daemon's (another host took it after it expired)")
                        return
                    case .late(let seconds) where !believing:
                        lose("a renewal of the lease reached the record \(String(format: "%.1f", seconds)) s after it was sent (more than \(PostgresLease.promptness) s): the link to the database is too slow to lead on")
                        return
                    case .lost, .late:
                        break
                    }
                    if round % 5 == 0 {
                        try? lease.heartbeat(host: host, pid: getpid(), version: Daemon.version, startedAt: startedAt)
                        refresh()
                    }
                } catch {
                    logger.warning("cannot renew the lease: \(error)")
                }
                let elapsed = ContinuousClock.now - attempt
                if elapsed < Self.interval { Thread.sleep(forTimeInterval: (Self.interval - elapsed).seconds) }
            }
        }
        renewer.name = "lease-renew"
        renewer.start()
        let watch = Thread { [self] in
            while !state.withLock({ $0.stopped || $0.lost != nil }) {
                if !believing, let until = state.withLock({ $0.trustedUntil }), ContinuousClock.now >= until {
                    lose("the lease was not renewed in time (the record did not answer within \(lease.duration - Self.margin) s)")
                    return
                }
                Thread.sleep(forTimeInterval: 0.1)
            }
        }
        watch.name = "lease-watch"
        watch.start()
    }

    /// An append refused by the fence, or of unknown outcome, ends leadership as well.
    func lose(_ reason: String) {
        let first = state.withLock { state -> Bool in
            guard state.lost == nil else { return false }
            state.lost = reason
            return true
        }
        guard first, let told = onLost.withLock({ $0 }) else { return }
        told(reason)
    }

    /// A graceful stop: the standby loop ends; a leader gives the lease up so that a standby
    /// takes over at its next look rather than after the lease runs out.
    func resign() {
        let fence = state.withLock { state -> Fence? in
            state.stopped = true
            return state.lost == nil ? state.fence : nil
        }
        if let fence { lease.release(fence) }
    }
}
