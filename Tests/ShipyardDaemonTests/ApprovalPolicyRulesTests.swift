import Foundation
import ShipyardCore
import Testing

@testable import ShipyardDaemon

/// Approval policies in the config: which entry matches a gate, and what `--check-config` says
/// of a policy (the rules themselves are ShipyardCore's, ApprovalRulesTests).
@Suite struct ApprovalPolicyRulesTests {
    typealias Policy = DaemonConfig.ApprovalPolicy

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
            """, host: .errors).diagnostics.map(\.description)
        #expect(diagnostics == [
            "7:16: warning: approvers: no user \"nobody-here-7x\" on this host (yet); fine for a web-only user",
            "7:16: warning: approvers: no group \"no-such-group-7x\" on this host (yet)",
            "8:15: error: required is 3 but the approvers for production of shop are 2 people (users named and members of groups on this host: \(["nobody-here-7x", me].sorted().joined(separator: ", "))): the gate could never open",
            "11:5: warning: required is 1 and the approvers for production are 1 person (\(me)) with allowSelfApproval false: a delivery they trigger can never pass this gate (nobody else may approve it); add an approver, lower required, or set allowSelfApproval: true",
            "13:24: error: allowSelfApproval must be true or false",
            "14:5: error: a second policy for production (the first is at line 11); merge them",
        ])
        // Two approvers, two approvals needed, no self-approval: a delivery one of them triggers
        // waits for a second approval that nobody may give.
        let twoOfTwo = ConfigLoader.load("""
            projects:
              - name: shop
                upstream: file:///srv/shop.git
            approvalPolicies:
              - stage: production
                approvers: {users: [\(me), nobody-here-7x]}
                required: 2
            """).diagnostics.map(\.description)
        #expect(twoOfTwo.last == "7:15: warning: required is 2 and the approvers for production are 2 people (\(["nobody-here-7x", me].sorted().joined(separator: ", "))) with allowSelfApproval false: a delivery one of them triggers can never pass this gate (only 1 other may approve it); add an approver, lower required, or set allowSelfApproval: true", "\(twoOfTwo)")
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
