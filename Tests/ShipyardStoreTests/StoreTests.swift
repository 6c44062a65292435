import Foundation
import GRDB
import ShipyardCore
import ShipyardTestKit
import Testing

@testable import ShipyardStore

/// The store on a real SQLite file in a temporary directory.
struct StoreTests {
    static let day: TimeInterval = 86400

    /// A store made by importing a generated journal.
    func imported(
        _ dir: TemporaryDirectory, deliveries: Int, start: Date, spacing: TimeInterval, waiting: Int = 0, lastLine: String = ""
    ) throws -> (SQLiteStore, HistoryJournal.Summary, JournalImport.Report) {
        let journal = dir.path + "/journal/events.jsonl"
        let summary = try HistoryJournal.write(
            to: journal, project: "shop", deliveries: deliveries, start: start, spacing: spacing, waiting: waiting, lastLine: lastLine)
        let report = try #require(try JournalImport.run(journal: journal, into: dir.path + "/shipyard.db", batch: 500))
        return (try SQLiteStore(writingAt: dir.path + "/shipyard.db"), summary, report)
    }

    @Test func anImportedJournalAnswersEveryQuestionFromTheTables() throws {
        let dir = try TemporaryDirectory()
        let (store, summary, report) = try imported(dir, deliveries: 120, start: Date().addingTimeInterval(-10 * Self.day), spacing: 600, waiting: 3)
        #expect(report.events == summary.events)
        #expect(report.sequences == 2 * 123)
        #expect(report.dropped == nil)
        // The journal is kept, renamed; the import is not done twice.
        #expect(FileManager.default.fileExists(atPath: dir.path + "/journal/events.jsonl.imported"))
        #expect(!FileManager.default.fileExists(atPath: dir.path + "/journal/events.jsonl"))
        #expect(try JournalImport.run(journal: dir.path + "/journal/events.jsonl", into: dir.path + "/shipyard.db") == nil)

        // A finished delivery: both stages, every task, in order.
        let first = try store.sequences(context: summary.finished[0])
        #expect(first.map(\.stage) == ["qa", "production"])
        #expect(first.map(\.state) == [.finished, .finished])
        #expect(first.map(\.result) == [.pass, .pass])
        #expect(first[0].tasks.map(\.name) == ["deploy", "test"])
        #expect(first[1].tasks.map { "\($0.name) \($0.state) \($0.result?.rawValue ?? "-")" } == ["approval finished pass", "deploy finished pass"])
        #expect(first[0].triggeredBy == "shipyardctl/history")
        #expect(first[1].triggeredBy == "shipyardctl/history")

        // Only the waiting deliveries are active work, with every event of their contexts.
        let work = try store.activeWork()
        #expect(Set(work.events.map(\.shkeptncontext)) == Set(summary.waiting))
        var engine = Engine()
        for event in work.events { engine.replay(event) }
        #expect(engine.active.map(\.context).sorted() == summary.waiting.sorted())
        #expect(engine.active.allSatisfy { engine.state(of: $0) == .waitingForApproval })

        // Listings: the newest N, oldest first; active ones however old; filters by index.
        let page = try store.sequences(SequenceQuery(limit: 10))
        #expect(page.more)
        #expect(page.sequences.count == 10)
        #expect(page.sequences.last?.context == summary.waiting.last)
        let held = try store.sequences(SequenceQuery(service: "held-0", limit: 5))
        #expect(held.sequences.map(\.stage) == ["qa", "production"] && !held.more)
        let waiting = try store.sequences(SequenceQuery(state: .waitingForApproval, limit: 2))
        #expect(waiting.sequences.count == 3, "active ones beyond the limit are shown too")
        let all = try store.sequences(SequenceQuery())
        #expect(all.sequences.count == 246 && !all.more)
        #expect(try store.sequences(SequenceQuery(since: Date().addingTimeInterval(3600))).sequences.count == 0)

        // Lookups.
        let approval = try #require(summary.approvals.first)
        let found = try #require(try store.task(triggeredID: approval))
        #expect(found.task.name == "approval" && found.task.state == "started" && found.sequence.stage == "production")
        #expect(try store.approvals(idPrefix: String(approval.prefix(8)), limit: 5).map(\.task.triggeredID) == [approval])
        #expect(try store.containsEvent(id: approval))
        #expect(try !store.containsEvent(id: "no-such-event"))
        let events = try store.events(context: summary.finished[5], after: 0, limit: 100)
        #expect(events.count == 16, "a two-stage delivery records 16 events")
        #expect(events.allSatisfy { $0.context == summary.finished[5] })
        let decoded = try events.map { try JSONDecoder().decode(KeptnEvent.self, from: $0.json) }
        #expect(decoded.first?.type == "sh.keptn.event.qa.delivery.triggered")
        #expect(decoded.last?.type == "sh.keptn.event.production.delivery.finished")
    }

