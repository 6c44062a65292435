import Foundation
import Testing

@testable import ShipyardCore

// MARK: - Each rule on its own, and every deliberate difference from Keptn

private let t0 = Date(timeIntervalSince1970: 1_714_557_600)  // 2024-05-01T10:00:00Z
private let t1 = t0.addingTimeInterval(300)

private func evaluate(
    _ slo: SLO, _ values: [SLIResult], previous: [PreviousEvaluation] = [], sliFailure: String? = nil,
    precedingFailed: Bool = false
) -> EvaluationOutcome {
    Lighthouse.evaluate(
        slo, values: values, previous: previous, timeStart: t0, timeEnd: t1, sloFileContent: Array("slo".utf8),
        sliFailure: sliFailure, precedingFailed: precedingFailed)
}

private func sli(_ metric: String, _ value: Double) -> SLIResult {
    SLIResult(metric: metric, value: value, success: true)
}

/// The indicator results of an outcome's `evaluation` object.
private func indicators(_ outcome: EvaluationOutcome) -> [JSONValue] {
    if case .array(let items)? = outcome.evaluation["indicatorResults"] { return items }
    return []
}

@Suite struct EvaluationRuleTests {
    /// A time read from Keptn's milliseconds is written back as it was (the formatter truncates,
    /// and "…27.152Z" used to come back as "…27.151Z"); finer times round to the nearest.
    @Test func timesRoundTripToTheMillisecond() throws {
        for text in ["2019-10-20T07:57:27.152Z", "2019-10-22T08:57:27.001Z", "2026-12-03T23:59:59.999Z", "2024-02-29T00:00:00.000Z"] {
            #expect(Timestamps.format(try #require(KeptnTime.parse(text))) == text)
            #expect(Timestamps.format(try #require(Timestamps.parse(text))) == text)
        }
        #expect(Timestamps.format(try #require(KeptnTime.parse("2019-10-20T07:57:27.152330783Z"))) == "2019-10-20T07:57:27.152Z")
        #expect(Timestamps.format(try #require(KeptnTime.parse("2019-10-20T07:57:27.1526Z"))) == "2019-10-20T07:57:27.153Z")
        #expect(Timestamps.format(try #require(KeptnTime.parse("2019-10-20T07:57:59.9996Z"))) == "2019-10-20T07:58:00.000Z")
    }

    @Test func criteriaIgnoreSpacesAndReadPercentAsIncrease() throws {
        // keptn#1498: "<=10%" is "<=+10%", a relative increase.
        #expect(try Criterion.parse("<=10%") == Criterion.parse("<=+10%"))
        #expect(try Criterion.parse(" < = 5 ") == Criterion(op: "<=", value: 5))
        #expect(try Criterion.parse("<-5") == Criterion(op: "<", value: 5, isComparison: true, checkIncrease: false))
        #expect(throws: CriterionError.invalid) { try Criterion.parse("800") }
        #expect(throws: CriterionError.invalid) { try Criterion.parse("") }
        #expect(throws: CriterionError.targetValue) { try Criterion.parse("<=10ms") }
        #expect(throws: CriterionError.targetValue) { try Criterion.parse("=<10") }
        #expect(throws: CriterionError.invalid) { try Criterion.parse("!=10") }
    }

    @Test func relativeTargetsFollowKeptnsFormulas() throws {
        #expect(try Criterion.parse("<=+10%").target(aggregate: 200) == 220)
        #expect(try Criterion.parse(">=-10%").target(aggregate: 200) == 180)
        #expect(try Criterion.parse("<=+5").target(aggregate: 200) == 205)
        #expect(try Criterion.parse(">-5").target(aggregate: 200) == 195)
        #expect(try Criterion.parse("<600").target(aggregate: 200) == 600)
    }

