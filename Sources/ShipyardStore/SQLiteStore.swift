public import Foundation
import GRDB
import GRDBSQLite
public import ShipyardCore

/// The store in one SQLite file (`<state>/shipyard.db`, with its -wal and -shm files), in WAL mode: the daemon is its
/// only writer and commits with `synchronous=FULL`; the CLI opens it read-only and never
/// blocks the daemon. The tables answer the questions asked of them through indexes, so that
/// every read and write costs the same after years of history as on the first day.
public final class SQLiteStore: Store {
    public let path: String
    let pool: DatabasePool
    let encoder: JSONEncoder

    /// The schema this build knows: numbered migrations, applied in order, never edited once
    /// released. A database that has one this build does not know is from a newer shipyardd.
    static var migrator: DatabaseMigrator {
        var migrator = DatabaseMigrator()
        migrator.registerMigration("1-events-sequences-tasks") { db in
            try db.execute(sql: """
                CREATE TABLE events (
                    position INTEGER PRIMARY KEY,
                    id TEXT NOT NULL UNIQUE,
                    context TEXT NOT NULL,
                    type TEXT NOT NULL,
                    triggeredid TEXT,
                    time TEXT NOT NULL,
                    project TEXT,
                    stage TEXT,
                    service TEXT,
                    body TEXT NOT NULL
                );
                CREATE INDEX events_by_context ON events(context, position);
                CREATE INDEX events_by_triggeredid ON events(triggeredid) WHERE triggeredid IS NOT NULL;

                CREATE TABLE sequences (
                    position INTEGER PRIMARY KEY,
                    id TEXT NOT NULL UNIQUE,
                    context TEXT NOT NULL,
                    project TEXT NOT NULL,
                    stage TEXT NOT NULL,
                    service TEXT NOT NULL,
                    sequence TEXT NOT NULL,
                    commit_id TEXT,
                    state TEXT NOT NULL,
                    active INTEGER NOT NULL,
                    result TEXT,
                    status TEXT,
                    message TEXT,
                    triggered_by TEXT,
                    request_id TEXT,
                    triggered_at REAL NOT NULL,
                    started_at REAL,
                    finished_at REAL,
                    queue_released_at REAL
                );
                CREATE INDEX sequences_by_context ON sequences(context);
                CREATE INDEX sequences_active ON sequences(context) WHERE active = 1;
                CREATE INDEX sequences_by_project ON sequences(project, position);
                CREATE INDEX sequences_by_service ON sequences(service, position);
                CREATE INDEX sequences_by_state ON sequences(state, position);
                CREATE INDEX sequences_by_triggered_at ON sequences(triggered_at);
                CREATE INDEX sequences_ended ON sequences(finished_at) WHERE active = 0;
                CREATE INDEX sequences_by_request ON sequences(request_id) WHERE request_id IS NOT NULL;

                CREATE TABLE tasks (
                    sequence_id TEXT NOT NULL,
                    position INTEGER NOT NULL,
                    name TEXT NOT NULL,
                    state TEXT NOT NULL,
                    result TEXT,
                    status TEXT,
                    message TEXT,
                    triggered_id TEXT,
                    triggered_at REAL,
                    started_at REAL,
                    finished_at REAL,
                    PRIMARY KEY (sequence_id, position)
                ) WITHOUT ROWID;
                CREATE UNIQUE INDEX tasks_by_triggered_id ON tasks(triggered_id) WHERE triggered_id IS NOT NULL;

                CREATE TABLE meta (key TEXT PRIMARY KEY, value TEXT NOT NULL) WITHOUT ROWID;
                """)
        }
        // Quality gates: one row per lighthouse evaluation.finished, so that the comparison with
        // previous evaluations reads only the few rows it compares with.
        migrator.registerMigration("2-evaluations") { db in
            try db.execute(sql: """
                CREATE TABLE evaluations (
                    position INTEGER PRIMARY KEY,
                    event_id TEXT NOT NULL UNIQUE,
                    triggered_id TEXT NOT NULL,
                    context TEXT NOT NULL,
                    project TEXT NOT NULL,
                    stage TEXT NOT NULL,
                    service TEXT NOT NULL,
                    time TEXT NOT NULL,
                    result TEXT NOT NULL,
                    invalidated INTEGER NOT NULL DEFAULT 0
                );
                CREATE INDEX evaluations_by_service ON evaluations(project, stage, service, position);
                CREATE INDEX evaluations_by_triggered_id ON evaluations(triggered_id);
                CREATE INDEX evaluations_by_context ON evaluations(context);
                """)
            // Evaluations recorded before this table existed (none from shipyardd's own lighthouse).
            try db.execute(sql: """
                INSERT INTO evaluations (event_id, triggered_id, context, project, stage, service, time, result)
                SELECT id, triggeredid, context, project, stage, service, time, json_extract(body, '$.data.result') FROM events
                WHERE type = '\(Evaluations.finishedType)' AND json_extract(body, '$.source') = '\(Evaluations.source)'
                  AND triggeredid IS NOT NULL AND project IS NOT NULL AND stage IS NOT NULL AND service IS NOT NULL
                ORDER BY position
                """)
        }
        // When a task held back by triggeredAfter will start, so that a listing can say why a
        // sequence waits without the shipyard at hand; and an index for the environment screen.
        migrator.registerMigration("3-task-due-at") { db in
            try db.execute(sql: "ALTER TABLE tasks ADD COLUMN due_at REAL")
            // The environment screen: the newest sequence per project, service and stage, and the
            // newest that finished well (what runs there).
            try db.execute(sql: "CREATE INDEX sequences_by_slot ON sequences(project, service, stage, position)")
            try db.execute(sql: """
                CREATE INDEX sequences_deployed ON sequences(project, service, stage, position)
                WHERE state = 'finished' AND result IN ('pass', 'warning')
                """)
            // The artifact of each sequence, for listings and the version filter without reading
            // its trigger event.
            try db.execute(sql: "ALTER TABLE sequences ADD COLUMN image TEXT")
            try db.execute(sql: """
                UPDATE sequences SET image = (SELECT json_extract(events.body, '$.data.configurationChange.values.image')
                FROM events WHERE events.id = sequences.id)
                """)
        }
        // The tasks integrations poll for (Keptn's open `.triggered` events): found by name among
        // the open ones, whatever the length of the history.
        migrator.registerMigration("4-open-tasks") { db in
            try db.execute(sql: "CREATE INDEX tasks_open ON tasks(name) WHERE state IN ('triggered', 'started')")
        }
        return migrator
    }

