import Foundation
import Testing

@testable import ShipyardCore

extension EngineTests {
    // MARK: The engine review (issue 10)

    static let failFastShipyard = """
          stages:
            - name: qa
              sequences:
                - name: delivery
                  tasks: [{name: bad}, {name: je-deployment}, {name: je-test}]
            - name: production
              sequences:
                - name: cleanup
                  triggeredOn:
                    - event: qa.delivery.finished
                      selector: {match: {bad.result: fail}}
                  tasks: [{name: cleanup}]
        """

    /// Keptn matches `<task>.result` against the last task that ran (GetLastTaskExecutionResult),
    /// not the last task of the sequence.
    @Test func aTaskResultSelectorMatchesTheLastTaskThatRan() throws {
        var h = try Harness(stages: Self.failFastShipyard)
        let context = try h.trigger()
        try h.complete("bad", .fail)
        #expect(h.state("qa", context: context) == .finished)
        #expect(h.types.suffix(3) == ["qa.delivery.finished", "production.cleanup.triggered", "cleanup.triggered"])

        // When bad passes and a later task fails, bad is not the last task that ran.
        let second = try h.trigger(service: "other")
        try h.complete("bad", context: second)
        try h.complete("je-deployment", .fail, context: second)
        #expect(h.state("qa", context: second) == .finished)
        #expect(h.execution("production", "cleanup", context: second) == nil)
    }

    @Test func aDeclinedApprovalBeforeTheLastTaskFiresItsRollback() throws {
        var h = try Harness(stages: """
              stages:
                - name: production
                  sequences:
                    - name: delivery
                      tasks: [{name: approval, properties: {pass: manual, warning: manual}}, {name: je-deployment}]
                    - name: rollback
                      triggeredOn:
                        - event: production.delivery.finished
                          selector: {match: {approval.result: fail}}
                      tasks: [{name: je-rollback}]
            """)
        let context = try h.trigger()
        let approval = try #require(h.pending("approval"))
        try h.send("approval", "finished", to: approval, data: ["result": .string("fail"), "status": .string("succeeded")])
        #expect(h.state("production", context: context) == .finished)
        #expect(h.types.suffix(2) == ["production.rollback.triggered", "je-rollback.triggered"])
        #expect(!h.types.contains("je-deployment.triggered"))
    }

    static let remediation = """
          stages:
            - name: production
              sequences:
                - name: remediation
                  triggeredOn:
                    - event: production.remediation.finished
                      selector: {match: {evaluation.result: fail}}
                  tasks: [{name: bad}, {name: je-deployment}, {name: evaluation}]
        """

    @Test func aRemediationWhoseFirstActionFailsDoesNotLoop() throws {
        var h = try Harness(stages: Self.remediation)
        let context = try h.trigger("remediation")
        try h.complete("bad", .fail)
        #expect(h.state("production", "remediation", context: context) == .finished)
        #expect(h.executions(inContext: context).count == 1)
    }

    @Test func aLoopThatNeverHealsStopsAtMaxSequencesPerContext() throws {
        var h = try Harness(stages: Self.remediation)
        h.engine.maxSequencesPerContext = 3
        let context = try h.trigger("remediation")
        for round in 1...3 {
            try h.complete("bad", context: context)
            try h.complete("je-deployment", context: context)
            try h.complete("evaluation", .fail, context: context)
            #expect(h.executions(inContext: context).count == round + 1)
        }
        let all = h.executions(inContext: context)
        #expect(all.filter(\.isActive).isEmpty)
        let limited = try #require(all.last)
        #expect(limited.result == .fail && limited.status == .errored)
        #expect(limited.message == "not started: context \(context) already ran 3 sequences, the limit (maxSequencesPerContext); production.remediation is triggered on production.remediation.finished, which loops")
        #expect(h.types.suffix(2) == ["production.remediation.triggered", "production.remediation.finished"])
        #expect(!h.effects.contains { if case .runTask = $0 { return true } else { return false } })
        // Another context has a budget of its own.
        let other = try h.trigger("remediation", service: "other")
        #expect(h.state("production", "remediation", context: other) == .started)
    }

