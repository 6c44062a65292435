import Foundation
public import ShipyardCore

/// The reads, each the SQLite store's query in PostgreSQL's words, answering the same.
extension PostgresStore {
    static let sequenceColumns = SQLiteStore.sequenceColumns

    static func sequence(_ row: [String?]) -> StoredSequence {
        StoredSequence(
            id: row[0] ?? "", context: row[1] ?? "", project: row[2] ?? "", stage: row[3] ?? "", service: row[4] ?? "",
            sequence: row[5] ?? "", commit: row[6], state: row[7].flatMap(SequenceState.init) ?? .finished,
            result: row[8].flatMap(TaskResult.init), status: row[9].flatMap(TaskStatus.init), message: row[10],
            triggeredBy: row[11], requestID: row[12], triggeredAt: PGValue.date(row[13]) ?? Date(timeIntervalSince1970: 0),
            startedAt: PGValue.date(row[14]), finishedAt: PGValue.date(row[15]), queueReleasedAt: PGValue.date(row[16]), image: row[18])
    }

    static let taskColumns = "position, name, state, result, status, message, triggered_id, triggered_at, started_at, finished_at, due_at, sequence_id"

    static func task(_ row: [String?]) -> StoredTask {
        StoredTask(
            position: row[0].flatMap(Int.init) ?? 0, name: row[1] ?? "", state: row[2] ?? "", result: row[3].flatMap(TaskResult.init),
            status: row[4].flatMap(TaskStatus.init), message: row[5], triggeredID: row[6], triggeredAt: PGValue.date(row[7]),
            startedAt: PGValue.date(row[8]), finishedAt: PGValue.date(row[9]), dueAt: PGValue.date(row[10]))
    }

    static func withTasks(_ sequences: [StoredSequence], _ connection: PGConnection) throws -> [StoredSequence] {
        var filled = sequences
        for index in filled.indices {
            filled[index].tasks = try connection.exec(
                "SELECT \(taskColumns) FROM tasks WHERE sequence_id = $1 ORDER BY position", [filled[index].id]).rows.map(task)
        }
        return filled
    }

    public func sequences(_ query: SequenceQuery) throws -> SequencePage {
        var conditions: [String] = []
        var arguments: [String?] = []
        func add(_ condition: (String) -> String, _ value: String) {
            arguments.append(value)
            conditions.append(condition("$\(arguments.count)"))
        }
        if let project = query.project { add({ "project = \($0)" }, project) }
        if let service = query.service { add({ "service = \($0)" }, service) }
        if let state = query.state { add({ "state = \($0)" }, state.rawValue) }
        if let stage = query.stage { add({ "stage = \($0)" }, stage) }
        if let image = query.image { add({ "strpos(image, \($0)) > 0" }, image) }
        if let since = query.since { add({ "triggered_at >= \($0)::float8" }, String(since.timeIntervalSince1970)) }
        let filter = conditions.isEmpty ? "true" : conditions.joined(separator: " AND ")
        return try with { connection in
            guard let limit = query.limit else {
                let rows = try connection.exec("SELECT \(Self.sequenceColumns) FROM sequences WHERE \(filter) ORDER BY position", arguments).rows
                return SequencePage(sequences: rows.map(Self.sequence), more: false)
            }
            var rows = try connection.exec(
                "SELECT \(Self.sequenceColumns) FROM sequences WHERE \(filter) ORDER BY position DESC LIMIT $\(arguments.count + 1)::bigint",
                arguments + [String(limit + 1)]).rows
            let more = rows.count > limit
            rows = Array(rows.prefix(limit))
            // Active sequences are shown however old they are.
            let oldest = rows.last?[17] ?? String(Int64.max)
            let older = try connection.exec(
                "SELECT \(Self.sequenceColumns) FROM sequences WHERE active AND position < $\(arguments.count + 1)::bigint AND \(filter) ORDER BY position",
                arguments + [oldest]).rows
            return SequencePage(sequences: (older + rows.reversed()).map(Self.sequence), more: more)
        }
    }

