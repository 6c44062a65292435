public import Foundation
import ShipyardCore

/// The leader's lease, a row on the database's clock (`leader_lease`), on a session of its own
/// so that renewals never wait behind the record's work. An expired lease is never renewed, only
/// taken again with the next epoch (River's lesson, #197); the holder and epoch must both match
/// for a renewal (Oban's, #1488). Host clocks are never compared: expiry is always
/// `clock_timestamp()` on the server.
public final class PostgresLease: @unchecked Sendable {
    public static let duration = 5.0
    public let settings: PostgresSettings
    /// Seconds a take or renewal holds the lease for.
    public let duration: Double
    private var connection: PGConnection?
    /// The session is one; the take, renewal, heartbeat and status threads take turns.
    private let lock = NSLock()
    /// The database's clock at the last take or renewal, and this host's monotonic clock when
    /// its answer came back: the database's clock reads at least `db + (now - local)` now.
    var anchor: (db: Double, local: ContinuousClock.Instant)?
    /// When hosts gone for a day were last removed.
    private var pruned: ContinuousClock.Instant?
    /// Seconds a renewal may take to reach the database and still count (the trust window's
    /// margin): a late one extends nothing, so that a renewal held up on a slow link cannot keep
    /// the lease alive after its leader stopped trusting itself.
    public static let promptness = 1.5

    public init(_ settings: PostgresSettings, duration: Double = PostgresLease.duration) {
        self.settings = settings
        self.duration = duration
    }

    /// The lease session: a lock wait (an append under way holds the row `FOR SHARE`) gives up
    /// after 2 s, any statement after 2.5 s; the leader's trust window does not wait for either.
    func session() throws -> PGConnection {
        if let connection, !connection.isBroken { return connection }
        connection = nil
        let fresh = try PGConnection(settings, application: "shipyardd-lease", statementTimeout: 2500)
        connection = fresh
        return fresh
    }

    /// Takes the lease when it has expired (or was released): the epoch it now has, or nil when
    /// another holds it. The take and its line in `lease_history` commit together.
    public func take() throws -> Fence? {
        lock.lock()
        defer { lock.unlock() }
        let connection = try session()
        try connection.exec("BEGIN")
        do {
            let taken = try connection.exec("""
                UPDATE leader_lease SET holder = $1, epoch = epoch + 1, expires_at = clock_timestamp() + make_interval(secs => $2::float8),
                    taken_at = clock_timestamp()
                WHERE name = 'delivery' AND expires_at < clock_timestamp() RETURNING epoch, extract(epoch FROM clock_timestamp())::float8
                """, [settings.holder, String(duration)])
            let answered = ContinuousClock.now
            guard let epoch = taken.scalar.flatMap(Int64.init), let at = taken.rows.first?[1].flatMap(Double.init) else {
                try connection.exec("ROLLBACK")
                return nil
            }
            try connection.exec("INSERT INTO lease_history (epoch, holder) VALUES ($1, $2)", [String(epoch), settings.holder])
            try connection.exec("COMMIT")
            anchor = (at, answered)
            return Fence(holder: settings.holder, epoch: epoch)
        } catch {
            connection.rollback()
            throw error
        }
    }

    public enum Renewal: Equatable, Sendable {
        case renewed
        /// Taken by another, or expired (an expired lease is never renewed).
        case lost
        /// Still ours, but the renewal reached the database this many seconds after it could
        /// have at the earliest, more than `promptness`: not renewed.
        case late(Double)
    }

    /// Extends the lease this holder has with this epoch, only while it has not expired and
    /// only when the renewal reached the database promptly: at most `promptness` seconds after
    /// the earliest its clock can have read as the renewal was sent (known from the last answer,
    /// on the monotonic clock; no host clock is read).
    public func renew(_ fence: Fence) throws -> Renewal {
        lock.lock()
        defer { lock.unlock() }
        let earliest = anchor.map { $0.db + (ContinuousClock.now - $0.local).seconds } ?? 0
        let row = try session().exec("""
            WITH lease AS (
                SELECT holder = $1 AND epoch = $2 AND expires_at > clock_timestamp() AS ours FROM leader_lease WHERE name = 'delivery'
            ), renewed AS (
                UPDATE leader_lease SET expires_at = clock_timestamp() + make_interval(secs => $3::float8)
                WHERE name = 'delivery' AND holder = $1 AND epoch = $2 AND expires_at > clock_timestamp()
                    AND ($4::float8 = 0 OR clock_timestamp() <= to_timestamp($4::float8 + $5::float8))
                RETURNING 1
            )
            SELECT (SELECT count(*) FROM renewed), coalesce((SELECT ours FROM lease), false), extract(epoch FROM clock_timestamp())::float8
            """, [fence.holder, String(fence.epoch), String(duration), String(earliest), String(Self.promptness)]).rows.first
        let now = row?[2].flatMap(Double.init) ?? 0
        if row?[0] == "1" {
            anchor = (now, .now)
            return .renewed
        }
        return PGValue.bool(row?[1]) && earliest > 0 ? .late(now - earliest) : .lost
    }

