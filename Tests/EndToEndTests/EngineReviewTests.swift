import Foundation
import ShipyardCore
import ShipyardDaemon
import ShipyardTestKit
import Synchronization
import Testing

/// What an independent review of the engine reproduced against the real daemon, each fixed.
@Suite(.serialized) struct EngineReviewTests {
    typealias World = SequenceTests.World

    static let oneStage = """
        apiVersion: "spec.keptn.sh/0.2.4"
        kind: "Shipyard"
        metadata:
          name: "shipyard-bulk"
        spec:
          stages:
            - name: "qa"
              sequences:
                - name: "delivery"
                  tasks:
                    - name: "je-deployment"

        """

    /// Six deliveries of one commit at once: each task sees the whole commit, never a folder
    /// another export is still writing or has deleted.
    @Test func concurrentDeliveriesOfOneCommitEachSeeTheWholeCommit() async throws {
        let dir = try TemporaryDirectory()
        let upstream = try UpstreamRepository(in: dir.path)
        var files = ["shipyard.yaml": Self.oneStage]
        for i in 0..<3000 { files["files/f\(i).txt"] = "\(i)\n" }
        let commit = try upstream.commit(files)
        let count = try dir.write("count", """
            #!/bin/sh
            echo "$SHIPYARD_SERVICE $(find . -type f | wc -l) $(cat files/f2999.txt)" >> \(dir.path)/counts.txt

            """, mode: 0o755)
        let daemon = try RunningDaemon(directory: dir.path, config: RunningDaemon.oneTask(project: "bulk", upstream: upstream.fileURL, program: count))
        #expect(await daemon.waitFor("bulk") { $0.shipyardCommit == commit } != nil)
        let services = (1...6).map { "service\($0)" }
        try await withThrowingTaskGroup(of: Void.self) { group in
            for service in services {
                group.addTask {
                    let out = try daemon.ctl(["trigger", "delivery", "--project", "bulk", "--service", service])
                    #expect(out.status == 0, "\(out.stderr)")
                }
            }
            try await group.waitForAll()
        }
        func sequences() -> [[String: Any]] {
            let out = (try? daemon.ctl(["sequences", "--output", "json"]))?.stdout ?? ""
            return (try? JSONSerialization.jsonObject(with: Data(out.utf8)) as? [[String: Any]]) ?? []
        }
        #expect(await eventually(timeout: .seconds(120), every: .milliseconds(200)) {
            let all = sequences()
            return all.count == 6 && all.allSatisfy { $0["state"] as? String == "finished" }
        })
        let journal = ((try? daemon.ctl(["events"]).stdout) ?? "").split(separator: "\n")
            .compactMap { try? JSONSerialization.jsonObject(with: Data($0.utf8)) as? [String: Any] }
        let failures = journal.filter { $0["type"] as? String == "sh.keptn.event.je-deployment.finished" }
            .compactMap { ($0["data"] as? [String: Any])?["message"] as? String }.filter { !$0.isEmpty }
        #expect(sequences().allSatisfy { $0["result"] as? String == "pass" }, "\(failures)")
        let counts = ((try? String(contentsOfFile: dir.path + "/counts.txt", encoding: .utf8)) ?? "").split(separator: "\n").sorted()
        #expect(counts == services.map { Substring("\($0) 3001 2999") })
        // Nothing half-written is left behind, and the export goes once no sequence needs it.
        #expect(await eventually {
            ((try? FileManager.default.contentsOfDirectory(atPath: daemon.state + "/worktrees")) ?? ["?"]).isEmpty
        })
    }

    /// Pruning an export never changes anything a committed link points at.
    @Test func removingAnExportLeavesWhatItsLinksPointAtAlone() async throws {
        let dir = try TemporaryDirectory()
        let outside = try dir.write("outside/secret", "keep me\n", mode: 0o640)
        chmod(dir.path + "/outside", 0o750)
        let upstream = try UpstreamRepository(in: dir.path)
        try upstream.commit(["shipyard.yaml": Self.oneStage])
        try FileManager.default.createSymbolicLink(atPath: upstream.work + "/link", withDestinationPath: outside)
        try FileManager.default.createSymbolicLink(atPath: upstream.work + "/dirlink", withDestinationPath: dir.path + "/outside")
        try FileManager.default.createSymbolicLink(atPath: upstream.work + "/state-link", withDestinationPath: "../../approvals")
        try upstream.git("add", "link", "dirlink", "state-link")
        let commit = try upstream.commit([:], message: "links")
        let task = try dir.write("task", "#!/bin/sh\nreadlink link > \(dir.path)/seen\n", mode: 0o755)
        let daemon = try RunningDaemon(directory: dir.path, config: RunningDaemon.oneTask(project: "links", upstream: upstream.fileURL, program: task))
        #expect(await daemon.waitFor("links") { $0.shipyardCommit == commit } != nil)
        var before = stat()
        #expect(stat(daemon.state + "/approvals", &before) == 0)
        #expect(try daemon.ctl(["trigger", "delivery", "--project", "links", "--service", "svc"]).status == 0)
        // The task ran in the export (and saw the link), then the export was removed.
        #expect(await eventually { (try? String(contentsOfFile: dir.path + "/seen", encoding: .utf8)) == outside + "\n" })
        #expect(await eventually { !FileManager.default.fileExists(atPath: daemon.state + "/worktrees/\(commit)") })
        var info = stat()
        #expect(stat(outside, &info) == 0 && info.st_mode & 0o7777 == 0o640)
        #expect(stat(dir.path + "/outside", &info) == 0 && info.st_mode & 0o7777 == 0o750)
        #expect(stat(daemon.state + "/approvals", &info) == 0 && info.st_mode & 0o7777 == before.st_mode & 0o7777)
        #expect(try String(contentsOfFile: outside, encoding: .utf8) == "keep me\n")
    }

    /// `send event` cannot decide an approval or a local program's result, which would bypass
    /// approvers and the program itself.
    @Test func sendEventCannotDecideApprovalsOrLocalTasks() async throws {
        let world = try World(shipyard: GitWatchingTests.tutorialWithApproval)
        #expect(await world.ready())
        let context = try world.trigger()
        #expect(await world.waitState(context, "production", "waitingForApproval"))
        let approval = try #require(world.events().last { $0["type"] as? String == "sh.keptn.event.approval.triggered" })
        let forged = try world.dir.write("forged.json", """
            {"specversion":"1.0","id":"forged-1","source":"alice","type":"sh.keptn.event.approval.finished",
             "shkeptncontext":"\(context)","triggeredid":"\(approval["id"] as? String ?? "")",
             "data":{"result":"pass","status":"succeeded","approval":{"decision":"approved","by":"alice"}}}
            """)
        let refused = try world.daemon.ctl(["send", "event", "--file", forged])
        #expect(refused.status == 1)
        #expect(refused.stderr.contains("approval is decided by shipyardd itself and by people through shipyardctl approve/reject"))
        #expect(try world.state(context, "production") == "waitingForApproval")

        let deployment = try #require(world.events().first { $0["type"] as? String == "sh.keptn.event.je-test.triggered" })
        let local = try world.dir.write("local.json", """
            {"specversion":"1.0","id":"forged-2","source":"x","type":"sh.keptn.event.je-test.finished",
             "shkeptncontext":"\(context)","triggeredid":"\(deployment["id"] as? String ?? "")","data":{"result":"pass"}}
            """)
        let refusedLocal = try world.daemon.ctl(["send", "event", "--file", local])
        #expect(refusedLocal.status == 1)
        #expect(refusedLocal.stderr.contains("je-test runs as a local program on this host"))
        #expect(!world.events().contains { $0["id"] as? String == "forged-1" || $0["id"] as? String == "forged-2" })
    }

    @Test func anApprovalIdPrefixMustBeDeliberate() async throws {
        let world = try World(shipyard: GitWatchingTests.tutorialWithApproval)
        #expect(await world.ready())
        let context = try world.trigger()
        #expect(await world.waitState(context, "production", "waitingForApproval"))
        for prefix in ["", "7", "abc"] {
            let out = try world.daemon.ctl(["approve", prefix])
            #expect(out.status == 1)
            #expect(out.stderr.contains("give at least 4 characters of the approval's id"), "\(out.stderr)")
        }
        #expect(try world.state(context, "production") == "waitingForApproval")
    }

    @Test func aRetriedTriggerWithTheSameRequestIdStartsOneDelivery() async throws {
        let world = try World()
        #expect(await world.ready())
        let first = try world.trigger(["--request-id", "release-42"])
        let again = try world.daemon.ctl(["trigger", "delivery", "--project", "fulltour", "--service", "helloservice", "--request-id", "release-42"])
        #expect(again.status == 0)
        #expect(again.stdout == "request release-42 was already applied (context \(first))\n")
        #expect(await world.waitState(first, "production", "finished"))
        #expect(Set(try world.sequences().compactMap { $0["context"] as? String }) == [first])
    }

    /// A crash between the record of a decision and the removal of its file left the approval
    /// listed forever; the start reconciles `approvals/` with the record.
    @Test func aStaleApprovalFileIsRemovedAtStart() async throws {
        let world = try World()
        #expect(await world.ready())
        #expect(await world.daemon.stop() == 0)
        let stale = world.daemon.state + "/approvals/0b5e55ed-0000-0000-0000-000000000000.json"
        try FileManager.default.createDirectory(atPath: world.daemon.state + "/approvals", withIntermediateDirectories: true)
        try writeFile(stale, Data(#"{"id":"0b5e55ed-0000-0000-0000-000000000000","project":"fulltour","stage":"production","service":"s","sequence":"delivery","context":"c","requestedAt":"2026-01-01T00:00:00.000Z"}"#.utf8))
        try world.daemon.start()
        #expect(await eventually { !FileManager.default.fileExists(atPath: stale) })
        #expect(try world.daemon.ctl(["approvals"]).stdout == "no approvals are waiting\n")
    }

    /// The CLI says only what is true when no answer comes: a socket that takes the request and
    /// never answers (a daemon that is starting, or stuck) is not reported as a refusal.
    @Test func aRequestTakenButNeverAnsweredIsReportedAsTaken() async throws {
        let dir = try TemporaryDirectory()
        try FileManager.default.createDirectory(atPath: dir.path + "/state", withIntermediateDirectories: true)
        // A stand-in daemon that accepts every connection and never answers, on a thread of its
        // own (Swift's cooperative pool may be kept busy by other tests).
        let socket = try HeldSocket(path: dir.path + "/state/shipyardd.sock")
        let stop = Atomic<Bool>(false)
        let fd = socket.fd
        let taker = Thread {
            var held: [Int32] = []
            for _ in 0..<2000 where !stop.load(ordering: .relaxed) {
                var entry = pollfd(fd: fd, events: Int16(POLLIN), revents: 0)
                if poll(&entry, 1, 5) > 0 { held.append(accept(fd, nil, nil)) }
            }
            held.forEach { close($0) }
        }
        taker.start()
        let out = try Run.capture(
            Command.path("shipyardctl"), ["trigger", "delivery", "--project", "p", "--service", "s", "--timeout", "2"],
            environment: ["SHIPYARD_STATE_DIR": dir.path + "/state"])
        stop.store(true, ordering: .relaxed)
        #expect(out.status == 1)
        #expect(out.stderr.contains("no answer from shipyardd within 2s"), "\(out.stderr)")
        #expect(out.stderr.contains("check what happened (shipyardctl sequences, shipyardctl approvals) before you try again"))
        withExtendedLifetime(socket) {}
    }
}
