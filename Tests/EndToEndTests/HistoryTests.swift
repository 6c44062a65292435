import Foundation
import ShipyardCore
import ShipyardDaemon
import ShipyardTestKit
import Testing

/// The record in SQLite as operators meet it: an upgrade from the journal of earlier releases,
/// a kill during that upgrade, a damaged file, retention, and operators reading while the daemon
/// writes.
@Suite(.serialized)
struct HistoryTests {
    static let day: TimeInterval = 86400

    /// A daemon on a project whose shipyard is the history's (qa: deploy, test; production:
    /// approval, deploy), with `journal` written into its state directory before it starts.
    struct World {
        let dir: TemporaryDirectory
        let upstream: UpstreamRepository
        let commit: String
        let daemon: RunningDaemon

        init(tasks: [String] = ["deploy", "test"], extraConfig: String = "", environment: [String: String] = [:],
             before: (_ state: String, _ commit: String) throws -> Void) throws {
            dir = try TemporaryDirectory()
            upstream = try UpstreamRepository(in: dir.path)
            commit = try upstream.commit(["shipyard.yaml": HistoryJournal.shipyard])
            try before(dir.path + "/state", commit)
            let executors = tasks.map { "  \($0):\n    command: [\"/bin/true\"]" }.joined(separator: "\n")
            daemon = try RunningDaemon(directory: dir.path, config: """
                projects:
                  - name: shop
                    upstream: \(upstream.fileURL)
                    pollInterval: 1h
                tasks:
                \(executors)
                \(extraConfig)
                """, environment: environment)
        }

        /// The shipyard is loaded and the record read (an import may take a while).
        func ready() async -> Bool {
            guard await daemon.waitFor("shop", timeout: .seconds(60), { $0.shipyardCommit == commit }) != nil else { return false }
            return await eventually(timeout: .seconds(60)) { daemon.log.contains(" INFO ready") }
        }

        func json(_ arguments: [String]) throws -> Any {
            let out = try daemon.ctl(arguments + ["--output", "json"])
            #expect(out.status == 0, "\(arguments): \(out.stderr)")
            return try JSONSerialization.jsonObject(with: Data(out.stdout.utf8))
        }

        func sequences() throws -> [[String: Any]] {
            try json(["sequences", "--all"]) as? [[String: Any]] ?? []
        }

        func stages(_ context: String) throws -> [[String: Any]] {
            (try json(["sequence", context]) as? [String: Any])?["stages"] as? [[String: Any]] ?? []
        }
    }

    static func journal(_ state: String) -> String { state + "/journal/events.jsonl" }

