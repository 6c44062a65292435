import Foundation
import GRDB
import ShipyardCore

/// The store's reads: sequences, tasks, approvals and events, each one indexed query.
extension SQLiteStore {
    // MARK: Reading

    static let sequenceColumns = """
        id, context, project, stage, service, sequence, commit_id, state, result, status, message, triggered_by, request_id,
        triggered_at, started_at, finished_at, queue_released_at, position, image
        """

    static func date(_ row: Row, _ column: String) -> Date? {
        (row[column] as Double?).map(Date.init(timeIntervalSince1970:))
    }

    static func sequence(_ row: Row) -> StoredSequence {
        func date(_ column: String) -> Date? { Self.date(row, column) }
        return StoredSequence(
            id: row["id"], context: row["context"], project: row["project"], stage: row["stage"], service: row["service"],
            sequence: row["sequence"], commit: row["commit_id"], state: SequenceState(rawValue: row["state"]) ?? .finished,
            result: (row["result"] as String?).flatMap(TaskResult.init), status: (row["status"] as String?).flatMap(TaskStatus.init),
            message: row["message"], triggeredBy: row["triggered_by"], requestID: row["request_id"],
            triggeredAt: date("triggered_at") ?? Date(timeIntervalSince1970: 0), startedAt: date("started_at"), finishedAt: date("finished_at"),
            queueReleasedAt: date("queue_released_at"), image: row["image"])
    }

    static func task(_ row: Row) -> StoredTask {
        func date(_ column: String) -> Date? { Self.date(row, column) }
        return StoredTask(
            position: row["position"], name: row["name"], state: row["state"], result: (row["result"] as String?).flatMap(TaskResult.init),
            status: (row["status"] as String?).flatMap(TaskStatus.init), message: row["message"], triggeredID: row["triggered_id"],
            triggeredAt: date("triggered_at"), startedAt: date("started_at"), finishedAt: date("finished_at"), dueAt: date("due_at"))
    }

    static func withTasks(_ sequences: [StoredSequence], _ db: Database) throws -> [StoredSequence] {
        var filled = sequences
        let statement = try db.cachedStatement(sql: "SELECT * FROM tasks WHERE sequence_id = ? ORDER BY position")
        for index in filled.indices {
            filled[index].tasks = try Row.fetchAll(statement, arguments: [filled[index].id]).map(task)
        }
        return filled
    }

    public func sequences(_ query: SequenceQuery) throws -> SequencePage {
        var conditions: [String] = []
        var arguments: [(any DatabaseValueConvertible)?] = []
        if let project = query.project { conditions.append("project = ?"); arguments.append(project) }
        if let service = query.service { conditions.append("service = ?"); arguments.append(service) }
        if let state = query.state { conditions.append("state = ?"); arguments.append(state.rawValue) }
        if let stage = query.stage { conditions.append("stage = ?"); arguments.append(stage) }
        if let image = query.image {
            conditions.append("instr(image, ?) > 0")
            arguments.append(image)
        }
        if let since = query.since { conditions.append("triggered_at >= ?"); arguments.append(since.timeIntervalSince1970) }
        let filter = conditions.isEmpty ? "1" : conditions.joined(separator: " AND ")
        return try run {
            try pool.read { db in
                guard let limit = query.limit else {
                    let rows = try Row.fetchAll(db, sql: "SELECT \(Self.sequenceColumns) FROM sequences WHERE \(filter) ORDER BY position",
                                                arguments: StatementArguments(arguments))
                    return SequencePage(sequences: rows.map(Self.sequence), more: false)
                }
                var rows = try Row.fetchAll(
                    db, sql: "SELECT \(Self.sequenceColumns) FROM sequences WHERE \(filter) ORDER BY position DESC LIMIT ?",
                    arguments: StatementArguments(arguments + [limit + 1]))
                let more = rows.count > limit
                rows = Array(rows.prefix(limit))
                // Active sequences are shown however old they are.
                let oldest: Int64 = rows.last?["position"] ?? Int64.max
                let older = try Row.fetchAll(
                    db, sql: "SELECT \(Self.sequenceColumns) FROM sequences WHERE active = 1 AND position < ? AND \(filter) ORDER BY position",
                    arguments: StatementArguments([oldest] + arguments))
                return SequencePage(sequences: (older + rows.reversed()).map(Self.sequence), more: more)
            }
        }
    }

    public func sequences(context: String) throws -> [StoredSequence] {
        try run {
            try pool.read { db in
                let rows = try Row.fetchAll(
                    db, sql: "SELECT \(Self.sequenceColumns) FROM sequences WHERE context = ? ORDER BY position", arguments: [context])
                return try Self.withTasks(rows.map(Self.sequence), db)
            }
        }
    }

    public func sequence(forRequest id: String) throws -> StoredSequence? {
        try run {
            try pool.read { db in
                try Row.fetchOne(
                    db, sql: "SELECT \(Self.sequenceColumns) FROM sequences WHERE request_id = ? ORDER BY position LIMIT 1", arguments: [id]
                ).map(Self.sequence)
            }
        }
    }

    public func task(triggeredID: String) throws -> (sequence: StoredSequence, task: StoredTask)? {
        try run {
            try pool.read { db in
                guard let row = try Row.fetchOne(db, sql: "SELECT * FROM tasks WHERE triggered_id = ?", arguments: [triggeredID]) else { return nil }
                let sequenceID: String = row["sequence_id"]
                guard let owner = try Row.fetchOne(
                    db, sql: "SELECT \(Self.sequenceColumns) FROM sequences WHERE id = ?", arguments: [sequenceID])
                else { return nil }
                return (try Self.withTasks([Self.sequence(owner)], db)[0], Self.task(row))
            }
        }
    }

