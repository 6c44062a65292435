public import Foundation

/// One value from an SLI provider: Keptn's `get-sli.finished` `indicatorValues` entry.
public struct SLIResult: Sendable, Equatable, Codable {
    public var metric: String
    public var value: Double
    public var success: Bool
    public var message: String?

    public init(metric: String, value: Double, success: Bool, message: String? = nil) {
        self.metric = metric
        self.value = value
        self.success = success
        self.message = message
    }

    private enum CodingKeys: String, CodingKey { case metric, value, success, message }

    /// Missing fields read as Go reads them: 0, false, no message.
    public init(from decoder: any Decoder) throws {
        let container = try decoder.container(keyedBy: CodingKeys.self)
        metric = try container.decode(String.self, forKey: .metric)
        value = try container.decodeIfPresent(Double.self, forKey: .value) ?? 0
        success = try container.decodeIfPresent(Bool.self, forKey: .success) ?? false
        message = try container.decodeIfPresent(String.self, forKey: .message)
    }
}

/// A previous `evaluation.finished`, as the comparison sees it.
public struct PreviousEvaluation: Sendable, Equatable {
    /// The evaluation.finished event's id (goes into `comparedEvents`).
    public var id: String
    /// Its overall `data.result`.
    public var result: String
    /// Metric → value, only for SLIs with `success == true`: a failed SLI's value is never a
    /// baseline (keptn#1263).
    public var values: [String: Double]

    public init(id: String, result: String, values: [String: Double]) {
        self.id = id
        self.result = result
        self.values = values
    }

    /// Reads one from a stored evaluation.finished event's data: `data.result` and
    /// `data.evaluation.indicatorResults[].value{metric,value,success}`. An errored evaluation
    /// has no indicator results and gives no values.
    public init(id: String, data: JSONValue) {
        self.id = id
        result = data["result"]?.string ?? ""
        var values: [String: Double] = [:]
        if case .array(let items)? = data["evaluation"]?["indicatorResults"] {
            for item in items {
                guard let value = item["value"], let metric = value["metric"]?.string,
                    case .bool(true)? = value["success"], case .number(let number)? = value["value"],
                    values[metric] == nil
                else { continue }
                values[metric] = number
            }
        }
        self.values = values
    }
}

/// What an evaluation ends with: `evaluation.finished`'s `data.result`, `data.status`,
/// `data.message` and `data.evaluation`.
public struct EvaluationOutcome: Sendable, Equatable {
    /// `data.result`
    public var result: TaskResult
    /// `data.evaluation.result`
    public var evaluationResult: TaskResult
    public var score: Double
    public var message: String
    /// Status `errored` rather than `succeeded`.
    public var errored: Bool
    /// Keptn's `evaluation` object: timeStart, timeEnd, result, score, sloFileContent (base64),
    /// comparedEvents (only when there are some), indicatorResults (null when nothing was scored;
    /// each `{score, status, displayName, keySli, value{metric,value,comparedValue,success,message},
    /// passTargets[{criteria,targetValue,violated}], warningTargets[...]}`), as go-utils
    /// `EvaluationDetails` serialises it.
    public var evaluation: JSONValue

    public init(
        result: TaskResult, evaluationResult: TaskResult, score: Double, message: String, errored: Bool,
        evaluation: JSONValue
    ) {
        self.result = result
        self.evaluationResult = evaluationResult
        self.score = score
        self.message = message
        self.errored = errored
        self.evaluation = evaluation
    }

    /// `data.status`
    public var status: String { errored ? "errored" : "succeeded" }
}