    @Test func aRelativeCriterionWithoutPreviousValuesIsMetWithTargetZero() throws {
        // On a first run ["<=+10%", "<600"] is simply "<600".
        let slo = SLO(objectives: [SLO.Objective(sli: "rt", pass: [["<=+10%", "<600"]])], totalScorePass: "90%")
        let first = evaluate(slo, [sli("rt", 550)])
        #expect(first.result == .pass)
        let targets = indicators(first).first?["passTargets"]
        #expect(targets == .array([
            .object(["criteria": .string("<=+10%"), "targetValue": .number(0), "violated": .bool(false)]),
            .object(["criteria": .string("<600"), "targetValue": .number(600), "violated": .bool(false)]),
        ]))
        #expect(evaluate(slo, [sli("rt", 650)]).result == .fail)
    }

    @Test func equalityIsAnExactFloatComparison() {
        let slo = SLO(objectives: [SLO.Objective(sli: "x", pass: [["=0.3"]])], totalScorePass: "100%")
        #expect(evaluate(slo, [sli("x", 0.3)]).result == .pass)
        #expect(evaluate(slo, [sli("x", 0.1 + 0.2)]).result == .fail)
    }

    @Test func aggregateFunctionsAsKeptnComputesThem() {
        let values = [100.0, 200, 300, 400]
        #expect(SLOAggregate.of(values, function: "avg") == 250)
        // rank p·(n+1): 2.5 → 200 + 0.5·100; 4.5 and 4.75 ≥ n → the largest.
        #expect(SLOAggregate.of(values, function: "p50") == 250)
        #expect(SLOAggregate.of(values, function: "p90") == 400)
        #expect(SLOAggregate.of(values, function: "p95") == 400)
        #expect(SLOAggregate.of([300, 100, 200], function: "p50") == 200)
        #expect(SLOAggregate.percentile([1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15, 16, 17, 18, 19], 0.9) == 18)
        #expect(SLOAggregate.percentile([5], 0.1) == 5)
    }

    @Test func theComparisonUsesTheChosenAggregate() {
        let previous = [
            PreviousEvaluation(id: "a", result: "pass", values: ["rt": 100]),
            PreviousEvaluation(id: "b", result: "pass", values: ["rt": 100]),
            PreviousEvaluation(id: "c", result: "pass", values: ["rt": 400]),
        ]
        func slo(_ function: String) -> SLO {
            SLO(
                comparison: SLO.Comparison(compareWith: "several_results", numberOfComparisonResults: 3, aggregateFunction: function),
                objectives: [SLO.Objective(sli: "rt", pass: [["<=+10%"]])], totalScorePass: "90%")
        }
        // avg 200 → target 220; p50 100 → 110; p95 400 → 440.
        #expect(evaluate(slo("avg"), [sli("rt", 215)], previous: previous).result == .pass)
        #expect(evaluate(slo("p50"), [sli("rt", 215)], previous: previous).result == .fail)
        #expect(evaluate(slo("p95"), [sli("rt", 430)], previous: previous).result == .pass)
        let compared = indicators(evaluate(slo("p50"), [sli("rt", 215)], previous: previous)).first?["value"]?["comparedValue"]
        #expect(compared == .number(100))
    }

    @Test func comparedValueIsSetForAbsoluteCriteriaToo() {
        // keptn#5496
        let slo = SLO(objectives: [SLO.Objective(sli: "rt", pass: [["<600"]])], totalScorePass: "90%")
        let outcome = evaluate(slo, [sli("rt", 500)], previous: [PreviousEvaluation(id: "p", result: "pass", values: ["rt": 480])])
        #expect(indicators(outcome).first?["value"]?["comparedValue"] == .number(480))
    }

    @Test func criteriaAreANDedWithinAListAndORedAcrossEntriesAllRecorded() {
        let slo = SLO(
            objectives: [SLO.Objective(sli: "rt", pass: [["<100", ">10"], ["<50"]], warning: [["<200"]])], totalScorePass: "90%",
            totalScoreWarning: "50%")
        // 5: first list fails on >10, second list holds → pass; every target recorded.
        let five = evaluate(slo, [sli("rt", 5)])
        #expect(five.result == .pass)
        #expect(indicators(five).first?["passTargets"] == .array([
            .object(["criteria": .string("<100"), "targetValue": .number(100), "violated": .bool(false)]),
            .object(["criteria": .string(">10"), "targetValue": .number(10), "violated": .bool(true)]),
            .object(["criteria": .string("<50"), "targetValue": .number(50), "violated": .bool(false)]),
        ]))
        // 80: first list holds → pass though "<50" is violated.
        #expect(evaluate(slo, [sli("rt", 80)]).result == .pass)
        // 150: no pass list holds, warning does → warning, half the weight.
        let warned = evaluate(slo, [sli("rt", 150)])
        #expect(warned.result == .warning)
        #expect(warned.score == 50)
        #expect(indicators(warned).first?["status"]?.string == "warning")
        #expect(indicators(warned).first?["score"] == .number(0.5))
        #expect(evaluate(slo, [sli("rt", 250)]).result == .fail)
    }

    @Test func objectiveStatusAndScoreFollowTableA5() {
        let slo = SLO(
            objectives: [
                SLO.Objective(sli: "passes", pass: [["<10"]], weight: 2),
                SLO.Objective(sli: "warns", pass: [["<10"]], warning: [["<20"]], weight: 2),
                SLO.Objective(sli: "fails", pass: [["<10"]], warning: [["<20"]], weight: 1),
                SLO.Objective(sli: "missing", pass: [["<10"]], weight: 1),
                SLO.Objective(sli: "broken", pass: [["<10"]], weight: 1),
                SLO.Objective(sli: "info", warning: [["<1"]], weight: 5, keySLI: true),
            ], totalScorePass: "90%", totalScoreWarning: "40%")
        let outcome = evaluate(
            slo,
            [
                sli("passes", 1), sli("warns", 15), sli("fails", 30), SLIResult(metric: "broken", value: 0, success: false, message: "boom"),
                sli("info", 99),
            ])
        let results = indicators(outcome)
        #expect(results.map { $0["status"]?.string } == ["pass", "warning", "fail", "fail", "fail", "info"])
        #expect(results.map { $0["score"] } == [.number(2), .number(1), .number(0), .number(0), .number(0), .number(0)])
        #expect(results[3]["value"]?["message"]?.string == "no value received from SLI provider")
        #expect(results[4]["value"]?["message"]?.string == "boom")
        // info: not in the maximum (7), its key_sli and warning ignored. 3/7.
        #expect(outcome.score == 100.0 * (3.0 / 7.0))
        #expect(outcome.result == .warning)
        #expect(results[5]["keySli"] == .bool(false))
        #expect(results[5]["passTargets"] == .array([]))
        #expect(results[5]["warningTargets"] == .array([.object(["criteria": .string("<1"), "targetValue": .number(1), "violated": .bool(true)])]))
    }

    @Test func weightZeroCountsAsOne() {
        let objective = SLO.Objective(sli: "a", pass: [["<1"]], weight: 0)
        #expect(objective.weight == 1)
        var slo = SLO(objectives: [objective, SLO.Objective(sli: "b", pass: [["<1"]])], totalScorePass: "50%")
        slo.objectives[0].weight = 0
        #expect(evaluate(slo, [sli("a", 0), sli("b", 5)]).score == 50)
    }

    @Test func totalScoreThresholdsAndMessages() {
        let slo = SLO(
            objectives: [SLO.Objective(sli: "a", pass: [["<1"]]), SLO.Objective(sli: "b", pass: [["<1"]], warning: [["<2"]])],
            totalScorePass: "90%", totalScoreWarning: "75%")
        let pass = evaluate(slo, [sli("a", 0), sli("b", 0)])
        #expect(pass.result == .pass && pass.evaluationResult == .pass && pass.score == 100 && pass.message == "")
        let warning = evaluate(slo, [sli("a", 0), sli("b", 1.5)])
        #expect(warning.result == .warning)
        #expect(warning.message == "Evaluation returned a warning: the calculated score of 75 is close to the warning target value of 75")
        let fail = evaluate(slo, [sli("a", 0), sli("b", 5)])
        #expect(fail.result == .fail)
        #expect(fail.message == "Evaluation failed since the calculated score of 50 is below the warning value of 75")
        let noWarning = SLO(objectives: slo.objectives, totalScorePass: "90")
        #expect(
            evaluate(noWarning, [sli("a", 0), sli("b", 1.5)]).message
                == "Evaluation failed since the calculated score of 75 is below the target value of 90")
        #expect(!pass.errored && !warning.errored && !fail.errored)
    }

    @Test func onlyInfoObjectivesPassWithScore100() {
        let slo = SLO(objectives: [SLO.Objective(sli: "a"), SLO.Objective(sli: "b")], totalScorePass: "90%")
        let outcome = evaluate(slo, [sli("a", 1)])
        #expect(outcome.result == .pass)
        #expect(outcome.score == 100)
        #expect(indicators(outcome)[1]["value"] == .null)
    }

    @Test func zeroObjectivesFail() {
        let outcome = evaluate(SLO(objectives: [], totalScorePass: "90%"), [sli("a", 1)])
        #expect(outcome.result == .fail)
        #expect(outcome.message == "lighthouse failed because no SLO objective was provided")
        #expect(outcome.evaluation["indicatorResults"] == .null)
    }

    @Test func additionalSLIsAreNamedInThePassMessage() {
        let slo = SLO(objectives: [SLO.Objective(sli: "a", pass: [["<1"]])], totalScorePass: "90%")
        let outcome = evaluate(slo, [sli("x", 1), sli("a", 0), sli("y", 2)])
        #expect(outcome.result == .pass)
        // Keptn's swap-removal order: "a" is replaced by the last value, "y".
        #expect(
            outcome.message
                == "Lighthouse received additional SLIs, which are not specified as SLO: x, y . Please consider using them as an SLO.")
    }

    @Test func aMissingTargetScoreIsAnError() {
        let slo = SLO(objectives: [SLO.Objective(sli: "a", pass: [["<1"]])], totalScorePass: nil)
        let outcome = evaluate(slo, [sli("a", 0)], previous: [PreviousEvaluation(id: "p", result: "pass", values: [:])])
        #expect(outcome.errored)
        #expect(outcome.result == .fail && outcome.evaluationResult == .fail)
        #expect(outcome.message == "no target score defined")
        #expect(outcome.evaluation["indicatorResults"] == .null)
        #expect(outcome.evaluation["comparedEvents"] == nil)
        var unparsable = slo
        unparsable.totalScorePass = "ninety"
        #expect(evaluate(unparsable, [sli("a", 0)]).message == "could not parse pass target percentage")
        unparsable.totalScorePass = "90%"
        unparsable.totalScoreWarning = "lots"
        #expect(evaluate(unparsable, [sli("a", 0)]).message == "could not parse warning target percentage")
    }

    @Test func anUnparsablePassCriterionFailsTheEvaluation() {
        // keptn#9206
        let slo = SLO(
            objectives: [SLO.Objective(sli: "rt", displayName: "Response time", pass: [["<=10ms"]])], totalScorePass: "90%")
        let outcome = evaluate(slo, [sli("rt", 5)], previous: [PreviousEvaluation(id: "p", result: "pass", values: [:])])
        #expect(outcome.result == .fail && outcome.evaluationResult == .fail)
        #expect(!outcome.errored)
        #expect(outcome.message == "error with Response time: could not parse criteria target value")
        #expect(outcome.evaluation["indicatorResults"] == .null)
        #expect(outcome.evaluation["comparedEvents"] == .array([.string("p")]))
        // An unparsable warning criterion is ignored, as in Keptn.
        let warning = SLO(objectives: [SLO.Objective(sli: "rt", pass: [["<1"]], warning: [["~~"]])], totalScorePass: "90%")
        let ignored = evaluate(warning, [sli("rt", 5)])
        #expect(ignored.result == .fail)
        #expect(indicators(ignored).first?["warningTargets"] == .array([]))
    }

    @Test func keySLIFailureFailsWhateverTheScoreAndSaysWhy() {
        // keptn#5900: the score (75) reaches pass (75), a key SLI fails: the message names the
        // value and the missed criteria, never "75 < 75".
        let slo = SLO(
            objectives: [
                SLO.Objective(sli: "a", pass: [["<1"]], weight: 3),
                SLO.Objective(sli: "rt", displayName: "Response time", pass: [["<600"], ["<=+10%"]], warning: [["<=800"]], keySLI: true),
            ], totalScorePass: "75%", totalScoreWarning: "50%")
        let outcome = evaluate(slo, [sli("a", 0), sli("rt", 900)], previous: [PreviousEvaluation(id: "p", result: "pass", values: ["rt": 500])])
        #expect(outcome.score == 75)
        #expect(outcome.result == .fail)
        #expect(outcome.evaluationResult == .fail)
        #expect(
            outcome.message
                == "Evaluation failed due to key_sli objective 'Response time': value 900 did not meet the pass criteria <600, <=+10% (target 550) nor the warning criteria <=800"
        )
        #expect(!outcome.message.contains("75 < 75"))
        #expect(indicators(outcome)[1]["keySli"] == .bool(true))
    }

    @Test func aKeySLIWithoutValueIsNamedByItsSLIAndMarkedKey() {
        let slo = SLO(objectives: [SLO.Objective(sli: "rt", pass: [["<600"]], keySLI: true)], totalScorePass: "0%")
        let outcome = evaluate(slo, [])
        #expect(outcome.result == .fail)
        #expect(outcome.message == "Evaluation failed due to key_sli objective 'rt': no value received from SLI provider")
        #expect(indicators(outcome).first?["keySli"] == .bool(true))
    }

    @Test func aWarningOnAKeySLIIsNoKeyFailure() {
        let slo = SLO(
            objectives: [SLO.Objective(sli: "rt", pass: [["<600"]], warning: [["<800"]], keySLI: true)], totalScorePass: "90%",
            totalScoreWarning: "50%")
        #expect(evaluate(slo, [sli("rt", 700)]).result == .warning)
    }

    @Test func aFailedProviderFailsBothResults() {
        // keptn#6096: Keptn keeps evaluation.result at the score's result.
        let slo = SLO(objectives: [SLO.Objective(sli: "a", pass: [["<1"]])], totalScorePass: "90%")
        let outcome = evaluate(slo, [sli("a", 0)], sliFailure: "unable to retrieve metrics")
        #expect(outcome.result == .fail)
        #expect(outcome.evaluationResult == .fail)
        #expect(outcome.evaluation["result"]?.string == "fail")
        #expect(outcome.score == 100)
        #expect(!outcome.errored)
        #expect(outcome.message == "lighthouse failed because SLI failed with message unable to retrieve metrics")
    }

    @Test func aFailedPrecedingTaskFailsTheResultButKeepsTheScore() {
        let slo = SLO(objectives: [SLO.Objective(sli: "a", pass: [["<1"]])], totalScorePass: "90%")
        let outcome = evaluate(slo, [sli("a", 0)], precedingFailed: true)
        #expect(outcome.result == .fail)
        #expect(outcome.evaluationResult == .pass)
        #expect(outcome.message == "lighthouse failed because the preceding task failed")
    }

    @Test func anUnknownAggregateFunctionIsAnError() {
        // Keptn silently compares with 0.
        let slo = SLO(
            comparison: SLO.Comparison(compareWith: "single_result", aggregateFunction: "median"),
            objectives: [SLO.Objective(sli: "a", pass: [["<=+10%"]])], totalScorePass: "90%")
        let outcome = evaluate(slo, [sli("a", 1)], previous: [PreviousEvaluation(id: "p", result: "pass", values: ["a": 1])])
        #expect(outcome.errored)
        #expect(outcome.result == .fail && outcome.evaluationResult == .fail)
        #expect(outcome.message.contains("median"))
    }

    @Test func failedPreviousValuesAreNeverABaseline() {
        // keptn#1263: only success == true values are read from a stored evaluation.
        let data = finishedData(result: "pass", [("rt", 0, false), ("ok", 300, true)])
        let previous = PreviousEvaluation(id: "e1", data: data)
        #expect(previous.result == "pass")
        #expect(previous.values == ["ok": 300])
        let slo = SLO(objectives: [SLO.Objective(sli: "rt", pass: [["<=+10%"]])], totalScorePass: "90%")
        #expect(evaluate(slo, [sli("rt", 100)], previous: [previous]).result == .pass)
        // An errored evaluation has no indicator results: no values, still an id.
        let errored = PreviousEvaluation(id: "e2", data: .object(["result": .string("fail"), "evaluation": .object(["indicatorResults": .null])]))
        #expect(errored.values.isEmpty && errored.result == "fail")
    }

    @Test func theEvaluationObjectHasKeptnsShape() {
        // A9's example: value 512.3 against 480.1 from the previous evaluation.
        let slo = SLO(
            objectives: [
                SLO.Objective(sli: "response_time_p95", displayName: "Response time P95", pass: [["<=+10%", "<500"]], warning: [["<=800"]])
            ], totalScorePass: "90%", totalScoreWarning: "50%")
        let outcome = Lighthouse.evaluate(
            slo, values: [sli("response_time_p95", 512.3)],
            previous: [PreviousEvaluation(id: "e-1", result: "pass", values: ["response_time_p95": 480.1])], timeStart: t0,
            timeEnd: t1, sloFileContent: Array("objectives: []\n".utf8))
        let passTargets: JSONValue = .array([
            .object(["criteria": .string("<=+10%"), "targetValue": .number((480.1 * 110) / 100), "violated": .bool(false)]),
            .object(["criteria": .string("<500"), "targetValue": .number(500), "violated": .bool(true)]),
        ])
        let indicator: JSONValue = .object([
            "score": .number(0.5), "status": .string("warning"), "displayName": .string("Response time P95"), "keySli": .bool(false),
            "value": .object([
                "metric": .string("response_time_p95"), "value": .number(512.3), "comparedValue": .number(480.1),
                "success": .bool(true),
            ]),
            "passTargets": passTargets,
            "warningTargets": .array([.object(["criteria": .string("<=800"), "targetValue": .number(800), "violated": .bool(false)])]),
        ])
        let expected: JSONValue = .object([
            "timeStart": .string("2024-05-01T10:00:00.000Z"), "timeEnd": .string("2024-05-01T10:05:00.000Z"), "result": .string("warning"),
            "score": .number(50), "sloFileContent": .string(Data("objectives: []\n".utf8).base64EncodedString()),
            "comparedEvents": .array([.string("e-1")]),
            "indicatorResults": .array([indicator]),
        ])
        #expect(outcome.evaluation == expected)
        #expect(outcome.result == .warning && outcome.evaluationResult == .warning)
        #expect(outcome.status == "succeeded")
    }

    @Test func scoresKeepFloatsAndMessagesPrintThemAsGo() {
        let slo = SLO(
            objectives: [SLO.Objective(sli: "a", pass: [["<1"]]), SLO.Objective(sli: "b", pass: [["<1"]]), SLO.Objective(sli: "c", pass: [["<1"]])],
            totalScorePass: "90%", totalScoreWarning: "60%")
        let outcome = evaluate(slo, [sli("a", 0), sli("b", 0), sli("c", 5)])
        #expect(outcome.score == 100.0 * (2.0 / 3.0))
        #expect(outcome.message == "Evaluation returned a warning: the calculated score of 66.66666666666666 is close to the warning target value of 60")
        #expect(GoFloat.format(74) == "74")
        #expect(GoFloat.format(75.3) == "75.3")
        #expect(GoFloat.format(-2.5) == "-2.5")
        #expect(GoFloat.format(123456) == "123456")
        #expect(GoFloat.format(1234567) == "1.234567e+06")
        #expect(GoFloat.format(0.0001) == "0.0001")
        #expect(GoFloat.format(0.00001) == "1e-05")
        #expect(GoFloat.format(1e21) == "1e+21")
        #expect(GoFloat.format(0) == "0")
    }

    @Test func comparisonDefaultsFollowKeptnsCode() {
        let absent = SLO.Comparison.absent
        #expect(absent.compareWith == nil)
        #expect(absent.resultsToCompare == 1)
        #expect(absent.includeResultWithScore == "all" && absent.acceptedResults == nil)
        #expect(absent.aggregateFunction == "avg")
        let bare = SLO.Comparison(compareWith: nil, numberOfComparisonResults: 0)
        #expect(bare.resultsToCompare == 3 && bare.numberOfComparisonResults == 3)
        #expect(SLO.Comparison(compareWith: "several_results", numberOfComparisonResults: 5).resultsToCompare == 5)
        #expect(SLO.Comparison(compareWith: "single_result", numberOfComparisonResults: 5).resultsToCompare == 1)
        #expect(SLO.Comparison(compareWith: "several_result").resultsToCompare == 3)
        #expect(SLO.Comparison(compareWith: nil, includeResultWithScore: "pass").acceptedResults == ["pass"])
        #expect(SLO.Comparison(compareWith: nil, includeResultWithScore: "pass_or_warn").acceptedResults == ["pass", "warning"])
        #expect(SLO.Comparison(compareWith: nil, includeResultWithScore: "Pass").acceptedResults == ["pass"])
    }

    @Test func decidedOutcomesHaveKeptnsShape() {
        let noProvider = Lighthouse.noSLIProvider(project: "sockshop", path: "qa/carts/slo.yaml", objectives: 2, timeStart: t0, timeEnd: t1)
        #expect(noProvider.result == .fail && noProvider.errored)
        #expect(noProvider.message == "qa/carts/slo.yaml has 2 objective(s) but project sockshop has no sliProvider in the config to measure them")
        #expect(noProvider.evaluation == .object([
            "timeStart": .string("2024-05-01T10:00:00.000Z"), "timeEnd": .string("2024-05-01T10:05:00.000Z"), "result": .string("fail"),
            "score": .number(0), "sloFileContent": .string(""), "indicatorResults": .null,
        ]))
        let required = Lighthouse.noSLOFile(project: "sockshop", path: "qa/carts/slo.yaml", timeStart: t0, timeEnd: t1, required: true)
        #expect(required.result == .fail && required.evaluationResult == .fail)
        #expect(required.message.contains("qa/carts/slo.yaml"))

        let (_, diagnostics) = SLOFile.load("objectives:\n  - sli: rt\n    pass:\n      - criteria: ['<=10ms']\n")
        let invalid = Lighthouse.invalidSLO(path: "slo.yaml", diagnostics: diagnostics, timeStart: t0, timeEnd: t1, sloFileContent: [])
        #expect(invalid.errored && invalid.result == .fail)
        #expect(invalid.message.hasPrefix("could not parse SLO file slo.yaml:1:1: error: "))
        #expect(invalid.message.hasSuffix("(and 1 more errors; shipyardctl lint slo.yaml lists them)"))

        let errored = Lighthouse.providerErrored("exit status 2", timeStart: t0, timeEnd: t1)
        #expect(errored.errored && errored.status == "errored")
        #expect(errored.message == "evaluation performed by lighthouse received an unexpected error: exit status 2")
        #expect(Lighthouse.providerAborted(timeStart: t0, timeEnd: t1).message == "evaluation performed by lighthouse was aborted")

        let timeframe = Lighthouse.timeframeFailed(TimeframeError("evaluation.triggered event does not contain evaluation timeframe"))
        #expect(timeframe.errored && timeframe.evaluation["timeStart"]?.string == "" && timeframe.evaluation["result"]?.string == "fail")

        let decided = Lighthouse.decided(.warning, message: "m", timeStart: t0, timeEnd: t1, sloFileContent: [1, 2, 3])
        #expect(decided.evaluation["sloFileContent"]?.string == "AQID" && decided.evaluationResult == .warning)
    }

    @Test func sliResultsDecodeAsGoDoes() throws {
        let decoded = try JSONDecoder().decode(
            [SLIResult].self, from: Data(#"[{"metric":"a","value":1.5,"success":true},{"metric":"b","message":"no data"}]"#.utf8))
        #expect(decoded == [SLIResult(metric: "a", value: 1.5, success: true), SLIResult(metric: "b", value: 0, success: false, message: "no data")])
    }
}
