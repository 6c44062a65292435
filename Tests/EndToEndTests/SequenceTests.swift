import Foundation
import ShipyardCore
import ShipyardDaemon
import ShipyardTestKit
import Testing

/// Deliveries run by the real daemon with real task programs, checked from the programs' own output.
@Suite(.serialized) struct SequenceTests {
    /// An upstream holding the tutorial's shipyard and a daemon whose tasks are shell scripts that
    /// append what they saw to `runs.txt`.
    struct World {
        let dir: TemporaryDirectory
        let upstream: UpstreamRepository
        let daemon: RunningDaemon
        let commit: String
        var record: String { dir.path + "/runs.txt" }

        /// `testCommand` replaces the je-test script, with `testTimeout`. `seconds: "gate"` makes
        /// every task wait until the test opens the gate (at most two minutes), so that a test
        /// acts while a task runs whatever the machine's load, never against a timer.

        init(
            shipyard: String = GitWatchingTests.tutorial, testExit: Int = 0, seconds: String = "0",
            testCommand: ((String) throws -> String)? = nil, testTimeout: String = "15m", extraConfig: String = "",
            users: LocalUsers? = nil, activated: Bool = false, environment: [String: String] = [:]
        ) throws {
            dir = try TemporaryDirectory()
            upstream = try UpstreamRepository(in: dir.path)
            commit = try upstream.commit(["shipyard.yaml": shipyard, "charts/helloservice/values.yaml": "replicas: 1\n"])
            let script = """
                #!/bin/sh
                line="$SHIPYARD_CONTEXT $SHIPYARD_STAGE $SHIPYARD_TASK attempt=$SHIPYARD_ATTEMPT image=${SHIPYARD_IMAGE:-none} service=$SHIPYARD_SERVICE pwd=$PWD"
                [ -f charts/helloservice/values.yaml ] && line="$line worktree=ok"
                line="$line mode=$(stat -c %A charts/helloservice/values.yaml)"
                [ "$KEPTN_STAGE" = "$SHIPYARD_STAGE" ] && [ -f "$SHIPYARD_EVENT" ] && line="$line env=ok"
                echo "$line" >> \(dir.path)/runs.txt
                echo "$SHIPYARD_TRIGGERED_ID $(date +%s.%N)" >> \(dir.path)/starts.txt
                \(seconds == "gate"
                    ? "i=0; while [ ! -e \(dir.path)/go ] && [ $i -lt 1200 ]; do sleep 0.1; i=$((i+1)); done"
                    : "sleep \(seconds)")

                """
            let deploy = try dir.write("tasks/deploy", script, mode: 0o755)
            let test = try testCommand?(dir.path) ?? dir.write("tasks/test", script + "exit \(testExit)\n", mode: 0o755)
            if let users {
                // The task programs (run as the daemon's user) write their record here; the
                // upstream repository inside stays root's.
                chown(dir.path, users.uid(users.daemon), users.gid(users.group))
            }
            daemon = try RunningDaemon(directory: dir.path, users: users, config: """
                projects:
                  - name: fulltour
                    upstream: \(upstream.fileURL)
                    pollInterval: 1s
                tasks:
                  je-deployment:
                    command: ["\(deploy)"]
                  je-test:
                    command: ["\(test)"]
                    timeout: \(testTimeout)
                \(extraConfig)
                """, environment: environment, activated: activated)
        }

        func ready() async -> Bool {
            await daemon.waitFor("fulltour") { $0.shipyardCommit == commit } != nil
        }

        func trigger(_ arguments: [String] = []) throws -> String {
            let out = try daemon.ctl(["trigger", "delivery", "--project", "fulltour", "--service", "helloservice", "--output", "json"] + arguments)
            #expect(out.status == 0, "\(out.stderr)\n\(daemon.log.suffix(3000))")
            let json = try JSONSerialization.jsonObject(with: Data(out.stdout.utf8)) as? [String: String]
            return json?["context"] ?? ""
        }

        func sequences() throws -> [[String: Any]] {
            let out = try daemon.ctl(["sequences", "--output", "json"])
            return (try JSONSerialization.jsonObject(with: Data(out.stdout.utf8)) as? [[String: Any]]) ?? []
        }