    @Test func aTornLastLineIsLeftOutAndAMiddleOneStopsTheImport() throws {
        let dir = try TemporaryDirectory()
        let (_, summary, report) = try imported(dir, deliveries: 5, start: Date(), spacing: 60, lastLine: #"{"id":"torn","sour"#)
        #expect(report.events == summary.events)
        #expect(report.dropped?.contains("torn last line") == true)

        let bad = try TemporaryDirectory()
        let journal = bad.path + "/journal/events.jsonl"
        try HistoryJournal.write(to: journal, project: "shop", deliveries: 3, start: Date(), spacing: 60)
        var lines = try String(contentsOfFile: journal, encoding: .utf8).split(separator: "\n", omittingEmptySubsequences: false)
        lines[7] = "{not json"
        try lines.joined(separator: "\n").write(toFile: journal, atomically: true, encoding: .utf8)
        let before = try Data(contentsOf: URL(fileURLWithPath: journal))
        #expect {
            try JournalImport.run(journal: journal, into: bad.path + "/shipyard.db")
        } throws: { error in
            "\(error)".contains("events.jsonl:8: unreadable event in the middle of the journal") && "\(error)".contains("nothing was imported")
        }
        #expect(try Data(contentsOf: URL(fileURLWithPath: journal)) == before)
        #expect(!FileManager.default.fileExists(atPath: bad.path + "/shipyard.db"))
        #expect(!FileManager.default.fileExists(atPath: bad.path + "/shipyard.db.importing"))
    }

    @Test func aDamagedFileIsRefusedAndLeftAsItWas() throws {
        let dir = try TemporaryDirectory()
        let garbage = dir.path + "/garbage.db"
        try Data(repeating: 0x42, count: 8192).write(to: URL(fileURLWithPath: garbage))
        #expect { try SQLiteStore(writingAt: garbage) } throws: { "\($0)".contains("is damaged: it is not an SQLite database") && "\($0)".contains("mv ") }
        #expect { try SQLiteStore(readingAt: garbage) } throws: { "\($0)".contains("is damaged") }
        #expect(try Data(contentsOf: URL(fileURLWithPath: garbage)) == Data(repeating: 0x42, count: 8192))

        // A record cut short (a copy that stopped half-way).
        let (store, _, _) = try imported(dir, deliveries: 40, start: Date(), spacing: 60)
        let path = store.path
        try store.checkpoint()
        let size = try #require(try FileManager.default.attributesOfItem(atPath: path)[.size] as? Int)
        let cut = dir.path + "/cut.db"
        try Data(try Data(contentsOf: URL(fileURLWithPath: path)).prefix(size / 2)).write(to: URL(fileURLWithPath: cut))
        #expect { try SQLiteStore(writingAt: cut) } throws: { "\($0)".contains("is damaged") && "\($0)".contains("cut short") }
        #expect(try FileManager.default.attributesOfItem(atPath: cut)[.size] as? Int == size / 2)
    }

    @Test func aRecordFromANewerReleaseIsRefused() throws {
        let dir = try TemporaryDirectory()
        let path = dir.path + "/shipyard.db"
        _ = try SQLiteStore(writingAt: path)
        try DatabaseQueue(path: path).write { db in
            try db.execute(sql: "INSERT INTO grdb_migrations (identifier) VALUES ('9-from-the-future')")
        }
        let message = "was written by a newer shipyardd (its schema has 9-from-the-future, which this one does not know)"
        #expect { try SQLiteStore(writingAt: path) } throws: { "\($0)".contains(message) }
        #expect { try SQLiteStore(readingAt: path) } throws: { "\($0)".contains(message) }
        // Nothing was changed by the refusal.
        let migrations = try DatabaseQueue(path: path).read { db in try String.fetchAll(db, sql: "SELECT identifier FROM grdb_migrations ORDER BY identifier") }
        #expect(migrations == ["1-events-sequences-tasks", "2-evaluations", "3-task-due-at", "4-open-tasks", "9-from-the-future"])
    }

