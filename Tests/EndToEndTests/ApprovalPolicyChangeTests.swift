import Foundation
import ShipyardCore
import ShipyardDaemon
import ShipyardTestKit
import Testing

/// Issue 26, A1–A6: decisions that stay right while an approval waits and the world changes
/// under it (a reload, `gpasswd -d`, `usermod -l`, the clock, a restart, a resolved gate), with
/// real users, the daemon as its own user.
extension ApprovalPolicyTests {
    /// The running config with one policy text in place of another, reloaded the way the unit's
    /// ExecReload does (`shipyardd --reload`, which returns once the reload has been applied,
    /// pending gates counted again included).
    func reload(_ world: World, _ users: LocalUsers, from old: String, to new: String) throws {
        let current = try String(contentsOfFile: world.daemon.configPath, encoding: .utf8)
        let body = current.replacingOccurrences(of: "stateDirectory: \(world.daemon.state)\n", with: "")
        #expect(body.contains(old))
        try world.daemon.write(config: body.replacingOccurrences(of: old, with: new))
        let out = try users.run(as: users.daemon, Command.path("shipyardd"), ["--config", world.daemon.configPath, "--reload", "\(world.daemon.pid)"])
        #expect(out.status == 0 && out.stdout == "config reloaded\n", "\(out.stdout)\(out.stderr)")
    }

    /// bob's world: he alone approves, the gate expires after an hour.
    func bobsGate(activated: Bool) async throws -> (LocalUsers, World, context: String, id: String) {
        let users = try LocalUsers(others: ["bob"])
        let world = try world(users, policy: """
              - approvers: {users: [\(users.others["bob"]!)]}
                expireAfter: 1h
            """, activated: activated)
        #expect(await world.ready())
        let context = try trigger(world, as: users.alice)
        #expect(await world.waitState(context, "production", "waitingForApproval"))
        let id = try #require(try pending(world, as: users.others["bob"]!).first?["id"] as? String)
        return (users, world, context, id)
    }

    /// Two of the operators' group (alice, mallory, bob, carol), no self-approval; alice triggered.
    func operatorsGate() async throws -> (LocalUsers, World, context: String, id: String) {
        let users = try LocalUsers(others: ["bob", "carol"])
        let world = try world(users, policy: policy("{groups: [\(users.group)]}", required: 2, selfApproval: false))
        #expect(await world.ready())
        let context = try trigger(world, as: users.alice)
        #expect(await world.waitState(context, "production", "waitingForApproval"))
        let id = try #require(try pending(world, as: users.alice).first?["id"] as? String)
        return (users, world, context, id)
    }

    func approval(_ world: World, _ context: String) -> [String: Any]? {
        finished(world, context)?["approval"] as? [String: Any]
    }

    func policy(_ approvers: String, required: Int, selfApproval: Bool) -> String {
        """
          - approvers: \(approvers)
            required: \(required)
            allowSelfApproval: \(selfApproval)
        """
    }

