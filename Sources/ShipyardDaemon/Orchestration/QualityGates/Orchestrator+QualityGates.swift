import Foundation
import Logging
import ShipyardCore
import ShipyardStore
import ShipyardGit

/// The built-in `evaluation` (Keptn's lighthouse): the SLO and SLI files at the sequence's
/// commit, the provider's values, the score, and invalidation.
extension Orchestrator {
    /// Told of each evaluation that passed without an SLO file (project, message, context).
    func onPassWithoutSLO(_ action: @escaping @Sendable (String, String, String) -> Void) {
        passedWithoutSLO = action
    }

    /// The built-in `evaluation` (Keptn's lighthouse): `.started` at once, then the SLO and SLI
    /// files at the sequence's commit, the previous evaluations it compares with, the provider's
    /// values (the `get-sli` exchange is recorded as Keptn's would be), and the score as
    /// `evaluation.finished`.
    func evaluate(_ triggered: KeptnEvent, alreadyStarted: Bool) {
        guard let (execution, index) = engine.task(triggeredID: triggered.id) else { return }
        let cancel = TaskCancel()
        tasks.running[triggered.id] = cancel
        let project = configuration.project(named: execution.project)
        let mirror = Mirror(path: state.mirror(project: execution.project))
        let runDirectory = state.root + "/runs/\(triggered.id)"
        let logFile = state.root + "/logs/\(execution.context)/\(execution.stage)-evaluation.log"
        let home = state.home
        let source = Evaluations.source
        Task {
            if !alreadyStarted, await !self.answer(triggered, phase: "started", outcome: nil, source: source) {
                self.taskNotRun(triggered)
                return
            }
            guard let project else {
                let outcome = Lighthouse.decided(
                    .fail, message: "project \(execution.project) is no longer in the config", errored: true, timeStart: Date(), timeEnd: Date(), sloFileContent: [])
                await self.evaluationEnded(triggered, outcome)
                return
            }
            let plan = await TaskRunner.onThread(name: "evaluation") {
                Evaluator.plan(triggered: triggered, execution: execution, index: index, project: project, mirror: mirror, now: Date())
            }
            if let decided = plan.decided {
                if decided.result == .pass { self.passedWithoutSLO?(execution.project, decided.message, execution.context) }
                await self.evaluationEnded(triggered, decided)
                return
            }
            guard let slo = plan.slo, let provider = project.sliProvider else {
                let outcome = Lighthouse.decided(.fail, message: "internal error: an evaluation plan without an SLO or a provider", errored: true, timeStart: plan.start, timeEnd: plan.end)
                await self.evaluationEnded(triggered, outcome)
                return
            }
            let previous = self.previousEvaluations(slo, execution: execution)
            let request = Evaluator.request(plan: plan, slo: slo, triggered: triggered, execution: execution, provider: provider)
            let getSLI = self.recordGetSLI(request, triggered: triggered)
            let deployment = triggered.data["deployment"]?["deploymentNames"]?.array?.first?.string ?? ""
            let answer = await TaskRunner.onThread(name: "sli-provider") {
                QualityGate.fetch(
                    provider, request, triggered: triggered, sequence: execution.sequence, deployment: deployment, runDirectory: runDirectory,
                    logFile: logFile, home: home, cancel: cancel)
            }
            // A stop interrupts the provider: nothing is recorded, the next start asks again.
            if self.stopping {
                await self.evaluationEnded(triggered, Lighthouse.decided(.fail, message: "interrupted", timeStart: plan.start, timeEnd: plan.end))
                return
            }
            let aborted = cancel.isCancelled
            self.recordGetSLIFinished(answer, request: request, triggered: getSLI, aborted: aborted)
            if aborted {
                // `shipyardctl abort` during the provider call: Keptn's lighthouse answers the
                // aborted get-sli with an errored evaluation.finished; the sequence has ended, so
                // it is recorded beside it.
                await self.evaluationEnded(
                    triggered, Lighthouse.providerAborted(timeStart: plan.start, timeEnd: plan.end, sloFileContent: plan.sloBytes), evenIfEnded: true)
                return
            }
            if let failure = answer.failure {
                // No usable answer: nothing was measured, nothing is scored (Keptn's provider that
                // ends errored), with the provider's own message.
                await self.evaluationEnded(
                    triggered, Lighthouse.providerErrored(failure, timeStart: plan.start, timeEnd: plan.end, sloFileContent: plan.sloBytes))
                return
            }
            var outcome = Lighthouse.evaluate(
                slo, values: answer.values, previous: previous, timeStart: plan.start, timeEnd: plan.end, sloFileContent: plan.sloBytes,
                sliFailure: answer.reportedFail, precedingFailed: triggered.data["result"]?.string == TaskResult.fail.rawValue)
            outcome.message = QualityGate.scoreLine(outcome, slo) + (outcome.message.isEmpty ? "" : "; \(outcome.message)")
            await self.evaluationEnded(triggered, outcome)
        }
    }