    /// Makes an empty database file only the daemon's user may open, before SQLite opens it:
    /// SQLite gives its -wal and -shm files the same mode.
    static func createPrivately(_ path: String) throws {
        let fd = open(path, O_WRONLY | O_CREAT | O_EXCL | O_NOFOLLOW | O_CLOEXEC, 0o600)
        guard fd >= 0 else { throw StoreError("cannot create \(path): \(String(cString: strerror(errno)))") }
        fchmod(fd, 0o600)
        close(fd)
    }

    /// The most the -wal keeps between checkpoints (journal_size_limit).
    static let walLimit = 64 * 1024 * 1024

    /// Opens (creating it if need be) the store for the daemon, the only writer.
    public init(writingAt path: String) throws {
        self.path = path
        encoder = JSONEncoder()
        encoder.outputFormatting = [.sortedKeys, .withoutEscapingSlashes]
        let existed = FileManager.default.fileExists(atPath: path)
        if existed {
            try Self.checkHeader(path)
        } else {
            try Self.createPrivately(path)
        }
        var configuration = Configuration()
        configuration.busyMode = .timeout(10)
        configuration.label = "shipyard-store"
        configuration.prepareDatabase { db in
            if db.configuration.readonly { return }
            // Free pages go back to the file system in small steps (reclaimSpace); set before
            // the first table exists, as SQLite requires.
            try db.execute(sql: "PRAGMA auto_vacuum = INCREMENTAL")
            try db.execute(sql: "PRAGMA synchronous = FULL")
            // A checkpoint leaves the -wal at most this large, whatever a burst made it.
            try db.execute(sql: "PRAGMA journal_size_limit = \(Self.walLimit)")
            // The -wal and -shm files stay when the daemon closes the database, so that the
            // CLI, which may not create files here, can always open it read-only.
            var flag: CInt = 1
            let code = withUnsafeMutablePointer(to: &flag) { sqlite3_file_control(db.sqliteConnection, nil, SQLITE_FCNTL_PERSIST_WAL, $0) }
            guard code == SQLITE_OK else { throw DatabaseError(resultCode: ResultCode(rawValue: code)) }
        }
        do {
            pool = try DatabasePool(path: path, configuration: configuration)
            let migrator = Self.migrator
            if try pool.read(migrator.hasBeenSuperseded) {
                throw StoreError(Self.newerMessage(path, known: try pool.read(migrator.appliedIdentifiers)))
            }
            try migrator.migrate(pool)
            // Whatever the -wal grew to before (a reader that held it open, a crash), it starts
            // small: everything in it goes into the database, and it is truncated.
            try pool.writeWithoutTransaction { db in _ = try Row.fetchAll(db, sql: "PRAGMA wal_checkpoint(TRUNCATE)") }
            // Reads what start-up reads, so that a damaged file is found now, not later.
            _ = try pool.read { db in try Int.fetchOne(db, sql: "SELECT count(*) FROM sequences WHERE active = 1") }
        } catch let error as DatabaseError {
            throw StoreError(Self.explain(error, path: path))
        }
    }

