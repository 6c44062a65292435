import Foundation

// MARK: - Keptn's scoring, function by function

/// go-utils `SLITarget`.
struct SLITarget: Sendable, Equatable {
    var criteria: String
    var targetValue: Double = 0
    var violated = false

    var json: JSONValue {
        .object(["criteria": .string(criteria), "targetValue": .number(targetValue), "violated": .bool(violated)])
    }
}

/// go-utils `SLIResult` as lighthouse writes it back (with `comparedValue`).
struct SLIValue: Sendable, Equatable {
    var metric: String
    var value: Double
    var comparedValue: Double = 0
    var success: Bool
    var message: String?

    init(metric: String, value: Double, comparedValue: Double = 0, success: Bool, message: String? = nil) {
        self.metric = metric
        self.value = value
        self.comparedValue = comparedValue
        self.success = success
        self.message = message
    }

    init(_ result: SLIResult) {
        self.init(metric: result.metric, value: result.value, success: result.success, message: result.message)
    }

    var json: JSONValue {
        var object: [String: JSONValue] = [
            "metric": .string(metric), "value": .number(value), "comparedValue": .number(comparedValue),
            "success": .bool(success),
        ]
        if let message, !message.isEmpty { object["message"] = .string(message) }
        return .object(object)
    }
}

/// go-utils `SLIEvaluationResult`. Targets are nil where Keptn's are nil (JSON null).
struct IndicatorResult: Sendable, Equatable {
    var score: Double = 0
    var value: SLIValue?
    var displayName = ""
    var passTargets: [SLITarget]?
    var warningTargets: [SLITarget]?
    var keySli = false
    var status = ""

    var json: JSONValue {
        .object([
            "score": .number(score),
            "value": value?.json ?? .null,
            "displayName": .string(displayName),
            "passTargets": passTargets.map { .array($0.map(\.json)) } ?? .null,
            "warningTargets": warningTargets.map { .array($0.map(\.json)) } ?? .null,
            "keySli": .bool(keySli),
            "status": .string(status),
        ])
    }
}

/// Keptn's `keySLI`.
struct KeySLIFailure: Sendable, Equatable {
    var failed = false
    var name = ""
    var message = ""
}

struct ScoringError: Error, Sendable, Equatable {
    var message: String
}

/// What `evaluateObjectives` hands to `calculateScore`.
struct ObjectivesScore: Sendable, Equatable {
    /// nil when there are no objectives.
    var results: [IndicatorResult]?
    var maximumScore: Double
    var keySLI = KeySLIFailure()
    /// The message so far (SLIs the SLO does not mention).
    var message = ""
    /// "error with NAME: …" when a pass criterion does not parse; the evaluation fails.
    var error: String?
}

/// What `calculateScore` decides.
struct TotalScore: Sendable, Equatable {
    var result: TaskResult
    var score: Double
    /// nil: the message stays as it was.
    var message: String?
}

extension Lighthouse {
    /// Keptn's `evaluateValue`.
    static func evaluateValue(_ measured: Double, _ expected: Double, _ op: String) throws(CriterionError) -> Bool {
        switch op {
        case "<": return measured < expected
        case "<=": return measured <= expected
        case "=": return measured == expected
        case ">=": return measured >= expected
        case ">": return measured > expected
        default: throw .noOperator
        }
    }

    /// Keptn's `evaluateSingleCriteria`: sets `comparedValue` (also for a fixed threshold,
    /// keptn#5496) and the target; a relative criterion without previous values is satisfied
    /// with target 0.
    static func evaluateSingle(
        _ value: inout SLIValue, _ criteria: String, previous: [Double], aggregateFunction: String,
        target: inout SLITarget
    ) throws(CriterionError) -> Bool {
        guard value.success else { throw .invalid }
        let criterion = try Criterion.parse(criteria)
        let aggregate = SLOAggregate.of(previous, function: aggregateFunction)
        value.comparedValue = aggregate ?? 0
        guard criterion.isComparison else {
            target.targetValue = criterion.value
            return try evaluateValue(value.value, criterion.value, criterion.op)
        }
        guard let aggregate else { return true }
        let threshold = criterion.target(aggregate: aggregate)
        target.targetValue = threshold
        return try evaluateValue(value.value, threshold, criterion.op)
    }

