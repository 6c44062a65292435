public import Foundation
import Synchronization
public import ShipyardCore

/// Who may append: the lease's holder and the epoch it took. Every append checks both, on the
/// database, in its own transaction.
public struct Fence: Sendable, Equatable {
    public var holder: String
    public var epoch: Int64

    public init(holder: String, epoch: Int64) {
        self.holder = holder
        self.epoch = epoch
    }
}

/// An append was refused because this daemon no longer leads (another took the lease, or it
/// expired), or its outcome cannot be known (the session ended during COMMIT): either way the
/// daemon must stop acting and take the lease anew before it may write again.
public struct LeadershipLost: Error, CustomStringConvertible, Sendable {
    public var description: String
    public init(_ description: String) { self.description = description }
}

/// The store on PostgreSQL, for more than one host: the same tables and answers as
/// `SQLiteStore`, and every append fenced by the leader's epoch (Temporal's shard range check):
/// `SELECT … FROM leader_lease … FOR SHARE` first, in the append's transaction, so that a take
/// waits for an append under way and any append after a take sees the new epoch and is refused.
public final class PostgresStore: Store, @unchecked Sendable {
    let settings: PostgresSettings
    /// One session, used under this lock (the daemon's writes are one at a time anyway).
    private let lock = NSLock()
    private var current: PGConnection?
    private let fenceState = Mutex<Fence?>(nil)
    private let lostHandler = Mutex<(@Sendable (String) -> Void)?>(nil)
    let encoder: JSONEncoder
    let application: String
    /// Fault injection for the failover tests: `SHIPYARD_FAULT_NO_FENCE=1` appends without the
    /// epoch check (the control run: the checker must then see violations);
    /// `SHIPYARD_FAULT_PAUSE_IN_APPEND=<file>`: when that file exists, the next append removes it,
    /// creates `<file>.inside` after its fence check and sleeps 1.5 s inside the transaction (less
    /// than the 2 s after which the server ends a session idle in a transaction).
    let unfenced: Bool
    let pauseFile: String?

    /// Opens the record (applying migrations) with one session.
    public init(_ settings: PostgresSettings, application: String = "shipyardd", environment: [String: String] = ProcessInfo.processInfo.environment) throws {
        self.settings = settings
        self.application = application
        encoder = JSONEncoder()
        encoder.outputFormatting = [.sortedKeys, .withoutEscapingSlashes]
        unfenced = environment["SHIPYARD_FAULT_NO_FENCE"] == "1"
        pauseFile = environment["SHIPYARD_FAULT_PAUSE_IN_APPEND"]
        let connection = try Self.explained { try PGConnection(settings, application: application) }
        try Self.explained { try PostgresSchema.migrate(connection) }
        current = connection
    }

    /// What `shipyardd --check-config` says of the database, without changing anything in it:
    /// the server reached and signed in to, its version, and whether the record's schema is
    /// there, to be made at the first start, or from a newer shipyardd. Thrown: why it cannot.
    public static func check(_ settings: PostgresSettings) throws -> String {
        let connection = try explained { try PGConnection(settings, application: "shipyardd-check", statementTimeout: 5000) }
        return try explained {
            let version = try connection.exec("SHOW server_version").scalar ?? "?"
            let major = Int(version.prefix { $0.isNumber }) ?? 0
            guard major >= 13 else {
                throw StoreError("PostgreSQL \(version) at \(settings.shownURL) is too old: shipyardd needs 13 or newer")
            }
            let present = try connection.exec("SELECT to_regclass('shipyard_migrations') IS NOT NULL").scalar == "t"
            guard present else {
                let create = try connection.exec("SELECT has_database_privilege(current_database(), 'CREATE')").scalar == "t"
                guard create else {
                    throw StoreError("the role cannot create tables in the database at \(settings.shownURL): make it the owner (ALTER DATABASE … OWNER TO …) or GRANT CREATE")
                }
                return "PostgreSQL \(version) at \(settings.shownURL): reached; the record's tables are made at the first start"
            }
            let applied = Set(try connection.exec("SELECT identifier FROM shipyard_migrations").rows.compactMap { $0[0] })
            let unknown = applied.subtracting(PostgresSchema.migrations.map(\.0)).sorted()
            guard unknown.isEmpty else {
                throw StoreError("the record at \(settings.shownURL) was written by a newer shipyardd (its schema has \(unknown.joined(separator: ", "))): run that version or a newer one on every host")
            }
            return "PostgreSQL \(version) at \(settings.shownURL): reached; the record is there"
        }
    }

