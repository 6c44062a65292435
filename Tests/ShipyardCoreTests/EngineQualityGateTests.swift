import Foundation
import Testing

@testable import ShipyardCore

/// The tutorial's step 3 in the engine: `evaluation` is dispatched to the shell (the daemon's
/// lighthouse), its result steers production's approval, and every stage has an implicit
/// `evaluation` sequence.
@Suite struct EngineQualityGateTests {
    @Test func theEvaluationsResultDecidesWhetherProductionApprovesByItself() throws {
        var h = try Harness(example: "shipyard-with-quality-gate.yaml")
        h.engine.locallyRunTasks = ["evaluation"]
        for (result, expected) in [(TaskResult.pass, SequenceState.finished), (.warning, .waitingForApproval), (.fail, nil)] {
            let context = try h.trigger()
            try h.complete("je-deployment", context: context)
            try h.complete("je-test", context: context)
            let evaluation = try #require(h.pending("evaluation", context: context))
            #expect(h.effects.contains(.runTask(evaluation)))
            // The task's properties become Keptn's data.evaluation.timeframe.
            #expect(evaluation.data["evaluation"]?["timeframe"] == .string("2m"))
            try h.complete("evaluation", result, data: ["evaluation": .object(["result": .string(result.rawValue), "score": .number(50)])], context: context)
            #expect(h.state("qa", context: context) == .finished)
            if let expected {
                if expected == .finished { try h.complete("je-deployment", context: context) }
                #expect(h.state("production", context: context) == expected)
            } else {
                #expect(h.execution("production", "delivery", context: context) == nil)
                #expect(h.execution("qa", "delivery", context: context)?.result == .fail)
            }
            if expected == .waitingForApproval {
                let approval = try #require(h.pending("approval", context: context))
                #expect(approval.data["result"] == .string("warning"))
                try h.send("approval", "finished", to: approval, data: ["result": .string("fail"), "status": .string("succeeded")])
            }
        }
    }

    @Test func everyStageHasAnImplicitEvaluationSequenceUnlessItDefinesOne() throws {
        var h = try Harness(example: "shipyard.yaml")
        let context = try h.trigger("evaluation", stage: "production")
        #expect(h.types == ["production.evaluation.triggered", "evaluation.triggered"])
        #expect(h.journal[0].shipyardtasks == [PlannedTask(name: "evaluation")])
        try h.complete("evaluation", .warning, context: context)
        #expect(h.state("production", "evaluation", context: context) == .finished)
        #expect(h.execution("production", "evaluation", context: context)?.result == .warning)

        // Without --stage: the first stage.
        let first = try h.trigger("evaluation")
        #expect(h.execution("qa", "evaluation", context: first) != nil)

        // A shipyard's own evaluation sequence wins, with its tasks.
        var own = try Harness(stages: """
              stages:
                - name: qa
                  sequences:
                    - name: evaluation
                      tasks:
                        - name: prepare
                        - name: evaluation
            """)
        try own.trigger("evaluation")
        #expect(own.journal[0].shipyardtasks?.map(\.name) == ["prepare", "evaluation"])
        // Any other unknown sequence is still refused.
        #expect(throws: EngineError.self) { try h.trigger("rollback") }
    }
}