    /// Opens the store read-only (the CLI): never creates, changes or locks out anything.
    public init(readingAt path: String) throws {
        self.path = path
        encoder = JSONEncoder()
        guard FileManager.default.fileExists(atPath: path) else {
            throw StoreError("no event record at \(path) yet: shipyardd creates it when it first starts")
        }
        try Self.checkHeader(path)
        var configuration = Configuration()
        configuration.readonly = true
        configuration.busyMode = .timeout(5)
        configuration.label = "shipyard-store-reader"
        configuration.maximumReaderCount = 1
        do {
            pool = try DatabasePool(path: path, configuration: configuration)
            let migrator = Self.migrator
            try pool.read { db in
                if try migrator.hasBeenSuperseded(db) {
                    throw StoreError(Self.newerMessage(path, known: try migrator.appliedIdentifiers(db)))
                }
                guard try migrator.hasCompletedMigrations(db) else {
                    throw StoreError("\(path) is from an older shipyardd and not upgraded yet: start shipyardd once, it upgrades it")
                }
            }
        } catch let error as DatabaseError {
            throw StoreError(Self.explain(error, path: path))
        }
    }

    static func newerMessage(_ path: String, known: Set<String>) -> String {
        let mine = Set(migrator.migrations)
        let unknown = known.subtracting(mine).sorted()
        return "\(path) was written by a newer shipyardd (its schema has \(unknown.joined(separator: ", ")), which this one does not know): "
            + "run that version or a newer one; this one will not use it, so that nothing in it is lost"
    }

    /// A file that is not an SQLite database, or one shorter than its header says, is refused
    /// before SQLite may take it for an empty one.
    static func checkHeader(_ path: String) throws {
        guard let handle = FileHandle(forReadingAtPath: path) else {
            throw StoreError("cannot read \(path): \(String(cString: strerror(errno))); check its owner and mode (the daemon's user owns it)")
        }
        defer { try? handle.close() }
        let header = (try? handle.read(upToCount: 100)) ?? Data()
        if header.isEmpty { return }  // created but never written: SQLite initializes it
        let magic = Data("SQLite format 3\0".utf8)
        guard header.count == 100, header.prefix(16) == magic else {
            throw StoreError(damaged(path, "it is not an SQLite database (its first bytes are not SQLite's header)"))
        }
        func be32(_ at: Int) -> UInt32 { header[at..<at + 4].reduce(0) { $0 << 8 | UInt32($1) } }
        var pageSize = Int(UInt16(header[16]) << 8 | UInt16(header[17]))
        if pageSize == 1 { pageSize = 65536 }
        let pages = Int(be32(28))
        // The page count in the header is valid when the change counter matches (SQLite ≥ 3.7).
        guard be32(24) == be32(92), pages > 0, let size = (try? FileManager.default.attributesOfItem(atPath: path))?[.size] as? Int
        else { return }
        if size < pages * pageSize {
            throw StoreError(damaged(path, "it is \(size) bytes long, but its header says \(pages * pageSize): it was cut short"))
        }
    }

