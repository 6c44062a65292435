import Foundation
import Synchronization
import ShipyardCore
import ShipyardTestKit
import Testing

@testable import ShipyardStore

/// The PostgreSQL store on Debian's PostgreSQL (a cluster of the test's own on loopback): the
/// same answers as SQLite for the same history, and appends fenced by the lease's epoch.
@Suite(.enabled(if: PostgresServer.isInstalled, "PostgreSQL is not installed (make test-deps installs it)"))
struct PostgresStoreTests {
    let server: PostgresServer

    init() throws {
        server = try PostgresServer.shared.get()
    }

    func settings(_ database: String, holder: String = "host-a") -> PostgresSettings {
        PostgresSettings(url: server.url(database: database), password: server.password, holder: holder)
    }

    /// A history the engine made: deliveries finished (pass, and a few failed), some left waiting
    /// for approval, a failed test among them, evaluations; committed step by step into `stores`.
    static func drive(_ stores: [any Store], deliveries: Int, waiting: Int) throws {
        let document = ShipyardLoader.load(HistoryJournal.shipyard)
        let shipyards = ["shop": PinnedShipyard(shipyard: try #require(document.shipyard), commit: String(repeating: "a", count: 40))]
        var engine = Engine()
        var ids = UUIDGenerator()
        var clock = Date().addingTimeInterval(-30 * 86400)
        func commit(_ effects: [EngineEffect]) throws {
            let events = effects.compactMap { if case .record(let e) = $0 { e } else { nil } }
            let changes = engine.takeChanges()
            for store in stores { try store.commit(events: events, changes: changes) }
        }
        for i in 0..<(deliveries + waiting) {
            let image = "registry/svc:v1.\(i)"
            var pending = try engine.handle(
                .trigger(TriggerRequest(project: "shop", service: "svc-\(i % 4)", sequence: "delivery", data: .object(["configurationChange": .object(["values": .object(["image": .string(image)])])]))),
                shipyards: shipyards, now: clock, ids: &ids)
            try commit(pending)
            while let triggered = pending.lazy.compactMap({ if case .runTask(let e) = $0 { e } else { nil } }).first {
                let name = triggered.type.dropFirst(KeptnEvent.prefix.count).dropLast(".triggered".count)
                if i >= deliveries && name.hasSuffix("approval") { break }
                // A warning waits for a person at production's approval (pass: automatic, warning: manual).
                let result = !name.hasSuffix("test") ? "pass" : i >= deliveries ? "warning" : i % 7 == 3 ? "fail" : "pass"
                clock += 30
                let finished = KeptnEvent(
                    id: ids.next(), source: "test", type: "\(KeptnEvent.prefix)\(name).finished", time: Timestamps.format(clock),
                    context: triggered.shkeptncontext, triggeredid: triggered.id,
                    data: .object(["result": .string(result), "status": .string("succeeded"), "message": .string("step \(i) ✓")]))
                pending = try engine.handle(.event(finished), shipyards: shipyards, now: clock, ids: &ids)
                try commit(pending)
                if name.hasSuffix("test") {
                    // The lighthouse's verdict on each test, as the daemon records it.
                    let evaluation = KeptnEvent(
                        id: ids.next(), source: Evaluations.source, type: Evaluations.finishedType, time: Timestamps.format(clock),
                        context: triggered.shkeptncontext, triggeredid: "eval-\(i)",
                        data: .object([
                            "project": .string("shop"), "stage": .string("qa"), "service": .string("svc-\(i % 4)"), "result": .string(result),
                            "evaluation": .object(["score": .number(Double(50 + i % 50)), "result": .string(result), "sloFileContent": .string("big"),
                                "indicatorResults": .array([.object(["value": .object(["metric": .string("rt"), "value": .number(Double(i)), "success": .bool(true)])])])]),
                        ]))
                    for store in stores { try store.commit(events: [evaluation], changes: []) }
                }
            }
            clock += 600
        }
    }

    /// A lease taken on the database for appends.
    func leader(_ database: String, holder: String = "host-a", duration: Double = PostgresLease.duration) throws -> (PostgresStore, PostgresLease, Fence) {
        let store = try PostgresStore(settings(database, holder: holder))
        let lease = PostgresLease(settings(database, holder: holder), duration: duration)
        let fence = try #require(try lease.take())
        store.fence = fence
        return (store, lease, fence)
    }

    @Test func theSameHistoryGetsTheSameAnswersAsFromSQLite() throws {
        let dir = try TemporaryDirectory()
        let sqlite = try SQLiteStore(writingAt: dir.path + "/shipyard.db")
        let (postgres, _, _) = try leader(try server.database())
        try Self.drive([sqlite, postgres], deliveries: 40, waiting: 3)

        func same<T: Equatable>(_ question: String, _ ask: (any Store) throws -> T) throws {
            let (a, b) = (try ask(sqlite), try ask(postgres))
            #expect(a == b, "\(question): SQLite \(a), PostgreSQL \(b)")
        }
        let queries: [SequenceQuery] = {
            var list = [SequenceQuery(), SequenceQuery(limit: 10), SequenceQuery(state: .waitingForApproval, limit: 1),
                        SequenceQuery(project: "shop", service: "svc-1", limit: 5), SequenceQuery(since: Date().addingTimeInterval(-20 * 86400))]
            var stage = SequenceQuery(limit: 7)
            stage.stage = "production"
            stage.image = "v1.1"
            list.append(stage)
            return list
        }()
        for (index, query) in queries.enumerated() {
            try same("sequences #\(index)") { try $0.sequences(query).sequences.map(\.id) }
            try same("sequences #\(index) more") { try $0.sequences(query).more }
            try same("sequences #\(index) rows") { try $0.sequences(query).sequences }
        }
        let contexts = Array(Set(try sqlite.sequences(SequenceQuery()).sequences.map(\.context))).sorted()
        #expect(contexts.count == 43)
        for context in contexts.prefix(12) + contexts.suffix(3) {
            try same("sequences(context:)") { try $0.sequences(context: context) }
            try same("events(context:)") { try $0.events(context: context, after: 0, limit: 100).map { String(decoding: $0.json, as: UTF8.self) } }
        }
        try same("events positions") { try $0.events(context: nil, after: 0, limit: 10_000).map(\.position) }
        try same("events by type") { try $0.events(context: nil, type: "approval.finished", after: 3, limit: 50).map(\.position) }
        try same("events by full type") { try $0.events(context: nil, type: "sh.keptn.event.qa.delivery.triggered", after: 0, limit: 50).map(\.context) }
        let waiting = try sqlite.sequences(SequenceQuery(state: .waitingForApproval)).sequences
        try #require(waiting.count == 3)
        for sequence in waiting {
            let approval = try #require(try sqlite.sequences(context: sequence.context).last?.tasks.first?.triggeredID)
            try same("task(triggeredID:)") { try $0.task(triggeredID: approval).map { [$0.sequence.id, $0.task.name, $0.task.state] } }
            try same("approvals(idPrefix:)") { try $0.approvals(idPrefix: String(approval.prefix(6)), limit: 5).map(\.task.triggeredID) }
            try same("contexts(prefix:)") { try $0.contexts(prefix: String(sequence.context.prefix(5)), limit: 5).sorted() }
            try same("context(named:)") { try $0.context(named: String(sequence.context.prefix(12))) }
        }
        try same("approvals all") { try $0.approvals(idPrefix: "", limit: 100).compactMap(\.task.triggeredID).sorted() }
        // Keptn's API: the open tasks integrations poll for, and the datastore's newest-first pages.
        #expect(try sqlite.openTasks(OpenTaskQuery(task: "approval")).count == 3)
        try same("open tasks") { try $0.openTasks(OpenTaskQuery(task: "approval")).map(\.position) }
        try same("open tasks of a service") {
            try $0.openTasks(OpenTaskQuery(task: "approval", project: "shop", service: waiting[0].service)).map { String(decoding: $0.json, as: UTF8.self) }
        }
        let openID = try #require(try sqlite.sequences(context: waiting[1].context).last?.tasks.first?.triggeredID)
        try same("open task by id") { try $0.openTasks(OpenTaskQuery(task: "approval", eventID: openID)).map(\.context) }
        try same("no open test") { try $0.openTasks(OpenTaskQuery(task: "test")).count }
        var newest = EventQuery(limit: 7)
        newest.project = "shop"
        newest.type = "sh.keptn.event.approval.finished"
        try same("newest first") { let page = try $0.eventsNewestFirst(newest); return page.events.map(\.position) + [Int64(page.total)] }
        newest.before = try sqlite.eventsNewestFirst(newest).events.last?.position
        try same("newest first, next page") { try $0.eventsNewestFirst(newest).events.map(\.position) }
        var recent = EventQuery(limit: 500)
        recent.context = contexts[5]
        recent.fromTime = Timestamps.format(Date().addingTimeInterval(-25 * 86400))
        try same("newest first by context and time") { let page = try $0.eventsNewestFirst(recent); return page.events.map(\.position) + [Int64(page.total)] }
        try same("newest per stage") { try $0.newestPerStage(deployed: false) }
        try same("deployed per stage") { try $0.newestPerStage(deployed: true) }
        try same("services") { try $0.services(project: "shop", limit: 3) }
        try same("has delivered") { [try $0.hasDelivered(project: "shop", service: "svc-2"), try $0.hasDelivered(project: "shop", service: "nope")] }
        try same("contains") { [try $0.containsEvent(id: waiting[0].id), try $0.containsEvent(id: "nope")] }
        try same("active work") { try $0.activeWork().events.map(\.id) }
        let evaluation = EvaluationQuery(project: "shop", stage: "qa", service: "svc-3", results: ["pass"], limit: 4)
        try same("evaluations") { try $0.evaluations(evaluation) }
        try same("previous evaluations") { try $0.previousEvaluations(evaluation) }
        try same("evaluations by prefix") { try $0.evaluations(idPrefix: "eval-1", limit: 20).map(\.eventID) }
        let some = Array(contexts.prefix(20))
        #expect(try sqlite.latestEvaluations(contexts: some) == postgres.latestEvaluations(contexts: some))
        #expect(try !postgres.latestEvaluations(contexts: some).isEmpty)

        // Retention removes the same deliveries, with their evaluations, and leaves the same record.
        let cutoff = Date().addingTimeInterval(-15 * 86400)
        let removed = try sqlite.removeHistory(endedBefore: cutoff, limit: 1000)
        #expect(!removed.isEmpty)
        #expect(Set(try postgres.removeHistory(endedBefore: cutoff, limit: 1000)) == Set(removed))
        try same("after retention") { try $0.sequences(SequenceQuery()).sequences }
        try same("evaluations after retention") { try $0.evaluations(idPrefix: "eval-", limit: 100).map(\.eventID) }
    }

    @Test func onlyTheLeaseHoldersEpochAppendsAndPositionsHaveNoGap() throws {
        let database = try server.database()
        let store = try PostgresStore(settings(database))
        let event = { (id: String) in
            KeptnEvent(id: id, source: "test", type: "sh.keptn.event.note", time: Timestamps.format(Date()), context: "ctx-\(id)", data: .object([:]))
        }
        // No lease: nothing is appended.
        #expect(throws: LeadershipLost.self) { try store.commit(events: [event("e0")], changes: []) }

        let lease = PostgresLease(settings(database), duration: 1)
        let first = try #require(try lease.take())
        #expect(first.epoch == 1)
        // Another host cannot take a live lease, nor renew it.
        let other = PostgresLease(settings(database, holder: "host-b"), duration: 1)
        #expect(try other.take() == nil)
        #expect(try other.renew(Fence(holder: "host-b", epoch: 1)) == .lost)
        store.fence = first
        try store.commit(events: [event("e1"), event("e2")], changes: [])
        #expect(try lease.renew(first) == .renewed)

        // Once it expired it is never renewed, only taken again, with the next epoch.
        Thread.sleep(forTimeInterval: 1.2)
        #expect(try lease.renew(first) == .lost)
        #expect(throws: LeadershipLost.self) { try store.commit(events: [event("e3")], changes: []) }
        let second = try #require(try other.take())
        #expect(second == Fence(holder: "host-b", epoch: 2))
        // The old epoch's append is refused even though its holder still believes it leads.
        #expect(throws: LeadershipLost.self) { try store.commit(events: [event("e4")], changes: []) }
        let successor = try PostgresStore(settings(database, holder: "host-b"))
        successor.fence = second
        try successor.commit(events: [event("e5")], changes: [])

        let rows = try server.psql("SELECT position, epoch, id FROM events ORDER BY position", database: database)
        #expect(rows.split(separator: "\n") == ["1|1|e1", "2|1|e2", "3|2|e5"])
        #expect(try server.psql("SELECT epoch, holder FROM lease_history ORDER BY epoch", database: database).split(separator: "\n") == ["1|host-a", "2|host-b"])
    }

    /// A renewal that reached the database late (held up on a slow link) extends nothing: the
    /// leader's trust window has been counting since it was sent. Here the database's clock is
    /// made to look three seconds ahead of what the lease last heard, as a 3 s delay would.
    @Test func aRenewalThatArrivesLateRenewsNothing() throws {
        let database = try server.database()
        _ = try PostgresStore(settings(database))
        let lease = PostgresLease(settings(database), duration: 5)
        let fence = try #require(try lease.take())
        #expect(try lease.renew(fence) == .renewed)
        let before = try server.psql("SELECT expires_at FROM leader_lease", database: database)
        let heard = try #require(lease.anchor)
        lease.anchor = (heard.db - 3, heard.local)
        guard case .late(let seconds) = try lease.renew(fence) else {
            Issue.record("a late renewal was taken")
            return
        }
        #expect(seconds > 2.9 && seconds < 4, "\(seconds)")
        #expect(try server.psql("SELECT expires_at FROM leader_lease", database: database) == before)
        // Within the promptness it counts (one second on the way).
        lease.anchor = (heard.db - 1, heard.local)
        #expect(try lease.renew(fence) == .renewed)
    }

    /// A standby's request: claimed by the leader with its epoch, answered once; one nobody
    /// claimed is answered by its standby and never applied; one claimed by a leader that stopped
    /// before answering goes to the next leader.
    @Test func forwardedRequestsAreClaimedByTheLeaderAndAnsweredOnce() throws {
        let database = try server.database()
        let standby = try PostgresStore(settings(database, holder: "host-b"))
        let leader = try PostgresStore(settings(database))
        #expect(try leader.claimRequests().isEmpty, "nothing is claimed without the lease")
        let lease = PostgresLease(settings(database), duration: 1)
        leader.fence = try #require(try lease.take())
        let first = ForwardedRequest(via: "host-b", uid: 1001, user: "alice", groups: ["deployers"], channel: "cli", body: Data(#"{"kind":"trigger"}"#.utf8))
        try standby.forward(first)
        let claimed = try leader.claimRequests()
        #expect(claimed == [first])
        #expect(try leader.claimRequests(answering: [first.id]).isEmpty, "applied, its answer owed: not claimed again")
        #expect(try leader.claimRequests() == [first], "a claim whose reply was lost is the same leader's again")
        #expect(try !standby.abandon(first.id, outcome: Data("{}".utf8)), "a claimed request is the leader's to answer")
        #expect(try standby.answer(of: first.id) == nil)
        try leader.answer(first.id, outcome: Data(#"{"ok":true}"#.utf8))
        #expect(try standby.answer(of: first.id) == Data(#"{"ok":true}"#.utf8))

        let unclaimed = ForwardedRequest(via: "host-b", uid: 1001, user: "alice", groups: [], channel: "cli", body: Data("{}".utf8))
        try standby.forward(unclaimed)
        #expect(try standby.abandon(unclaimed.id, outcome: Data(#"{"ok":false}"#.utf8)))
        #expect(try leader.claimRequests().isEmpty, "an abandoned request is never applied")

        // Claimed, then the leader stopped: the next epoch claims it again.
        let orphan = ForwardedRequest(via: "host-b", uid: nil, user: "bob", groups: [], channel: "web", body: Data("{}".utf8))
        try standby.forward(orphan)
        #expect(try leader.claimRequests() == [orphan])
        Thread.sleep(forTimeInterval: 1.2)
        let next = try PostgresStore(settings(database, holder: "host-c"))
        next.fence = try #require(try PostgresLease(settings(database, holder: "host-c"), duration: 5).take())
        #expect(try next.claimRequests() == [orphan])
        try leader.answer(orphan.id, outcome: Data(#"{"late":true}"#.utf8))
        #expect(try standby.answer(of: orphan.id) == nil, "the old epoch's answer does not count")
        try next.answer(orphan.id, outcome: Data(#"{"ok":true}"#.utf8))
        #expect(try standby.answer(of: orphan.id) == Data(#"{"ok":true}"#.utf8))
    }

    /// Temporal's argument: the append holds the lease row `FOR SHARE`, so a take waits for it, and
    /// every append after the take sees the new epoch.
    @Test func aTakeWaitsForTheAppendUnderWayAndNothingOfTheOldEpochCommitsAfterIt() async throws {
        let database = try server.database()
        let dir = try TemporaryDirectory()
        let pause = dir.path + "/pause"
        let store = try PostgresStore(settings(database), environment: ["SHIPYARD_FAULT_PAUSE_IN_APPEND": pause])
        let lease = PostgresLease(settings(database), duration: 1)
        store.fence = try #require(try lease.take())
        try writeFile(pause, Data())
        // On a thread of its own: the test pool's threads may all be busy with other tests.
        let outcome = Mutex<(any Error)??>(nil)
        Thread.detachNewThread {
            do {
                try store.commit(events: [KeptnEvent(id: "slow", source: "t", type: "sh.keptn.event.note", time: "2026-01-01T00:00:00Z", context: "c", data: .object([:]))], changes: [])
                outcome.withLock { $0 = .some(nil) }
            } catch {
                outcome.withLock { $0 = .some(error) }
            }
        }
        #expect(await eventually(timeout: .seconds(10)) { FileManager.default.fileExists(atPath: pause + ".inside") })
        // The lease runs out while the append is inside its transaction; the take waits for it.
        try await Task.sleep(for: .milliseconds(1100))
        let other = PostgresLease(settings(database, holder: "host-b"), duration: 5)
        let taken = try #require(try other.take())
        #expect(await eventually(timeout: .seconds(10)) { outcome.withLock { $0 != nil } })
        #expect(outcome.withLock { $0 ?? nil } == nil, "the append under way committed")
        #expect(taken.epoch == 2)
        #expect(throws: LeadershipLost.self) {
            try store.commit(events: [KeptnEvent(id: "late", source: "t", type: "sh.keptn.event.note", time: "2026-01-01T00:00:00Z", context: "c", data: .object([:]))], changes: [])
        }
        let checked = try server.psql(PostgresChecker.violations, database: database)
        #expect(checked == "0|0|0", "\(checked)")
        #expect(try server.psql("SELECT epoch FROM events", database: database) == "1")

        // The checker sees what an unfenced writer would have done: epoch 1 after epoch 2 began.
        try server.psql("INSERT INTO events (position, epoch, id, context, type, time, body) VALUES (2, 1, 'stale', 'c', 't', 'x', '{}')", database: database)
        #expect(try server.psql(PostgresChecker.violations, database: database) == "0|0|1")
        try server.psql("INSERT INTO events (position, epoch, id, context, type, time, body) VALUES (3, 2, 'new', 'c', 't', 'x', '{}'), (5, 1, 'gap', 'c', 't', 'x', '{}')", database: database)
        #expect(try server.psql(PostgresChecker.violations, database: database) == "1|1|2")
    }
}