    /// How far this host's clock is ahead of the database's (negative: behind), in seconds,
    /// from the middle of a round trip. Leadership never reads it; deadlines do (approval
    /// timeouts, `triggeredAfter`), so the daemon warns when it is far off.
    public func clockOffset() throws -> Double {
        lock.lock()
        defer { lock.unlock() }
        let connection = try session()
        let sent = Date()
        let database = try connection.exec("SELECT extract(epoch FROM clock_timestamp())::float8").scalar.flatMap(Double.init) ?? 0
        let back = Date()
        return (sent.timeIntervalSince1970 + back.timeIntervalSince1970) / 2 - database
    }

    /// Gives the lease up at a graceful stop, so that a standby takes over at its next look.
    public func release(_ fence: Fence) {
        lock.lock()
        defer { lock.unlock() }
        _ = try? session().exec("""
            UPDATE leader_lease SET expires_at = '-infinity' WHERE name = 'delivery' AND holder = $1 AND epoch = $2
            """, [fence.holder, String(fence.epoch)])
    }

    /// This host's heartbeat, for `shipyardctl status` on any host.
    public func heartbeat(host: String, pid: Int32, version: String, startedAt: Date) throws {
        lock.lock()
        defer { lock.unlock() }
        try session().exec("""
            INSERT INTO hosts (holder, host, pid, version, started_at, seen_at) VALUES ($1, $2, $3, $4, to_timestamp($5::float8), clock_timestamp())
            ON CONFLICT (holder) DO UPDATE SET seen_at = clock_timestamp(), pid = excluded.pid, version = excluded.version, started_at = excluded.started_at
            """, [settings.holder, host, String(pid), version, String(startedAt.timeIntervalSince1970)])
        // Hosts gone for a day (a daemon named by its pid, restarted) leave the list; looked
        // for every ten minutes.
        if pruned.map({ ContinuousClock.now - $0 > .seconds(600) }) ?? true {
            try session().exec("DELETE FROM hosts WHERE seen_at < clock_timestamp() - interval '1 day'")
            pruned = .now
        }
    }

    /// Who leads (nil when nobody holds a live lease), since when, and each host's last heartbeat.
    public func status() throws -> LeaseStatus {
        lock.lock()
        defer { lock.unlock() }
        let connection = try session()
        let row = try connection.exec("""
            SELECT holder, epoch, extract(epoch FROM taken_at)::float8, extract(epoch FROM expires_at - clock_timestamp())::float8, expires_at > clock_timestamp()
            FROM leader_lease WHERE name = 'delivery' AND epoch > 0
            """).rows.first
        let hosts = try connection.exec("""
            SELECT holder, host, pid, version, extract(epoch FROM started_at)::float8, extract(epoch FROM seen_at)::float8
            FROM hosts ORDER BY holder
            """).rows.map { row in
            LeaseStatus.Host(
                holder: row[0] ?? "", host: row[1] ?? "", pid: row[2].flatMap(Int32.init) ?? 0, version: row[3] ?? "",
                startedAt: PGValue.date(row[4]) ?? Date(timeIntervalSince1970: 0), seenAt: PGValue.date(row[5]) ?? Date(timeIntervalSince1970: 0))
        }
        guard let row, PGValue.bool(row[4]) else { return LeaseStatus(leader: nil, hosts: hosts) }
        return LeaseStatus(
            leader: .init(holder: row[0] ?? "", epoch: row[1].flatMap(Int64.init) ?? 0, since: PGValue.date(row[2]) ?? Date(timeIntervalSince1970: 0),
                          secondsLeft: row[3].flatMap(Double.init) ?? 0),
            hosts: hosts)
    }
}

/// Who leads and who is there, as the database says.
public struct LeaseStatus: Codable, Sendable, Equatable {
    public struct Leader: Codable, Sendable, Equatable {
        public var holder: String
        public var epoch: Int64
        public var since: Date
        public var secondsLeft: Double
    }

    public struct Host: Codable, Sendable, Equatable {
        public var holder: String
        public var host: String
        public var pid: Int32
        public var version: String
        public var startedAt: Date
        /// The last heartbeat, on the database's clock.
        public var seenAt: Date
    }

    public var leader: Leader?
    public var hosts: [Host]
}