    /// Automatic steps that take no time (approvals) chain across stages in one command.
    @Test func chainsOfInstantStepsRunToTheEnd() throws {
        var h = try Harness(stages: """
              stages:
                - name: qa
                  sequences:
                    - name: delivery
                      tasks: [{name: je-deployment}, {name: approval, properties: {pass: automatic, warning: automatic}}]
                - name: staging
                  sequences:
                    - name: delivery
                      triggeredOn: [{event: qa.delivery.finished}]
                      tasks: [{name: approval, properties: {pass: automatic, warning: automatic}}]
                - name: production
                  sequences:
                    - name: delivery
                      triggeredOn: [{event: staging.delivery.finished}]
                      tasks: [{name: approval, properties: {pass: automatic, warning: automatic}}, {name: je-deployment}]
            """)
        let context = try h.trigger()
        try h.complete("je-deployment", context: context)
        #expect(h.state("production", context: context) == .started)
        #expect(h.types.last == "je-deployment.triggered")
        #expect(h.journal.last?.data["stage"] == .string("production"))
        #expect(h.effects.contains(.runTask(h.journal.last!)))
    }

    /// Keptn does not block a sequence on another of its own context.
    @Test func aSequenceIsNotQueuedBehindOneOfItsOwnContext() throws {
        var h = try Harness(stages: """
              stages:
                - name: qa
                  sequences:
                    - name: delivery
                      tasks: [{name: je-deployment}]
                - name: production
                  sequences:
                    - name: delivery
                      triggeredOn: [{event: qa.delivery.finished}]
                      tasks: [{name: approval, properties: {pass: manual}}, {name: je-deployment}]
                    - name: notify
                      triggeredOn: [{event: qa.delivery.finished}]
                      tasks: [{name: notify}]
            """)
        let context = try h.trigger()
        try h.complete("je-deployment", context: context)
        #expect(h.state("production", context: context) == .waitingForApproval)
        #expect(h.state("production", "notify", context: context) == .started)
        // Another delivery of the service still waits behind both.
        let next = try h.trigger()
        try h.complete("je-deployment", context: next)
        #expect(h.state("production", context: next) == .waiting)
    }

    /// Keptn: due = now + triggeredAfter when the task could be triggered; a sequence that waited
    /// in the queue counts from when it left it.
    @Test func triggeredAfterCountsFromLeavingTheQueue() throws {
        var h = try Harness(stages: """
              stages:
                - name: qa
                  sequences:
                    - name: delivery
                      tasks: [{name: je-deployment, triggeredAfter: 10m}]
            """)
        let first = try h.trigger()
        h.now += 60
        let second = try h.trigger()
        #expect(h.state("qa", context: second) == .waiting)
        h.now += 540
        try h.handle(.tick)
        try h.complete("je-deployment", context: first)
        #expect(h.state("qa", context: first) == .finished)
        let released = h.now
        try h.handle(.tick)
        #expect(h.pending("je-deployment", context: second) == nil)
        #expect(h.effects.contains(.wake(at: released.addingTimeInterval(600))))
        h.now = released.addingTimeInterval(599)
        try h.handle(.tick)
        #expect(h.pending("je-deployment", context: second) == nil)
        h.now = released.addingTimeInterval(600)
        try h.handle(.tick)
        #expect(h.pending("je-deployment", context: second) != nil)
        // Replaying the record gives the same release time.
        var replayed = Engine()
        for event in h.journal { replayed.replay(event) }
        #expect(replayed.executions(inContext: second).first?.queueReleasedAt == released)
    }