    public func sequences(context: String) throws -> [StoredSequence] {
        try with { connection in
            let rows = try connection.exec("SELECT \(Self.sequenceColumns) FROM sequences WHERE context = $1 ORDER BY position", [context]).rows
            return try Self.withTasks(rows.map(Self.sequence), connection)
        }
    }

    public func sequence(forRequest id: String) throws -> StoredSequence? {
        try with { connection in
            try connection.exec(
                "SELECT \(Self.sequenceColumns) FROM sequences WHERE request_id = $1 ORDER BY position LIMIT 1", [id]
            ).rows.first.map(Self.sequence)
        }
    }

    public func task(triggeredID: String) throws -> (sequence: StoredSequence, task: StoredTask)? {
        try with { connection in
            guard let row = try connection.exec("SELECT \(Self.taskColumns) FROM tasks WHERE triggered_id = $1", [triggeredID]).rows.first,
                let owner = try connection.exec("SELECT \(Self.sequenceColumns) FROM sequences WHERE id = $1", [row[11]]).rows.first
            else { return nil }
            return (try Self.withTasks([Self.sequence(owner)], connection)[0], Self.task(row))
        }
    }

    public func approvals(idPrefix prefix: String, limit: Int) throws -> [(sequence: StoredSequence, task: StoredTask)] {
        try with { connection in
            let rows = try connection.exec("""
                SELECT \(Self.taskColumns) FROM tasks WHERE triggered_id >= $1 AND triggered_id < $2 AND name = 'approval' LIMIT $3::bigint
                """, [prefix, prefix + "\u{10FFFF}", String(limit)]).rows
            return try rows.compactMap { row -> (StoredSequence, StoredTask)? in
                guard let owner = try connection.exec("SELECT \(Self.sequenceColumns) FROM sequences WHERE id = $1", [row[11]]).rows.first
                else { return nil }
                return (Self.sequence(owner), Self.task(row))
            }
        }
    }

    public func containsEvent(id: String) throws -> Bool {
        try with { connection in try connection.exec("SELECT EXISTS (SELECT 1 FROM events WHERE id = $1)", [id]).scalar == "t" }
    }

    public func events(context: String?, type: String?, after: Int64, limit: Int) throws -> [RecordedEvent] {
        var conditions = ["position > $1::bigint"]
        var arguments: [String?] = [String(after)]
        if let context {
            arguments.append(context)
            conditions.append("context = $\(arguments.count)")
        }
        if let type {
            arguments += [type, "." + type]
            conditions.append("(type = $\(arguments.count - 1) OR right(type, length($\(arguments.count))) = $\(arguments.count))")
        }
        arguments.append(String(limit))
        return try with { connection in
            try connection.exec(
                "SELECT position, context, body FROM events WHERE \(conditions.joined(separator: " AND ")) ORDER BY position LIMIT $\(arguments.count)::bigint",
                arguments
            ).rows.map { RecordedEvent(position: $0[0].flatMap(Int64.init) ?? 0, context: $0[1] ?? "", json: Data(($0[2] ?? "").utf8)) }
        }
    }

    public func openTasks(_ query: OpenTaskQuery) throws -> [RecordedEvent] {
        let conditions = query.conditions
        var sql: [String] = []
        for (index, condition) in conditions.enumerated() { sql.append(condition.0.replacingOccurrences(of: "?", with: "$\(index + 1)")) }
        return try with { connection in
            try connection.exec(
                """
                SELECT e.position, e.context, e.body FROM tasks t
                JOIN sequences s ON s.id = t.sequence_id
                JOIN events e ON e.id = t.triggered_id
                WHERE t.state IN ('triggered', 'started') AND s.active AND \(sql.joined(separator: " AND "))
                ORDER BY e.position LIMIT $\(conditions.count + 1)::bigint
                """,
                conditions.map(\.1) + [String(query.limit)]
            ).rows.map { RecordedEvent(position: $0[0].flatMap(Int64.init) ?? 0, context: $0[1] ?? "", json: Data(($0[2] ?? "").utf8)) }
        }
    }