    static func damaged(_ path: String, _ what: String) -> String {
        "the event record \(path) is damaged: \(what). shipyardd will not start over it. Restore it from a backup, "
            + "or move it aside (mv \(path) \(path).damaged, and its -wal and -shm files likewise) to start with an empty history; "
            + "'sqlite3 \(path) .recover' may save what is readable"
    }

    static func explain(_ error: DatabaseError, path: String) -> String {
        switch error.resultCode {
        case .SQLITE_CORRUPT, .SQLITE_NOTADB:
            return damaged(path, error.message ?? "\(error)")
        case .SQLITE_FULL:
            return "cannot write \(path): the disk is full (\(error.message ?? "")); free space"
        case .SQLITE_CANTOPEN, .SQLITE_READONLY, .SQLITE_PERM, .SQLITE_AUTH:
            return "cannot open \(path): \(error.message ?? "\(error)"); check the owner and mode of the file and of its -wal and -shm files"
        default:
            return "\(path): \(error.message ?? "\(error)")"
        }
    }

    func run<T>(_ work: () throws -> T) throws -> T {
        do {
            return try work()
        } catch let error as DatabaseError {
            throw StoreError(Self.explain(error, path: path))
        }
    }

    // MARK: Writing

    public func commit(events: [KeptnEvent], changes: [Engine.Change]) throws {
        guard !events.isEmpty || !changes.isEmpty else { return }
        let bodies = try events.map { String(decoding: try encoder.encode($0), as: UTF8.self) }
        try run {
            try pool.write { db in
                try Self.insert(events, bodies: bodies, db)
                try Self.upsert(changes, db)
            }
        }
    }

    static func insert(_ events: [KeptnEvent], bodies: [String], _ db: Database) throws {
        let statement = try db.cachedStatement(sql: """
            INSERT INTO events (id, context, type, triggeredid, time, project, stage, service, body) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)
            """)
        for (event, body) in zip(events, bodies) {
            try statement.execute(arguments: [
                event.id, event.shkeptncontext, event.type, event.triggeredid, event.time, event.data["project"]?.string,
                event.data["stage"]?.string, event.data["service"]?.string, body,
            ])
            try Evaluations.index(event, db)
        }
    }

    static func upsert(_ changes: [Engine.Change], _ db: Database) throws {
        let sequence = try db.cachedStatement(sql: """
            INSERT INTO sequences (id, context, project, stage, service, sequence, commit_id, state, active, result, status, message,
                triggered_by, request_id, triggered_at, started_at, finished_at, queue_released_at, image)
            VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)
            ON CONFLICT (id) DO UPDATE SET state = excluded.state, active = excluded.active, result = excluded.result,
                status = excluded.status, message = excluded.message, started_at = excluded.started_at,
                finished_at = excluded.finished_at, queue_released_at = excluded.queue_released_at
            """)
        let task = try db.cachedStatement(sql: """
            INSERT INTO tasks (sequence_id, position, name, state, result, status, message, triggered_id, triggered_at, started_at, finished_at, due_at)
            VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)
            ON CONFLICT (sequence_id, position) DO UPDATE SET state = excluded.state, result = excluded.result,
                status = excluded.status, message = excluded.message, triggered_id = excluded.triggered_id,
                triggered_at = excluded.triggered_at, started_at = excluded.started_at, finished_at = excluded.finished_at,
                due_at = excluded.due_at
            """)
        for change in changes {
            let s = StoredSequence(change)
            try sequence.execute(arguments: [
                s.id, s.context, s.project, s.stage, s.service, s.sequence, s.commit, s.state.rawValue, s.isActive ? 1 : 0,
                s.result?.rawValue, s.status?.rawValue, s.message, s.triggeredBy, s.requestID, s.triggeredAt.timeIntervalSince1970,
                s.startedAt?.timeIntervalSince1970, s.finishedAt?.timeIntervalSince1970, s.queueReleasedAt?.timeIntervalSince1970, s.image,
            ])
            for t in s.tasks {
                try task.execute(arguments: [
                    s.id, t.position, t.name, t.state, t.result?.rawValue, t.status?.rawValue, t.message, t.triggeredID,
                    t.triggeredAt?.timeIntervalSince1970, t.startedAt?.timeIntervalSince1970, t.finishedAt?.timeIntervalSince1970,
                    t.dueAt?.timeIntervalSince1970,
                ])
            }
        }
    }

