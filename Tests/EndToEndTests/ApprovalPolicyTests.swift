import Foundation
import ShipyardCore
import ShipyardDaemon
import ShipyardTestKit
import Testing

/// Approval policies with real OS users: the daemon runs as its own user, each person runs
/// `shipyardctl` as themselves (the request file's owner is who decides).
@Suite(.serialized, .enabled(if: LocalUsers.canCreate, "approval policies are tested with real users: run as root (make test in CI does) so that useradd can create them"))
struct ApprovalPolicyTests {
    typealias World = SequenceTests.World

    static let shipyard = GitWatchingTests.tutorialWithApproval

    /// The tutorial's production gate under a policy; `extra` follows `approvalPolicies:`' first entry.
    func world(
        _ users: LocalUsers, policy: String, extraConfig: String = "", seconds: String = "0", activated: Bool = false, environment: [String: String] = [:]
    ) throws -> World {
        try World(shipyard: Self.shipyard, seconds: seconds, extraConfig: """
            approvalPolicies:
            \(policy)
            \(extraConfig)
            """, users: users, activated: activated, environment: environment)
    }

    func ctl(_ world: World, _ user: String, _ arguments: [String]) throws -> ProcessOutput {
        try world.daemon.ctl(arguments, as: user)
    }

    func trigger(_ world: World, as user: String) throws -> String {
        let out = try ctl(world, user, ["trigger", "delivery", "--project", "fulltour", "--service", "helloservice", "--output", "json"])
        #expect(out.status == 0, "\(out.stderr)")
        return ((try? JSONSerialization.jsonObject(with: Data(out.stdout.utf8))) as? [String: String])?["context"] ?? ""
    }

    func pending(_ world: World, as user: String) throws -> [[String: Any]] {
        let out = try ctl(world, user, ["approvals", "--output", "json"])
        return (try JSONSerialization.jsonObject(with: Data(out.stdout.utf8)) as? [[String: Any]]) ?? []
    }

    func finished(_ world: World, _ context: String) -> [String: Any]? {
        let event = world.events().last { $0["type"] as? String == "sh.keptn.event.approval.finished" && $0["shkeptncontext"] as? String == context }
        return event?["data"] as? [String: Any]
    }

    @Test func twoPeopleMustApproveAndNeitherTheTriggererNorAnotherGatesApproverCounts() async throws {
        let users = try LocalUsers(others: ["bob", "carol", "dave"])
        let (alice, bob, carol, dave) = (users.alice, users.others["bob"]!, users.others["carol"]!, users.others["dave"]!)
        let world = try world(users, policy: """
              - project: fulltour
                stage: production
                approvers: {users: [\(alice), \(bob), \(carol)]}
                required: 2
              - stage: qa
                approvers: {users: [\(dave)]}
            """)
        #expect(await world.ready())
        let context = try trigger(world, as: alice)
        #expect(await world.waitState(context, "production", "waitingForApproval"))
        let id = try #require(try pending(world, as: alice).first?["id"] as? String)

        // alice started the delivery: she may not approve it.
        let own = try ctl(world, alice, ["approve", id])
        #expect(own.status == 1)
        #expect(own.stderr.contains("\(alice) cannot approve their own delivery"), "\(own.stderr)")
        // dave decides qa's gates, not production's: even a rejection is refused.
        let other = try ctl(world, dave, ["reject", id, "--reason", "not mine to stop"])
        #expect(other.status == 1)
        #expect(other.stderr.contains("\(dave) may not decide production of fulltour"), "\(other.stderr)")
        // mallory is an operator, not an approver.
        #expect(try ctl(world, users.mallory, ["approve", id]).status == 1)

        // bob: 1 of 2, and the listing says who approved and who may still.
        let first = try ctl(world, bob, ["approve", id, "--reason", "looks good"])
        #expect(first.status == 0, "\(first.stderr)")
        #expect(first.stdout.contains("1 of 2 approvals: \(bob)"))
        let listed = try #require(try pending(world, as: alice).first)
        #expect(listed["required"] as? Int == 2)
        #expect(listed["approvedBy"] as? [String] == [bob])
        #expect((listed["mayApprove"] as? String)?.contains(carol) == true)
        #expect((listed["mayApprove"] as? String)?.contains("not \(alice), \(bob)") == true)
        #expect(try ctl(world, alice, ["approvals"]).stdout.contains("1 of 2 approvals: \(bob)"))
        #expect(try ctl(world, alice, ["sequence", context]).stdout.contains("1 of 2 approvals: \(bob)"))
        #expect(try world.state(context, "production") == "waitingForApproval")
        // bob again counts once, and is told so.
        let again = try ctl(world, bob, ["approve", id])
        #expect(again.status == 1)
        #expect(again.stderr.contains("already approved by you (1 of 2 approvals: \(bob))"))

        // carol: 2 of 2, production deploys.
        let second = try ctl(world, carol, ["approve", id, "--reason", "ok"])
        #expect(second.status == 0, "\(second.stderr)")
        #expect(second.stdout.hasPrefix("approved: production je-deployment for helloservice started"))
        #expect(await world.waitState(context, "production", "finished"))
        let decision = try #require(finished(world, context)?["approval"] as? [String: Any])
        #expect(decision["by"] as? String == "\(bob), \(carol)")
        #expect((decision["approvals"] as? [[String: Any]])?.map { $0["by"] as? String } == [bob, carol])
        // Each approval is in the record as it came.
        let votes = world.events().filter { $0["type"] as? String == "sh.shipyard.approval.approved" && $0["shkeptncontext"] as? String == context }
        #expect(votes.map { (($0["data"] as? [String: Any])?["approval"] as? [String: Any])?["by"] as? String } == [bob, carol])
    }