    /// A retried `.started` (same id, or same source) changes nothing; the first `.finished` ends
    /// the task, and a retried `.finished` is acknowledged as a duplicate.
    @Test func repeatedExternalEventsAreIdempotent() throws {
        var h = try Harness(example: "shipyard.yaml")
        let context = try h.trigger()
        let deploy = try #require(h.pending("je-deployment"))
        let started = KeptnEvent(
            id: "ext-1", source: "shipyardctl/ops", type: "sh.keptn.event.je-deployment.started", time: Timestamps.format(h.now),
            context: context, triggeredid: deploy.id, data: .object([:]))
        try h.handle(.event(started))
        #expect(h.engine.duplicate(started) == "event ext-1 was already applied to je-deployment")
        #expect(try h.handle(.event(started)).records.isEmpty)
        var again = started
        again.id = "ext-2"
        #expect(h.engine.duplicate(again) == "je-deployment was already started by shipyardctl/ops")
        try h.handle(.event(again))
        let finished = KeptnEvent(
            id: "ext-3", source: "shipyardctl/ops", type: "sh.keptn.event.je-deployment.finished", time: Timestamps.format(h.now),
            context: context, triggeredid: deploy.id, data: .object(["result": .string("pass"), "status": .string("succeeded")]))
        try h.handle(.event(finished))
        #expect(h.types.filter { $0 == "je-deployment.started" }.count == 1)
        #expect(h.types.last == "je-test.triggered")
        #expect(h.engine.duplicate(finished) != nil)
        #expect(try h.handle(.event(finished)).records.isEmpty)
        // A second executor (another source) is Keptn's: the task waits for both.
        let test = try #require(h.pending("je-test"))
        for source in ["a", "b"] {
            try h.handle(.event(KeptnEvent(
                id: "s-\(source)", source: source, type: "sh.keptn.event.je-test.started", time: Timestamps.format(h.now), context: context, triggeredid: test.id,
                data: .object([:]))))
        }
        try h.handle(.event(KeptnEvent(
            id: "f-a", source: "a", type: "sh.keptn.event.je-test.finished", time: Timestamps.format(h.now), context: context, triggeredid: test.id,
            data: .object(["result": .string("pass")]))))
        #expect(h.state("qa", context: context) == .started)
        try h.handle(.event(KeptnEvent(
            id: "f-b", source: "b", type: "sh.keptn.event.je-test.finished", time: Timestamps.format(h.now), context: context, triggeredid: test.id,
            data: .object(["result": .string("warning")]))))
        #expect(h.state("qa", context: context) == .finished)
        #expect(h.execution("qa", "delivery", context: context)?.result == .warning)
    }

    @Test func aTriggerRequestIsAppliedOnce() throws {
        var h = try Harness(example: "shipyard.yaml")
        let request = TriggerRequest(project: "fulltour", service: "helloservice", sequence: "delivery", requestID: "req-1")
        try h.handle(.trigger(request))
        let context = try #require(h.engine.context(forRequest: "req-1"))
        #expect(h.journal.first?.shipyardrequestid == "req-1")
        #expect(try h.handle(.trigger(request)).records.isEmpty)
        #expect(h.engine.executions.count == 1)
        var replayed = Engine()
        for event in h.journal { replayed.replay(event) }
        #expect(replayed.context(forRequest: "req-1") == context)
    }

    /// Keptn's merge joins arrays, the newer entries first (keptn#7627).
    @Test func finishedDataArraysAreJoinedNewestFirst() throws {
        var h = try Harness(example: "shipyard.yaml")
        let context = try h.trigger()
        try h.complete("je-deployment", data: ["deployment": .object(["deploymentURIsPublic": .array([.string("http://qa")])])], context: context)
        try h.complete("je-test", data: ["deployment": .object(["deploymentURIsPublic": .array([.string("http://qa-test")])])], context: context)
        let production = try #require(h.pending("je-deployment", context: context))
        #expect(production.data["deployment"]?["deploymentURIsPublic"] == .array([.string("http://qa-test"), .string("http://qa")]))
        #expect(JSONValue.object(["a": .number(1)]).merging(.object(["a": .null])) == .object(["a": .number(1)]))
        #expect(JSONValue.array([.number(1)]).merging(.string("x")) == .string("x"))
    }

    /// An external task's data cannot plant an approval strategy: the gate reads the shipyard's.
    @Test func aPlantedApprovalStrategyIsIgnored() throws {
        var h = try Harness(stages: """
              stages:
                - name: production
                  sequences:
                    - name: delivery
                      tasks: [{name: check}, {name: approval, properties: {pass: manual}}, {name: je-deployment}]
            """)
        let context = try h.trigger()
        try h.complete("check", .warning, data: ["approval": .object(["warning": .string("automatic"), "pass": .string("automatic")])], context: context)
        #expect(h.state("production", context: context) == .waitingForApproval)
        #expect(!h.types.contains("approval.finished"))
    }
}