    @Test func retentionRemovesExactlyTheDeliveriesThatEndedBeforeTheCutoff() throws {
        let dir = try TemporaryDirectory()
        // 100 deliveries, one a day, from 130 days ago; then 2 left waiting for approval 30 days ago.
        let now = Date()
        let (store, summary, _) = try imported(dir, deliveries: 100, start: now.addingTimeInterval(-130 * Self.day), spacing: Self.day, waiting: 2)
        let cutoff = now.addingTimeInterval(-60.5 * Self.day)
        var removed: [String] = []
        var rounds = 0
        while true {
            let batch = try store.removeHistory(endedBefore: cutoff, limit: 7)
            removed += batch
            rounds += 1
            if batch.count < 7 { break }
        }
        #expect(rounds > 5, "small batches")
        // Days -130 … -61 ended before the cutoff, day -60 after it: 70 deliveries.
        #expect(Set(removed) == Set(summary.finished.prefix(70)))
        for context in summary.finished.prefix(70) {
            #expect(try store.sequences(context: context).isEmpty)
            #expect(try store.events(context: context, after: 0, limit: 10).isEmpty)
        }
        for context in summary.finished.dropFirst(70) + summary.waiting {
            #expect(try store.sequences(context: context).count == 2)
        }
        // Pending approvals stay, however old.
        #expect(try store.task(triggeredID: summary.approvals[0])?.task.state == "started")
        #expect(try store.removeHistory(endedBefore: now, limit: 1000).count == 30)
        #expect(Set(try store.activeWork().events.map(\.shkeptncontext)) == Set(summary.waiting))
    }

    static func evaluation(
        _ index: Int, context: String, service: String = "cart", result: String, source: String = Evaluations.source, value: Double = 300
    ) -> KeptnEvent {
        KeptnEvent(
            id: "finished-\(index)", source: source, type: Evaluations.finishedType, time: Timestamps.format(Date()), context: context,
            triggeredid: "triggered-\(index)",
            data: .object([
                "project": .string("shop"), "stage": .string("qa"), "service": .string(service), "result": .string(result),
                "evaluation": .object(["indicatorResults": .array([
                    .object(["value": .object(["metric": .string("response_time"), "value": .number(value), "success": .bool(true)])]),
                    // A value the provider could not get is never a baseline (keptn#1263).
                    .object(["value": .object(["metric": .string("errors"), "value": .number(9), "success": .bool(false)])]),
                ])]),
            ]))
    }

