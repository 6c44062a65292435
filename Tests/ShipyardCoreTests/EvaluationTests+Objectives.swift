import Foundation
import Testing

@testable import ShipyardCore

// Keptn's TestEvaluateObjectives cases (lighthouse-service/event_handler/evaluate_sli_handler_test.go).

extension EvaluationKeptnLighthouseTests {
    // MARK: TestEvaluateObjectives

    @Test("TestEvaluateObjectives: Simple comparison evaluation")
    func objectivesSimpleComparison() {
        let slo = SLO(comparison: severalPassTwoAvg, objectives: [standardObjective()], totalScorePass: "90%", totalScoreWarning: "75%")
        let scored = Lighthouse.evaluateObjectives(
            slo, values: [SLIResult(metric: "my-test-metric-1", value: 10, success: true)],
            previous: [PreviousEvaluation(id: "1", result: "pass", values: ["my-test-metric-1": 10])])
        #expect(scored.error == nil)
        #expect(scored.maximumScore == 1)
        #expect(scored.keySLI == KeySLIFailure())
        #expect(scored.message == "")
        #expect(scored.results == [
            IndicatorResult(
                score: 1, value: SLIValue(metric: "my-test-metric-1", value: 10, comparedValue: 10, success: true),
                passTargets: [target("<=15.0", 15, violated: false), target("<=+10%", 11, violated: false)],
                warningTargets: [target("<=20.0", 20, violated: false), target("<=+15%", 11.5, violated: false)],
                keySli: false, status: "pass")
        ])
    }

    @Test("TestEvaluateObjectives: Expect Warning")
    func objectivesExpectWarning() {
        let slo = SLO(comparison: severalPassTwoAvg, objectives: [standardObjective()], totalScorePass: "90%", totalScoreWarning: "75%")
        let scored = Lighthouse.evaluateObjectives(
            slo, values: [SLIResult(metric: "my-test-metric-1", value: 16, success: true)],
            previous: [PreviousEvaluation(id: "1", result: "pass", values: ["my-test-metric-1": 10])])
        #expect(scored.maximumScore == 1)
        #expect(scored.keySLI == KeySLIFailure())
        #expect(scored.results == [
            IndicatorResult(
                score: 0.5, value: SLIValue(metric: "my-test-metric-1", value: 16, comparedValue: 10, success: true),
                passTargets: [target("<=15.0", 15, violated: true), target("<=+10%", 11, violated: true)],
                warningTargets: [target("<=20.0", 20, violated: false), target("<=+15%", 11.5, violated: true)],
                keySli: false, status: "warning")
        ])
    }

    /// Also "Logging SLI with empty pass criteria array should not affect score and have status
    /// 'info' - BUG 2231": an empty `pass: []` and an absent `pass` are the same here.
    @Test("TestEvaluateObjectives: Logging SLI with no pass criteria should not affect score (and BUG 2231)")
    func objectivesLoggingSLI() {
        let log = SLO.Objective(sli: "my-log-metric", pass: [], warning: [], weight: 1)
        let slo = SLO(
            comparison: severalPassTwoAvg, objectives: [standardObjective(), log], totalScorePass: "90%", totalScoreWarning: "75%")
        let scored = Lighthouse.evaluateObjectives(
            slo,
            values: [
                SLIResult(metric: "my-test-metric-1", value: 10, success: true),
                SLIResult(metric: "my-log-metric", value: 30, success: true),
            ],
            previous: [PreviousEvaluation(id: "1", result: "pass", values: ["my-test-metric-1": 10])])
        #expect(scored.maximumScore == 1)
        #expect(scored.message == "")
        #expect(scored.results == [
            IndicatorResult(
                score: 1, value: SLIValue(metric: "my-test-metric-1", value: 10, comparedValue: 10, success: true),
                passTargets: [target("<=15.0", 15, violated: false), target("<=+10%", 11, violated: false)],
                warningTargets: [target("<=20.0", 20, violated: false), target("<=+15%", 11.5, violated: false)],
                keySli: false, status: "pass"),
            IndicatorResult(
                score: 0, value: SLIValue(metric: "my-log-metric", value: 30, comparedValue: 0, success: true),
                passTargets: [], warningTargets: [], status: "info"),
        ])
    }

    @Test("TestEvaluateObjectives: BUG 1125")
    func objectivesBug1125() {
        let slo = SLO(
            comparison: severalPassTwoAvg,
            objectives: [SLO.Objective(sli: "response_time_p50", pass: [["<=+20%", "<500"]], weight: 1)],
            totalScorePass: "90%", totalScoreWarning: "75%")
        let scored = Lighthouse.evaluateObjectives(
            slo, values: [SLIResult(metric: "response_time_p50", value: 1011.0745528937252, success: true)], previous: [])
        #expect(scored.maximumScore == 1)
        #expect(scored.keySLI == KeySLIFailure())
        #expect(scored.results == [
            IndicatorResult(
                score: 0, value: ok("response_time_p50", 1011.0745528937252),
                passTargets: [target("<=+20%", 0, violated: false), target("<500", 500, violated: true)],
                warningTargets: nil, keySli: false, status: "fail")
        ])
    }

    /// The previous evaluation's value failed (success: false): it is no baseline, so the relative
    /// criterion is met with target 0.
    @Test("TestEvaluateObjectives: BUG 1263")
    func objectivesBug1263() {
        let slo = SLO(
            comparison: SLO.Comparison(
                compareWith: "single_result", includeResultWithScore: "pass", numberOfComparisonResults: 1, aggregateFunction: "avg"),
            objectives: [SLO.Objective(sli: "response_time_p50", pass: [["<=+20%"]], weight: 1)],
            totalScorePass: "90%", totalScoreWarning: "75%")
        let previous = PreviousEvaluation(
            id: "1", data: finishedData(result: "pass", [("response_time_p50", 0, false)]))
        let scored = Lighthouse.evaluateObjectives(
            slo, values: [SLIResult(metric: "response_time_p50", value: 100, success: true)], previous: [previous])
        #expect(scored.maximumScore == 1)
        #expect(scored.results == [
            IndicatorResult(
                score: 1, value: ok("response_time_p50", 100), passTargets: [target("<=+20%", 0, violated: false)],
                warningTargets: nil, keySli: false, status: "pass")
        ])
    }

    @Test("TestEvaluateObjectives: 6096 if SLI does not have objective have a message")
    func objectives6096() {
        let slo = SLO(
            comparison: severalPassTwoAvg, objectives: [standardObjective("a_different_metric")], totalScorePass: "90%",
            totalScoreWarning: "75%")
        let previous = [
            PreviousEvaluation(
                id: "1", data: finishedData(result: "pass", [("my-test-metric-1", 10, true), ("a_different_metric", 5, true)])),
            PreviousEvaluation(id: "2", data: finishedData(result: "pass", [("my-test-metric-1", 10, true), nil])),
        ]
        let scored = Lighthouse.evaluateObjectives(
            slo, values: [SLIResult(metric: "my-test-metric-1", value: 10, success: true)], previous: previous)
        #expect(scored.maximumScore == 1)
        #expect(scored.keySLI == KeySLIFailure())
        #expect(
            scored.message
                == "Lighthouse received additional SLIs, which are not specified as SLO: my-test-metric-1 . Please consider using them as an SLO."
        )
        #expect(scored.results == [
            IndicatorResult(
                score: 0,
                value: SLIValue(metric: "a_different_metric", value: 0, success: false, message: "no value received from SLI provider"),
                passTargets: [target("<=15.0", 15, violated: true), target("<=+10%", 5, violated: true)],
                warningTargets: [target("<=20.0", 20, violated: true), target("<=+15%", 5, violated: true)],
                keySli: false, status: "fail")
        ])
    }

    @Test("TestEvaluateObjectives: 9198 SLO file does not have objectives")
    func objectives9198() {
        let slo = SLO(
            comparison: SLO.Comparison(
                compareWith: "single_result", includeResultWithScore: "pass", numberOfComparisonResults: 1, aggregateFunction: "avg"),
            objectives: [], totalScorePass: "90%", totalScoreWarning: "75%")
        let scored = Lighthouse.evaluateObjectives(
            slo, values: [SLIResult(metric: "no metric", value: 0, success: false, message: "no SLIs were requested")], previous: [])
        #expect(scored.results == nil)
        #expect(scored.maximumScore == 100)
        #expect(scored.keySLI == KeySLIFailure())
        // The whole handler then fails the evaluation (keptn#9203, #9198).
        let outcome = Lighthouse.evaluate(
            slo, values: [SLIResult(metric: "no metric", value: 0, success: false, message: "no SLIs were requested")],
            previous: [], timeStart: .init(timeIntervalSince1970: 0), timeEnd: .init(timeIntervalSince1970: 300), sloFileContent: [],
            sliFailure: "no SLIs were requested")
        #expect(outcome.result == .fail)
        #expect(outcome.evaluationResult == .fail)
        #expect(outcome.score == 0)
        #expect(outcome.message == "lighthouse failed because no SLO objective was provided")
    }

    @Test("TestEvaluateObjectives: Fail with result equal to nil")
    func objectivesFailWithoutResult() {
        let slo = SLO(comparison: severalPassTwoAvg, objectives: [standardObjective()], totalScorePass: "90%", totalScoreWarning: "75%")
        let scored = Lighthouse.evaluateObjectives(
            slo, values: [], previous: [PreviousEvaluation(id: "1", result: "pass", values: ["my-test-metric-1": 10])])
        #expect(scored.maximumScore == 1)
        #expect(scored.keySLI == KeySLIFailure())
        #expect(scored.results == [
            IndicatorResult(
                score: 0,
                value: SLIValue(
                    metric: "my-test-metric-1", value: 0, comparedValue: 0, success: false, message: "no value received from SLI provider"),
                passTargets: [target("<=15.0", 15, violated: true), target("<=+10%", 10, violated: true)],
                warningTargets: [target("<=20.0", 20, violated: true), target("<=+15%", 10, violated: true)],
                keySli: false, status: "fail")
        ])
    }

    @Test("TestEvaluateObjectives: Fail with result success = false")
    func objectivesFailWithUnsuccessfulResult() {
        let slo = SLO(comparison: severalPassTwoAvg, objectives: [standardObjective()], totalScorePass: "90%", totalScoreWarning: "75%")
        let scored = Lighthouse.evaluateObjectives(
            slo, values: [SLIResult(metric: "my-test-metric-1", value: 0, success: false, message: "could not get data")],
            previous: [PreviousEvaluation(id: "1", result: "pass", values: ["my-test-metric-1": 10])])
        #expect(scored.maximumScore == 1)
        #expect(scored.results == [
            IndicatorResult(
                score: 0,
                value: SLIValue(metric: "my-test-metric-1", value: 0, comparedValue: 0, success: false, message: "could not get data"),
                passTargets: [target("<=15.0", 15, violated: true), target("<=+10%", 10, violated: true)],
                warningTargets: [target("<=20.0", 20, violated: true), target("<=+15%", 10, violated: true)],
                keySli: false, status: "fail")
        ])
    }
}