    /// The epoch appends are fenced with; nil: this daemon does not lead, and appends are refused.
    public var fence: Fence? {
        get { fenceState.withLock { $0 } }
        set { fenceState.withLock { $0 = newValue } }
    }

    /// Told when an append is refused by the fence or its outcome is unknown: the daemon must
    /// stop acting at once.
    public var onLost: (@Sendable (String) -> Void)? {
        get { lostHandler.withLock { $0 } }
        set { lostHandler.withLock { $0 = newValue } }
    }

    /// Whether the database says this fence's lease is live now.
    public func holdsLease(_ fence: Fence) throws -> Bool {
        try with { connection in
            !(try connection.exec("""
                SELECT 1 FROM leader_lease WHERE name = 'delivery' AND holder = $1 AND epoch = $2 AND expires_at > clock_timestamp()
                """, [fence.holder, String(fence.epoch)]).rows.isEmpty)
        }
    }

    /// Throws `lost`, telling `onLost` first.
    func losing(_ lost: LeadershipLost) -> LeadershipLost {
        onLost?(lost.description)
        return lost
    }

    static func explained<T>(_ work: () throws -> T) throws -> T {
        do {
            return try work()
        } catch let error as PGError {
            throw StoreError("\(error.message)")
        }
    }

    /// The session (connected again first when it was lost), under the lock for `work`.
    func locked<T>(_ work: (PGConnection) throws -> T) throws -> T {
        lock.lock()
        defer { lock.unlock() }
        if current == nil || current!.isBroken {
            current = nil
            current = try Self.explained { try PGConnection(settings, application: application) }
        }
        return try work(current!)
    }

    /// Runs `work` (a read) on the session; PostgreSQL's errors are said with the record's
    /// address. A session the server ended (a restart, an administrator's pg_terminate_backend)
    /// is found only when used: the read is run once more on a new one.
    func with<T>(_ work: (PGConnection) throws -> T) throws -> T {
        for attempt in 1...2 {
            do {
                return try locked { connection in try work(connection) }
            } catch let error as PGError where error.connectionLost && attempt == 1 {
                continue
            } catch let error as PGError {
                throw StoreError("PostgreSQL at \(settings.shownURL): \(error.message)")
            }
        }
        throw StoreError("PostgreSQL at \(settings.shownURL): the session ended twice")
    }

    /// Runs `work` in one transaction (rolled back when it throws); run again on a new session
    /// when the server had ended the old one (nothing of it was committed then).
    func transaction<T>(_ work: (PGConnection) throws -> T) throws -> T {
        try with { connection in
            try connection.exec("BEGIN")
            do {
                let value = try work(connection)
                try connection.exec("COMMIT")
                return value
            } catch {
                connection.rollback()
                throw error
            }
        }
    }

    // MARK: Writing

    public func commit(events: [KeptnEvent], changes: [Engine.Change]) throws {
        guard !events.isEmpty || !changes.isEmpty else { return }
        guard let fence else { throw losing(LeadershipLost("this daemon does not hold the lease: nothing may be appended")) }
        let bodies = try events.map { String(decoding: try encoder.encode($0), as: UTF8.self) }
        // A session the server had ended fails at BEGIN, before anything was sent: once more on
        // a new session.
        for attempt in 1...2 where try append(events, bodies: bodies, changes: changes, fence: fence, retryable: attempt == 1) {
            return
        }
        throw StoreError("PostgreSQL at \(settings.shownURL): the session ended twice; nothing was appended")
    }

