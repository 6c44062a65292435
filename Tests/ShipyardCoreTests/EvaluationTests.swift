import Foundation
import Testing

@testable import ShipyardCore

// Keptn's own lighthouse tests (keptn/keptn 1.4.5,
// lighthouse-service/event_handler/evaluate_sli_handler_test.go), case by case, with the same
// inputs, scores and results. Each test names the Go test and case it mirrors.

/// The comparison block most of Keptn's cases use.
let severalPassTwoAvg = SLO.Comparison(
    compareWith: "several_results", includeResultWithScore: "pass", numberOfComparisonResults: 2, aggregateFunction: "avg")

func target(_ criteria: String, _ value: Double, violated: Bool) -> SLITarget {
    SLITarget(criteria: criteria, targetValue: value, violated: violated)
}

func ok(_ metric: String, _ value: Double) -> SLIValue {
    SLIValue(metric: metric, value: value, success: true)
}

/// A stored evaluation.finished `data`, as `PreviousEvaluation(id:data:)` reads it; a nil entry
/// is an indicator result whose `value` is null.
func finishedData(result: String, _ indicators: [(metric: String, value: Double, success: Bool)?]) -> JSONValue {
    let items: [JSONValue] = indicators.map { entry in
        guard let entry else { return .object(["score": .number(2), "value": .null, "status": .string("pass")]) }
        return .object([
            "score": .number(2), "status": .string("pass"),
            "value": .object([
                "metric": .string(entry.metric), "value": .number(entry.value), "success": .bool(entry.success),
            ]),
        ])
    }
    return .object([
        "result": .string(result),
        "evaluation": .object(["result": .string(result), "score": .number(2), "indicatorResults": .array(items)]),
    ])
}

/// The objective most of Keptn's TestEvaluateObjectives cases use.
func standardObjective(_ sli: String = "my-test-metric-1") -> SLO.Objective {
    SLO.Objective(
        sli: sli, pass: [["<=15.0"], ["<=+10%"]], warning: [["<=20.0"], ["<=+15%"]], weight: 1, keySLI: false)
}

@Suite struct EvaluationKeptnLighthouseTests {
    // MARK: TestParseCriteriaString

    @Test(
        "TestParseCriteriaString",
        arguments: [
            ("<10", "<", 10.0, false, false, false),
            ("<=10", "<=", 10, false, false, false),
            ("=10", "=", 10, false, false, false),
            (">=10", ">=", 10, false, false, false),
            (">10", ">", 10, false, false, false),
            (">-10%", ">", 10, true, true, false),
            ("<=+10.5%", "<=", 10.5, true, true, true),
            ("<=+10", "<=", 10, false, true, true),
            ("  <=+10   %", "<=", 10, true, true, true),
            ("  <=10%", "<=", 10, true, true, true),
        ])
    func parseCriteriaString(
        criteria: String, op: String, value: Double, checkPercentage: Bool, isComparison: Bool, checkIncrease: Bool
    ) throws {
        let parsed = try Criterion.parse(criteria)
        #expect(parsed.op == op)
        #expect(parsed.value == value)
        #expect(parsed.checkPercentage == checkPercentage)
        #expect(parsed.isComparison == isComparison)
        #expect(parsed.checkIncrease == checkIncrease)
    }

    // MARK: TestEvaluateValue

    @Test(
        "TestEvaluateValue",
        arguments: [
            ("10 > 9 should return true", 10.0, 9.0, ">", true),
            ("10 >= 10 should return true", 10, 10, ">=", true),
            ("10 <= 10 should return true", 10, 10, "<=", true),
            ("10 < 10 should return false", 10, 10, "<", false),
            ("10 > 10 should return false", 10, 10, ">", false),
        ])
    func evaluateValue(name: String, measured: Double, expected: Double, op: String, result: Bool) throws {
        #expect(try Lighthouse.evaluateValue(measured, expected, op) == result, "\(name)")
    }

    @Test("TestEvaluateValue: 10 ? 10 should return an error")
    func evaluateValueWithoutOperator() {
        #expect(throws: CriterionError.noOperator) { try Lighthouse.evaluateValue(10, 10, "?") }
        #expect(CriterionError.noOperator.description == "no operator set")
    }

    // MARK: TestEvaluateFixedThreshold

