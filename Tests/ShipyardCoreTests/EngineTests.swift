import Foundation
import Testing

@testable import ShipyardCore

@Suite struct EngineTests {
    @Test func theTutorialDeliveryRunsQAThenProduction() throws {
        var h = try Harness(example: "shipyard.yaml")
        let context = try h.trigger(image: "ghcr.io/podtato-head/podtatoserver:v0.1.1")
        #expect(h.types == ["qa.delivery.triggered", "je-deployment.triggered"])
        #expect(h.effects.contains(.runTask(h.journal[1])))
        let sequenceTriggered = h.journal[0]
        #expect(sequenceTriggered.gitcommitid == "c0ffee")
        #expect(sequenceTriggered.shipyardtasks?.map(\.name) == ["je-deployment", "je-test"])
        #expect(h.journal[1].triggeredid == sequenceTriggered.id)
        #expect(h.journal[1].data["configurationChange"]?["values"]?["image"]?.string == "ghcr.io/podtato-head/podtatoserver:v0.1.1")
        #expect(h.state("qa", context: context) == .started)

        try h.complete("je-deployment", data: ["deployment": .object(["deploymentURIsLocal": .array([.string("http://qa.local")])])])
        #expect(h.types.suffix(3) == ["je-deployment.started", "je-deployment.finished", "je-test.triggered"])
        let test = try #require(h.pending("je-test"))
        // Keptn's payload merge: the trigger's data, every finished task's data, the last result.
        #expect(test.data["deployment"]?["deploymentURIsLocal"] == .array([.string("http://qa.local")]))
        #expect(test.data["result"] == .string("pass"))
        #expect(test.data["stage"] == .string("qa"))

        try h.complete("je-test")
        #expect(h.types.suffix(5) == ["je-test.started", "je-test.finished", "qa.delivery.finished", "production.delivery.triggered", "je-deployment.triggered"])
        #expect(h.state("qa", context: context) == .finished)
        let production = try #require(h.journal.first { $0.type == "sh.keptn.event.production.delivery.triggered" })
        #expect(production.shkeptncontext == context)
        #expect(production.data["stage"] == .string("production"))
        #expect(production.data["configurationChange"]?["values"]?["image"]?.string == "ghcr.io/podtato-head/podtatoserver:v0.1.1")

        try h.complete("je-deployment")
        #expect(h.types.last == "production.delivery.finished")
        #expect(h.journal.last?.data["result"] == .string("pass"))
        #expect(h.state("production", context: context) == .finished)
    }

    @Test func aFailingTestStopsTheDeliveryInQA() throws {
        var h = try Harness(example: "shipyard.yaml")
        let context = try h.trigger()
        try h.complete("je-deployment")
        try h.complete("je-test", .fail, data: ["message": .string("3 of 12 checks failed")])
        #expect(h.types.suffix(1) == ["qa.delivery.finished"])
        #expect(h.journal.last?.data["result"] == .string("fail"))
        #expect(h.journal.last?.data["message"] == .string("3 of 12 checks failed"))
        #expect(!h.types.contains("production.delivery.triggered"))
        #expect(h.execution("qa", "delivery", context: context)?.result == .fail)
    }

    @Test func anErroredTaskStopsTheSequenceEvenWithAPassResult() throws {
        var h = try Harness(example: "shipyard.yaml")
        try h.trigger()
        try h.complete("je-deployment", .pass, status: .errored)
        #expect(h.types.last == "qa.delivery.finished")
        #expect(h.journal.last?.data["status"] == .string("errored"))
        #expect(h.journal.last?.data["result"] == .string("fail"))
        #expect(!h.types.contains("je-test.triggered"))
    }