    @Test func approversRacingOpenTheGateOnceAndARejectionEndsItAtOnce() async throws {
        let users = try LocalUsers(others: ["bob", "carol"])
        let (bob, carol) = (users.others["bob"]!, users.others["carol"]!)
        let world = try world(users, policy: """
              - approvers: {users: [\(bob), \(carol)]}
                required: 2
            """)
        #expect(await world.ready())

        // Both at once: both count, the gate opens once.
        let context = try trigger(world, as: users.alice)
        #expect(await world.waitState(context, "production", "waitingForApproval"))
        let id = try #require(try pending(world, as: bob).first?["id"] as? String)
        let results = try await withThrowingTaskGroup(of: ProcessOutput.self) { group in
            for user in [bob, carol] { group.addTask { try self.ctl(world, user, ["approve", id]) } }
            return try await group.reduce(into: []) { $0.append($1) }
        }
        #expect(results.allSatisfy { $0.status == 0 }, "\(results.map(\.stderr))")
        #expect(await world.waitState(context, "production", "finished"))
        #expect(world.events().filter { $0["type"] as? String == "sh.keptn.event.approval.finished" && $0["shkeptncontext"] as? String == context }.count == 1)

        // One approves while the other rejects: whichever comes second finds it decided or
        // counted; the gate never opens with a rejection on it.
        let next = try trigger(world, as: users.alice)
        #expect(await world.waitState(next, "production", "waitingForApproval"))
        let nextID = try #require(try pending(world, as: bob).first?["id"] as? String)
        let mixed = try await withThrowingTaskGroup(of: ProcessOutput.self) { group in
            group.addTask { try self.ctl(world, bob, ["approve", nextID]) }
            group.addTask { try self.ctl(world, carol, ["reject", nextID, "--reason", "no"]) }
            return try await group.reduce(into: []) { $0.append($1) }
        }
        #expect(await world.waitState(next, "production", "finished"))
        let production = try world.sequences().first { $0["context"] as? String == next && $0["stage"] as? String == "production" }
        #expect(production?["result"] as? String == "fail", "\(mixed.map(\.stdout)) \(mixed.map(\.stderr))")
    }

    @Test func anApprovalExpiresAndTheDeliveryFails() async throws {
        let users = try LocalUsers(others: ["bob"])
        let bob = users.others["bob"]!
        let world = try world(users, policy: """
              - approvers: {users: [\(bob)]}
                expireAfter: 2s
            """)
        #expect(await world.ready())
        let context = try trigger(world, as: users.alice)
        #expect(await world.waitState(context, "production", "finished", timeout: .seconds(60)))
        let decision = try #require(finished(world, context)?["approval"] as? [String: Any])
        #expect(decision["decision"] as? String == "declined")
        #expect((decision["reason"] as? String)?.hasPrefix("expired: nobody decided within 2s") == true)
        let production = try world.sequences().first { $0["context"] as? String == context && $0["stage"] as? String == "production" }
        #expect(production?["result"] as? String == "fail")

    }

    /// The gate waits under an hour's expiry; while the daemon is down the policy becomes 6 s and
    /// more than 6 s pass: the next start expires it, once. (The policy is shortened only while the
    /// daemon is down, so the test never has to see a 6-second window on a busy machine.)
    @Test func anApprovalDueWhileTheDaemonWasDownExpiresAtTheNextStartOnce() async throws {
        let users = try LocalUsers(others: ["bob"])
        let world = try world(users, policy: """
              - approvers: {users: [\(users.others["bob"]!)]}
                expireAfter: 1h
            """)
        #expect(await world.ready())
        let next = try trigger(world, as: users.alice)
        #expect(await world.waitState(next, "production", "waitingForApproval"))
        #expect(await world.daemon.stop() != nil)
        let config = try String(contentsOfFile: world.daemon.configPath, encoding: .utf8)
        #expect(config.contains("expireAfter: 1h"))
        try config.replacingOccurrences(of: "expireAfter: 1h", with: "expireAfter: 6s").write(toFile: world.daemon.configPath, atomically: true, encoding: .utf8)
        try await Task.sleep(for: .seconds(7))
        let restarted = Date()
        try world.daemon.start()
        #expect(await world.waitState(next, "production", "finished", timeout: .seconds(60)))
        let closing = world.events().filter { $0["type"] as? String == "sh.keptn.event.approval.finished" && $0["shkeptncontext"] as? String == next }
        #expect(closing.count == 1)
        #expect(((closing.first?["data"] as? [String: Any])?["approval"] as? [String: Any])?["reason"] as? String == "expired: nobody decided within 6s (expireAfter for every gate)")
        #expect(((closing.first?["time"] as? String).flatMap(Timestamps.parse) ?? .distantPast) >= restarted.addingTimeInterval(-1))
    }