    @Test("TestEvaluateFixedThreshold: 10.0 > 9.0 should return true; 10.0 = 9.0 should return false")
    func evaluateFixedThreshold() throws {
        for (criteria, expected) in [(">9.0", true), ("=9.0", false)] {
            var value = ok("my-test-metric", 10)
            var result = SLITarget(criteria: criteria)
            let met = try Lighthouse.evaluateSingle(&value, criteria, previous: [], aggregateFunction: "avg", target: &result)
            #expect(met == expected)
            #expect(result.targetValue == 9.0)
        }
    }

    @Test("TestEvaluateFixedThreshold: 10.0 ? 9.0 should return an error")
    func evaluateFixedThresholdWithoutOperator() {
        #expect(throws: CriterionError.noOperator) { try Lighthouse.evaluateValue(10, 9, "?") }
        // Written in a file, "?9.0" does not even parse.
        #expect(throws: CriterionError.invalid) { try Criterion.parse("?9.0") }
    }

    // MARK: TestCalculatePercentile

    @Test(
        "TestCalculatePercentile",
        arguments: [
            ("Should return 5.0", 0.5, 5.0),
            ("Should return 9.0", 0.9, 9.8),
            ("Should return 10.0", 0.95, 10.0),
        ])
    func calculatePercentile(name: String, percentile: Double, expected: Double) {
        #expect(SLOAggregate.percentile([0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10], percentile) == expected, "\(name)")
    }

    // MARK: TestEvaluateComparison and TestEvaluateSingleCriteria

    /// Both Go tests run the same cases: TestEvaluateComparison with a parsed criteria object,
    /// TestEvaluateSingleCriteria with the string. The criteria object of TestEvaluateComparison's
    /// p50 case is `>=-10%` (its name says `<=+10%`); both are listed.
    @Test(
        "TestEvaluateComparison / TestEvaluateSingleCriteria",
        arguments: [
            ("Expect true for 10.0 <= avg([10.0, 10.0]) + 10%", 10.0, "<=+10%", "avg", true),
            ("Expect false for 11.01 <= avg([10.0, 10.0]) + 10%", 11.01, "<=+10%", "avg", false),
            ("Expect false for 10.0 < avg([10.0, 10.0]) + 0%", 10.0, "<+0%", "avg", false),
            ("Expect false for 10.0 > avg([10.0, 10.0]) + 0%", 10.0, ">+0%", "avg", false),
            ("Expect true for 11.0 = avg([10.0, 10.0]) + 1.0", 11.0, "=+1", "avg", true),
            ("Expect true for 9.0 = avg([10.0, 10.0]) - 1.0", 9.0, "=-1", "avg", true),
            ("Expect true for 10.0 <= p50([10.0, 5.0]) + 10.0% (SingleCriteria)", 10.0, "<=+10%", "p50", true),
            ("Expect true for 10.0 <= p50([10.0, 5.0]) + 10.0% (Comparison: >=-10%)", 10.0, ">=-10%", "p50", true),
        ])
    func evaluateComparison(name: String, value: Double, criteria: String, function: String, expected: Bool) throws {
        var sli = ok("my-test-metric", value)
        var result = SLITarget(criteria: criteria)
        let met = try Lighthouse.evaluateSingle(&sli, criteria, previous: [10, 10], aggregateFunction: function, target: &result)
        #expect(met == expected, "\(name)")
        #expect(sli.comparedValue == 10)
    }

    @Test("TestEvaluateSingleCriteria: Expect true for 10.0 <= 10.0")
    func evaluateSingleCriteriaWithoutPrevious() throws {
        var sli = ok("my-test-metric", 10)
        var result = SLITarget(criteria: "<=+10%")
        #expect(try Lighthouse.evaluateSingle(&sli, "<=10", previous: [], aggregateFunction: "", target: &result))
    }

    // MARK: TestEvaluateCriteriaSet

    @Test("TestEvaluateCriteriaSet: Expect true for (10.0 <= avg([10.0, 10.0]) + 10%) && (10.0 <= 10.0)")
    func evaluateCriteriaSetTrue() throws {
        var sli = ok("my-test-metric", 10)
        let (met, targets) = try Lighthouse.evaluateSet(&sli, ["<=+10%", "<=10.0"], previous: [10, 10], aggregateFunction: "avg")
        #expect(met)
        #expect(targets == [target("<=+10%", 11, violated: false), target("<=10.0", 10, violated: false)])
    }