    public func eventsNewestFirst(_ query: EventQuery) throws -> (events: [RecordedEvent], total: Int) {
        let conditions = query.conditions
        var sql: [String] = ["true"]
        for (index, condition) in conditions.enumerated() { sql.append(condition.0.replacingOccurrences(of: "?", with: "$\(index + 1)")) }
        let filter = sql.joined(separator: " AND ")
        let values = conditions.map(\.1)
        return try with { connection in
            let total = Int(try connection.exec("SELECT count(*) FROM events WHERE \(filter)", values).scalar ?? "0") ?? 0
            let rows = try connection.exec(
                "SELECT position, context, body FROM events WHERE \(filter) AND position < $\(values.count + 1)::bigint ORDER BY position DESC LIMIT $\(values.count + 2)::bigint",
                values + [String(query.before ?? Int64.max), String(query.limit)]
            ).rows
            return (rows.map { RecordedEvent(position: $0[0].flatMap(Int64.init) ?? 0, context: $0[1] ?? "", json: Data(($0[2] ?? "").utf8)) }, total)
        }
    }

    public func hasDelivered(project: String, service: String) throws -> Bool {
        try with { connection in
            try connection.exec("SELECT EXISTS (SELECT 1 FROM sequences WHERE service = $1 AND project = $2)", [service, project]).scalar == "t"
        }
    }

    public func services(project: String, limit: Int) throws -> [String] {
        try with { connection in
            try connection.exec("SELECT DISTINCT service FROM sequences WHERE project = $1 ORDER BY service LIMIT $2::bigint", [project, String(limit)])
                .rows.compactMap { $0[0] }
        }
    }

    public func newestPerStage(deployed: Bool) throws -> [StoredSequence] {
        let filter = deployed ? "WHERE state = 'finished' AND result IN ('pass', 'warning')" : ""
        return try with { connection in
            try connection.exec("""
                SELECT \(Self.sequenceColumns) FROM sequences WHERE position IN
                  (SELECT MAX(position) FROM sequences \(filter) GROUP BY project, service, stage)
                ORDER BY project, service, position
                """).rows.map(Self.sequence)
        }
    }

    public func contexts(prefix: String, limit: Int) throws -> [String] {
        try with { connection in
            try connection.exec(
                "SELECT DISTINCT context FROM sequences WHERE context >= $1 AND context < $2 LIMIT $3::bigint",
                [prefix, prefix + "\u{10FFFF}", String(limit)]
            ).rows.compactMap { $0[0] }
        }
    }

    // MARK: Evaluations

    /// The event without its SLO file (up to a megabyte each), as JSON text.
    static let evaluationColumns = """
        v.event_id, v.triggered_id, v.context, v.time, v.result, v.invalidated, (e.body::jsonb #- '{data,evaluation,sloFileContent}')::text
        """

    static func evaluation(_ row: [String?]) -> StoredEvaluation {
        let event = try? JSONDecoder().decode(KeptnEvent.self, from: Data((row[6] ?? "").utf8))
        return StoredEvaluation(
            eventID: row[0] ?? "", triggeredID: row[1] ?? "", context: row[2] ?? "", time: row[3] ?? "", result: row[4] ?? "",
            invalidated: PGValue.bool(row[5]), data: event?.data ?? .object([:]))
    }

    /// The filter of an evaluation query, its arguments from `$1`.
    static func filter(_ query: EvaluationQuery, prefix: String = "") -> (String, [String?]) {
        var filter = "\(prefix)project = $1 AND \(prefix)stage = $2 AND \(prefix)service = $3"
        var arguments: [String?] = [query.project, query.stage, query.service]
        if !query.includeInvalidated { filter += " AND NOT \(prefix)invalidated" }
        if let results = query.results {
            let sorted = results.sorted()
            filter += " AND \(prefix)result IN (\(sorted.indices.map { "$\(arguments.count + $0 + 1)" }.joined(separator: ",")))"
            arguments += sorted
        }
        arguments.append(String(query.limit))
        return (filter, arguments)
    }