    /// Keptn's `evaluateCriteriaSet`: every criterion must hold; each one is recorded.
    static func evaluateSet(
        _ value: inout SLIValue, _ criteria: [String], previous: [Double], aggregateFunction: String
    ) throws(CriterionError) -> (satisfied: Bool, targets: [SLITarget]) {
        var satisfied = true
        var targets: [SLITarget] = []
        for text in criteria {
            var target = SLITarget(criteria: text)
            let met = try evaluateSingle(&value, text, previous: previous, aggregateFunction: aggregateFunction, target: &target)
            target.violated = !met
            if !met { satisfied = false }
            targets.append(target)
        }
        return (satisfied, targets)
    }

    /// Keptn's `evaluateOrCombinedCriteria`: one satisfied set is enough, all are evaluated so
    /// that every target is recorded. The targets are nil when no set has a criterion.
    static func evaluateOr(
        _ value: inout SLIValue, _ sets: [[String]], previous: [Double], aggregateFunction: String
    ) throws(CriterionError) -> (satisfied: Bool, targets: [SLITarget]?) {
        var satisfied = false
        var targets: [SLITarget]?
        for set in sets {
            let (met, evaluated) = try evaluateSet(&value, set, previous: previous, aggregateFunction: aggregateFunction)
            if met { satisfied = true }
            for target in evaluated { targets = (targets ?? []) + [target] }
        }
        return (satisfied, targets)
    }

    /// Keptn's `getEmptyTargets`: for an objective that was not evaluated, every parsable
    /// criterion marked violated, with its fixed value or (relative) the aggregate itself.
    static func emptyTargets(_ sets: [[String]], previous: [Double], aggregateFunction: String) -> [SLITarget] {
        var targets: [SLITarget] = []
        for set in sets {
            for text in set {
                guard let criterion = try? Criterion.parse(text) else { continue }
                let value = criterion.isComparison ? (SLOAggregate.of(previous, function: aggregateFunction) ?? 0) : criterion.value
                targets.append(SLITarget(criteria: text, targetValue: value, violated: true))
            }
        }
        return targets
    }

    /// Keptn's `evaluateObjectives`.
    static func evaluateObjectives(_ slo: SLO, values: [SLIResult], previous: [PreviousEvaluation]) -> ObjectivesScore {
        guard !slo.objectives.isEmpty else {
            return ObjectivesScore(results: nil, maximumScore: 100)
        }
        let function = slo.comparison.aggregateFunction
        var remaining = values.map(SLIValue.init)
        var results: [IndicatorResult] = []
        var maximum = 0.0
        var keySLI = KeySLIFailure()
        for objective in slo.objectives {
            let weight = Double(objective.weight == 0 ? 1 : objective.weight)
            if !objective.pass.isEmpty { maximum += weight }
            let previousValues = previous.compactMap { $0.values[objective.sli] }
            var result = IndicatorResult()
            let found = take(&remaining, metric: objective.sli)
            result.value = found
            result.displayName = objective.displayName

            if objective.pass.isEmpty {
                // info: reported only; warning and key_sli are ignored.
                result.status = "info"
                result.passTargets = emptyTargets(objective.pass, previous: previousValues, aggregateFunction: function)
                result.warningTargets = emptyTargets(objective.warning, previous: previousValues, aggregateFunction: function)
                results.append(result)
                continue
            }

            guard let found, found.success else {
                let value = found ?? SLIValue(metric: objective.sli, value: 0, success: false, message: "no value received from SLI provider")
                result.value = value
                result.status = "fail"
                result.keySli = objective.keySLI  // Keptn leaves this false
                result.passTargets = emptyTargets(objective.pass, previous: previousValues, aggregateFunction: function)
                result.warningTargets = emptyTargets(objective.warning, previous: previousValues, aggregateFunction: function)
                if objective.keySLI {
                    keySLI = KeySLIFailure(failed: true, name: objective.name, message: value.message ?? "")
                }
                results.append(result)
                continue
            }

            var value = found
            let passed: Bool
            do {
                (passed, result.passTargets) = try evaluateOr(
                    &value, objective.pass, previous: previousValues, aggregateFunction: function)
            } catch {
                return ObjectivesScore(results: nil, maximumScore: 100, error: "error with \(objective.name): \(error)")
            }
            if passed {
                result.score = weight
                result.status = "pass"
            }
            var warned = false
            if !objective.warning.isEmpty {
                do {
                    (warned, result.warningTargets) = try evaluateOr(
                        &value, objective.warning, previous: previousValues, aggregateFunction: function)
                } catch {
                    // Keptn ignores an unparsable warning criterion: no warning, no targets.
                    (warned, result.warningTargets) = (false, [])
                }
                if !passed && warned {
                    result.score = 0.5 * weight
                    result.status = "warning"
                }
            }
            result.value = value
            result.keySli = objective.keySLI
            if !passed && !warned {
                if objective.keySLI {
                    keySLI = KeySLIFailure(
                        failed: true, name: objective.name,
                        message: missedCriteria(value: value.value, pass: result.passTargets, warning: result.warningTargets))
                }
                result.status = "fail"
                result.score = 0
            }
            results.append(result)
        }
        var message = ""
        if !remaining.isEmpty {
            message = "Lighthouse received additional SLIs, which are not specified as SLO: "
                + remaining.map(\.metric).joined(separator: ", ") + " . Please consider using them as an SLO."
        }
        return ObjectivesScore(results: results, maximumScore: maximum, keySLI: keySLI, message: message)
    }