    @Test("TestEvaluateCriteriaSet: Expect false for (11.0 <= avg([10.0, 10.0]) + 10%) && (10.0 <= 10.0)")
    func evaluateCriteriaSetFalse() throws {
        var sli = ok("my-test-metric", 11)
        let (met, targets) = try Lighthouse.evaluateSet(&sli, ["<=+10%", "<=10.0"], previous: [10, 10], aggregateFunction: "avg")
        #expect(!met)
        #expect(targets == [target("<=+10%", 11, violated: false), target("<=10.0", 10, violated: true)])
    }

    // MARK: TestEvaluateOrCombinedCriteria

    @Test(
        "TestEvaluateOrCombinedCriteria",
        arguments: [
            ("Expect true for (10.0 <= avg([10.0, 10.0]) + 10%) || (10.0 <= 10.0)", 10.0, true, false, false),
            ("Expect true for (11.0 <= avg([10.0, 10.0]) + 10%) || (10.0 <= 10.0)", 11.0, true, true, false),
            ("Expect false for (20.0 <= avg([10.0, 10.0]) + 10%) || (10.0 <= 10.0)", 20.0, false, true, true),
        ])
    func evaluateOrCombinedCriteria(name: String, value: Double, expected: Bool, firstViolated: Bool, secondViolated: Bool) throws {
        var sli = ok("my-test-metric", value)
        let (met, targets) = try Lighthouse.evaluateOr(&sli, [["<=10.0"], ["<=+10%"]], previous: [10, 10], aggregateFunction: "avg")
        #expect(met == expected, "\(name)")
        #expect(targets == [target("<=10.0", 10, violated: firstViolated), target("<=+10%", 11, violated: secondViolated)])
    }

    // MARK: TestCalculateScore

    /// An indicator result as TestCalculateScore builds them: criteria without target values.
    private func scored(_ metric: String, score: Double, status: String, pass: [String]?, keySli: Bool = false) -> IndicatorResult {
        IndicatorResult(
            score: score, value: ok(metric, 10), passTargets: pass.map { $0.map { SLITarget(criteria: $0) } },
            warningTargets: pass.map { _ in [SLITarget(criteria: "<=20.0"), SLITarget(criteria: "<=+15%")] },
            keySli: keySli, status: status)
    }

    private let scoreSLO = SLO(
        comparison: severalPassTwoAvg, objectives: [standardObjective()], totalScorePass: "90%", totalScoreWarning: "75%")

    @Test("TestCalculateScore: Simple comparison")
    func calculateScoreSimple() throws {
        let score = try Lighthouse.calculateScore(
            maximum: 1, results: [scored("my-test-metric-1", score: 1, status: "pass", pass: ["<=15.0", "<=+10%"])], slo: scoreSLO,
            keySLI: KeySLIFailure()
        ).get()
        #expect(score == TotalScore(result: .pass, score: 100, message: nil))
    }