    @Test func productionWaitsForAManualApprovalThenDeploys() throws {
        var h = try Harness(example: "shipyard-with-approval.yaml")
        let context = try h.trigger()
        try h.complete("je-deployment")
        try h.complete("je-test")
        #expect(h.types.suffix(3) == ["production.delivery.triggered", "approval.triggered", "approval.started"])
        let approval = try #require(h.pending("approval"))
        #expect(approval.data["approval"] == .object(["pass": .string("manual"), "warning": .string("manual")]))
        #expect(h.effects.contains(.approvalNeeded(triggeredID: approval.id)))
        #expect(h.state("production", context: context) == .waitingForApproval)
        #expect(h.journal.last?.data["message"] == .string("Approval strategy for result 'pass': manual"))

        // No timeout for a pending approval (keptn#4620): a day later it still waits.
        h.now += 86_400
        try h.handle(.tick)
        #expect(h.state("production", context: context) == .waitingForApproval)

        try h.send("approval", "finished", to: approval, data: ["result": .string("pass"), "status": .string("succeeded")])
        #expect(h.effects.contains(.approvalClosed(triggeredID: approval.id)))
        #expect(h.types.suffix(2) == ["approval.finished", "je-deployment.triggered"])
        try h.complete("je-deployment")
        #expect(h.state("production", context: context) == .finished)
    }

    @Test func aDeclinedApprovalEndsTheSequenceAndRunsNothingAfterIt() throws {
        var h = try Harness(example: "shipyard-with-approval.yaml")
        let context = try h.trigger()
        try h.complete("je-deployment")
        try h.complete("je-test")
        let approval = try #require(h.pending("approval"))
        try h.send("approval", "finished", to: approval, data: ["result": .string("fail"), "status": .string("succeeded")])
        // keptn#3366, #3477: a decline must not run the next tasks.
        #expect(h.types.suffix(2) == ["approval.finished", "production.delivery.finished"])
        #expect(h.journal.last?.data["result"] == .string("fail"))
        #expect(!h.journal.contains { $0.type == "sh.keptn.event.je-deployment.triggered" && $0.data["stage"] == .string("production") })
        #expect(h.state("production", context: context) == .finished)
    }

    @Test(arguments: [
        ("automatic", TaskResult.pass, "pass"),
        ("manual", TaskResult.pass, nil),
        ("automatic", TaskResult.fail, "fail"),
        ("automatic", TaskResult.warning, "pass"),
    ] as [(String, TaskResult, String?)])
    func approvalStrategies(strategy: String, previous: TaskResult, decision: String?) throws {
        // The approval opens production, which follows qa on any result (the second trigger
        // fires on fail), so it judges qa's result whatever it was.
        var h = try Harness("""
            apiVersion: spec.keptn.sh/0.2.4
            kind: Shipyard
            spec:
              stages:
                - name: qa
                  sequences:
                    - name: delivery
                      tasks:
                        - name: evaluation
                - name: production
                  sequences:
                    - name: delivery
                      triggeredOn:
                        - event: qa.delivery.finished
                        - event: qa.delivery.finished
                          selector:
                            match:
                              result: fail
                      tasks:
                        - name: approval
                          properties: {pass: \(strategy), warning: \(strategy)}
                        - name: deployment
            """)
        let context = try h.trigger()
        try h.complete("evaluation", previous, status: .succeeded)
        #expect(h.journal.first { $0.type == "sh.keptn.event.approval.triggered" }?.data["result"] == .string(previous.rawValue))
        if let decision {
            #expect(h.types.contains("approval.finished"))
            #expect(h.journal.first { $0.type == "sh.keptn.event.approval.finished" }?.data["result"] == .string(decision))
            #expect(h.types.last == (decision == "pass" ? "deployment.triggered" : "production.delivery.finished"))
            #expect(h.state("production", context: context) == (decision == "pass" ? .started : .finished))
        } else {
            #expect(h.state("production", context: context) == .waitingForApproval)
            #expect(!h.types.contains("approval.finished"))
        }
    }

    @Test func anApprovalAsTheFirstTaskWaitsForAPerson() throws {
        // keptn#4391: with no previous result there is nothing to judge automatically.
        var h = try Harness(corpus: "keptn-delivery_assistant_shipyard.yaml")
        let context = try h.trigger("approval", stage: "combi1")
        #expect(h.types == ["combi1.approval.triggered", "approval.triggered", "approval.started"])
        #expect(h.state("combi1", "approval", context: context) == .waitingForApproval)
    }