    @Test func previousEvaluationsComeNewestFirstByResultWithoutInvalidatedOnesAndGoWithTheirDelivery() throws {
        let dir = try TemporaryDirectory()
        let (store, summary, _) = try imported(dir, deliveries: 10, start: Date().addingTimeInterval(-20 * Self.day), spacing: Self.day)
        let results = ["pass", "warning", "pass", "fail", "pass", "pass"]
        var events = results.enumerated().map { index, result in
            Self.evaluation(index, context: summary.finished[index], result: result, value: Double(100 * index))
        }
        // Another service's, and one another source sent (never compared with).
        events.append(Self.evaluation(6, context: summary.finished[6], service: "other", result: "pass"))
        events.append(Self.evaluation(7, context: summary.finished[7], result: "pass", source: "shipyardctl/mallory"))
        try store.commit(events: events, changes: [])

        func ids(_ results: Set<String>?, limit: Int, invalidated: Bool = false) throws -> [String] {
            try store.evaluations(EvaluationQuery(project: "shop", stage: "qa", service: "cart", results: results, includeInvalidated: invalidated, limit: limit)).map(\.eventID)
        }
        #expect(try ids(nil, limit: 10) == ["finished-5", "finished-4", "finished-3", "finished-2", "finished-1", "finished-0"])
        #expect(try ids(["pass"], limit: 3) == ["finished-5", "finished-4", "finished-2"])
        #expect(try ids(["pass", "warning"], limit: 10) == ["finished-5", "finished-4", "finished-2", "finished-1", "finished-0"])
        let newest = try #require(try store.evaluations(EvaluationQuery(project: "shop", stage: "qa", service: "cart", limit: 1)).first)
        #expect(PreviousEvaluation(id: newest.eventID, data: newest.data).values == ["response_time": 500])
        // What a comparison reads: the same evaluations, their values read by SQLite.
        let previous = try store.previousEvaluations(EvaluationQuery(project: "shop", stage: "qa", service: "cart", results: ["pass"], limit: 3))
        #expect(previous == [
            PreviousEvaluation(id: "finished-5", result: "pass", values: ["response_time": 500]),
            PreviousEvaluation(id: "finished-4", result: "pass", values: ["response_time": 400]),
            PreviousEvaluation(id: "finished-2", result: "pass", values: ["response_time": 200]),
        ])

        // Invalidated by its .triggered id: no longer compared with, still listed on request.
        let invalidation = KeptnEvent(
            id: "invalidated-4", source: "shipyardctl/alice", type: Evaluations.invalidatedType, time: Timestamps.format(Date()),
            context: summary.finished[4], triggeredid: "triggered-4", data: .object(["project": .string("shop")]))
        try store.commit(events: [invalidation], changes: [])
        #expect(try ids(["pass"], limit: 3) == ["finished-5", "finished-2", "finished-0"])
        #expect(try ids(["pass"], limit: 3, invalidated: true) == ["finished-5", "finished-4", "finished-2"])
        #expect(try store.evaluations(idPrefix: "triggered-4", limit: 2).map(\.invalidated) == [true])
        #expect(try store.evaluations(idPrefix: "finished-3", limit: 2).map(\.triggeredID) == ["triggered-3"])
        #expect(try store.evaluations(idPrefix: "triggered-", limit: 10).count == 7)

        // Retention takes a delivery's evaluations with it.
        #expect(try store.removeHistory(endedBefore: Date(), limit: 1000).count == 10)
        #expect(try ids(nil, limit: 10).isEmpty)
        #expect(try store.evaluations(idPrefix: "triggered-", limit: 10).isEmpty)
    }

    @Test func aRecordOfTheFirstSchemaGainsTheEvaluationIndexWithItsEvaluations() throws {
        let dir = try TemporaryDirectory()
        let path = dir.path + "/shipyard.db"
        do {
            let queue = try DatabaseQueue(path: path)
            try SQLiteStore.migrator.migrate(queue, upTo: "1-events-sequences-tasks")
            let events = [Self.evaluation(0, context: "c0", result: "pass"), Self.evaluation(1, context: "c1", result: "fail", source: "someone/else")]
            let bodies = try events.map { String(decoding: try JSONEncoder().encode($0), as: UTF8.self) }
            try queue.write { db in
                let statement = try db.makeStatement(sql: "INSERT INTO events (id, context, type, triggeredid, time, project, stage, service, body) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)")
                for (event, body) in zip(events, bodies) {
                    try statement.execute(arguments: [event.id, event.shkeptncontext, event.type, event.triggeredid, event.time, "shop", "qa", "cart", body])
                }
            }
        }
        let store = try SQLiteStore(writingAt: path)
        #expect(try store.evaluations(EvaluationQuery(project: "shop", stage: "qa", service: "cart", limit: 10)).map(\.eventID) == ["finished-0"])
    }

    /// A steady load with retention: the file reaches a size and stays there.
    @Test func theFileStopsGrowingUnderSteadyLoadWithRetention() throws {
        let dir = try TemporaryDirectory()
        let store = try SQLiteStore(writingAt: dir.path + "/shipyard.db")
        let document = ShipyardLoader.load(HistoryJournal.shipyard)
        let shipyards = ["shop": PinnedShipyard(shipyard: try #require(document.shipyard), commit: String(repeating: "a", count: 40))]
        var engine = Engine()
        var ids = UUIDGenerator()
        var clock = Date().addingTimeInterval(-400 * Self.day)
        var sizes: [Int] = []
        func commit(_ effects: [EngineEffect]) throws {
            try store.commit(events: effects.compactMap { if case .record(let e) = $0 { e } else { nil } }, changes: engine.takeChanges())
        }
        for _ in 0..<12 {
            // A "day" of 100 deliveries, then everything older than 3 "days" goes.
            for i in 0..<100 {
                var pending = try engine.handle(.trigger(TriggerRequest(project: "shop", service: "svc-\(i % 10)", sequence: "delivery")),
                                                shipyards: shipyards, now: clock, ids: &ids)
                try commit(pending)
                while let triggered = pending.lazy.compactMap({ if case .runTask(let e) = $0 { e } else { nil } }).first {
                    let name = triggered.type.dropFirst(KeptnEvent.prefix.count).dropLast(".triggered".count)
                    let finished = KeptnEvent(
                        id: ids.next(), source: "x", type: "\(KeptnEvent.prefix)\(name).finished", time: Timestamps.format(clock),
                        context: triggered.shkeptncontext, triggeredid: triggered.id,
                        data: .object(["result": .string("pass"), "status": .string("succeeded"), "message": .string(String(repeating: "m", count: 300))]))
                    pending = try engine.handle(.event(finished), shipyards: shipyards, now: clock, ids: &ids)
                    try commit(pending)
                }
                clock += 864
            }
            while try store.removeHistory(endedBefore: clock.addingTimeInterval(-3 * Self.day), limit: 50).count == 50 {}
            try store.reclaimSpace(pages: 100_000)
            sizes.append(try store.pageCounts().pages)
        }
        #expect(engine.executions.isEmpty, "the engine let go of every ended delivery")
        // After the window filled (3 days), the file stays within 25% of that size.
        let settled = sizes[3]
        #expect(sizes.dropFirst(4).allSatisfy { Double($0) <= Double(settled) * 1.25 }, "pages per round: \(sizes)")
        // Three days of 100 two-stage deliveries are kept (and the one being cut into).
        let kept = try store.sequences(SequenceQuery()).sequences.count
        #expect((580...800).contains(kept), "kept \(kept), pages \(sizes)")
    }
}

/// Contexts given by a prefix, as approval ids are: unique, at least four characters, or an
/// error naming what matched.
struct ContextLookupTests {
    @Test func aPrefixNamesOneContextOrSaysWhyNot() throws {
        let dir = try TemporaryDirectory()
        let store = try SQLiteStore(writingAt: dir.path + "/shipyard.db")
        let contexts = ["abcd1111-0000-4000-8000-000000000001", "abcd2222-0000-4000-8000-000000000002", "abcd2222-0000-4000-8000-000000000003"]
        let queue = try DatabaseQueue(path: dir.path + "/shipyard.db")
        try queue.write { db in
            for (index, context) in contexts.enumerated() {
                for stage in ["qa", "production"] {
                    try db.execute(sql: """
                        INSERT INTO sequences (id, context, project, stage, service, sequence, state, active, triggered_at)
                        VALUES (?, ?, 'shop', ?, 'cart', 'delivery', 'finished', 0, ?)
                        """, arguments: ["\(context)-\(stage)", context, stage, Double(index)])
                }
            }
        }
        try queue.close()
        #expect(try store.context(named: "abcd1") == contexts[0])
        #expect(try store.context(named: contexts[1]) == contexts[1])
        #expect(throws: ContextLookup("abcd is ambiguous: it starts the contexts \(contexts.joined(separator: ", ")); give more of it")) {
            try store.context(named: "abcd")
        }
        #expect(throws: ContextLookup("give at least 4 characters of the context, not \"abc\" (shipyardctl sequences lists them)")) {
            try store.context(named: "abc")
        }
        #expect(throws: ContextLookup("no sequence has a context starting with ffff (shipyardctl sequences lists them)")) {
            try store.context(named: "ffff")
        }
        #expect(throws: ContextLookup("no sequence has the context ffffffff-0000-4000-8000-000000000001 (shipyardctl sequences lists them)")) {
            try store.context(named: "ffffffff-0000-4000-8000-000000000001")
        }
    }
}