    public func evaluations(_ query: EvaluationQuery) throws -> [StoredEvaluation] {
        let (filter, arguments) = Self.filter(query, prefix: "v.")
        return try with { connection in
            try connection.exec("""
                SELECT \(Self.evaluationColumns) FROM evaluations AS v JOIN events AS e ON e.id = v.event_id
                WHERE \(filter) ORDER BY v.position DESC LIMIT $\(arguments.count)::bigint
                """, arguments).rows.map(Self.evaluation)
        }
    }

    public func previousEvaluations(_ query: EvaluationQuery) throws -> [PreviousEvaluation] {
        let (filter, arguments) = Self.filter(query)
        return try with { connection in
            // Only successful values, and only numbers, as SQLite's json_extract reads them.
            let rows = try connection.exec("""
                SELECT v.event_id, v.result, r.value #>> '{value,metric}',
                       CASE WHEN jsonb_typeof(r.value #> '{value,value}') = 'number' THEN (r.value #>> '{value,value}')::float8 END
                FROM (SELECT event_id, result, position FROM evaluations
                      WHERE \(filter) ORDER BY position DESC LIMIT $\(arguments.count)::bigint) AS v
                JOIN events AS e ON e.id = v.event_id
                LEFT JOIN LATERAL jsonb_array_elements(
                    CASE WHEN jsonb_typeof(e.body::jsonb #> '{data,evaluation,indicatorResults}') = 'array'
                         THEN e.body::jsonb #> '{data,evaluation,indicatorResults}' ELSE '[]'::jsonb END) AS r(value)
                  ON (r.value #> '{value,success}') = 'true'::jsonb
                ORDER BY v.position DESC
                """, arguments).rows
            var previous: [PreviousEvaluation] = []
            for row in rows {
                let id = row[0] ?? ""
                if previous.last?.id != id { previous.append(PreviousEvaluation(id: id, result: row[1] ?? "", values: [:])) }
                if let metric = row[2], let value = row[3].flatMap(Double.init) { previous[previous.count - 1].values[metric] = value }
            }
            return previous
        }
    }

    public func latestEvaluations(contexts: [String]) throws -> [String: JSONValue] {
        var latest: [String: JSONValue] = [:]
        for start in stride(from: 0, to: contexts.count, by: 500) {
            let chunk = Array(contexts[start..<min(start + 500, contexts.count)])
            let rows = try with { connection in
                try connection.exec("""
                    SELECT v.context, v.stage, v.result,
                           CASE WHEN jsonb_typeof(e.body::jsonb #> '{data,evaluation,score}') = 'number' THEN e.body::jsonb #>> '{data,evaluation,score}' END,
                           e.body::jsonb #>> '{data,evaluation,result}'
                    FROM evaluations AS v JOIN events AS e ON e.id = v.event_id
                    WHERE v.context IN (\(chunk.indices.map { "$\($0 + 1)" }.joined(separator: ","))) ORDER BY v.position
                    """, chunk).rows
            }
            for row in rows {
                guard let context = row[0] else { continue }
                latest[context] = .object([
                    "stage": .string(row[1] ?? ""), "result": .string(row[2] ?? ""),
                    "evaluation": .object([
                        "score": row[3].flatMap(Double.init).map(JSONValue.number) ?? .null, "result": row[4].map(JSONValue.string) ?? .null,
                    ]),
                ])
            }
        }
        return latest
    }

    public func evaluations(idPrefix prefix: String, limit: Int) throws -> [StoredEvaluation] {
        let upper = prefix + "\u{10FFFF}"
        return try with { connection in
            try connection.exec("""
                SELECT \(Self.evaluationColumns) FROM evaluations AS v JOIN events AS e ON e.id = v.event_id
                WHERE (v.triggered_id >= $1 AND v.triggered_id < $2) OR (v.event_id >= $1 AND v.event_id < $2)
                ORDER BY v.position LIMIT $3::bigint
                """, [prefix, upper, String(limit)]).rows.map(Self.evaluation)
        }
    }
}