    @Test func aFailedStagingDeliveryFiresRollbackNotProduction() throws {
        var h = try Harness(corpus: "keptn-shipyard-e2e.yaml")
        let context = try h.trigger(stage: "dev")
        for task in ["deployment", "test", "evaluation", "release"] { try h.complete(task) }
        #expect(h.types.contains("staging.delivery.triggered"))
        try h.complete("deployment")
        try h.complete("test", .fail)
        #expect(h.types.suffix(3) == ["staging.delivery.finished", "staging.rollback.triggered", "rollback.triggered"])
        #expect(!h.types.contains("production.delivery.triggered"))
        try h.complete("rollback")
        #expect(h.state("staging", "rollback", context: context) == .finished)
        #expect(h.state("staging", context: context) == .finished)
    }

    @Test func aRemediationLoopWaitsForItsDelayAndRepeatsWhileEvaluationFails() throws {
        var h = try Harness(corpus: "examples-onboarding-carts-shipyard.yaml")
        let context = try h.trigger("remediation", stage: "production")
        try h.complete("get-action")
        try h.complete("action")
        #expect(h.types.last == "action.finished")
        let due = h.now.addingTimeInterval(900)
        #expect(h.effects.contains(.wake(at: due)))

        h.now += 899
        try h.handle(.tick)
        #expect(h.types.last == "action.finished")
        h.now += 1
        try h.handle(.tick)
        #expect(h.types.last == "evaluation.triggered")
        #expect(h.pending("evaluation")?.data["evaluation"] == .object(["timeframe": .string("15m")]))

        try h.complete("evaluation", .fail)
        // production.remediation is triggered by its own .finished with evaluation.result: fail.
        #expect(h.types.suffix(3) == ["production.remediation.finished", "production.remediation.triggered", "get-action.triggered"])
        #expect(h.executions(inContext: context).count == 2)

        try h.complete("get-action")
        try h.complete("action")
        h.now += 900
        try h.handle(.tick)
        try h.complete("evaluation", .pass)
        #expect(h.types.last == "production.remediation.finished")
        #expect(h.executions(inContext: context).count == 2)
    }

    @Test func deliveriesOfOneServiceQueueAndOthersRunBeside() throws {
        var h = try Harness(example: "shipyard-with-approval.yaml")
        let first = try h.trigger(service: "helloservice")
        let second = try h.trigger(service: "helloservice")
        let other = try h.trigger(service: "cartservice")
        #expect(h.state("qa", context: first) == .started)
        #expect(h.state("qa", context: second) == .waiting)
        #expect(h.state("qa", context: other) == .started)

        try h.complete("je-deployment", context: first)
        try h.complete("je-test", context: first)
        // The first leaves qa: the second starts there while the first waits for approval in production.
        #expect(h.state("qa", context: second) == .started)
        try h.complete("je-deployment", context: second)
        try h.complete("je-test", context: second)
        // Unlike Keptn (keptn#7828), a sequence waiting for approval keeps its place in the queue.
        #expect(h.state("production", context: first) == .waitingForApproval)
        #expect(h.state("production", context: second) == .waiting)

        let approval = try #require(h.pending("approval", context: first))
        try h.send("approval", "finished", to: approval, data: ["result": .string("pass"), "status": .string("succeeded")])
        try h.complete("je-deployment", context: first)
        #expect(h.state("production", context: first) == .finished)
        #expect(h.state("production", context: second) == .waitingForApproval)
    }