    @Test func remindersGoToTheNotifyProgramAndAfterARestartOnlyOnce() async throws {
        let users = try LocalUsers(others: ["bob"])
        let bob = users.others["bob"]!
        let dir = try TemporaryDirectory()
        chown(dir.path, users.uid(users.daemon), users.gid(users.group))
        let notify = try dir.write("notify", "#!/bin/sh\ncat >> \(dir.path)/notified.jsonl\necho >> \(dir.path)/notified.jsonl\n", mode: 0o755)
        let world = try world(users, policy: """
              - approvers: {users: [\(bob)]}
                remindAfter: 3s
            """, extraConfig: "notify:\n  command: [\"\(notify)\"]\n  timeout: 10s")
        #expect(await world.ready())
        let context = try trigger(world, as: users.alice)
        #expect(await world.waitState(context, "production", "waitingForApproval"))
        func reminders() -> [Date] {
            world.events().filter { $0["type"] as? String == "sh.shipyard.approval.reminded" && $0["shkeptncontext"] as? String == context }
                .compactMap { ($0["time"] as? String).flatMap(Timestamps.parse) }
        }
        #expect(await eventually(timeout: .seconds(30)) { reminders().count >= 1 })
        let notified = try String(contentsOfFile: dir.path + "/notified.jsonl", encoding: .utf8)
        #expect(notified.contains("\"event\":\"reminder\""))
        #expect(notified.contains("\"waitedSeconds\""))

        // Down for more than two intervals: one reminder at the start, not one per missed interval.
        #expect(await world.daemon.stop() != nil)
        try await Task.sleep(for: .seconds(7))
        let restarted = Date()
        try world.daemon.start()
        #expect(await eventually(timeout: .seconds(30)) { reminders().contains { $0 >= restarted } })
        // By the record's own times: within one interval of the restart there is exactly one.
        try await Task.sleep(for: .seconds(4))
        let afterRestart = reminders().filter { $0 >= restarted }
        let first = try #require(afterRestart.min())
        #expect(afterRestart.filter { $0 < first.addingTimeInterval(2.9) }.count == 1)
        let id = try #require(try pending(world, as: bob).first?["id"] as? String)
        #expect(try ctl(world, bob, ["approve", id]).status == 0)
        #expect(await world.waitState(context, "production", "finished"))
    }

    @Test func aPolicyLoosenedByReloadOpensAGateThatNowHasEnoughApprovals() async throws {
        let users = try LocalUsers(others: ["bob", "carol"])
        let (bob, carol) = (users.others["bob"]!, users.others["carol"]!)
        // With a far reminder the next wake is an hour away: the reload must not wait for it.
        func policy(_ required: Int) -> String {
            """
              - approvers: {users: [\(bob), \(carol)]}
                required: \(required)
                remindAfter: 1h
            """
        }
        let world = try world(users, policy: policy(2))
        #expect(await world.ready())
        let context = try trigger(world, as: users.alice)
        #expect(await world.waitState(context, "production", "waitingForApproval"))
        let id = try #require(try pending(world, as: bob).first?["id"] as? String)
        #expect(try ctl(world, bob, ["approve", id]).stdout.contains("1 of 2 approvals"))

        // Loosened to 1: bob's approval stays valid and is now enough.
        try Self.reconfigure(world, from: policy(2), to: policy(1))
        #expect(await world.waitState(context, "production", "finished"))
        #expect((finished(world, context)?["approval"] as? [String: Any])?["by"] as? String == bob)

        // Tightened to 2 while the next one waits: one approval is no longer enough.
        let next = try trigger(world, as: users.alice)
        #expect(await world.waitState(next, "production", "waitingForApproval"))
        try Self.reconfigure(world, from: policy(1), to: policy(2))
        #expect(await eventually { (try? self.pending(world, as: bob).first?["required"] as? Int) == 2 })
        let nextID = try #require(try pending(world, as: bob).first?["id"] as? String)
        #expect(try ctl(world, bob, ["approve", nextID]).stdout.contains("1 of 2 approvals"))
        #expect(try world.state(next, "production") == "waitingForApproval")
        #expect(try ctl(world, carol, ["approve", nextID]).status == 0)
        #expect(await world.waitState(next, "production", "finished"))
    }

    /// Rewrites the running config with one policy text in place of another, and reloads.
    static func reconfigure(_ world: World, from old: String, to new: String) throws {
        let current = try String(contentsOfFile: world.daemon.configPath, encoding: .utf8)
        let body = current.replacingOccurrences(of: "stateDirectory: \(world.daemon.state)\n", with: "")
        #expect(body.contains(old))
        try world.daemon.write(config: body.replacingOccurrences(of: old, with: new))
        world.daemon.signal(SIGHUP)
    }
}
