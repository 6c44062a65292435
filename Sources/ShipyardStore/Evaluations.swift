import GRDB
import ShipyardCore

/// The index of lighthouse evaluations kept beside the events: a finished evaluation adds a row,
/// an `evaluation.invalidated` marks the evaluation it names so it is never compared with again.
public enum Evaluations {
    public static let finishedType = "\(KeptnEvent.prefix)evaluation.finished"
    public static let invalidatedType = "\(KeptnEvent.prefix)evaluation.invalidated"
    /// The source of the evaluations shipyardd scores (Keptn: `lighthouse-service`).
    public static let source = "shipyardd/lighthouse"

    static func index(_ event: KeptnEvent, _ db: Database) throws {
        switch event.type {
        case finishedType where event.source == source:
            guard let triggered = event.triggeredid, let project = event.data["project"]?.string,
                let stage = event.data["stage"]?.string, let service = event.data["service"]?.string
            else { return }
            try db.execute(
                sql: """
                    INSERT OR IGNORE INTO evaluations (event_id, triggered_id, context, project, stage, service, time, result)
                    VALUES (?, ?, ?, ?, ?, ?, ?, ?)
                    """,
                arguments: [event.id, triggered, event.shkeptncontext, project, stage, service, event.time, event.data["result"]?.string ?? "fail"])
        case invalidatedType:
            guard let triggered = event.triggeredid else { return }
            try db.execute(sql: "UPDATE evaluations SET invalidated = 1 WHERE triggered_id = ?", arguments: [triggered])
        default:
            return
        }
    }
}
