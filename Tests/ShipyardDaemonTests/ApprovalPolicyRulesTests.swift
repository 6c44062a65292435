import Foundation
import ShipyardCore
import Testing

@testable import ShipyardDaemon

/// The rules of approval policies on their own: matching, who counts, what one more approval does,
/// and what `--check-config` says of a policy.
@Suite struct ApprovalPolicyRulesTests {
    typealias Policy = DaemonConfig.ApprovalPolicy

    func vote(_ by: String) -> ApprovalVote { ApprovalVote(by: by, at: "2026-11-27T10:00:00.000Z", reason: "", via: "cli") }

    @Test func theMostSpecificPolicyWins() {
        var config = DaemonConfig(stateDirectory: "/s", projects: [], tasks: [:], approvers: nil, notify: nil)
        config.approvalPolicies = [
            Policy(required: 1), Policy(stage: "production", required: 2), Policy(project: "shop", required: 3),
            Policy(project: "shop", stage: "production", required: 4),
        ]
        #expect(config.approvalPolicy(project: "shop", stage: "production")?.required == 4)
        #expect(config.approvalPolicy(project: "shop", stage: "qa")?.required == 3)
        #expect(config.approvalPolicy(project: "other", stage: "production")?.required == 2)
        #expect(config.approvalPolicy(project: "other", stage: "qa")?.required == 1)
        config.approvalPolicies = [Policy(project: "shop")]
        #expect(config.approvalPolicy(project: "other", stage: "qa") == nil)
    }

    @Test func whoStartedADeliveryIsTheRequestsOwner() {
        #expect(ApprovalRules.person("shipyardctl/alice") == "alice")
        #expect(ApprovalRules.person("web/alice") == "alice")
        #expect(ApprovalRules.person("shipyardctl/alice/my-checker") == "alice")
        #expect(ApprovalRules.person("shipyardd") == nil)
        #expect(ApprovalRules.person("shipyardctl/") == nil)
        #expect(ApprovalRules.person(nil) == nil)
    }

    @Test func eachRuleOfOneMoreApproval() {
        var policy = Policy(required: 2)
        func approve(_ user: String, _ votes: [ApprovalVote], by origin: String = "shipyardctl/alice") -> ApprovalRules.Verdict {
            ApprovalRules.approve(user: user, policy: policy, votes: votes, triggeredBy: origin, stage: "production", project: "shop")
        }
        guard case .refused(let own) = approve("alice", []) else { Issue.record("self-approval counted"); return }
        #expect(own.hasPrefix("alice cannot approve their own delivery"))
        #expect(approve("bob", []) == .counted(approvals: ["bob"], of: 2))
        guard case .refused(let twice) = approve("bob", [vote("bob")]) else { Issue.record("a second approval by bob counted"); return }
        #expect(twice == "already approved by you (1 of 2 approvals: bob); it counts once, another approver must")
        #expect(approve("carol", [vote("bob")]) == .approved(approvals: ["bob", "carol"]))
        policy.allowSelfApproval = true
        #expect(approve("alice", []) == .counted(approvals: ["alice"], of: 2))
        policy.required = 1
        #expect(approve("alice", []) == .approved(approvals: ["alice"]))
        // A follow-on or `send event` delivery counts as started by whoever started the context.
        policy.allowSelfApproval = false
        guard case .refused = approve("alice", [], by: "shipyardctl/alice/external-checker") else { Issue.record("self-approval counted"); return }
    }

    @Test func whoMayStillApprove() {
        let approvers = DaemonConfig.Approvers(users: ["alice", "bob", "carol"], groups: ["release"])
        let policy = Policy(required: 2)
        #expect(ApprovalRules.stillMay(approvers, votes: [vote("bob")], policy: policy, triggeredBy: "shipyardctl/alice")
            == "users carol; groups release (not alice, bob)")
        #expect(ApprovalRules.stillMay(nil, votes: [], policy: policy, triggeredBy: nil) == "anyone who may send requests")
        #expect(ApprovalRules.summary([], required: 2) == "0 of 2 approvals")
    }

    @Test func checkConfigWarnsOfUnknownPeopleAndRefusesAGateThatCouldNeverOpen() {
        let me = String(cString: getpwuid(getuid()).pointee.pw_name)
        let diagnostics = ConfigLoader.load("""
            projects:
              - name: shop
                upstream: file:///srv/shop.git
            approvalPolicies:
              - project: shop
                stage: production
                approvers: {users: [\(me), nobody-here-7x], groups: [no-such-group-7x]}
                required: 3
                expireAfter: 72h
                remindAfter: 24h
              - stage: production
                approvers: {users: [\(me)]}
                allowSelfApproval: "yes"
              - stage: production
                required: 1
            """).diagnostics.map(\.description)
        #expect(diagnostics == [
            "7:16: warning: approvers: no user \"nobody-here-7x\" on this host (yet); fine for a web-only user",
            "7:16: warning: approvers: no group \"no-such-group-7x\" on this host (yet)",
            "8:15: error: required is 3 but the approvers for production of shop are 2 people (users named and members of groups on this host: \(["nobody-here-7x", me].sorted().joined(separator: ", "))): the gate could never open",
            "13:24: error: allowSelfApproval must be true or false",
            "14:5: error: a second policy for production (the first is at line 11); merge them",
        ])
        let config = ConfigLoader.load("""
            projects:
              - name: shop
                upstream: file:///srv/shop.git
            approvers: {users: [\(me)]}
            approvalPolicies:
              - stage: production
                expireAfter: 72h
                remindAfter: 24h
            """).config
        #expect(config?.approvalPolicies.first?.expireAfter == .seconds(72 * 3600))
        #expect(config?.approvalPolicies.first?.remindAfter == .seconds(24 * 3600))
        #expect(config?.approvalPolicies.first?.allowSelfApproval == false)
        #expect(config?.approvalPolicies.first?.approvers == nil)
    }
}
