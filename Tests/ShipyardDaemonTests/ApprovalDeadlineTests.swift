import Foundation
import Logging
import ShipyardCore
import ShipyardTestKit
import Testing

@testable import ShipyardDaemon

/// A decision is judged by the clock when it is recorded, not when the expiry timer gets to run:
/// the orchestrator alone, with a gate that expires in an hour and a clock moved past it, so that
/// the timer cannot have fired (the end-to-end twin, ApprovalPolicyTests, races the two).
@Suite struct ApprovalDeadlineTests {
    static let shipyard = """
        apiVersion: spec.keptn.sh/0.2.4
        kind: Shipyard
        spec:
          stages:
            - name: production
              sequences:
                - name: delivery
                  tasks:
                    - name: approval
                      properties: {pass: manual, warning: manual}
        """

    @Test func aVoteAfterExpiresAtIsLateBeforeTheExpiryIsRecorded() async throws {
        let dir = try TemporaryDirectory()
        var config = DaemonConfig(stateDirectory: dir.path, projects: [], tasks: [:], approvers: nil, notify: nil)
        var policy = DaemonConfig.ApprovalPolicy(required: 1)
        policy.expireAfter = .seconds(3600)
        config.approvalPolicies = [policy]
        let pinned = PinnedShipyard(shipyard: try #require(ShipyardLoader.load(Self.shipyard).shipyard), commit: String(repeating: "a", count: 40))
        let orchestrator = Orchestrator(state: StateDirectory(dir.path), config: config, logger: Logger(label: "test")) { ["shop": pinned] }
        // bob is an account of this test's, whatever the host has.
        await orchestrator.setAccounts(AccountDirectory(lookup: { $0 == 1002 ? .found("bob") : .none }, groups: { _ in [] }))
        try await orchestrator.start()
        // As the daemon does once its local API serves: deadlines from now on are judged live.
        await orchestrator.serving()
        _ = try await orchestrator.submit(.trigger(TriggerRequest(project: "shop", service: "cart", sequence: "delivery", source: "shipyardctl/alice", uid: 1001)))
        await orchestrator.settled()
        let files = try FileManager.default.contentsOfDirectory(atPath: dir.path + "/approvals")
        let id = try #require(files.first?.replacingOccurrences(of: ".json", with: ""))
        func bob(_ reason: String) -> Decision {
            Decision(approve: true, approval: id, reason: reason, user: "bob", uid: 1002, groups: [], via: "cli")
        }

        // Two hours on: expiresAt has passed, and the timer (an hour from the trigger, on the real
        // clock) has not run. The vote is late and nothing is recorded.
        await orchestrator.setClock { Date().addingTimeInterval(7200) }
        let late = await orchestrator.decide(bob("too late"))
        #expect(!late.ok)
        #expect(late.message.contains("expired at") && late.message.contains("the decision was not recorded"), "\(late.message)")
        #expect(FileManager.default.fileExists(atPath: dir.path + "/approvals/\(id).json"))

        // Within the hour the same vote opens the gate.
        await orchestrator.setClock { Date() }
        let inTime = await orchestrator.decide(bob("in time"))
        #expect(inTime.ok, "\(inTime.message)")
        await orchestrator.shutdown(grace: .zero)
    }
}