    /// One append transaction; false when it should be tried once more on a new session
    /// (`retryable`, and the session was found ended before anything of it was sent).
    private func append(_ events: [KeptnEvent], bodies: [String], changes: [Engine.Change], fence: Fence, retryable: Bool) throws -> Bool {
        try locked { connection in
            var committing = false
            var began = false
            do {
                try connection.exec("BEGIN")
                began = true
                if !unfenced {
                    let held = try connection.exec("""
                        SELECT epoch FROM leader_lease
                        WHERE name = 'delivery' AND holder = $1 AND epoch = $2 AND expires_at > clock_timestamp() FOR SHARE
                        """, [fence.holder, String(fence.epoch)])
                    guard !held.rows.isEmpty else {
                        connection.rollback()
                        throw losing(LeadershipLost("the lease of epoch \(fence.epoch) is no longer this daemon's: nothing was appended"))
                    }
                }
                if let pauseFile, unlink(pauseFile) == 0 {
                    FileManager.default.createFile(atPath: pauseFile + ".inside", contents: Data("\(fence.holder) \(fence.epoch)".utf8))
                    Thread.sleep(forTimeInterval: 1.5)
                }
                try Self.insert(events, bodies: bodies, epoch: fence.epoch, connection)
                try Self.upsert(changes, connection)
                committing = true
                try connection.exec("COMMIT")
                return true
            } catch let error as PGError {
                connection.rollback()
                if retryable && error.connectionLost && (!began || connection.isBroken) && !committing {
                    return false
                }
                if committing && error.connectionLost {
                    // It may have committed or not: only a new leader that reads the record
                    // back may go on.
                    throw losing(LeadershipLost("the session to PostgreSQL ended during COMMIT (\(error.message)): its outcome is unknown"))
                }
                if error.connectionLost {
                    // Rolled back by the server: nothing of it was appended, and the lease is
                    // still this daemon's as far as anyone knows; the next append connects
                    // again and checks the fence anew.
                    throw StoreError("the session to PostgreSQL at \(settings.shownURL) ended inside an append (\(error.message)): nothing of it was appended; connecting again")
                }
                throw StoreError("PostgreSQL at \(settings.shownURL): \(error.message)")
            }
        }
    }

    static func insert(_ events: [KeptnEvent], bodies: [String], epoch: Int64, _ connection: PGConnection) throws {
        guard !events.isEmpty else { return }
        let last = try connection.exec(
            "UPDATE record_position SET last = last + $1::bigint WHERE name = 'events' RETURNING last", [String(events.count)])
        guard let end = last.scalar.flatMap(Int64.init) else { throw PGError(message: "record_position has no row for events", connectionLost: false) }
        var position = end - Int64(events.count)
        for (event, body) in zip(events, bodies) {
            position += 1
            try connection.exec("""
                INSERT INTO events (position, epoch, id, context, type, triggeredid, time, project, stage, service, body)
                VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11)
                """, [
                    String(position), String(epoch), event.id, event.shkeptncontext, event.type, event.triggeredid, event.time,
                    event.data["project"]?.string, event.data["stage"]?.string, event.data["service"]?.string, body,
                ])
            try index(event, connection)
        }
    }

    /// The evaluations index, as `Evaluations.index` keeps it for SQLite.
    static func index(_ event: KeptnEvent, _ connection: PGConnection) throws {
        switch event.type {
        case Evaluations.finishedType where event.source == Evaluations.source:
            guard let triggered = event.triggeredid, let project = event.data["project"]?.string,
                let stage = event.data["stage"]?.string, let service = event.data["service"]?.string
            else { return }
            try connection.exec("""
                INSERT INTO evaluations (event_id, triggered_id, context, project, stage, service, time, result)
                VALUES ($1, $2, $3, $4, $5, $6, $7, $8) ON CONFLICT (event_id) DO NOTHING
                """, [event.id, triggered, event.shkeptncontext, project, stage, service, event.time, event.data["result"]?.string ?? "fail"])
        case Evaluations.invalidatedType:
            guard let triggered = event.triggeredid else { return }
            try connection.exec("UPDATE evaluations SET invalidated = true WHERE triggered_id = $1", [triggered])
        default:
            return
        }
    }

