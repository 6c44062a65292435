import Foundation
import ShipyardDaemon
import ShipyardTestKit
import Testing

/// The seed tutorial end to end, and every way an approval decision can be refused.
@Suite(.serialized) struct ApprovalTests {
    typealias World = SequenceTests.World

    func approvals(_ world: World) throws -> [[String: Any]] {
        let out = try world.daemon.ctl(["approvals", "--output", "json"])
        guard out.status == 0 else { throw ProcessFailure(description: "shipyardctl approvals failed: \(out.stderr)") }
        return try #require(try JSONSerialization.jsonObject(with: Data(out.stdout.utf8)) as? [[String: Any]])
    }

    func productionDeploys(_ world: World, _ context: String) -> Int {
        world.runs.filter { $0.hasPrefix("\(context) production je-deployment") }.count
    }

    /// Triggers a delivery and waits until production asks for approval; returns its context and
    /// the approval's id.
    func deliveryWaitingForApproval(_ world: World, _ arguments: [String] = []) async throws -> (context: String, id: String) {
        let context = try world.trigger(arguments)
        #expect(await world.waitState(context, "production", "waitingForApproval"))
        return (context, try #require(try approvals(world).first?["id"] as? String))
    }

    static let me = String(cString: getpwuid(getuid()).pointee.pw_name)

    /// Pushes the tutorial's edit and waits until the daemon has loaded it.
    func addApproval(_ world: World, pass: String = "manual") async throws {
        let edited = GitWatchingTests.tutorialWithApproval.replacingOccurrences(of: "pass: \"manual\"", with: "pass: \"\(pass)\"")
        let commit = try world.upstream.commit(["shipyard.yaml": edited], message: "Add manual production approval")
        #expect(await world.daemon.waitFor("fulltour") { $0.shipyardCommit == commit } != nil)
    }

    @Test func theSeedTutorial() async throws {
        let world = try World()
        #expect(await world.ready())
        // Before the edit: qa, then production deploys on its own.
        let first = try world.trigger(["--image", "ghcr.io/podtato-head/podtatoserver:v0.1.0"])
        #expect(await world.waitState(first, "production", "finished"))
        #expect(productionDeploys(world, first) == 1)

        // The tutorial's edit, in Git: an approval task before production's je-deployment.
        try await addApproval(world)

        let second = try world.trigger(["--image", "ghcr.io/podtato-head/podtatoserver:v0.1.1"])
        #expect(await world.waitState(second, "qa", "finished"))
        #expect(await world.waitState(second, "production", "waitingForApproval"))
        #expect(productionDeploys(world, second) == 0)

        let pending = try approvals(world)
        #expect(pending.count == 1)
        let approval = try #require(pending.first)
        #expect(approval["project"] as? String == "fulltour")
        #expect(approval["stage"] as? String == "production")
        #expect(approval["service"] as? String == "helloservice")
        #expect(approval["sequence"] as? String == "delivery")
        #expect(approval["context"] as? String == second)
        #expect(approval["previousResult"] as? String == "pass")
        #expect(approval["image"] as? String == "ghcr.io/podtato-head/podtatoserver:v0.1.1")
        #expect((approval["triggeredBy"] as? String)?.hasPrefix("shipyardctl/") == true)
        let table = try world.daemon.ctl(["approvals"]).stdout
        #expect(table.contains("production") && table.contains("ghcr.io/podtato-head/podtatoserver:v0.1.1"))

        // That a pending approval never times out is shown with a moved clock in EngineTests
        // (localTasksAndApprovalsAreExemptFromTaskFinishTimeout), not by waiting here.

        let id = try #require(approval["id"] as? String)
        let approved = try world.daemon.ctl(["approve", String(id.prefix(8)), "--reason", "release notes checked"])
        #expect(approved.status == 0, "\(approved.stderr)")
        #expect(approved.stdout == "approved: production je-deployment for helloservice started\n")
        #expect(await world.waitState(second, "production", "finished"))
        #expect(productionDeploys(world, second) == 1)
        #expect(try approvals(world).isEmpty)
        #expect(try world.daemon.ctl(["approvals"]).stdout == "no approvals are waiting\n")
        let detail = try world.daemon.ctl(["sequence", second]).stdout
        #expect(detail.contains("approval         finished pass/succeeded ("), "\(detail)")
        #expect(detail.contains("): approved by "))
        #expect(detail.contains(": release notes checked"))
        let decision = world.events().last { $0["type"] as? String == "sh.keptn.event.approval.finished" }
        let data = decision?["data"] as? [String: Any]
        #expect((data?["approval"] as? [String: Any])?["decision"] as? String == "approved")
        #expect((data?["approval"] as? [String: Any])?["reason"] as? String == "release notes checked")
    }

    @Test func aRejectionEndsTheDeliveryFailAndFiresRollback() async throws {
        let shipyard = GitWatchingTests.tutorialWithApproval + """
                    - name: "rollback"
                      triggeredOn:
                        - event: "production.delivery.finished"
                          selector:
                            match:
                              result: "fail"
                      tasks:
                        - name: "je-deployment"

            """
        let world = try World(shipyard: shipyard)
        #expect(await world.ready())
        let (context, id) = try await deliveryWaitingForApproval(world)
        let noReason = try world.daemon.ctl(["reject", id])
        #expect(noReason.status == 2)
        let rejected = try world.daemon.ctl(["reject", id, "--reason", "load test failed"])
        #expect(rejected.status == 0, "\(rejected.stderr)")
        #expect(rejected.stdout == "declined: production.delivery for helloservice finished fail; production.rollback for helloservice triggered; production je-deployment for helloservice started\n")
        #expect(await world.waitState(context, "production", "finished"))
        let production = try world.sequences().first { $0["stage"] as? String == "production" && $0["sequence"] as? String == "delivery" }
        #expect(production?["result"] as? String == "fail")
        #expect(await eventually { (try? world.sequences())?.contains { $0["sequence"] as? String == "rollback" && $0["state"] as? String == "finished" } == true })
        // The declined delivery's je-deployment never ran; only rollback's did.
        #expect(productionDeploys(world, context) == 1)
        let again = try world.daemon.ctl(["approve", id])
        #expect(again.status == 1)
        #expect(again.stderr == "shipyardctl: approval \(id) is no longer pending; it was resolved: declined by \(Self.me): load test failed\n")
    }

    @Test func anApprovalSurvivesARestartAndADecisionWrittenWhileStopped() async throws {
        let world = try World(activated: true)
        #expect(await world.ready())
        try await addApproval(world)
        let (context, id) = try await deliveryWaitingForApproval(world)

        #expect(await world.daemon.stop() == 0)
        // Its socket stays (as systemd keeps it): the approval waits in its queue for the daemon.
        // A generous answer time: what is checked is that the request is answered once the daemon
        // is back, not how fast a debug build restarts on a loaded CI machine (it took over 60 s
        // once, with two Chromiums and a booted Debian beside it).
        let offline = Task.detached { try world.daemon.ctl(["approve", id, "--timeout", "240"]) }
        try await Task.sleep(for: .milliseconds(500))
        try world.daemon.start()
        let answered = try await offline.value
        #expect(answered.status == 0 && answered.stdout.hasPrefix("approved: production je-deployment"), "\(answered.stderr)")
        #expect(await world.waitState(context, "production", "finished", timeout: .seconds(120)))
        #expect(productionDeploys(world, context) == 1)

        // And a plain restart while waiting keeps the approval pending, file included.
        let next = try world.trigger()
        #expect(await world.waitState(next, "production", "waitingForApproval"))
        #expect(await world.daemon.stop() == 0)
        try world.daemon.start()
        #expect(await eventually(timeout: .seconds(120)) { world.daemon.status()?.pid == world.daemon.pid })
        #expect(await eventually { (try? world.state(next, "production")) == "waitingForApproval" })
        #expect(try approvals(world).count == 1)
        #expect(productionDeploys(world, next) == 0)
    }

    @Test func automaticPassesWithoutAFile() async throws {
        let world = try World()
        #expect(await world.ready())
        try await addApproval(world, pass: "automatic")
        let context = try world.trigger()
        #expect(await world.waitState(context, "production", "finished"))
        #expect(productionDeploys(world, context) == 1)
        let pendingFiles = (try? approvals(world)) ?? []
        #expect(!FileManager.default.fileExists(atPath: world.daemon.state + "/approvals") || pendingFiles.isEmpty)
        let decision = world.events().last { $0["type"] as? String == "sh.keptn.event.approval.finished" }
        #expect(decision?["data"].flatMap { ($0 as? [String: Any])?["result"] as? String } == "pass")
    }

    @Test func theNotifyProgramHearsOfWaitingAndResolvedApprovals() async throws {
        let dir = try TemporaryDirectory()
        let script = try dir.write("notify", "#!/bin/sh\ncat >> \(dir.path)/notified.jsonl\necho >> \(dir.path)/notified.jsonl\n", mode: 0o755)
        let world = try World(extraConfig: "notify:\n  command: [\"\(script)\"]\n  timeout: 10s\n")
        #expect(await world.ready())
        try await addApproval(world)
        let context = try world.trigger(["--image", "registry/app:v2"])
        #expect(await world.waitState(context, "production", "waitingForApproval"))
        func messages() -> [[String: Any]] {
            ((try? String(contentsOfFile: dir.path + "/notified.jsonl", encoding: .utf8)) ?? "").split(separator: "\n")
                .compactMap { try? JSONSerialization.jsonObject(with: Data($0.utf8)) as? [String: Any] }
        }
        #expect(await eventually { messages().count == 1 })
        #expect(messages().first?["event"] as? String == "waiting")
        #expect((messages().first?["approval"] as? [String: Any])?["image"] as? String == "registry/app:v2")
        let id = try #require(try approvals(world).first?["id"] as? String)
        #expect(try world.daemon.ctl(["approve", id, "--reason", "go"]).status == 0)
        #expect(await eventually { messages().count == 2 })
        #expect(messages().last?["event"] as? String == "resolved")
        #expect((messages().last?["decision"] as? [String: Any])?["reason"] as? String == "go")
    }

    @Test func refusedDecisionsLeaveTheApprovalPending() async throws {
        let world = try World()
        #expect(await world.ready())
        try await addApproval(world)
        let (context, id) = try await deliveryWaitingForApproval(world)

        let unknown = try world.daemon.ctl(["approve", "ffffffff"])
        #expect(unknown.stderr == "shipyardctl: no pending approval has the id ffffffff (shipyardctl approvals lists them)\n")

        // What the socket refuses before it decides anything: an oversized body, a malformed
        // one, a form where JSON is due.
        let api = LocalAPIClient(path: world.daemon.state + "/shipyardd.sock")
        let oversized = try api.request("POST", "/api/v1/approvals/\(id)/approve", body: Data((#"{"reason":""# + String(repeating: "x", count: 70_000) + #""}"#).utf8), timeout: .seconds(10))
        #expect(oversized.status == 413 && String(decoding: oversized.body, as: UTF8.self).contains("larger than 65536 bytes"))
        let malformed = try api.request("POST", "/api/v1/approvals/\(id)/approve", body: Data(#"{"reason":"#.utf8), timeout: .seconds(10))
        #expect(malformed.status == 400 && String(decoding: malformed.body, as: UTF8.self).contains("must be a JSON object"))
        #expect(try approvals(world).count == 1)
        #expect(try world.state(context, "production") == "waitingForApproval")

        // Two decisions racing: exactly one wins.
        async let a = Task.detached { try world.daemon.ctl(["approve", id]) }.value
        async let b = Task.detached { try world.daemon.ctl(["reject", id, "--reason", "race"]) }.value
        let results = try await [a, b]
        #expect(results.filter { $0.status == 0 }.count == 1)
        #expect(results.filter { $0.status == 1 && $0.stderr.contains("is no longer pending") }.count == 1)
        #expect(world.events().filter { $0["type"] as? String == "sh.keptn.event.approval.finished" }.count == 1)
    }

    @Test(.enabled(if: getuid() == 0, "creating users needs root"))
    func onlyApproversMayDecideAndTheFileOwnerIsWhoAsked() async throws {
        let suffix = String(UInt32.random(in: 0..<1_000_000))
        let group = "shy-ops-\(suffix)", alice = "shy-alice-\(suffix)", bob = "shy-bob-\(suffix)"
        try Run.checked("/usr/sbin/groupadd", [group])
        for user in [alice, bob] { try Run.checked("/usr/sbin/useradd", ["-M", "-N", "-g", group, "-s", "/usr/sbin/nologin", user]) }
        defer {
            for user in [alice, bob] { _ = try? Run.capture("/usr/sbin/userdel", [user]) }
            _ = try? Run.capture("/usr/sbin/groupdel", [group])
        }
        let world = try World(extraConfig: "approvers:\n  users: [\(alice)]\n")
        #expect(await world.ready())
        try await addApproval(world)
        chmod(world.dir.path, 0o755)
        // As tmpfiles.d does for the shipyard group: the state belongs to the operators' group.
        try Run.checked("/usr/bin/chgrp", ["-R", group, world.daemon.state])
        let context = try world.trigger()
        #expect(await world.waitState(context, "production", "waitingForApproval"))
        let id = try #require(try approvals(world).first?["id"] as? String)

        func ctl(as user: String, _ arguments: [String]) throws -> ProcessOutput {
            try Run.capture("/usr/bin/setpriv", [
                "--reuid=\(user)", "--regid=\(group)", "--init-groups", "--",
                Command.path("shipyardctl"),
            ] + arguments + ["--state-dir", world.daemon.state])
        }

        // bob writes a request claiming nothing about who he is: the file's owner decides.
        let refused = try ctl(as: bob, ["approve", id])
        #expect(refused.status == 1)
        #expect(refused.stderr == "shipyardctl: \(bob) may not resolve approvals: approvers are users [\(alice)] and groups []\n")
        #expect(world.daemon.log.contains("request approve from \(bob) (uid \(passwdEntry(bob)?.uid ?? 0)) refused: \(bob) may not resolve approvals"))
        #expect(try world.state(context, "production") == "waitingForApproval")

        let approved = try ctl(as: alice, ["approve", id, "--reason", "ok"])
        #expect(approved.status == 0, "\(approved.stderr)")
        #expect(approved.stdout == "approved: production je-deployment for helloservice started\n")
        #expect(await world.waitState(context, "production", "finished"))
        let decision = world.events().last { $0["type"] as? String == "sh.keptn.event.approval.finished" }
        #expect(((decision?["data"] as? [String: Any])?["approval"] as? [String: Any])?["by"] as? String == alice)
    }
}