/// Keptn's quality-gate scoring (lighthouse-service `evaluate_sli_handler.go`), as a pure
/// function of the SLO, the SLI values and the previous evaluations.
///
/// Deliberate differences from Keptn:
/// - An SLI provider that failed as a whole (`get-sli.finished` with `result: fail`) fails
///   `evaluation.result` as well as `data.result`; Keptn fails only `data.result` and keeps the
///   score-based `evaluation.result` (keptn#6096).
/// - An unknown `aggregate_function` is an error; Keptn silently compares with 0.
/// - A key-SLI failure's message states the value and the criteria it missed; Keptn says
///   "failed evaluation with score 0.000000" and the Bridge shows "75 < 75" (keptn#5900,
///   keptn#6639). It names the objective by its SLI when it has no displayName (Keptn leaves the
///   name empty), and `keySli` is true on a key objective that got no value (Keptn leaves it
///   false there).
/// - Previous evaluations' failed SLI values are never a baseline (keptn#1263; Keptn already
///   uses only `success: true` values, and so does `PreviousEvaluation`).
public enum Lighthouse {
    /// Scores the values against the SLO.
    /// - Parameters:
    ///   - previous: the previous evaluations, newest first, already filtered by
    ///     `acceptedResults` and limited to `resultsToCompare` by the caller (keptn A7).
    ///   - sliFailure: the provider's message when it failed as a whole (`result: fail`): both
    ///     `data.result` and `evaluation.result` fail (unlike keptn#6096).
    ///   - precedingFailed: the task before the evaluation failed: the SLO is still scored, and
    ///     `evaluation.result` keeps the score's result, but `data.result` fails.
    public static func evaluate(
        _ slo: SLO, values: [SLIResult], previous: [PreviousEvaluation],
        timeStart: Date, timeEnd: Date, sloFileContent: [UInt8],
        sliFailure: String? = nil, precedingFailed: Bool = false
    ) -> EvaluationOutcome {
        var details = Details(timeStart: Timestamps.format(timeStart), timeEnd: Timestamps.format(timeEnd))
        details.sloFileContent = Data(sloFileContent).base64EncodedString()

        guard SLOAggregate.functions.contains(slo.comparison.aggregateFunction) else {
            // Keptn yields 0 for an unknown function and compares with that.
            details.result = .fail
            return details.outcome(
                result: .fail,
                message: "unknown aggregate_function \"\(slo.comparison.aggregateFunction)\" in the SLO file; use avg, p50, p90 or p95",
                errored: true)
        }

        let scored = evaluateObjectives(slo, values: values, previous: previous)
        details.comparedEvents = previous.map(\.id)
        if let error = scored.error {
            // Keptn: status succeeded, result fail, no indicator results.
            details.result = .fail
            return details.outcome(result: .fail, message: error, errored: false)
        }
        details.indicatorResults = scored.results

        var message = scored.message
        let score: TotalScore
        switch calculateScore(maximum: scored.maximumScore, results: scored.results, slo: slo, keySLI: scored.keySLI) {
        case .failure(let error):
            // Keptn's sendErroredFinishedEventWithMessage: errored, no indicator results, no
            // compared events.
            var errored = Details(timeStart: details.timeStart, timeEnd: details.timeEnd)
            errored.sloFileContent = details.sloFileContent
            errored.result = .fail
            return errored.outcome(result: .fail, message: error.message, errored: true)
        case .success(let value):
            score = value
        }
        if let text = score.message { message = text }
        details.result = score.result
        details.score = score.score

        var result = score.result
        if slo.objectives.isEmpty {
            result = .fail
            message = "lighthouse failed because no SLO objective was provided"
        } else if let sliFailure {
            result = .fail
            details.result = .fail  // keptn#6096: Keptn keeps the score-based evaluation.result
            message = "lighthouse failed because SLI failed with message \(sliFailure)"
        }
        if precedingFailed, result != .fail {
            result = .fail
            message = "lighthouse failed because the preceding task failed" + (message.isEmpty ? "" : "; " + message)
        }
        return details.outcome(result: result, message: message, errored: false)
    }

    /// An outcome decided without scoring, in Keptn's data shape: no indicator results, score 0,
    /// `evaluation.result` equal to `result`. A nil time is written as "" (Keptn does that when
    /// the timeframe could not be worked out).
    public static func decided(
        _ result: TaskResult, message: String, errored: Bool = false, timeStart: Date?, timeEnd: Date?,
        sloFileContent: [UInt8] = []
    ) -> EvaluationOutcome {
        var details = Details(
            timeStart: timeStart.map(Timestamps.format) ?? "", timeEnd: timeEnd.map(Timestamps.format) ?? "")
        details.sloFileContent = Data(sloFileContent).base64EncodedString()
        details.result = result
        return details.outcome(result: result, message: message, errored: errored)
    }