    /// A1 and A4: a reload that turns self-approval off sets the triggerer's own earlier vote
    /// aside, whatever `required` becomes; a reload that opens a gate is recorded as the reload's,
    /// naming the votes it counted and the one it did not.
    @Test func aReloadCountsEarlierVotesAgainAndIsRecordedAsWhatOpenedTheGate() async throws {
        let users = try LocalUsers(others: ["bob", "carol"])
        let (alice, bob, carol) = (users.alice, users.others["bob"]!, users.others["carol"]!)
        let approvers = "{users: [\(alice), \(bob), \(carol)]}"
        let world = try world(users, policy: policy(approvers, required: 2, selfApproval: true))
        #expect(await world.ready())
        let context = try trigger(world, as: alice)
        #expect(await world.waitState(context, "production", "waitingForApproval"))
        let id = try #require(try pending(world, as: alice).first?["id"] as? String)
        let own = try ctl(world, alice, ["approve", id, "--reason", "mine, allowed"])
        #expect(own.status == 0 && own.stdout.contains("1 of 2 approvals: \(alice)"), "\(own.stdout)\(own.stderr)")

        // required 1 and no self-approval: alice's vote does not count, the gate stays shut.
        try reload(world, users, from: policy(approvers, required: 2, selfApproval: true), to: policy(approvers, required: 1, selfApproval: false))
        #expect(try world.state(context, "production") == "waitingForApproval")
        var listed = try #require(try pending(world, as: bob).first)
        #expect(listed["approvedBy"] as? [String] == [])
        #expect((listed["notCounted"] as? [String])?.first?.contains("\(alice) triggered the delivery and allowSelfApproval is false") == true, "\(listed)")

        // Back to two, still no self-approval: bob's vote is one of two, not "alice, bob".
        try reload(world, users, from: policy(approvers, required: 1, selfApproval: false), to: policy(approvers, required: 2, selfApproval: false))
        let second = try ctl(world, bob, ["approve", id, "--reason", "checked"])
        #expect(second.status == 0, "\(second.stderr)")
        #expect(second.stdout.contains("1 of 2 approvals: \(bob);"), "\(second.stdout)")
        #expect(second.stdout.contains("not counted: \(alice)"), "\(second.stdout)")
        #expect(try world.state(context, "production") == "waitingForApproval")
        listed = try #require(try pending(world, as: bob).first)
        #expect(listed["approvedBy"] as? [String] == [bob])

        // Loosened to one: bob's vote opens the gate, and the record says the reload did it.
        try reload(world, users, from: policy(approvers, required: 2, selfApproval: false), to: policy(approvers, required: 1, selfApproval: false))
        #expect(await world.waitState(context, "production", "finished"))
        let decision = try #require(approval(world, context))
        #expect(decision["decision"] as? String == "approved")
        #expect(decision["by"] as? String == bob)
        #expect(decision["via"] as? String == "reload")
        #expect((decision["reason"] as? String)?.hasPrefix("opened at the config's reload") == true, "\(decision)")
        #expect((decision["approvals"] as? [[String: Any]])?.map { $0["by"] as? String } == [bob])
        let aside = try #require(decision["notCounted"] as? [[String: Any]])
        #expect(aside.map { $0["by"] as? String } == [alice])
        #expect((aside.first?["why"] as? String)?.contains("triggered the delivery") == true)
        let closing = world.events().last { $0["type"] as? String == "sh.keptn.event.approval.finished" && $0["shkeptncontext"] as? String == context }
        #expect(closing?["source"] as? String == "shipyardd")
        #expect(world.runs.filter { $0.hasPrefix("\(context) production je-deployment") }.count == 1)
    }

    /// A2: bob approved, then left the approvers' group (`gpasswd -d`, no reload): carol's single
    /// vote does not open a two-person gate with his. A reload to one opens it with carol's alone.
    @Test func aVoteOfSomeoneWhoLeftTheApproversGroupNoLongerCounts() async throws {
        let (users, world, context, id) = try await operatorsGate()
        let (bob, carol) = (users.others["bob"]!, users.others["carol"]!)
        let approvers = "{groups: [\(users.group)]}"
        #expect(try ctl(world, bob, ["approve", id]).stdout.contains("1 of 2 approvals: \(bob)"))

        try users.remove(bob, fromGroup: users.group)
        let out = try ctl(world, carol, ["approve", id, "--reason", "fine"])
        #expect(out.status == 0, "\(out.stderr)")
        #expect(out.stdout.contains("1 of 2 approvals: \(carol);"), "\(out.stdout)")
        #expect(out.stdout.contains("not counted: \(bob): \(bob) is not an approver of every gate now"), "\(out.stdout)")
        #expect(try world.state(context, "production") == "waitingForApproval")
        let listed = try #require(try pending(world, as: carol).first)
        #expect(listed["approvedBy"] as? [String] == [carol])
        #expect(try ctl(world, carol, ["approvals"]).stdout.contains("1 of 2 approvals: \(carol)"))

        // The reload path counts exactly as the vote path: carol's vote, not bob's.
        try reload(world, users, from: policy(approvers, required: 2, selfApproval: false), to: policy(approvers, required: 1, selfApproval: false))
        #expect(await world.waitState(context, "production", "finished"))
        let decision = try #require(approval(world, context))
        #expect(decision["by"] as? String == carol)
        #expect(decision["via"] as? String == "reload")
        #expect((decision["notCounted"] as? [[String: Any]])?.map { $0["by"] as? String } == [bob])
    }

