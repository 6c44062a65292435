import Foundation
import Testing

@testable import ShipyardCore

/// The rules of approval policies on their own, without a daemon: who started a delivery, what
/// one more approval does, which earlier approvals count under the policy in force and the
/// accounts as they are now, and who may still approve.
@Suite struct ApprovalRulesTests {
    typealias Policy = ApprovalPolicy

    @Test func whoStartedADeliveryIsTheRequestsOwner() {
        #expect(ApprovalRules.person("shipyardctl/alice") == "alice")
        #expect(ApprovalRules.person("web/alice") == "alice")
        #expect(ApprovalRules.person("shipyardctl/alice/my-checker") == "alice")
        #expect(ApprovalRules.person("shipyardd") == nil)
        #expect(ApprovalRules.person("shipyardctl/") == nil)
        #expect(ApprovalRules.person(nil) == nil)
    }

    /// A directory of accounts as a test sets it: uid → current name, name → groups.
    final class Accounts: @unchecked Sendable {
        var names: [UInt32: String] = [1001: "alice", 1002: "bob", 1003: "carol", 1004: "dave"]
        var groups: [String: Set<String>] = ["alice": ["release"], "bob": ["release"], "carol": ["release"], "dave": ["ops"]]
        var failing: Set<UInt32> = []
        var directory: AccountDirectory {
            AccountDirectory(
                lookup: { [self] uid in failing.contains(uid) ? .failed("Connection refused") : names[uid].map { .found($0) } ?? .none },
                groups: { [self] in groups[$0] ?? [] })
        }
        func uid(_ name: String) -> UInt32? { names.first { $0.value == name }?.key }
    }

    func vote(_ by: String, uid: UInt32?) -> ApprovalVote { ApprovalVote(by: by, uid: uid, at: "2026-11-27T10:00:00.000Z", reason: "", via: "cli") }

    func gate(_ policy: Policy, approvers: Approvers? = .init(users: [], groups: ["release"]), by origin: String = "shipyardctl/alice", uid: UInt32? = 1001) -> ApprovalRules.Gate {
        var policy = policy
        policy.approvers = approvers
        return ApprovalRules.Gate(policy: policy, fallback: nil, triggeredBy: origin, uid: uid)
    }

    @Test func eachRuleOfOneMoreApproval() {
        let accounts = Accounts()
        var policy = Policy(required: 2)
        func approve(_ user: String, _ votes: [ApprovalVote], by origin: String = "shipyardctl/alice") -> ApprovalRules.Verdict {
            ApprovalRules.approve(vote(user, uid: accounts.uid(user)), votes: votes, gate: gate(policy, by: origin), accounts: accounts.directory)
        }
        func people(_ verdict: ApprovalRules.Verdict) -> [String]? {
            switch verdict {
            case .counted(let tally), .approved(let tally): return tally.counted.map(\.by)
            case .refused: return nil
            }
        }
        guard case .refused(let own) = approve("alice", []) else { Issue.record("self-approval counted"); return }
        #expect(own.hasPrefix("alice cannot approve their own delivery"))
        guard case .counted(let one) = approve("bob", []) else { Issue.record("bob's approval did not count"); return }
        #expect(one.summary == "1 of 2 approvals: bob")
        guard case .refused(let twice) = approve("bob", [vote("bob", uid: 1002)]) else { Issue.record("a second approval by bob counted"); return }
        #expect(twice == "already approved by you (1 of 2 approvals: bob); it counts once, another approver must")
        guard case .approved(let both) = approve("carol", [vote("bob", uid: 1002)]) else { Issue.record("carol's approval did not open the gate"); return }
        #expect(both.counted.map(\.by) == ["bob", "carol"])
        policy.allowSelfApproval = true
        #expect(people(approve("alice", [])) == ["alice"])
        policy.required = 1
        guard case .approved = approve("alice", []) else { Issue.record("an allowed self-approval did not open a one-person gate"); return }
        // A follow-on or `send event` delivery counts as started by whoever started the context.
        policy.allowSelfApproval = false
        guard case .refused = approve("alice", [], by: "shipyardctl/alice/external-checker") else { Issue.record("self-approval counted"); return }
    }