    @Test func anOldJournalIsImportedAtTheFirstStartAndWorkCarriesOn() async throws {
        var history = HistoryJournal.Summary()
        // No local `test`: it is answered from outside, so a late answer can be sent.
        let world = try World(tasks: ["deploy"]) { state, commit in
            history = try HistoryJournal.write(
                to: Self.journal(state), project: "shop", deliveries: 300, start: Date().addingTimeInterval(-30 * Self.day), spacing: 600,
                waiting: 2, lastLine: #"{"id":"torn-by-a-crash","#, commit: commit)
        }
        #expect(await world.ready(), "\(world.daemon.log)")
        let log = world.daemon.log
        #expect(log.contains("imported the journal of an earlier release"), "\(log)")
        #expect(log.contains("torn last line"))
        #expect(FileManager.default.fileExists(atPath: Self.journal(world.daemon.state) + ".imported"))
        // The imported record is private from the start: nothing to convert at the next start.
        var info = stat()
        #expect(stat(world.daemon.state + "/shipyard.db", &info) == 0 && info.st_mode & 0o777 == 0o600)
        #expect(!log.contains("is now private to shipyardd"))
        #expect(!FileManager.default.fileExists(atPath: Self.journal(world.daemon.state)))

        // Everything is there, and the default listing is the newest 50.
        #expect(try world.sequences().count == 604)
        let listing = try world.daemon.ctl(["sequences"])
        // The table (a header and 50 rows), then why the held ones wait, after a blank line.
        #expect(listing.stdout.components(separatedBy: "\n\n")[0].split(separator: "\n").count == 51, "\(listing.stdout)")
        #expect(listing.stderr.contains("older sequences not shown"))
        // Filters: an age (300 s away from any delivery: the 121st onwards), a date, a service, a limit.
        #expect((try world.json(["sequences", "--since", "41995m", "--all"]) as? [[String: Any]])?.count == 2 * (300 - 121 + 2))
        let tomorrow = Timestamps.format(Date().addingTimeInterval(Self.day))
        #expect((try world.json(["sequences", "--since", tomorrow]) as? [[String: Any]])?.isEmpty == true)
        #expect(try world.daemon.ctl(["sequences", "--since", tomorrow]).stdout == "no sequences match\n")
        let unreadable = try world.daemon.ctl(["sequences", "--since", "yesterday"])
        #expect(unreadable.status != 0 && unreadable.stderr.contains("--since"), "\(unreadable.stderr)")
        let held = try world.json(["sequences", "--service", "held-1"]) as? [[String: Any]] ?? []
        #expect(held.map { $0["stage"] as? String } == ["qa", "production"])
        let three = try world.daemon.ctl(["sequences", "--limit", "3"])
        #expect(three.stdout.components(separatedBy: "\n\n")[0].split(separator: "\n").count == 4 && three.stderr.contains("older sequences not shown"))
        let old = try world.stages(history.finished[0])
        #expect(old.map { $0["state"] as? String } == ["finished", "finished"])

        // The waiting approvals were carried over: one approved, its production deploys.
        let approvals = try world.json(["approvals"]) as? [[String: Any]] ?? []
        #expect(Set(approvals.compactMap { $0["id"] as? String }) == Set(history.approvals))
        let approved = try world.daemon.ctl(["approve", history.approvals[0], "--reason", "imported and approved"])
        #expect(approved.status == 0, "\(approved.stderr)")
        #expect(await eventually { ((try? world.stages(history.waiting[0])) ?? []).last?["result"] as? String == "pass" })

        // A late answer to a task of a delivery that ended long ago is refused from the record.
        let test = try #require((old[0]["tasks"] as? [[String: Any]])?.first { $0["name"] as? String == "test" }?["triggeredID"] as? String)
        let late = try world.dir.write("late.json", """
            {"id": "late-1", "source": "ci", "type": "sh.keptn.event.test.finished", "shkeptncontext": "\(history.finished[0])",
             "triggeredid": "\(test)", "data": {"result": "pass"}}
            """)
        let refused = try world.daemon.ctl(["send", "event", "--file", late])
        #expect(refused.status == 1)
        #expect(refused.stderr.contains("task test of qa.delivery (\(history.finished[0])) is no longer running: its sequence ended finished (pass)"), "\(refused.stderr)")
        // The same event sent again (a retry) is acknowledged and changes nothing.
        let recorded = try #require(try world.daemon.ctl(["events", "--context", history.finished[0]]).stdout.split(separator: "\n")
            .first { $0.contains("\"type\":\"sh.keptn.event.test.finished\"") })
        let retry = try world.dir.write("retry.json", String(recorded))
        let again = try world.daemon.ctl(["send", "event", "--file", retry])
        #expect(again.status == 0, "\(again.stderr)")
        #expect(again.stdout.contains("was already applied; nothing changed"), "\(again.stdout)")
    }

    @Test func aKillDuringTheImportLeavesItToBeRedoneAndAfterItToBeFinished() async throws {
        for point in ["batch:1", "renamed"] {
            var history = HistoryJournal.Summary()
            let world = try World(environment: ["SHIPYARD_FAULT_KILL_IMPORT": point]) { state, _ in
                // 400 deliveries: 6,400 events, two batches.
                history = try HistoryJournal.write(to: Self.journal(state), project: "shop", deliveries: 400, start: Date().addingTimeInterval(-Self.day), spacing: 60)
            }
            let state = world.daemon.state
            let original = try Data(contentsOf: URL(fileURLWithPath: Self.journal(state)))
            #expect(await eventually(timeout: .seconds(60)) { !world.daemon.isRunning }, "killed at \(point)")
            #expect(try Data(contentsOf: URL(fileURLWithPath: Self.journal(state))) == original)
            #expect(FileManager.default.fileExists(atPath: state + "/shipyard.db") == (point == "renamed"))

            world.daemon.environment = [:]
            try world.daemon.start()
            #expect(await world.ready(), "\(world.daemon.log)")
            #expect(world.daemon.log.contains(point == "renamed" ? "the import of the old journal had completed" : "imported the journal"))
            let sequences = try world.sequences()
            #expect(sequences.count == 800, "\(point)")
            #expect(Set(sequences.compactMap { $0["context"] as? String }) == Set(history.finished))
            #expect(!FileManager.default.fileExists(atPath: state + "/shipyard.db.importing"))
            #expect(FileManager.default.fileExists(atPath: Self.journal(state) + ".imported"))
        }
    }

