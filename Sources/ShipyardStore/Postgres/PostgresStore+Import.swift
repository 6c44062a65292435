public import Foundation
import GRDB

/// One host's SQLite record copied into an empty shared PostgreSQL record (`shipyardd
/// --import-record`), so that a move from one host to several keeps the history: every event
/// (renumbered from 1 in their order: the shared record's positions have no gap), every
/// sequence with its tasks, every evaluation. It runs under a lease of its own (the next epoch),
/// so that no daemon leads meanwhile, in one transaction: all of it or nothing.
public struct RecordImport: Sendable {
    public struct Report: Sendable, Equatable {
        public var events = 0
        public var sequences = 0
        public var tasks = 0
        public var evaluations = 0
        public var epoch: Int64 = 0
    }

    public let sqlite: String
    public let settings: PostgresSettings

    public init(sqlite: String, settings: PostgresSettings) {
        self.sqlite = sqlite
        self.settings = settings
    }

    /// Rows per INSERT.
    static let batch = 200

    public func run() throws -> Report {
        let source = try SQLiteStore(readingAt: sqlite)
        // Made (or brought up to date) as a daemon would.
        _ = try PostgresStore(settings, application: "shipyardd-import")
        let lease = PostgresLease(settings, duration: 60)
        guard let fence = try lease.take() else {
            throw StoreError("a daemon leads the shared record at \(settings.shownURL): stop every shipyardd that uses it, then import")
        }
        defer { lease.release(fence) }
        let connection = try PGConnection(settings, application: "shipyardd-import", statementTimeout: 600_000)
        var report = Report(epoch: fence.epoch)
        try connection.exec("BEGIN")
        do {
            // Reading the next rows from SQLite (a slow disk) is no idle transaction to end.
            try connection.exec("SET LOCAL idle_in_transaction_session_timeout = 0")
            guard try connection.exec("""
                SELECT 1 FROM leader_lease WHERE name = 'delivery' AND holder = $1 AND epoch = $2 AND expires_at > clock_timestamp() FOR SHARE
                """, [fence.holder, String(fence.epoch)]).rows.count == 1
            else { throw StoreError("the import's lease ran out before it began: try again") }
            let held = try connection.exec("SELECT (SELECT last FROM record_position WHERE name = 'events') + (SELECT count(*) FROM sequences)").scalar
            guard held == "0" else {
                throw StoreError("the shared record at \(settings.shownURL) already holds history: an import goes only into an empty one")
            }
            try source.pool.read { db in
                var position = 0
                try copy(db, "SELECT id, context, type, triggeredid, time, project, stage, service, body FROM events ORDER BY position", into: connection,
                         insert: "INSERT INTO events (position, epoch, id, context, type, triggeredid, time, project, stage, service, body) VALUES ") { row in
                    position += 1
                    return [String(position), String(fence.epoch)] + row
                }
                report.events = position
                try connection.exec("UPDATE record_position SET last = $1 WHERE name = 'events'", [String(position)])
                report.sequences = try copy(db, """
                    SELECT position, id, context, project, stage, service, sequence, commit_id, state, CASE active WHEN 0 THEN 'false' ELSE 'true' END,
                        result, status, message, triggered_by, request_id, triggered_at, started_at, finished_at, queue_released_at, image
                    FROM sequences ORDER BY position
                    """, into: connection, insert: """
                    INSERT INTO sequences (position, id, context, project, stage, service, sequence, commit_id, state, active, result, status, message,
                        triggered_by, request_id, triggered_at, started_at, finished_at, queue_released_at, image) OVERRIDING SYSTEM VALUE VALUES
                    """)
                report.tasks = try copy(db, """
                    SELECT sequence_id, position, name, state, result, status, message, triggered_id, triggered_at, started_at, finished_at, due_at
                    FROM tasks ORDER BY sequence_id, position
                    """, into: connection, insert: """
                    INSERT INTO tasks (sequence_id, position, name, state, result, status, message, triggered_id, triggered_at, started_at, finished_at, due_at) VALUES
                    """)
                report.evaluations = try copy(db, """
                    SELECT position, event_id, triggered_id, context, project, stage, service, time, result, CASE invalidated WHEN 0 THEN 'false' ELSE 'true' END
                    FROM evaluations ORDER BY position
                    """, into: connection, insert: """
                    INSERT INTO evaluations (position, event_id, triggered_id, context, project, stage, service, time, result, invalidated) OVERRIDING SYSTEM VALUE VALUES
                    """)
            }
            // The next sequence or evaluation is numbered after the copied ones.
            for table in ["sequences", "evaluations"] {
                try connection.exec("SELECT setval(pg_get_serial_sequence('\(table)', 'position'), coalesce((SELECT max(position) FROM \(table)), 0) + 1, false)")
            }
            try connection.exec("COMMIT")
        } catch {
            connection.rollback()
            throw error
        }
        return report
    }

    /// Copies the rows `select` reads into the INSERT `insert` (its VALUES lists appended), a
    /// batch at a time; `map` may change each row's values. Returns the rows copied.
    @discardableResult
    func copy(_ db: Database, _ select: String, into connection: PGConnection, insert: String, map: ([String?]) -> [String?] = { $0 }) throws -> Int {
        var rows: [[String?]] = []
        var count = 0
        func flush() throws {
            guard !rows.isEmpty else { return }
            var parameters: [String?] = []
            let lists = rows.map { row -> String in
                let start = parameters.count
                parameters.append(contentsOf: row)
                return "(" + (1...row.count).map { "$\(start + $0)" }.joined(separator: ", ") + ")"
            }
            try connection.exec(insert + " " + lists.joined(separator: ", "), parameters)
            count += rows.count
            rows = []
        }
        let cursor = try Row.fetchCursor(db, sql: select)
        while let row = try cursor.next() {
            rows.append(map(row.databaseValues.map(Self.text)))
            if rows.count == Self.batch { try flush() }
        }
        try flush()
        return count
    }

    static func text(_ value: DatabaseValue) -> String? {
        switch value.storage {
        case .null: nil
        case .int64(let number): String(number)
        case .double(let number): String(number)
        case .string(let string): string
        case .blob(let data): String(decoding: data, as: UTF8.self)
        }
    }
}