    /// No SLO file: Keptn passes ("no evaluation performed by lighthouse because no SLO file
    /// configured for project X"), naming the path looked for; with `required` (the project's
    /// `requireSLO`) it fails instead.
    public static func noSLOFile(
        project: String, path: String, timeStart: Date?, timeEnd: Date?, required: Bool = false
    ) -> EvaluationOutcome {
        if required {
            return decided(
                .fail,
                message: "evaluation failed because no SLO file is configured for project \(project) (looked for \(path)) and the project requires one (requireSLO: true)",
                timeStart: timeStart, timeEnd: timeEnd)
        }
        return decided(
            .pass,
            message: "no evaluation performed by lighthouse because no SLO file configured for project \(project) (looked for \(path); requireSLO: true in the host config fails it instead)",
            timeStart: timeStart, timeEnd: timeEnd)
    }

    /// An SLO but no SLI provider: Keptn passes ("no evaluation performed by lighthouse because no
    /// SLI-provider configured for project X"); Shipyard fails, errored (keptn#1212): objectives
    /// nobody measures are not a pass.
    public static func noSLIProvider(
        project: String, path: String, objectives: Int, timeStart: Date?, timeEnd: Date?, sloFileContent: [UInt8] = []
    ) -> EvaluationOutcome {
        decided(
            .fail,
            message: "\(path) has \(objectives) objective(s) but project \(project) has no sliProvider in the config to measure them",
            errored: true, timeStart: timeStart, timeEnd: timeEnd, sloFileContent: sloFileContent)
    }

    /// An SLO file that does not load: errored, fail, with the first error at FILE:LINE:COLUMN.
    public static func invalidSLO(
        path: String, diagnostics: [Diagnostic], timeStart: Date?, timeEnd: Date?, sloFileContent: [UInt8]
    ) -> EvaluationOutcome {
        let errors = diagnostics.filter { $0.severity == .error }
        var message = "could not parse SLO file"
        if let first = errors.first {
            message += " " + first.formatted(file: path)
            if errors.count > 1 { message += " (and \(errors.count - 1) more errors; shipyardctl lint \(path) lists them)" }
        } else {
            message += " \(path)"
        }
        return decided(
            .fail, message: message, errored: true, timeStart: timeStart, timeEnd: timeEnd, sloFileContent: sloFileContent)
    }

    /// The SLI provider ended `errored` (or could not be run): errored, fail.
    public static func providerErrored(
        _ message: String, timeStart: Date?, timeEnd: Date?, sloFileContent: [UInt8] = []
    ) -> EvaluationOutcome {
        decided(
            .fail, message: "evaluation performed by lighthouse received an unexpected error: \(message)", errored: true,
            timeStart: timeStart, timeEnd: timeEnd, sloFileContent: sloFileContent)
    }

    /// The SLI provider ended `aborted`: errored, fail.
    public static func providerAborted(timeStart: Date?, timeEnd: Date?, sloFileContent: [UInt8] = []) -> EvaluationOutcome {
        decided(
            .fail, message: "evaluation performed by lighthouse was aborted", errored: true, timeStart: timeStart,
            timeEnd: timeEnd, sloFileContent: sloFileContent)
    }

    /// No usable timeframe (A2): errored, fail, with empty times as Keptn sends them.
    public static func timeframeFailed(_ error: TimeframeError) -> EvaluationOutcome {
        decided(.fail, message: error.message, errored: true, timeStart: nil, timeEnd: nil)
    }
}

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

/// The `evaluation` object being built.
private struct Details {
    var timeStart: String
    var timeEnd: String
    var result: TaskResult = .pass
    var score = 0.0
    var sloFileContent = ""
    var indicatorResults: [IndicatorResult]?
    var comparedEvents: [String] = []

    func outcome(result overall: TaskResult, message: String, errored: Bool) -> EvaluationOutcome {
        var object: [String: JSONValue] = [
            "timeStart": .string(timeStart), "timeEnd": .string(timeEnd), "result": .string(result.rawValue),
            "score": .number(score), "sloFileContent": .string(sloFileContent),
            "indicatorResults": indicatorResults.map { .array($0.map(\.json)) } ?? .null,
        ]
        if !comparedEvents.isEmpty { object["comparedEvents"] = .array(comparedEvents.map(JSONValue.string)) }
        return EvaluationOutcome(
            result: overall, evaluationResult: result, score: score, message: message, errored: errored,
            evaluation: .object(object))
    }
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