    /// A long import must not be killed by systemd's start timeout and begun again forever.
    @Test func anImportAsksSystemdForMoreTimeAsItGoes() async throws {
        var socket: SystemdTests.NotifySocket?
        let notifyPath = FileManager.default.temporaryDirectory.path + "/shipyard-notify-\(UUID().uuidString.prefix(8)).sock"
        defer { unlink(notifyPath) }
        let world = try World(environment: ["NOTIFY_SOCKET": notifyPath]) { state, _ in
            socket = try SystemdTests.NotifySocket(path: notifyPath)
            try HistoryJournal.write(to: Self.journal(state), project: "shop", deliveries: 700, start: Date().addingTimeInterval(-Self.day), spacing: 60)
        }
        let messages = try #require(await socket?.waitFor(.seconds(60)) { $0.contains { $0.hasPrefix("READY=1") } })
        let extensions = messages.filter { $0.hasPrefix("EXTEND_TIMEOUT_USEC=") }
        #expect(extensions.count >= 2, "\(messages)")
        #expect(extensions.allSatisfy { $0.contains("STATUS=importing the journal of an earlier release: ") && $0.hasSuffix(" events so far") })
        #expect(messages.firstIndex { $0.hasPrefix("READY=1") }! > messages.firstIndex { $0.hasPrefix("EXTEND_TIMEOUT_USEC=") }!)
        #expect(await world.ready())
    }

    @Test func aDamagedRecordStopsTheDaemonWithWhatToDo() async throws {
        let garbage = Data((0..<20000).map { UInt8(truncatingIfNeeded: $0 &* 7) })
        let world = try World { state, _ in
            try FileManager.default.createDirectory(atPath: state, withIntermediateDirectories: true)
            try garbage.write(to: URL(fileURLWithPath: state + "/shipyard.db"))
        }
        #expect(await eventually(timeout: .seconds(30)) { !world.daemon.isRunning })
        let log = world.daemon.log
        #expect(log.contains("shipyardd: the event record \(world.daemon.state)/shipyard.db is damaged"), "\(log)")
        #expect(log.contains("Restore it from a backup, or move it aside (mv "))
        #expect(try Data(contentsOf: URL(fileURLWithPath: world.daemon.state + "/shipyard.db")) == garbage)
        let cli = try world.daemon.ctl(["sequences"])
        #expect(cli.status == 1 && cli.stderr.contains("is damaged"), "\(cli.stderr)")
    }

    @Test func retentionRemovesOldDeliveriesWhileNewOnesRun() async throws {
        var history = HistoryJournal.Summary()
        let world = try World(extraConfig: "history:\n  keep: 45d\n") { state, _ in
            // 60 deliveries a day apart, from 90.5 days ago; then one waiting for approval since 30.5 days.
            history = try HistoryJournal.write(
                to: Self.journal(state), project: "shop", deliveries: 60, start: Date().addingTimeInterval(-90.5 * Self.day), spacing: Self.day,
                waiting: 1)
            for context in [history.finished[0], history.finished[59]] {
                try FileManager.default.createDirectory(atPath: state + "/logs/\(context)", withIntermediateDirectories: true)
                try Data("deploy log\n".utf8).write(to: URL(fileURLWithPath: state + "/logs/\(context)/qa-deploy.log"))
            }
        }
        #expect(await world.ready(), "\(world.daemon.log)")
        var live: [String] = []
        for i in 0..<3 {
            let out = try world.daemon.ctl(["trigger", "delivery", "--project", "shop", "--service", "live-\(i)", "--output", "json"])
            #expect(out.status == 0, "\(out.stderr)")
            live.append(try #require((try JSONSerialization.jsonObject(with: Data(out.stdout.utf8)) as? [String: Any])?["context"] as? String))
        }
        #expect(await eventually(timeout: .seconds(60)) {
            live.allSatisfy { ((try? world.stages($0)) ?? []).last?["state"] as? String == "finished" }
        }, "\(world.daemon.log)")
        #expect(await eventually { world.daemon.log.contains("history: removed 46 deliveries") }, "\(world.daemon.log)")