    @Test func aTaskNobodyStartsTimesOutAfterTenMinutes() throws {
        var h = try Harness(example: "shipyard.yaml")
        let context = try h.trigger()
        let deploy = try #require(h.pending("je-deployment"))
        #expect(h.effects.contains(.wake(at: h.now.addingTimeInterval(600))))
        h.now += 599
        try h.handle(.tick)
        #expect(h.state("qa", context: context) == .started)
        h.now += 1
        try h.handle(.tick)
        #expect(h.state("qa", context: context) == .timedOut)
        #expect(h.effects.contains(.cancelTask(triggeredID: deploy.id)))
        #expect(h.journal.last?.data["message"] == .string("sequence timed out while waiting for task je-deployment to receive a correlating .started or .finished event"))
        #expect(!h.types.contains("production.delivery.triggered"))
        // A late answer is refused rather than reviving the sequence.
        #expect(throws: EngineError.self) { try h.send("je-deployment", "finished", to: deploy, data: ["result": .string("pass")]) }
    }

    @Test func aStartedTaskDoesNotTimeOutWithinTaskFinishTimeout() throws {
        var h = try Harness(example: "shipyard.yaml")
        let context = try h.trigger()
        try h.send("je-deployment", "started", to: try #require(h.pending("je-deployment")))
        #expect(h.effects.contains(.wake(at: h.now.addingTimeInterval(86400))))
        h.now += 86399
        try h.handle(.tick)
        #expect(h.state("qa", context: context) == .started)
    }

    /// Keptn waits forever for a started task's `.finished`; a lost executor wedged the service.
    @Test func anExternalTaskThatStartedAndNeverFinishesTimesOutAtTaskFinishTimeout() throws {
        var h = try Harness(example: "shipyard.yaml")
        h.engine.taskFinishTimeout = 3600
        let context = try h.trigger()
        try h.send("je-deployment", "started", to: try #require(h.pending("je-deployment")))
        let startedAt = h.now
        h.now += 3599
        try h.handle(.tick)
        #expect(h.state("qa", context: context) == .started)
        h.now += 1
        try h.handle(.tick)
        #expect(h.state("qa", context: context) == .timedOut)
        #expect(h.journal.last?.data["message"] == .string(
            "sequence timed out: task je-deployment started at \(Timestamps.format(startedAt)) and sent no .finished within 1h0m0s (taskFinishTimeout)"))
        // The next delivery of the service is no longer held up.
        let next = try h.trigger()
        #expect(h.state("qa", context: next) == .started)
    }