    /// The previous evaluations an SLO's `comparison` asks for, newest first.
    func previousEvaluations(_ slo: SLO, execution: SequenceExecution) -> [PreviousEvaluation] {
        let query = EvaluationQuery(
            project: execution.project, stage: execution.stage, service: execution.service, results: slo.comparison.acceptedResults,
            limit: slo.comparison.resultsToCompare)
        do {
            return try store.previousEvaluations(query)
        } catch {
            logger.error("cannot read previous evaluations of \(execution.service) in \(execution.stage): \(error); comparing with none")
            return []
        }
    }

    /// `get-sli.triggered` and the provider's `.started`, recorded beside the sequence.
    func recordGetSLI(_ request: SLIRequest, triggered: KeptnEvent) -> KeptnEvent {
        let (getSLI, started) = QualityGate.getSLIStarted(request, triggered: triggered, ids: &ids)
        recordAside([getSLI, started])
        return getSLI
    }

    func recordGetSLIFinished(_ answer: SLIAnswer, request: SLIRequest, triggered getSLI: KeptnEvent, aborted: Bool) {
        recordAside([QualityGate.getSLIFinished(answer, request: request, triggered: getSLI, aborted: aborted, id: ids.next())])
    }

    /// `evenIfEnded`: recorded beside the sequence when it has ended meanwhile (an abort).
    func evaluationEnded(_ triggered: KeptnEvent, _ outcome: EvaluationOutcome, evenIfEnded: Bool = false) async {
        tasks.running[triggered.id] = nil
        if stopping {
            logger.info("evaluation interrupted by the daemon's stop; it runs again at the next start", metadata: ["triggeredid": "\(triggered.id)"])
            return
        }
        var data: JSONValue = .object(["evaluation": outcome.evaluation])
        if let labels = triggered.data["labels"] { data["labels"] = labels }
        await answer(
            triggered, phase: "finished",
            outcome: TaskProcess.Outcome(result: outcome.result, status: outcome.errored ? .errored : .succeeded, message: outcome.message, data: data),
            source: Evaluations.source, orAside: evenIfEnded)
    }

    /// `shipyardctl evaluations invalidate`: Keptn's `evaluation.invalidated`; later evaluations no
    /// longer compare with it.
    func invalidate(_ prefix: String, by user: String, reason: String) throws(EngineError) -> String {
        guard prefix.count >= ApprovalDesk.minimumIDPrefix else {
            throw EngineError("give at least \(ApprovalDesk.minimumIDPrefix) characters of the evaluation's id, not \"\(prefix)\" (shipyardctl evaluations lists them)")
        }
        let found: [StoredEvaluation]
        do {
            found = try store.evaluations(idPrefix: prefix, limit: 2)
        } catch {
            throw EngineError("cannot read the record: \(error)")
        }
        guard let evaluation = found.first else {
            throw EngineError("no evaluation has the id \(prefix) (shipyardctl evaluations --project P --stage S --service V lists them)")
        }
        guard found.count == 1 else {
            throw EngineError("\(prefix) is ambiguous: it starts \(found.map(\.triggeredID).joined(separator: ", ")); give more of the id")
        }
        if evaluation.invalidated { return "evaluation \(evaluation.triggeredID) was already invalidated" }
        var data: JSONValue = .object([:])
        for key in ["project", "stage", "service"] { data[key] = evaluation.data[key] }
        data["by"] = .string(user)
        data["reason"] = .string(reason)
        data["message"] = .string("invalidated by \(user)" + (reason.isEmpty ? "" : ": \(reason)"))
        let event = KeptnEvent(
            id: ids.next(), source: "shipyardctl/\(user)", type: Evaluations.invalidatedType, time: Timestamps.format(Date()),
            context: evaluation.context, triggeredid: evaluation.triggeredID, data: data)
        do {
            try store.commit(events: [event], changes: [])
        } catch {
            throw EngineError("nothing was done: the record cannot be written (\(error))")
        }
        log(event)
        return "evaluation \(evaluation.triggeredID) of \(evaluation.data["service"]?.string ?? "?") in \(evaluation.data["stage"]?.string ?? "?") invalidated: later evaluations no longer compare with it"
    }
}