        // Ended before 45 days ago: the first 46 (days -90.5 … -45.5) go; the rest stay.
        let kept = Set(try world.sequences().compactMap { $0["context"] as? String })
        #expect(kept == Set(history.finished.dropFirst(46) + history.waiting + live))
        #expect(try world.daemon.ctl(["events", "--context", history.finished[0]]).stdout.isEmpty)
        #expect(!FileManager.default.fileExists(atPath: world.daemon.state + "/logs/\(history.finished[0])"))
        #expect(FileManager.default.fileExists(atPath: world.daemon.state + "/logs/\(history.finished[59])/qa-deploy.log"))
        // The approval that has waited 30 days is still pending.
        #expect((try world.json(["approvals"]) as? [[String: Any]])?.count == 1)
    }

    @Test(.enabled(if: LocalUsers.canCreate, "needs root to create users (useradd) and switch to them (setpriv)"))
    func operatorsReadTheRecordWhileTheDaemonWritesAndAfterItStopped() async throws {
        let users = try LocalUsers()
        let world = try SequenceTests.World(seconds: "gate", users: users)
        #expect(await world.ready(), "\(world.daemon.log)")
        var contexts: [String] = []
        for i in 0..<6 {
            let out = try world.daemon.ctl(["trigger", "delivery", "--project", "fulltour", "--service", "svc-\(i)", "--output", "json"])
            #expect(out.status == 0, "\(out.stderr)")
            contexts.append(String(out.stdout.split(separator: "\"")[3]))
        }
        // alice reads all the while, as tasks run and then as they end by the dozen; every read
        // answers, none waits for the daemon.
        var reads = 0
        func read() throws {
            for arguments in [["sequences"], ["events", "--context", contexts[reads % 6]], ["sequence", contexts[reads % 6]]] {
                let out = try world.daemon.ctl(arguments)
                #expect(out.status == 0, "\(arguments): \(out.stderr)")
            }
            reads += 1
        }
        #expect(await eventually { (try? world.daemon.ctl(["sequences"]).stdout.contains("started")) == true })
        for _ in 0..<3 { try read() }
        try world.openGate()
        let done = try await eventually(timeout: .seconds(120), every: .milliseconds(1)) {
            try read()
            return contexts.allSatisfy { context in
                let view = (try? world.daemon.ctl(["sequence", context, "--output", "json"]).stdout).flatMap { try? JSONSerialization.jsonObject(with: Data($0.utf8)) } as? [String: Any]
                return (view?["stages"] as? [[String: Any]] ?? []).contains { $0["stage"] as? String == "production" && $0["state"] as? String == "finished" }
            }
        }
        #expect(done, "\(world.daemon.log)")
        #expect(reads > 3)
        // The record is the daemon's alone: with the daemon stopped, alice is told so, and root
        // (who may open it) reads it directly.
        #expect(await world.daemon.stop() == 0)
        let refused = try world.daemon.ctl(["sequences", "--output", "json"])
        #expect(refused.status == 1 && refused.stderr.contains("shipyardd is not running: nothing answers on"), "\(refused.stderr)")
        let after = try Command.run("shipyardctl", ["sequences", "--output", "json", "--state-dir", world.daemon.state])
        #expect(after.status == 0, "\(after.stderr)")
        #expect(after.stderr.contains("shipyardd is not running; reading its record"))
        #expect(contexts.allSatisfy { after.stdout.contains($0) })
        let events = try Command.run("shipyardctl", ["events", "--state-dir", world.daemon.state])
        #expect(events.status == 0 && events.stdout.split(separator: "\n").count > 6 * 10, "\(events.stderr)")
    }
}