    /// A1–A3 of issue 26: every earlier vote is counted again under the policy in force and the
    /// accounts as they are now, by uid.
    @Test func earlierVotesAreCountedAgainUnderThePolicyInForce() {
        let accounts = Accounts()
        let alice = vote("alice", uid: 1001), bob = vote("bob", uid: 1002), carol = vote("carol", uid: 1003)
        // Self-approval was allowed when alice approved her own delivery; a reload turned it off.
        var policy = Policy(required: 1)
        policy.allowSelfApproval = false
        var tally = ApprovalRules.tally([alice], gate: gate(policy), accounts: accounts.directory)
        #expect(!tally.isMet)
        #expect(tally.notCounted == ["alice: alice triggered the delivery and allowSelfApproval is false for every gate"])
        policy.required = 2
        tally = ApprovalRules.tally([alice, bob], gate: gate(policy), accounts: accounts.directory)
        #expect(tally.counted.map(\.by) == ["bob"])
        // bob left the approvers' group (gpasswd -d): his vote no longer counts, carol's alone
        // does not open a two-person gate.
        accounts.groups["bob"] = []
        guard case .counted(let left) = ApprovalRules.approve(carol, votes: [bob], gate: gate(policy), accounts: accounts.directory) else {
            Issue.record("carol's vote opened the gate with bob's"); return
        }
        #expect(left.summary == "1 of 2 approvals: carol")
        #expect(left.notCounted.first?.hasPrefix("bob: bob is not an approver of every gate now") == true)
        // A user removed from the host: the vote names an account that no longer exists; a lookup
        // that fails (sssd down) is not taken for either.
        accounts.groups["bob"] = ["release"]
        accounts.names[1002] = nil
        #expect(ApprovalRules.tally([bob], gate: gate(policy), accounts: accounts.directory).notCounted == ["bob: no account has uid 1002 (bob) now"])
        accounts.failing = [1002]
        #expect(ApprovalRules.tally([bob], gate: gate(policy), accounts: accounts.directory).notCounted == ["bob: cannot look up uid 1002 (bob) now: Connection refused"])
        accounts.failing = []
        // usermod -l bobby bob, or userdel bob and a new account given his uid: bob's approval no
        // longer counts (a uid never hands a departed person's approval to someone else); the
        // account approves again under its new name, once.
        accounts.names[1002] = "bobby"
        accounts.groups["bobby"] = ["release"]
        let bobby = vote("bobby", uid: 1002)
        guard case .counted(let again) = ApprovalRules.approve(bobby, votes: [bob], gate: gate(policy), accounts: accounts.directory) else {
            Issue.record("the renamed account could not approve again"); return
        }
        #expect(again.summary == "1 of 2 approvals: bobby")
        #expect(again.notCounted == ["bob: uid 1002 is bobby now, not bob: an approval counts only under the name it was given with (a renamed account approves again)"])
        guard case .refused(let twice) = ApprovalRules.approve(bobby, votes: [bob, bobby], gate: gate(policy), accounts: accounts.directory) else {
            Issue.record("one account approved twice"); return
        }
        #expect(twice == "already approved by you (1 of 2 approvals: bobby); it counts once, another approver must")
        // The triggerer renamed (alice → alicia) still cannot approve her own delivery.
        accounts.names[1001] = "alicia"
        accounts.groups["alicia"] = ["release"]
        guard case .refused(let own) = ApprovalRules.approve(vote("alicia", uid: 1001), votes: [], gate: gate(policy), accounts: accounts.directory) else {
            Issue.record("a renamed triggerer approved her own delivery"); return
        }
        #expect(own.hasPrefix("alicia cannot approve their own delivery (alice triggered it"))
        // A web-only user (no account on the host) is one person by name.
        let web = ApprovalVote(by: "erin", uid: nil, at: "2026-11-27T10:00:00.000Z", reason: "", via: "web")
        let open = gate(policy, approvers: .init(users: ["erin"], groups: ["release"]))
        #expect(ApprovalRules.tally([web, web, carol], gate: open, accounts: accounts.directory).counted.map(\.by) == ["erin", "carol"])
    }

    @Test func whoMayStillApprove() {
        let accounts = Accounts()
        let approvers = Approvers(users: ["alice", "bob", "carol"], groups: ["release"])
        let policy = Policy(required: 2)
        let tally = ApprovalRules.tally([vote("bob", uid: 1002)], gate: gate(policy, approvers: approvers), accounts: accounts.directory)
        #expect(ApprovalRules.stillMay(gate(policy, approvers: approvers), tally: tally, accounts: accounts.directory) == "users carol; groups release (not alice, bob)")
        #expect(ApprovalRules.stillMay(gate(policy, approvers: nil), tally: tally, accounts: accounts.directory) == "anyone who may send requests")
        // The triggerer renamed: left out under the name she has now.
        accounts.names[1001] = "alicia"
        let renamed = Approvers(users: ["alicia", "bob", "carol"], groups: [])
        #expect(ApprovalRules.stillMay(gate(policy, approvers: renamed), tally: tally, accounts: accounts.directory) == "users carol (not alicia, bob)")
        #expect(ApprovalRules.summary([], required: 2) == "0 of 2 approvals")
    }
}