    @Test func localTasksAndApprovalsAreExemptFromTaskFinishTimeout() throws {
        var h = try Harness(example: "shipyard-with-approval.yaml")
        h.engine.taskFinishTimeout = 60
        h.engine.locallyRunTasks = ["je-deployment", "je-test"]
        let context = try h.trigger()
        try h.send("je-deployment", "started", to: try #require(h.pending("je-deployment")))
        h.now += 3600
        try h.handle(.tick)
        #expect(h.state("qa", context: context) == .started)
        try h.complete("je-deployment", context: context)
        try h.complete("je-test", context: context)
        #expect(h.state("production", context: context) == .waitingForApproval)
        // A pending approval never times out: a month later it still waits for a person.
        h.now += 30 * 86400
        try h.handle(.tick)
        #expect(h.state("production", context: context) == .waitingForApproval)
    }

    @Test func pauseHoldsTheNextTaskResumeReleasesItAbortEndsEverything() throws {
        var h = try Harness(example: "shipyard.yaml")
        let context = try h.trigger()
        let deploy = try #require(h.pending("je-deployment"))
        try h.send("je-deployment", "started", to: deploy)
        try h.handle(.pause(context: context))
        #expect(h.state("qa", context: context) == .paused)
        // The running task goes on and may finish; nothing new is dispatched (keptn#5259).
        try h.send("je-deployment", "finished", to: deploy, data: ["result": .string("pass"), "status": .string("succeeded")])
        #expect(h.types.last == "je-deployment.finished")
        #expect(h.state("qa", context: context) == .paused)
        try h.handle(.resume(context: context))
        #expect(h.types.suffix(2) == ["qa.delivery.resumed", "je-test.triggered"])
        #expect(h.state("qa", context: context) == .started)

        let test = try #require(h.pending("je-test"))
        try h.handle(.abort(context: context))
        #expect(h.effects.contains(.cancelTask(triggeredID: test.id)))
        #expect(h.types.last == "qa.delivery.finished")
        #expect(h.journal.last?.data["status"] == .string("aborted"))
        #expect(h.state("qa", context: context) == .aborted)
        #expect(!h.types.contains("production.delivery.triggered"))
        #expect(throws: EngineError("no active sequence has the context \(context)")) { try h.handle(.abort(context: context)) }
    }

    @Test func triggersNamingNothingAreRefusedWithWhatExists() throws {
        var h = try Harness(example: "shipyard.yaml")
        #expect(throws: EngineError("no sequence \"deploy\" in project fulltour (sequences: delivery)")) {
            try h.handle(.trigger(TriggerRequest(project: "fulltour", service: "a", sequence: "deploy")))
        }
        #expect(throws: EngineError("no stage \"staging\" in project fulltour (stages: qa, production)")) {
            try h.handle(.trigger(TriggerRequest(project: "fulltour", service: "a", sequence: "delivery", stage: "staging")))
        }
        #expect(throws: EngineError("no project \"other\" (projects: fulltour)")) {
            try h.handle(.trigger(TriggerRequest(project: "other", service: "a", sequence: "delivery")))
        }
        #expect(throws: EngineError("service name \"Hello Service\" is invalid: use \(EntityName.rule)")) {
            try h.handle(.trigger(TriggerRequest(project: "fulltour", service: "Hello Service", sequence: "delivery")))
        }
        #expect(h.journal.isEmpty)
    }

    @Test func eventsThatAnswerNothingAreRefused() throws {
        var h = try Harness(example: "shipyard.yaml")
        try h.trigger()
        let deploy = try #require(h.pending("je-deployment"))
        var wrongTask = deploy
        wrongTask.type = "sh.keptn.event.je-test.triggered"
        #expect(throws: EngineError("sh.keptn.event.je-test.finished does not answer \(deploy.id), which triggered task je-deployment")) {
            try h.send("je-test", "finished", to: wrongTask, data: ["result": .string("pass")])
        }
        var unknown = deploy
        unknown.id = "nope"
        #expect(throws: EngineError("no triggered task has the id nope")) { try h.send("je-deployment", "started", to: unknown) }
        #expect(throws: EngineError.self) { try h.send("je-deployment", "triggered", to: deploy) }
        #expect(h.types == ["qa.delivery.triggered", "je-deployment.triggered"])
    }

    /// Keptn takes a `.finished` whose result or status it does not know and fails the task;
    /// refusing it left the task waiting forever for an answer already given.
    @Test(arguments: [
        (["result": JSONValue.string("passed")], #"je-deployment.finished had result "passed""#),
        (["result": .string("pass"), "status": .string("ok")], #"je-deployment.finished had status "ok""#),
        (["status": .string("succeeded")], "je-deployment.finished had no result"),
        (["result": .number(1), "status": .bool(true), "message": .string("done")], "je-deployment.finished had result 1 and status true"),
    ])
    func aFinishedWithValuesKeptnDoesNotKnowFailsTheTask(data: [String: JSONValue], problem: String) throws {
        var h = try Harness(example: "shipyard.yaml")
        let context = try h.trigger()
        let deploy = try #require(h.pending("je-deployment"))
        try h.send("je-deployment", "started", to: deploy)
        try h.send("je-deployment", "finished", to: deploy, data: data)
        let finished = try #require(h.journal.first { $0.type == "sh.keptn.event.je-deployment.finished" })
        #expect(finished.data["result"] == .string("fail"))
        #expect(finished.data["status"] == .string("errored"))
        #expect(finished.data["message"]?.string?.hasPrefix(problem) == true, "\(finished.data["message"] ?? .null)")
        #expect(h.types.last == "qa.delivery.finished")
        #expect(h.state("qa", context: context) == .finished)
        #expect(h.journal.last?.data["result"] == .string("fail"))
    }

    @Test func anAnswerIsFiledUnderItsSequenceWhateverItsSenderWrote() throws {
        var h = try Harness(example: "shipyard.yaml")
        _ = try h.trigger()
        let deploy = try #require(h.pending("je-deployment"))
        let elsewhere: [String: JSONValue] = ["project": .string("payroll"), "stage": .string("production"), "service": .string("ledger")]
        try h.send("je-deployment", "started", to: deploy, data: elsewhere)
        try h.send("je-deployment", "finished", to: deploy, data: elsewhere.merging(["result": .string("pass"), "status": .string("succeeded")]) { $1 })
        let answers = h.journal.filter { $0.triggeredid == deploy.id }
        #expect(answers.map(\.type) == ["sh.keptn.event.je-deployment.started", "sh.keptn.event.je-deployment.finished"])
        for answer in answers {
            for key in ["project", "stage", "service"] { #expect(answer.data[key] == deploy.data[key], "\(answer.type) \(key)") }
        }
    }

    @Test func aTaskNamedTwiceRunsTwiceInTurn() throws {
        // keptn#5501, #4039: repeated task names produced duplicate or endless events.
        var h = try Harness("""
            apiVersion: spec.keptn.sh/0.2.4
            kind: Shipyard
            spec:
              stages:
                - name: dev
                  sequences:
                    - name: delivery
                      tasks: [{name: echo}, {name: echo}]
            """)
        let context = try h.trigger()
        try h.complete("echo")
        #expect(h.types == ["dev.delivery.triggered", "echo.triggered", "echo.started", "echo.finished", "echo.triggered"])
        try h.complete("echo")
        #expect(h.types.last == "dev.delivery.finished")
        #expect(h.state("dev", context: context) == .finished)
    }

    @Test func replayingTheJournalRebuildsTheSameState() throws {
        var h = try Harness(example: "shipyard-with-approval.yaml")
        let a = try h.trigger()
        let b = try h.trigger()
        try h.complete("je-deployment", context: a)
        try h.complete("je-test", context: a)
        try h.handle(.pause(context: b))

        var rebuilt = Engine()
        for event in h.journal {
            let data = try JSONEncoder().encode(event)
            rebuilt.replay(try JSONDecoder().decode(KeptnEvent.self, from: data))
        }
        _ = rebuilt.takeChanges()
        #expect(rebuilt.executions == h.engine.executions)
        #expect(rebuilt.ordered.map(rebuilt.state) == h.engine.ordered.map(h.engine.state))
        #expect(rebuilt.unfinishedTasks.map { $0.execution.tasks[$0.index].name } == ["je-deployment", "approval"])

        // And carries on from there exactly as the original would.
        var original = h
        h.engine = rebuilt
        let approval = try #require(h.pending("approval", context: a))
        try h.send("approval", "finished", to: approval, data: ["result": .string("pass")])
        try original.send("approval", "finished", to: approval, data: ["result": .string("pass")])
        #expect(h.journal == original.journal)
    }

    @Test func followOnsUseTheShipyardLoadedWhenTheyStart() throws {
        var h = try Harness(example: "shipyard.yaml")
        let context = try h.trigger()
        try h.complete("je-deployment")
        // The tutorial's edit lands while qa runs: production picks up the approval task.
        let edited = try #require(ShipyardLoader.load(
            try String(contentsOf: Fixtures.repository.appendingPathComponent("examples/demo/shipyard-with-approval.yaml"), encoding: .utf8)).shipyard)
        h.shipyards["fulltour"] = PinnedShipyard(shipyard: edited, commit: "beef")
        try h.complete("je-test")
        let production = try #require(h.journal.first { $0.type == "sh.keptn.event.production.delivery.triggered" })
        #expect(production.gitcommitid == "beef")
        #expect(h.execution("qa", "delivery", context: context)?.commit == "c0ffee")
        #expect(h.state("production", context: context) == .waitingForApproval)
    }

}
