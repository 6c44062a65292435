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

/// The `evaluation` object being built.
struct Details {
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