        func state(_ context: String, _ stage: String) throws -> String? {
            try sequences().last { $0["context"] as? String == context && $0["stage"] as? String == stage }?["state"] as? String
        }

        func waitState(_ context: String, _ stage: String, _ state: String, timeout: Duration = .seconds(30)) async -> Bool {
            await eventually(timeout: timeout, every: .milliseconds(100)) { (try? self.state(context, stage)) == state }
        }

        func openGate() throws { try writeFile(dir.path + "/go", Data()) }
        func closeGate() { unlink(dir.path + "/go") }

        var runs: [String] {
            ((try? String(contentsOfFile: record, encoding: .utf8)) ?? "").split(separator: "\n").map(String.init)
        }

        /// Task runs that started after the record already held that task's `.finished`: each
        /// would be a delivery done twice. A task may run again only while it is unfinished.
        func runsAfterTheirFinish() -> [String] {
            let finished = Dictionary(events().compactMap { event -> (String, Double)? in
                guard (event["type"] as? String)?.hasSuffix(".finished") == true, let id = event["triggeredid"] as? String,
                    let time = (event["time"] as? String).flatMap(Timestamps.parse)
                else { return nil }
                return (id, time.timeIntervalSince1970)
            }) { first, _ in first }
            let starts = ((try? String(contentsOfFile: dir.path + "/starts.txt", encoding: .utf8)) ?? "").split(separator: "\n")
            return starts.map(String.init).filter { line in
                let parts = line.split(separator: " ")
                guard parts.count == 2, let at = Double(parts[1]), let end = finished[String(parts[0])] else { return false }
                return at > end + 0.001
            }
        }

        func events() -> [[String: Any]] {
            let text = (try? daemon.ctl(["events"]).stdout) ?? ""
            return text.split(separator: "\n").compactMap { try? JSONSerialization.jsonObject(with: Data($0.utf8)) as? [String: Any] }
        }
    }