    public func activeWork() throws -> ActiveWork {
        try run {
            try pool.read { db in
                let decoder = JSONDecoder()
                var events: [KeptnEvent] = []
                let rows = try Row.fetchCursor(db, sql: """
                    SELECT body FROM events WHERE context IN (SELECT context FROM sequences WHERE active = 1) ORDER BY position
                    """)
                while let row = try rows.next() {
                    let body: String = row[0]
                    events.append(try decoder.decode(KeptnEvent.self, from: Data(body.utf8)))
                }
                var releases: [String: Date] = [:]
                for row in try Row.fetchAll(db, sql: "SELECT id, queue_released_at FROM sequences WHERE active = 1 AND queue_released_at IS NOT NULL") {
                    releases[row[0]] = Date(timeIntervalSince1970: row[1])
                }
                return ActiveWork(events: events, queueReleases: releases)
            }
        }
    }

    public func removeHistory(endedBefore cutoff: Date, limit: Int) throws -> [String] {
        try run {
            try pool.write { db in
                let contexts = try String.fetchAll(db, sql: """
                    SELECT DISTINCT context FROM sequences AS s INDEXED BY sequences_ended
                    WHERE active = 0 AND finished_at < :cutoff
                      AND NOT EXISTS (SELECT 1 FROM sequences AS o WHERE o.context = s.context AND (o.active = 1 OR o.finished_at >= :cutoff))
                    LIMIT :limit
                    """, arguments: ["cutoff": cutoff.timeIntervalSince1970, "limit": limit])
                guard !contexts.isEmpty else { return [] }
                let list = contexts.map { _ in "?" }.joined(separator: ",")
                let arguments = StatementArguments(contexts)
                try db.execute(sql: "DELETE FROM events WHERE context IN (\(list))", arguments: arguments)
                try db.execute(sql: "DELETE FROM evaluations WHERE context IN (\(list))", arguments: arguments)
                try db.execute(sql: "DELETE FROM tasks WHERE sequence_id IN (SELECT id FROM sequences WHERE context IN (\(list)))", arguments: arguments)
                try db.execute(sql: "DELETE FROM sequences WHERE context IN (\(list))", arguments: arguments)
                return contexts
            }
        }
    }

    public func reclaimSpace(pages: Int) throws {
        try run {
            try pool.writeWithoutTransaction { db in
                try db.execute(sql: "PRAGMA incremental_vacuum(\(max(1, pages)))")
            }
        }
    }

    /// Moves everything in the -wal file into the database file and empties the -wal file.
    public func checkpoint() throws {
        try run {
            try pool.writeWithoutTransaction { db in _ = try db.checkpoint(.truncate) }
        }
    }

    /// A value kept beside the record (the import of an old journal, for one).
    public func meta(_ key: String) throws -> String? {
        try run { try pool.read { db in try String.fetchOne(db, sql: "SELECT value FROM meta WHERE key = ?", arguments: [key]) } }
    }

    /// Size figures for `make bench` and the logs.
    public func pageCounts() throws -> (pages: Int, free: Int) {
        try run {
            try pool.read { db in
                (try Int.fetchOne(db, sql: "PRAGMA page_count") ?? 0, try Int.fetchOne(db, sql: "PRAGMA freelist_count") ?? 0)
            }
        }
    }
}