    /// A3: identity is the account, not its name. After `usermod -l`, bob (now bobby) does not
    /// count twice: his approval as bob no longer counts (an approval counts only under the name it
    /// was given with, so a uid reused after `userdel` never inherits one), and bobby's counts once.
    /// The triggerer, renamed, still cannot approve her own delivery.
    @Test func aRenamedAccountIsStillTheSamePerson() async throws {
        let (users, world, context, id) = try await operatorsGate()
        let (bob, carol) = (users.others["bob"]!, users.others["carol"]!)
        #expect(try ctl(world, bob, ["approve", id]).status == 0)

        let bobby = try users.rename(bob, to: "bobby")
        let again = try ctl(world, bobby, ["approve", id])
        #expect(again.status == 0, "\(again.stderr)")
        #expect(again.stdout.contains("1 of 2 approvals: \(bobby);"), "\(again.stdout)")
        #expect(again.stdout.contains("not counted: \(bob): uid \(users.uid(bobby)) is \(bobby) now, not \(bob)"), "\(again.stdout)")
        let twice = try ctl(world, bobby, ["approve", id])
        #expect(twice.status == 1)
        #expect(twice.stderr.contains("already approved by you (1 of 2 approvals: \(bobby))"), "\(twice.stderr)")

        let alicia = try users.rename(users.alice, to: "alicia")
        world.daemon.operatorUser = alicia
        let own = try ctl(world, alicia, ["approve", id])
        #expect(own.status == 1)
        #expect(own.stderr.contains("\(alicia) cannot approve their own delivery (\(users.alice) triggered it"), "\(own.stderr)")
        #expect(try world.state(context, "production") == "waitingForApproval")

        let last = try ctl(world, carol, ["approve", id])
        #expect(last.status == 0, "\(last.stderr)")
        #expect(await world.waitState(context, "production", "finished"))
        let decision = try #require(approval(world, context))
        #expect(decision["by"] as? String == "\(bobby), \(carol)")
        // Each approval and the trigger name the account the kernel named, beside the name.
        #expect((decision["approvals"] as? [[String: Any]])?.map { ($0["uid"] as? Int).map(UInt32.init) } == [users.uid(bobby), users.uid(carol)])
        let trigger = world.events().first { $0["shkeptncontext"] as? String == context && ($0["type"] as? String)?.hasSuffix(".delivery.triggered") == true }
        #expect((trigger?["shipyarduid"] as? Int).map(UInt32.init) == users.uid(alicia))
    }

    /// A5, first half: a vote is judged by the clock when it is recorded. The daemon is stopped
    /// (SIGSTOP) before the approval expires and a vote waits in its socket past expiresAt: when
    /// the daemon goes on, the vote is late whichever comes first, the vote or the expiry timer.
    /// (Which comes first is the machine's choice; ApprovalDeadlineTests moves the clock instead,
    /// so that the vote is always first.)
    @Test func aVoteAfterExpiresAtIsLateEvenBeforeTheTimerFires() async throws {
        let (users, world, context, id) = try await bobsGate(activated: true)
        let bob = users.others["bob"]!
        // 20 s from now the approval expires (room for the reload on a loaded machine): the reload
        // shortens expireAfter to what has passed + 20 s.
        let requested = try #require((try pending(world, as: bob).first?["requestedAt"] as? String).flatMap(Timestamps.parse))
        let expireAfter = Int(Date().timeIntervalSince(requested).rounded(.up)) + 20
        try reload(world, users, from: "expireAfter: 1h", to: "expireAfter: \(expireAfter)s")
        let expiresAt = try #require((try pending(world, as: bob).first?["expiresAt"] as? String).flatMap(Timestamps.parse))
        #expect(expiresAt > Date())
        world.daemon.signal(SIGSTOP)
        defer { world.daemon.signal(SIGCONT) }
        try await Task.sleep(for: .seconds(max(0, expiresAt.timeIntervalSinceNow) + 1))
        let vote = try startCLI(world, users, as: bob, ["approve", id, "--timeout", "60"])
        #expect(await eventually(timeout: .seconds(10)) { Self.connectionWaits(world) })
        world.daemon.signal(SIGCONT)
        let answer = await outcome(vote)
        #expect(answer.status == 1, "\(answer.output)")
        #expect(answer.output.contains("expired") || answer.output.contains("no longer pending"), "\(answer.output)")
        #expect(await world.waitState(context, "production", "finished"))
        let decision = try #require(approval(world, context))
        #expect(decision["decision"] as? String == "declined")
        #expect((decision["reason"] as? String)?.hasPrefix("expired: nobody decided within") == true)
        #expect(world.events().filter { $0["type"] as? String == "sh.shipyard.approval.approved" && $0["shkeptncontext"] as? String == context }.isEmpty)
    }

    /// Whether a connection waits to be accepted on the socket the test holds for the daemon
    /// (as systemd holds `shipyardd.socket`'s).
    static func connectionWaits(_ world: World) -> Bool {
        guard let socket = world.daemon.socket else { return false }
        var entry = pollfd(fd: socket.fd, events: Int16(POLLIN), revents: 0)
        return poll(&entry, 1, 0) > 0 && entry.revents & Int16(POLLIN) != 0
    }

    /// `shipyardctl arguments` as `user`, started now and left running; `outcome` waits for it.
    func startCLI(_ world: World, _ users: LocalUsers, as user: String, _ arguments: [String]) throws -> (Subprocess, String) {
        let path = world.dir.path + "/cli-\(UUID().uuidString.prefix(8)).out"
        let fd = open(path, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0o644)
        defer { close(fd) }
        let (program, argv) = users.command(as: user, Command.path("shipyardctl"), arguments + ["--state-dir", world.daemon.state])
        return (try Subprocess(program, argv, stdout: fd, stderr: fd), path)
    }