    @Test func theTutorialDeliveryRunsQAThenProductionWithTheRightEnvironment() async throws {
        let world = try World()
        #expect(await world.ready())
        let context = try world.trigger(["--image", "ghcr.io/podtato-head/podtatoserver:v0.1.1"])
        #expect(await world.waitState(context, "production", "finished"))
        let worktree = world.daemon.state + "/worktrees/\(world.commit)"
        let common = "attempt=1 image=ghcr.io/podtato-head/podtatoserver:v0.1.1 service=helloservice pwd=\(worktree) worktree=ok mode=-r--r----- env=ok"
        #expect(world.runs == [
            "\(context) qa je-deployment \(common)",
            "\(context) qa je-test \(common)",
            "\(context) production je-deployment \(common)",
        ])
        #expect(try world.state(context, "qa") == "finished")
        // The worktree is removed once no active sequence needs it.
        #expect(await eventually { !FileManager.default.fileExists(atPath: worktree) })

        let detail = try world.daemon.ctl(["sequence", context])
        #expect(detail.stdout.contains("qa.delivery: finished (pass) at \(world.commit.prefix(12))"))
        let events = try world.daemon.ctl(["events", "--context", context])
        let types = events.stdout.split(separator: "\n").compactMap {
            (try? JSONSerialization.jsonObject(with: Data($0.utf8)) as? [String: Any])?["type"] as? String
        }
        #expect(types.first == "sh.keptn.event.qa.delivery.triggered")
        #expect(types.last == "sh.keptn.event.production.delivery.finished")
        #expect(types.count == 13)
    }

    @Test func aFailingTestStopsTheDeliveryInQA() async throws {
        let world = try World(testExit: 3)
        #expect(await world.ready())
        let context = try world.trigger()
        #expect(await world.waitState(context, "qa", "finished"))
        let qa = try world.sequences().first { $0["stage"] as? String == "qa" }
        #expect(qa?["result"] as? String == "fail")
        #expect(!(try world.sequences()).contains { $0["stage"] as? String == "production" })
        #expect(world.runs.count == 2)
        let detail = try world.daemon.ctl(["sequence", context]).stdout
        #expect(detail.contains("je-test          finished fail/errored (") && detail.contains("): je-test exited with status 3"), "\(detail)")
    }

    @Test func aHangingTaskIsKilledAtItsTimeoutWithItsChildren() async throws {
        // je-test starts a child, ignores SIGTERM, and hangs: the whole group must be killed.
        let world = try World(testCommand: { dir in
            try writeFile(dir + "/hang", Data("""
                #!/bin/sh
                sleep 1000 &
                echo $! > \(dir)/child.pid
                echo $$ > \(dir)/parent.pid
                trap '' TERM
                sleep 1000

                """.utf8), mode: 0o755)
            return dir + "/hang"
        }, testTimeout: "1s")
        #expect(await world.ready())
        let context = try world.trigger()
        #expect(await world.waitState(context, "qa", "finished", timeout: .seconds(30)))
        let detail = try world.daemon.ctl(["sequence", context]).stdout
        #expect(detail.contains("je-test          finished fail/errored (") && detail.contains("): je-test timed out after 1s"), "\(detail)")
        for file in ["child.pid", "parent.pid"] {
            let pid = Int32((try String(contentsOfFile: world.dir.path + "/" + file, encoding: .utf8)).trimmingCharacters(in: .whitespacesAndNewlines)) ?? 0
            #expect(pid > 0)
            #expect(await eventually(timeout: .seconds(10)) { kill(pid, 0) != 0 }, "\(file) \(pid) still alive")
        }
        #expect(!(try world.sequences()).contains { $0["stage"] as? String == "production" })
    }

    @Test func twoDeliveriesOfOneServiceQueue() async throws {
        let world = try World(seconds: "1")
        #expect(await world.ready())
        let first = try world.trigger()
        let second = try world.trigger()
        #expect(await eventually { (try? world.state(second, "qa")) == "waiting" })
        #expect(await world.waitState(second, "production", "finished", timeout: .seconds(60)))
        let order = world.runs.map { $0.split(separator: " ").prefix(3).joined(separator: " ") }
        #expect(Set(order) == [
            "\(first) qa je-deployment", "\(first) qa je-test", "\(first) production je-deployment",
            "\(second) qa je-deployment", "\(second) qa je-test", "\(second) production je-deployment",
        ])
        #expect(order.count == 6)
        // The second's qa started only after the first's qa had finished, by the record's order.
        let types = world.events().map { "\($0["shkeptncontext"] as? String ?? "") \($0["type"] as? String ?? "")" }
        let firstLeft = try #require(types.firstIndex(of: "\(first) sh.keptn.event.qa.delivery.finished"))
        let secondStart = try #require(types.firstIndex(of: "\(second) sh.keptn.event.je-deployment.triggered"))
        #expect(secondStart > firstLeft)
    }

    @Test func triggersThatNameNothingAreRefusedAtOnce() async throws {
        let world = try World()
        #expect(await world.ready())
        let wrong = try world.daemon.ctl(["trigger", "deliver", "--project", "fulltour", "--service", "helloservice"])
        #expect(wrong.status == 1)
        #expect(wrong.stderr == "shipyardctl: no sequence \"deliver\" in project fulltour (sequences: delivery)\n")
        let stage = try world.daemon.ctl(["trigger", "delivery", "--project", "fulltour", "--service", "helloservice", "--stage", "prod"])
        #expect(stage.stderr == "shipyardctl: no stage \"prod\" in project fulltour (stages: qa, production)\n")
        #expect(try world.sequences().isEmpty)
    }

    @Test func aTaskWithoutExecutorWaitsForAnExternalAnswer() async throws {
        let shipyard = GitWatchingTests.tutorial.replacingOccurrences(of: "\"je-test\"", with: "\"external-check\"")
        let world = try World(shipyard: shipyard)
        #expect(await world.ready())
        let context = try world.trigger()
        var triggered: [String: Any]?
        #expect(await eventually {
            triggered = world.events().last { $0["type"] as? String == "sh.keptn.event.external-check.triggered" }
            return triggered != nil
        })
        let id = triggered?["id"] as? String ?? ""
        // .started is sent twice (a retry): the second changes nothing.
        for phase in ["started", "started", "finished"] {
            let event = """
                {"specversion":"1.0","id":"ext-\(phase)","source":"my-checker","type":"sh.keptn.event.external-check.\(phase)",
                 "time":"2020-01-01T00:00:00.000Z","shkeptncontext":"\(context)","triggeredid":"\(id)",
                 "data":{"result":"pass","status":"succeeded","message":"checked by hand"}}
                """
            let file = try world.dir.write("\(phase).json", event)
            let sent = try world.daemon.ctl(["send", "event", "--file", file])
            #expect(sent.status == 0, "\(sent.stderr)")
        }
        #expect(await world.waitState(context, "production", "finished"))
        // The record names the sender by the request file's owner and dates it by the daemon's clock.
        let answers = world.events().filter { $0["triggeredid"] as? String == id }
        #expect(answers.count == 2)
        for answer in answers {
            #expect(answer["source"] as? String == "shipyardctl/\(ApprovalTests.me)/my-checker")
            let time = try #require((answer["time"] as? String).flatMap(Timestamps.parse))
            #expect(abs(time.timeIntervalSinceNow) < 600)
        }
        let bogus = try world.dir.write("bogus.json", """
            {"specversion":"1.0","id":"x","source":"s","type":"sh.keptn.event.external-check.finished","time":"",
             "shkeptncontext":"\(context)","triggeredid":"nope","data":{"result":"pass"}}
            """)
        let refused = try world.daemon.ctl(["send", "event", "--file", bogus])
        #expect(refused.status == 1)
        #expect(refused.stderr == "shipyardctl: no triggered task has the id nope\n")
    }

    @Test func aStopLetsARunningTaskFinishWithinTheGracePeriod() async throws {
        let world = try World(seconds: "gate", extraConfig: "stopGracePeriod: 20s")
        #expect(await world.ready())
        let context = try world.trigger()
        #expect(await eventually { world.runs.count == 1 })
        world.daemon.signal(SIGTERM)
        #expect(await eventually { world.daemon.log.contains("waiting up to 20s for 1 running task(s) to finish") })
        try world.openGate()
        #expect(await world.daemon.stop() == 0)
        #expect(world.daemon.log.contains("je-test not started: the daemon is stopping"))
        try world.daemon.start()
        #expect(await world.waitState(context, "production", "finished", timeout: .seconds(60)))
        // je-deployment finished during the grace period: it never ran again.
        #expect(world.runs.filter { $0.contains(" qa je-deployment ") }.count == 1)
        #expect(world.runs.filter { $0.contains(" qa je-test attempt=1") }.count == 1)
    }

    @Test func aStopWhileATaskRunsRunsItAgainAtTheNextStart() async throws {
        let world = try World(seconds: "gate", extraConfig: "stopGracePeriod: 0s")
        #expect(await world.ready())
        let context = try world.trigger()
        #expect(await eventually { world.runs.count == 1 })
        #expect(await world.daemon.stop() == 0)
        #expect(world.daemon.log.contains("task interrupted by the daemon's stop"))
        try world.daemon.start()
        #expect(await eventually { world.runs.count == 2 })
        try world.openGate()
        #expect(await world.waitState(context, "production", "finished", timeout: .seconds(60)))
        let deploys = world.runs.filter { $0.contains(" qa je-deployment ") }
        #expect(deploys.map { $0.split(separator: " ")[3] } == ["attempt=1", "attempt=2"])
        #expect(world.daemon.log.contains("was running when the daemon stopped; running it again"))
        let finished = world.events().filter { $0["type"] as? String == "sh.keptn.event.je-deployment.finished" }
        #expect(finished.count == 2)
    }

    @Test func pauseResumeAndAbortFromTheCLI() async throws {
        let world = try World(seconds: "gate")
        #expect(await world.ready())
        let context = try world.trigger()
        #expect(await eventually { world.runs.count == 1 })
        let paused = try world.daemon.ctl(["pause", context])
        try world.openGate()
        #expect(paused.stdout == "paused \(context)\n")
        #expect(try world.state(context, "qa") == "paused")
        // The running je-deployment finishes; je-test does not start while paused. The engine
        // records a task's .finished together with whatever it triggers, so once the .finished is
        // in the record, a je-test.triggered would be too.
        #expect(await eventually { world.events().contains { $0["type"] as? String == "sh.keptn.event.je-deployment.finished" } })
        #expect(!world.events().contains { $0["type"] as? String == "sh.keptn.event.je-test.triggered" })
        #expect(world.runs.count == 1)
        world.closeGate()  // je-test will be running when the abort comes
        #expect(try world.daemon.ctl(["resume", context]).stdout == "resumed \(context)\n")
        #expect(await eventually { world.runs.count == 2 })
        let aborted = try world.daemon.ctl(["abort", context])
        #expect(aborted.stdout == "aborted \(context)\n")
        #expect(await world.waitState(context, "qa", "aborted"))
        #expect(!(try world.sequences()).contains { $0["stage"] as? String == "production" })
        let unknown = try world.daemon.ctl(["abort", "no-such-context"])
        #expect(unknown.stderr == "shipyardctl: no sequence has a context starting with no-such-context (shipyardctl sequences lists them)\n")
    }

    @Test func aRequestWrittenWhileTheDaemonIsDownIsAppliedAtStart() async throws {
        let world = try World(activated: true)
        #expect(await world.ready())
        #expect(await world.daemon.stop() == 0)
        // Its socket stays (as systemd keeps it): the trigger waits in its queue for the daemon.
        let late = Task.detached { try world.daemon.ctl(["trigger", "delivery", "--project", "fulltour", "--service", "helloservice", "--timeout", "60"]) }
        try await Task.sleep(for: .milliseconds(500))
        try world.daemon.start()
        let answered = try await late.value
        #expect(answered.status == 0 && answered.stdout.hasPrefix("qa.delivery triggered for helloservice"), "\(answered.stderr)")
        #expect(await eventually(timeout: .seconds(30)) {
            (try? world.sequences())?.contains { $0["stage"] as? String == "production" && $0["state"] as? String == "finished" } == true
        })
    }

    /// Where the crash tests keep the record: SQLite in the state directory, or a PostgreSQL
    /// database of their own (Debian's server, the tests' cluster), which the daemon leads.
    enum Record: String, CaseIterable, Sendable, CustomTestStringConvertible {
        case sqlite, postgres

        var testDescription: String { rawValue }

        /// The config's `store:` for this record.
        func config() throws -> String {
            guard self == .postgres else { return "" }
            let server = try PostgresServer.shared.get()
            return """
                store:
                  postgres:
                    url: \(server.url(database: try server.database()))
                    passwordFile: \(server.passwordFile)
                """
        }

        static var available: [Record] { PostgresServer.isInstalled ? allCases : [.sqlite] }
    }

    @Test(arguments: Record.available)
    func aCrashAfterEveryStepOfADeliveryLosesAndRepeatsNothing(record: Record) async throws {
        let world = try World(seconds: "0.2", extraConfig: try record.config())
        #expect(await world.ready())
        #expect(await world.daemon.stop() == 0)
        // Each run of the daemon is killed right after its first journal append: after every
        // single durable step of the delivery, before anything acts on it.
        world.daemon.environment = ["SHIPYARD_FAULT_KILL_AFTER_APPENDS": "1"]
        try world.daemon.start()
        // Leading (on a shared record a run that only stands by would turn the trigger away).
        #expect(await eventually(timeout: .seconds(30)) {
            let status = world.daemon.status()
            return status?.pid == world.daemon.pid && (status?.cluster?.role ?? "leader") == "leader"
        }, "\(world.daemon.log.suffix(3000))")
        // Its append kills the daemon before it answers: the trigger's own outcome is not known.
        _ = try world.daemon.ctl(["trigger", "delivery", "--project", "fulltour", "--service", "helloservice", "--timeout", "2"])
        #expect(await eventually(timeout: .seconds(20)) { !world.daemon.isRunning }, "the trigger was not recorded: \(world.daemon.log.suffix(3000))")
        func finished() -> Bool {
            (try? world.sequences())?.contains { $0["stage"] as? String == "production" && $0["state"] as? String == "finished" } == true
        }
        var crashes = 0
        // Each run does one step and dies (on a shared record after the killed run's lease ran
        // out, 5 s): 7 steps in all, with room to spare.
        for _ in 0..<20 where !finished() {
            _ = await world.daemon.stop()
            crashes += 1
            try world.daemon.start()
            _ = await eventually(timeout: .seconds(30)) { !world.daemon.isRunning || finished() }
        }
        #expect(finished(), "\(world.daemon.log.suffix(4000))")
        let sequences = try world.sequences()
        #expect(sequences.count == 2)
        #expect(sequences.allSatisfy { $0["state"] as? String == "finished" && $0["result"] as? String == "pass" })
        // 13 events in 7 appends (a task's .finished is recorded with what it triggers): the
        // daemon died after each append but the last, which finished the delivery.
        let events = world.events()
        #expect(events.count == 13)
        #expect(crashes >= 6)
        #expect(Set(events.compactMap { $0["id"] as? String }).count == events.count)
        for task in ["qa je-deployment", "qa je-test", "production je-deployment"] {
            #expect(!world.runs.filter { $0.contains(" \(task) ") }.isEmpty, "\(task) never ran")
        }
        #expect(world.runsAfterTheirFinish().isEmpty)
    }

    @Test(arguments: Record.available)
    func killingTheDaemonAtAnyPointLosesAndRepeatsNothing(record: Record) async throws {
        let world = try World(seconds: "0.3", extraConfig: try record.config())
        #expect(await world.ready())
        var contexts: [String] = []
        // Kill -9 at staggered moments of running deliveries, restart, and let them go on.
        for round in 0..<8 {
            contexts.append(try world.trigger())
            try await Task.sleep(for: .milliseconds(150 + 170 * (round % 5)))
            world.daemon.signal(SIGKILL)
            _ = await world.daemon.stop()
            try world.daemon.start()
            // On a shared record the new run leads once the killed run's lease ran out (5 s).
            #expect(await eventually(timeout: .seconds(30)) {
                let status = world.daemon.status()
                return status?.pid == world.daemon.pid && (status?.cluster?.role ?? "leader") == "leader"
            })
        }
        for context in contexts {
            #expect(await world.waitState(context, "production", "finished", timeout: .seconds(90)), "\(context) did not finish")
        }
        let events = world.events()
        // No gap, no duplicate: unique ids; every task triggered once and finished once.
        let ids = events.compactMap { $0["id"] as? String }
        #expect(Set(ids).count == ids.count)
        let triggered = events.filter { ($0["type"] as? String)?.hasSuffix("je-deployment.triggered") == true || ($0["type"] as? String)?.hasSuffix("je-test.triggered") == true }
        #expect(triggered.count == contexts.count * 3)
        for event in triggered {
            let id = event["id"] as? String ?? ""
            let answers = events.filter { $0["triggeredid"] as? String == id }
            #expect(answers.filter { ($0["type"] as? String)?.hasSuffix(".finished") == true }.count == 1)
            #expect(answers.filter { ($0["type"] as? String)?.hasSuffix(".started") == true }.count == 1)
            // Each run of a task was one attempt: no attempt number ran twice.
            let stage = (event["data"] as? [String: Any])?["stage"] as? String ?? ""
            let task = ((event["type"] as? String) ?? "").split(separator: ".").dropLast().last.map(String.init) ?? ""
            let context = event["shkeptncontext"] as? String ?? ""
            let ran = world.runs.filter { $0.hasPrefix("\(context) \(stage) \(task) ") }
            #expect(!ran.isEmpty)
            // Each run of a task was one attempt: no attempt number ran twice.
            #expect(Set(ran).count == ran.count, "an attempt ran twice: \(ran)")
        }
        // A task ran again only while it was unfinished (its program lost with the daemon), never
        // after its result was recorded.
        #expect(world.runsAfterTheirFinish().isEmpty, "\(world.runsAfterTheirFinish())")
        // Attempt records are kept only while a task may run again.
        #expect(await eventually { ((try? FileManager.default.contentsOfDirectory(atPath: world.daemon.state + "/runs")) ?? []).isEmpty })
        for context in contexts {
            #expect(try world.sequences().filter { $0["context"] as? String == context }.allSatisfy { $0["result"] as? String == "pass" })
        }
    }
}