    public func approvals(idPrefix prefix: String, limit: Int) throws -> [(sequence: StoredSequence, task: StoredTask)] {
        try run {
            try pool.read { db in
                // A range on the index: the prefix, up to the prefix followed by the highest character.
                let rows = try Row.fetchAll(db, sql: """
                    SELECT * FROM tasks WHERE triggered_id >= ? AND triggered_id < ? AND name = 'approval' LIMIT ?
                    """, arguments: [prefix, prefix + "\u{10FFFF}", limit])
                return try rows.compactMap { row -> (StoredSequence, StoredTask)? in
                    let sequenceID: String = row["sequence_id"]
                    guard let owner = try Row.fetchOne(
                        db, sql: "SELECT \(Self.sequenceColumns) FROM sequences WHERE id = ?", arguments: [sequenceID])
                    else { return nil }
                    return (Self.sequence(owner), Self.task(row))
                }
            }
        }
    }

    public func containsEvent(id: String) throws -> Bool {
        try run { try pool.read { db in try Bool.fetchOne(db, sql: "SELECT EXISTS (SELECT 1 FROM events WHERE id = ?)", arguments: [id]) ?? false } }
    }

    public func events(context: String?, type: String?, after: Int64, limit: Int) throws -> [RecordedEvent] {
        var conditions = ["position > ?"]
        var arguments: [(any DatabaseValueConvertible)?] = [after]
        if let context { conditions.append("context = ?"); arguments.append(context) }
        if let type {
            // The type, or a type ending in ".type": a suffix compared as text, not a LIKE pattern.
            conditions.append("(type = ? OR substr(type, -length(?)) = ?)")
            arguments += [type, "." + type, "." + type]
        }
        return try run {
            try pool.read { db in
                let rows = try Row.fetchAll(
                    db, sql: "SELECT position, context, body FROM events WHERE \(conditions.joined(separator: " AND ")) ORDER BY position LIMIT ?",
                    arguments: StatementArguments(arguments + [limit]))
                return rows.map { RecordedEvent(position: $0[0], context: $0[1], json: Data(($0[2] as String).utf8)) }
            }
        }
    }

    public func openTasks(_ query: OpenTaskQuery) throws -> [RecordedEvent] {
        let conditions = query.conditions
        return try run {
            try pool.read { db in
                let rows = try Row.fetchAll(
                    db,
                    sql: """
                        SELECT e.position, e.context, e.body FROM tasks t
                        JOIN sequences s ON s.id = t.sequence_id
                        JOIN events e ON e.id = t.triggered_id
                        WHERE t.state IN ('triggered', 'started') AND s.active = 1 AND \(conditions.map(\.0).joined(separator: " AND "))
                        ORDER BY e.position LIMIT ?
                        """,
                    arguments: StatementArguments(conditions.map(\.1) + [String(query.limit)]))
                return rows.map { RecordedEvent(position: $0[0], context: $0[1], json: Data(($0[2] as String).utf8)) }
            }
        }
    }

    public func eventsNewestFirst(_ query: EventQuery) throws -> (events: [RecordedEvent], total: Int) {
        let conditions = query.conditions
        let filter = conditions.isEmpty ? "1" : conditions.map(\.0).joined(separator: " AND ")
        let values = conditions.map(\.1)
        return try run {
            try pool.read { db in
                let total = try Int.fetchOne(db, sql: "SELECT count(*) FROM events WHERE \(filter)", arguments: StatementArguments(values)) ?? 0
                let rows = try Row.fetchAll(
                    db, sql: "SELECT position, context, body FROM events WHERE \(filter) AND position < ? ORDER BY position DESC LIMIT ?",
                    arguments: StatementArguments(values + [String(query.before ?? Int64.max), String(query.limit)]))
                return (rows.map { RecordedEvent(position: $0[0], context: $0[1], json: Data(($0[2] as String).utf8)) }, total)
            }
        }
    }

    public func hasDelivered(project: String, service: String) throws -> Bool {
        try run {
            try pool.read { db in
                try Bool.fetchOne(db, sql: "SELECT EXISTS (SELECT 1 FROM sequences WHERE service = ? AND project = ?)", arguments: [service, project]) ?? false
            }
        }
    }

    public func services(project: String, limit: Int) throws -> [String] {
        try run {
            try pool.read { db in
                try String.fetchAll(db, sql: "SELECT DISTINCT service FROM sequences WHERE project = ? ORDER BY service LIMIT ?", arguments: [project, limit])
            }
        }
    }

    public func newestPerStage(deployed: Bool) throws -> [StoredSequence] {
        let filter = deployed ? "WHERE state = 'finished' AND result IN ('pass', 'warning')" : ""
        return try run {
            try pool.read { db in
                // One pass over the slot index (project, service, stage, position).
                try Row.fetchAll(db, sql: """
                    SELECT \(Self.sequenceColumns) FROM sequences WHERE position IN
                      (SELECT MAX(position) FROM sequences \(filter) GROUP BY project, service, stage)
                    ORDER BY project, service, position
                    """).map(Self.sequence)
            }
        }
    }

    public func contexts(prefix: String, limit: Int) throws -> [String] {
        try run {
            try pool.read { db in
                // A range on the index, as approvals(idPrefix:) reads.
                try String.fetchAll(
                    db, sql: "SELECT DISTINCT context FROM sequences WHERE context >= ? AND context < ? LIMIT ?",
                    arguments: [prefix, prefix + "\u{10FFFF}", limit])
            }
        }
    }
}