    static func upsert(_ changes: [Engine.Change], _ connection: PGConnection) throws {
        for change in changes {
            let s = StoredSequence(change)
            try connection.exec("""
                INSERT INTO sequences (id, context, project, stage, service, sequence, commit_id, state, active, result, status, message,
                    triggered_by, request_id, triggered_at, started_at, finished_at, queue_released_at, image)
                VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14, $15, $16, $17, $18, $19)
                ON CONFLICT (id) DO UPDATE SET state = excluded.state, active = excluded.active, result = excluded.result,
                    status = excluded.status, message = excluded.message, started_at = excluded.started_at,
                    finished_at = excluded.finished_at, queue_released_at = excluded.queue_released_at
                """, [
                    s.id, s.context, s.project, s.stage, s.service, s.sequence, s.commit, s.state.rawValue, s.isActive ? "true" : "false",
                    s.result?.rawValue, s.status?.rawValue, s.message, s.triggeredBy, s.requestID, PGValue.double(s.triggeredAt),
                    PGValue.double(s.startedAt), PGValue.double(s.finishedAt), PGValue.double(s.queueReleasedAt), s.image,
                ])
            for t in s.tasks {
                try connection.exec("""
                    INSERT INTO tasks (sequence_id, position, name, state, result, status, message, triggered_id, triggered_at, started_at, finished_at, due_at)
                    VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12)
                    ON CONFLICT (sequence_id, position) DO UPDATE SET state = excluded.state, result = excluded.result,
                        status = excluded.status, message = excluded.message, triggered_id = excluded.triggered_id,
                        triggered_at = excluded.triggered_at, started_at = excluded.started_at, finished_at = excluded.finished_at,
                        due_at = excluded.due_at
                    """, [
                        s.id, String(t.position), t.name, t.state, t.result?.rawValue, t.status?.rawValue, t.message, t.triggeredID,
                        PGValue.double(t.triggeredAt), PGValue.double(t.startedAt), PGValue.double(t.finishedAt), PGValue.double(t.dueAt),
                    ])
            }
        }
    }

    public func activeWork() throws -> ActiveWork {
        try transaction { connection in
            let decoder = JSONDecoder()
            let bodies = try connection.exec("""
                SELECT body FROM events WHERE context IN (SELECT context FROM sequences WHERE active) ORDER BY position
                """)
            let events = try bodies.rows.map { try decoder.decode(KeptnEvent.self, from: Data(($0[0] ?? "").utf8)) }
            var releases: [String: Date] = [:]
            for row in try connection.exec("SELECT id, queue_released_at FROM sequences WHERE active AND queue_released_at IS NOT NULL").rows {
                if let id = row[0], let date = PGValue.date(row[1]) { releases[id] = date }
            }
            return ActiveWork(events: events, queueReleases: releases)
        }
    }

    /// Retention is fenced like an append: only the leader removes history.
    public func removeHistory(endedBefore cutoff: Date, limit: Int) throws -> [String] {
        guard let fence else { throw losing(LeadershipLost("this daemon does not hold the lease: retention is the leader's")) }
        return try transaction { connection in
            if !unfenced {
                let held = try connection.exec("""
                    SELECT 1 FROM leader_lease WHERE name = 'delivery' AND holder = $1 AND epoch = $2 AND expires_at > clock_timestamp() FOR SHARE
                    """, [fence.holder, String(fence.epoch)])
                guard !held.rows.isEmpty else { throw losing(LeadershipLost("the lease of epoch \(fence.epoch) is no longer this daemon's")) }
            }
            let contexts = try connection.exec("""
                SELECT DISTINCT context FROM sequences AS s
                WHERE NOT active AND finished_at < $1::float8
                  AND NOT EXISTS (SELECT 1 FROM sequences AS o WHERE o.context = s.context AND (o.active OR o.finished_at >= $1::float8))
                LIMIT $2::bigint
                """, [PGValue.double(cutoff), String(limit)]).rows.compactMap { $0[0] }
            guard !contexts.isEmpty else { return [] }
            let list = contexts.indices.map { "$\($0 + 1)" }.joined(separator: ",")
            try connection.exec("DELETE FROM events WHERE context IN (\(list))", contexts)
            try connection.exec("DELETE FROM evaluations WHERE context IN (\(list))", contexts)
            try connection.exec("DELETE FROM tasks WHERE sequence_id IN (SELECT id FROM sequences WHERE context IN (\(list)))", contexts)
            try connection.exec("DELETE FROM sequences WHERE context IN (\(list))", contexts)
            return contexts
        }
    }

    /// PostgreSQL's autovacuum gives space back by itself.
    public func reclaimSpace(pages: Int) throws {}
}
