import Foundation
import ShipyardCore
import ShipyardStore

/// The built-in quality gate's parts that need no engine and no record: asking the project's SLI
/// provider, the `get-sli` events as Keptn's lighthouse and providers record them, and the score
/// line. Scoring itself is Keptn's lighthouse, in ShipyardCore (Lighthouse, Lighthouse+Scoring);
/// the flow (files at the commit, previous evaluations, the answer) is Orchestrator+QualityGates.
///
/// May touch: the provider (a local program, or Prometheus over HTTP) and its run folder and log.
enum QualityGate {
    /// The provider's answer for one evaluation (blocking: called on a thread of its own).
    static func fetch(
        _ provider: DaemonConfig.SLIProvider, _ request: SLIRequest, triggered: KeptnEvent, sequence: String, deployment: String,
        runDirectory: String, logFile: String, home: String, cancel: TaskCancel
    ) -> SLIAnswer {
        switch provider {
        case .command(let executor):
            return CommandSLIProvider(executor: executor).fetch(
                request, triggered: triggered, sequence: sequence, runDirectory: runDirectory, logFile: logFile, home: home, cancel: cancel)
        case .prometheus(let settings):
            return PrometheusSLIProvider(settings: settings).fetch(request, deployment: deployment, cancel: cancel)
        }
    }

    /// "score 87.5 (pass ≥ 90%, warning ≥ 75%)": the score beside its thresholds, which Keptn's
    /// messages leave out (keptn#1661, #2305).
    static func scoreLine(_ outcome: EvaluationOutcome, _ slo: SLO) -> String {
        func number(_ value: Double) -> String {
            let text = String(format: "%.2f", value)
            return text.hasSuffix(".00") ? String(text.dropLast(3)) : text.hasSuffix("0") ? String(text.dropLast()) : text
        }
        var thresholds: [String] = []
        if let pass = slo.totalScorePass.flatMap(SLO.percentage) { thresholds.append("pass ≥ \(number(pass))%") }
        if let warning = slo.totalScoreWarning.flatMap(SLO.percentage) { thresholds.append("warning ≥ \(number(warning))%") }
        return "score \(number(outcome.score))" + (thresholds.isEmpty ? "" : " (\(thresholds.joined(separator: ", ")))")
    }

    /// `get-sli.triggered` and the provider's `.started`, as Keptn's lighthouse and provider record them.
    static func getSLIStarted(_ request: SLIRequest, triggered: KeptnEvent, ids: inout some IDGenerator) -> (triggered: KeptnEvent, started: KeptnEvent) {
        var data = (try? JSON.decode(JSONValue.self, from: JSON.encode(request))) ?? .object([:])
        data["queries"] = nil
        var payload: JSONValue = .object(["project": .string(request.project), "stage": .string(request.stage), "service": .string(request.service)])
        payload["get-sli"] = data
        if let labels = triggered.data["labels"] { payload["labels"] = labels }
        let now = Timestamps.format(Date())
        let getSLI = KeptnEvent(
            id: ids.next(), source: Evaluations.source, type: "\(KeptnEvent.prefix)get-sli.triggered", time: now,
            context: triggered.shkeptncontext, triggeredid: triggered.id, gitcommitid: triggered.gitcommitid, data: payload)
        var started = payload
        started["get-sli"] = nil
        started["status"] = .string(TaskStatus.succeeded.rawValue)
        let startedEvent = KeptnEvent(
            id: ids.next(), source: "shipyardd/sli-provider/\(request.sliProvider)", type: "\(KeptnEvent.prefix)get-sli.started", time: now,
            context: triggered.shkeptncontext, triggeredid: getSLI.id, gitcommitid: triggered.gitcommitid, data: started)
        return (getSLI, startedEvent)
    }

    /// The provider's `get-sli.finished`: its values, or why there are none.
    static func getSLIFinished(_ answer: SLIAnswer, request: SLIRequest, triggered getSLI: KeptnEvent, aborted: Bool, id: String) -> KeptnEvent {
        var data: JSONValue = .object(["project": .string(request.project), "stage": .string(request.stage), "service": .string(request.service)])
        let failed = answer.failure != nil || answer.reportedFail != nil
        let anyFailed = answer.values.contains { !$0.success }
        data["result"] = .string(failed || aborted ? "fail" : anyFailed ? "warning" : "pass")
        data["status"] = .string(aborted ? TaskStatus.aborted.rawValue : answer.failure != nil ? TaskStatus.errored.rawValue : TaskStatus.succeeded.rawValue)
        data["message"] = .string(answer.failure ?? answer.reportedFail ?? answer.message ?? "")
        let values = (try? JSON.decode(JSONValue.self, from: JSON.encode(answer.values))) ?? .array([])
        data["get-sli"] = .object([
            "sliProvider": .string(request.sliProvider), "start": .string(request.start), "end": .string(request.end), "indicatorValues": values,
        ])
        return KeptnEvent(
            id: id, source: "shipyardd/sli-provider/\(request.sliProvider)", type: "\(KeptnEvent.prefix)get-sli.finished",
            time: Timestamps.format(Date()), context: getSLI.shkeptncontext, triggeredid: getSLI.id, gitcommitid: getSLI.gitcommitid, data: data)
    }
}