    /// Keptn's `getSLIResult`: the first value for the metric, removed by moving the last one
    /// into its place (so the leftover list has Keptn's order).
    static func take(_ values: inout [SLIValue], metric: String) -> SLIValue? {
        guard let index = values.firstIndex(where: { $0.metric == metric }) else { return nil }
        let found = values[index]
        values[index] = values[values.count - 1]
        values.removeLast()
        return found
    }

    /// The key-SLI failure text: the value and the criteria it missed (keptn#5900).
    static func missedCriteria(value: Double, pass: [SLITarget]?, warning: [SLITarget]?) -> String {
        func describe(_ targets: [SLITarget]?) -> String {
            (targets ?? []).filter(\.violated).map { target in
                let written = target.criteria.filter { $0 != " " }
                if let criterion = try? Criterion.parse(target.criteria), !criterion.isComparison { return written }
                return "\(written) (target \(GoFloat.format(target.targetValue)))"
            }.joined(separator: ", ")
        }
        var text = "value \(GoFloat.format(value)) did not meet the pass criteria \(describe(pass))"
        if let warning, !warning.isEmpty {
            text += " nor the warning criteria \(describe(warning))"
        }
        return text
    }

    /// Keptn's `calculateScore`.
    static func calculateScore(
        maximum: Double, results: [IndicatorResult]?, slo: SLO, keySLI: KeySLIFailure
    ) -> Result<TotalScore, ScoringError> {
        guard let passText = slo.totalScorePass, !passText.isEmpty else {
            return .failure(ScoringError(message: "no target score defined"))
        }
        guard let passTarget = SLO.percentage(passText) else {
            return .failure(ScoringError(message: "could not parse pass target percentage"))
        }
        var warningTarget: Double?
        if let warningText = slo.totalScoreWarning, !warningText.isEmpty {
            guard let value = SLO.percentage(warningText) else {
                return .failure(ScoringError(message: "could not parse warning target percentage"))
            }
            warningTarget = value
        }
        if maximum == 0 {
            return .success(TotalScore(result: .pass, score: 100, message: nil))
        }
        var total = 0.0
        for result in results ?? [] where !(result.passTargets ?? []).isEmpty {
            total += result.score
        }
        let achieved = 100.0 * (total / maximum)
        if achieved >= passTarget && !keySLI.failed {
            return .success(TotalScore(result: .pass, score: achieved, message: nil))
        }
        if let warningTarget, !keySLI.failed {
            if achieved >= warningTarget {
                return .success(TotalScore(
                    result: .warning, score: achieved,
                    message: "Evaluation returned a warning: the calculated score of \(GoFloat.format(achieved)) is close to the warning target value of \(GoFloat.format(warningTarget))"))
            }
            return .success(TotalScore(
                result: .fail, score: achieved,
                message: "Evaluation failed since the calculated score of \(GoFloat.format(achieved)) is below the warning value of \(GoFloat.format(warningTarget))"))
        }
        if keySLI.failed {
            return .success(TotalScore(
                result: .fail, score: achieved,
                message: "Evaluation failed due to key_sli objective '\(keySLI.name)': \(keySLI.message)"))
        }
        return .success(TotalScore(
            result: .fail, score: achieved,
            message: "Evaluation failed since the calculated score of \(GoFloat.format(achieved)) is below the target value of \(GoFloat.format(passTarget))"))
    }
}