    @Test("TestCalculateScore: Key SLI failed")
    func calculateScoreKeySLIFailed() throws {
        let score = try Lighthouse.calculateScore(
            maximum: 2,
            results: [
                scored("my-test-metric-1", score: 1, status: "pass", pass: ["<=15.0", "<=+10%"]),
                scored("my-key-metric", score: 0, status: "fail", pass: ["<=15.0", "<=+10%"], keySli: true),
            ], slo: scoreSLO, keySLI: KeySLIFailure(failed: true, name: "cpu time", message: "evaluation failed")
        ).get()
        #expect(
            score
                == TotalScore(
                    result: .fail, score: 50, message: "Evaluation failed due to key_sli objective 'cpu time': evaluation failed"))
    }

    @Test("TestCalculateScore: Non-Key SLI warning")
    func calculateScoreWarning() throws {
        let slo = SLO(comparison: severalPassTwoAvg, objectives: [], totalScorePass: "90%", totalScoreWarning: "75%")
        let score = try Lighthouse.calculateScore(
            maximum: 2,
            results: [
                scored("my-test-metric-1", score: 1, status: "pass", pass: ["<=8.0", "<=+10%"]),
                scored("my-metric", score: 0.506, status: "pass", pass: ["<=8.0", "<=+10%"]),
            ], slo: slo, keySLI: KeySLIFailure()
        ).get()
        #expect(
            score
                == TotalScore(
                    result: .warning, score: 75.3,
                    message: "Evaluation returned a warning: the calculated score of 75.3 is close to the warning target value of 75"))
    }

    @Test("TestCalculateScore: Non-Key SLI fail")
    func calculateScoreFail() throws {
        let score = try Lighthouse.calculateScore(
            maximum: 2,
            results: [
                scored("my-test-metric-1", score: 1, status: "pass", pass: ["<=8.0", "<=+10%"]),
                scored("my-metric", score: 0.48, status: "fail", pass: ["<=8.0", "<=+10%"]),
            ], slo: scoreSLO, keySLI: KeySLIFailure()
        ).get()
        #expect(
            score
                == TotalScore(
                    result: .fail, score: 74, message: "Evaluation failed since the calculated score of 74 is below the warning value of 75"))
    }

    @Test("TestCalculateScore: Only Info SLIs")
    func calculateScoreOnlyInfo() throws {
        let score = try Lighthouse.calculateScore(
            maximum: 0,
            results: [
                scored("my-test-metric-1", score: 1, status: "pass", pass: nil),
                scored("my-key-metric", score: 1, status: "pass", pass: nil),
            ], slo: scoreSLO, keySLI: KeySLIFailure()
        ).get()
        #expect(score == TotalScore(result: .pass, score: 100, message: nil))
    }

    @Test("TestCalculateScore: Info objectives should not be part of score")
    func calculateScoreInfoNotCounted() throws {
        let score = try Lighthouse.calculateScore(
            maximum: 1,
            results: [
                scored("my-test-metric-1", score: 1, status: "pass", pass: ["<=15.0", "<=+10%"]),
                scored("my-info-metric-1", score: 1, status: "pass", pass: nil),
            ], slo: scoreSLO, keySLI: KeySLIFailure()
        ).get()
        #expect(score == TotalScore(result: .pass, score: 100, message: nil))
    }

    // MARK: Test_aggregateValues

    @Test("Test_aggregateValues: Aggregate 2 values with AVG")
    func aggregateTwoValues() {
        #expect(SLOAggregate.of([5, 15], function: "avg") == 10)
    }

    @Test("Test_aggregateValues: Skip because of no previous results")
    func aggregateSkipsWithoutPrevious() {
        #expect(SLOAggregate.of([], function: "avg") == nil)
    }

    @Test("Test_aggregateValues: Skip because of no previous success")
    func aggregateSkipsWithoutSuccess() {
        let previous = PreviousEvaluation(
            id: "1", data: finishedData(result: "pass", [("my-test-metric", 5, false), ("my-test-metric", 15, false)]))
        #expect(previous.values.isEmpty)
        #expect(SLOAggregate.of([previous].compactMap { $0.values["my-test-metric"] }, function: "avg") == nil)
    }

    // MARK: Test_getSLIResult

    @Test("Test_getSLIResult: none found, none left, one sli left, found last")
    func getSLIResult() {
        var values = [ok("response_time_p50", 100)]
        #expect(Lighthouse.take(&values, metric: "not_this_metric") == nil)
        #expect(values.count == 1)

        values = [ok("response_time_p50", 100)]
        #expect(Lighthouse.take(&values, metric: "response_time_p50") == ok("response_time_p50", 100))
        #expect(values.isEmpty)

        values = [ok("response_time_p50", 100), ok("wrong_metric", 100)]
        #expect(Lighthouse.take(&values, metric: "response_time_p50") == ok("response_time_p50", 100))
        #expect(values == [ok("wrong_metric", 100)])

        values = [ok("wrong_metric", 100), ok("response_time_p50", 100)]
        #expect(Lighthouse.take(&values, metric: "response_time_p50") == ok("response_time_p50", 100))
        #expect(values == [ok("wrong_metric", 100)])
    }

    // MARK: TestEvaluateSLIHandler_HandleEvent

    @Test("TestEvaluateSLIHandler_HandleEvent: no SLO file available")
    func noSLOFileAvailable() {
        let outcome = Lighthouse.noSLOFile(project: "", path: "qa/carts/slo.yaml", timeStart: nil, timeEnd: nil)
        #expect(outcome.result == .pass)
        #expect(!outcome.errored)
        #expect(outcome.status == "succeeded")
        #expect(outcome.message.hasPrefix("no evaluation performed by lighthouse because no SLO file configured for project "))
        #expect(outcome.message.contains("qa/carts/slo.yaml"))
    }
}