    func outcome(_ cli: (Subprocess, String)) async -> (status: Int32?, output: String) {
        _ = await eventually(timeout: .seconds(90)) { !cli.0.isRunning }
        return (cli.0.poll(), (try? String(contentsOfFile: cli.1, encoding: .utf8)) ?? "")
    }

    /// A5, second half: a vote sent while the daemon was down (systemd holds the socket) is
    /// answered before expiries that fell due meanwhile are judged: it counts.
    @Test func aVoteSentWhileTheDaemonWasDownCountsBeforeTheExpiryIsJudged() async throws {
        let (users, world, context, id) = try await bobsGate(activated: true)
        let bob = users.others["bob"]!
        #expect(await world.daemon.stop() != nil)
        let config = try String(contentsOfFile: world.daemon.configPath, encoding: .utf8)
        try config.replacingOccurrences(of: "expireAfter: 1h", with: "expireAfter: 6s").write(toFile: world.daemon.configPath, atomically: true, encoding: .utf8)
        try await Task.sleep(for: .seconds(7))
        let vote = try startCLI(world, users, as: bob, ["approve", id, "--reason", "sent while it was down", "--timeout", "60"])
        #expect(await eventually(timeout: .seconds(10)) { Self.connectionWaits(world) })
        try world.daemon.start()
        let answer = await outcome(vote)
        #expect(answer.status == 0, "\(answer.output)\n\(world.daemon.log.suffix(2000))")
        #expect(await world.waitState(context, "production", "finished", timeout: .seconds(60)))
        let decision = try #require(approval(world, context))
        #expect(decision["decision"] as? String == "approved", "\(decision)")
        #expect(decision["by"] as? String == bob)
        #expect(world.runs.filter { $0.hasPrefix("\(context) production je-deployment") }.count == 1)
    }

    /// A6: a prefix that named two gates does not come to mean the other one once the first is
    /// resolved; `--check-config` says when a gate can never open for a delivery an approver
    /// triggers.
    @Test func aPrefixThatWasAmbiguousStaysAmbiguous() async throws {
        let users = try LocalUsers(others: ["bob"])
        let bob = users.others["bob"]!
        let world = try world(users, policy: """
              - approvers: {users: [\(bob)]}
            """, environment: ["SHIPYARD_FAULT_ID_PREFIX": "b121"])
        #expect(await world.ready())
        var contexts: [String] = []
        for service in ["helloservice", "otherservice"] {
            let out = try ctl(world, users.alice, ["trigger", "delivery", "--project", "fulltour", "--service", service, "--output", "json"])
            contexts.append(((try? JSONSerialization.jsonObject(with: Data(out.stdout.utf8))) as? [String: String])?["context"] ?? "")
        }
        for context in contexts { #expect(await world.waitState(context, "production", "waitingForApproval")) }
        // The list's order is the ids', not the triggers': the second gate is whichever is left.
        let gates = try pending(world, as: bob)
        let ids = gates.compactMap { $0["id"] as? String }
        #expect(ids.count == 2 && ids.allSatisfy { $0.hasPrefix("b121") }, "\(ids)")
        let stillWaiting = try #require(gates.last?["context"] as? String, "\(gates)")
        let ambiguous = try ctl(world, bob, ["approve", "b121"])
        #expect(ambiguous.status == 1)
        #expect(ambiguous.stderr.contains("b121 is ambiguous"), "\(ambiguous.stderr)")
        #expect(try ctl(world, bob, ["approve", ids[0]]).status == 0)
        let stale = try ctl(world, bob, ["approve", "b121"])
        #expect(stale.status == 1)
        #expect(stale.stderr.contains("b121 is ambiguous"), "\(stale.stderr)")
        #expect(stale.stderr.contains("\(ids[0]) (no longer pending)") && stale.stderr.contains("\(ids[1]) (pending)"), "\(stale.stderr)")
        #expect(Set(contexts) == Set(gates.compactMap { $0["context"] as? String }))
        #expect(try world.state(stillWaiting, "production") == "waitingForApproval")
        #expect(try ctl(world, bob, ["approve", String(ids[1].prefix(13))]).status == 0)

        // Two approvers, two approvals, no self-approval: the check names the dead end.
        let config = try world.dir.write("two-of-two.yaml", """
            projects:
              - name: fulltour
                upstream: \(world.upstream.fileURL)
            approvalPolicies:
              - stage: production
                approvers: {users: [\(users.alice), \(bob)]}
                required: 2
            """)
        let check = try Run.capture(Command.path("shipyardd"), ["--check-config", config])
        #expect(check.stderr.contains("a delivery one of them triggers can never pass this gate (only 1 other may approve it)"), "\(check.stdout)\(check.stderr)")
    }
}
