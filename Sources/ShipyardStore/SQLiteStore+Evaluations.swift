import Foundation
import GRDB
public import ShipyardCore

/// Evaluations: the list, the previous ones a quality gate compares with, the latest per delivery.
extension SQLiteStore {
    // MARK: Evaluations

    public func evaluations(_ query: EvaluationQuery) throws -> [StoredEvaluation] {
        try run {
            try pool.read { db in
                var sql = """
                    SELECT v.event_id, v.triggered_id, v.context, v.time, v.result, v.invalidated, json_remove(e.body, '$.data.evaluation.sloFileContent')
                    FROM evaluations AS v INDEXED BY evaluations_by_service JOIN events AS e ON e.id = v.event_id
                    WHERE v.project = ? AND v.stage = ? AND v.service = ?
                    """
                var arguments: StatementArguments = [query.project, query.stage, query.service]
                if !query.includeInvalidated { sql += " AND v.invalidated = 0" }
                if let results = query.results {
                    sql += " AND v.result IN (\(results.map { _ in "?" }.joined(separator: ",")))"
                    for result in results.sorted() { arguments += [result] }
                }
                sql += " ORDER BY v.position DESC LIMIT ?"
                arguments += [query.limit]
                return try Row.fetchAll(db, sql: sql, arguments: arguments).map(Self.evaluation)
            }
        }
    }

    public func previousEvaluations(_ query: EvaluationQuery) throws -> [PreviousEvaluation] {
        try run {
            try pool.read { db in
                var filter = "project = ? AND stage = ? AND service = ?"
                var arguments: StatementArguments = [query.project, query.stage, query.service]
                if !query.includeInvalidated { filter += " AND invalidated = 0" }
                if let results = query.results {
                    filter += " AND result IN (\(results.map { _ in "?" }.joined(separator: ",")))"
                    for result in results.sorted() { arguments += [result] }
                }
                arguments += [query.limit]
                // The values are read by SQLite's JSON functions, never decoded whole: the rows
                // hold every indicator result and the SLO file.
                let rows = try Row.fetchAll(db, sql: """
                    SELECT v.event_id, v.result, json_extract(r.value, '$.value.metric'), json_extract(r.value, '$.value.value')
                    FROM (SELECT event_id, result, position FROM evaluations INDEXED BY evaluations_by_service
                          WHERE \(filter) ORDER BY position DESC LIMIT ?) AS v
                    JOIN events AS e ON e.id = v.event_id
                    LEFT JOIN json_each(e.body, '$.data.evaluation.indicatorResults') AS r
                      ON json_extract(r.value, '$.value.success') = 1
                    ORDER BY v.position DESC
                    """, arguments: arguments)
                var previous: [PreviousEvaluation] = []
                for row in rows {
                    let id: String = row[0]
                    if previous.last?.id != id { previous.append(PreviousEvaluation(id: id, result: row[1], values: [:])) }
                    if let metric: String = row[2], let value: Double = row[3] { previous[previous.count - 1].values[metric] = value }
                }
                return previous
            }
        }
    }

    /// The newest evaluation of each of these contexts, in short: `{stage, result, evaluation: {score, result}}`
    /// (what an approval shows of the result it judges), read without decoding whole events.
    public func latestEvaluations(contexts: [String]) throws -> [String: JSONValue] {
        var latest: [String: JSONValue] = [:]
        for chunk in stride(from: 0, to: contexts.count, by: 500).map({ Array(contexts[$0..<min($0 + 500, contexts.count)]) }) {
            try run {
                try pool.read { db in
                    let rows = try Row.fetchAll(db, sql: """
                        SELECT v.context, v.stage, v.result, json_extract(e.body, '$.data.evaluation.score'), json_extract(e.body, '$.data.evaluation.result')
                        FROM evaluations AS v INDEXED BY evaluations_by_context JOIN events AS e ON e.id = v.event_id
                        WHERE v.context IN (\(chunk.map { _ in "?" }.joined(separator: ","))) ORDER BY v.position
                        """, arguments: StatementArguments(chunk))
                    for row in rows {
                        let score: Double? = row[3]
                        let evaluationResult: String? = row[4]
                        latest[row[0]] = .object([
                            "stage": .string(row[1]), "result": .string(row[2]),
                            "evaluation": .object(["score": score.map(JSONValue.number) ?? .null, "result": evaluationResult.map(JSONValue.string) ?? .null]),
                        ])
                    }
                }
            }
        }
        return latest
    }

    public func evaluations(idPrefix prefix: String, limit: Int) throws -> [StoredEvaluation] {
        try run {
            try pool.read { db in
                let upper = prefix + "\u{10FFFF}"
                return try Row.fetchAll(db, sql: """
                    SELECT v.event_id, v.triggered_id, v.context, v.time, v.result, v.invalidated, json_remove(e.body, '$.data.evaluation.sloFileContent')
                    FROM evaluations AS v JOIN events AS e ON e.id = v.event_id
                    WHERE (v.triggered_id >= ? AND v.triggered_id < ?) OR (v.event_id >= ? AND v.event_id < ?)
                    ORDER BY v.position LIMIT ?
                    """, arguments: [prefix, upper, prefix, upper, limit]).map(Self.evaluation)
            }
        }
    }

    static func evaluation(_ row: Row) -> StoredEvaluation {
        let body: String = row[6]
        let event = try? JSONDecoder().decode(KeptnEvent.self, from: Data(body.utf8))
        return StoredEvaluation(
            eventID: row[0], triggeredID: row[1], context: row[2], time: row[3], result: row[4], invalidated: (row[5] as Int) != 0,
            data: event?.data ?? .object([:]))
    }
}
