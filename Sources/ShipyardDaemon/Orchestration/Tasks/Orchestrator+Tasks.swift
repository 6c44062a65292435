import Foundation
import Logging
import ShipyardCore

/// Local task programs driven by the engine: each starts once its `.started` is recorded, and
/// its outcome is recorded as the task's `.finished`, as any executor's would be. The programs
/// themselves: TaskRunner.
extension Orchestrator {
    /// Starts a task's program when one is configured for its name; otherwise the task waits
    /// for an external `.started`/`.finished` (`shipyardctl send event`).
    func launch(_ triggered: KeptnEvent, alreadyStarted: Bool) {
        guard case .task(let name, _)? = triggered.kind, name != "approval" else { return }
        if draining {
            logger.info("\(name) not started: the daemon is stopping; it starts at the next run", metadata: ["context": "\(triggered.shkeptncontext)"])
            return
        }
        if name == Engine.evaluationSequence {
            evaluate(triggered, alreadyStarted: alreadyStarted)
            return
        }
        guard let executor = tasks.executors[name], let (execution, _) = engine.task(triggeredID: triggered.id) else {
            if webhookPerforms(triggered) { return }
            logger.info("\(name) has no local executor; waiting for an external .started/.finished (shipyardctl send event)",
                        metadata: ["context": "\(triggered.shkeptncontext)", "triggeredid": "\(triggered.id)"])
            return
        }
        guard let process = tasks.program(triggered, name: name, executor: executor, execution: execution) else { return }
        let cancel = TaskCancel()
        tasks.running[triggered.id] = cancel
        let launcher = tasks.launcher(project: execution.project)
        Task {
            // The program runs only once its .started is recorded.
            if !alreadyStarted, await !self.answer(triggered, phase: "started", outcome: nil) {
                self.taskNotRun(triggered)
                return
            }
            // Just before it starts: this daemon still leads (a shared record's lease, checked on
            // the database); otherwise the next leader runs it, with the next attempt number.
            guard await self.mayAct() else {
                self.logger.warning("\(name) not started: this daemon no longer leads", metadata: ["context": "\(triggered.shkeptncontext)"])
                self.taskNotRun(triggered)
                return
            }
            let outcome = await launcher.run(process, name: name, cancel: cancel, commit: execution.commit)
            await self.taskEnded(triggered, outcome: outcome)
        }
    }

    func taskEnded(_ triggered: KeptnEvent, outcome: TaskProcess.Outcome) async {
        tasks.running[triggered.id] = nil
        if stopping {
            logger.info("task interrupted by the daemon's stop; it runs again at the next start", metadata: ["triggeredid": "\(triggered.id)"])
            return
        }
        await answer(triggered, phase: "finished", outcome: outcome)
    }

    func taskNotRun(_ triggered: KeptnEvent) {
        tasks.running[triggered.id] = nil
    }

    /// Sends a task's `.started` or `.finished` through the engine, as any executor would.
    /// Returns whether it was recorded.
    /// `orAside`: when the sequence has ended meanwhile, the answer is recorded beside it rather
    /// than dropped (an aborted evaluation's `.finished`, as Keptn records it).
    @discardableResult
    func answer(
        _ triggered: KeptnEvent, phase: String, outcome: TaskProcess.Outcome?, source: String = "shipyardd/executor", orAside: Bool = false
    ) async -> Bool {
        var data: JSONValue = .object([:])
        for key in ["project", "stage", "service"] { data[key] = triggered.data[key] }
        if let outcome {
            if let extra = outcome.data, extra.object != nil { data = extra.merging(data) }
            data["result"] = .string(outcome.result.rawValue)
            data["status"] = .string(outcome.status.rawValue)
            data["message"] = .string(outcome.message)
        } else {
            data["status"] = .string(TaskStatus.succeeded.rawValue)
        }
        let name = triggered.type.dropFirst(KeptnEvent.prefix.count).dropLast(".triggered".count)
        let event = KeptnEvent(
            id: ids.next(), source: source, type: "\(KeptnEvent.prefix)\(name).\(phase)",
            time: Timestamps.format(Date()), context: triggered.shkeptncontext, triggeredid: triggered.id,
            gitcommitid: triggered.gitcommitid, data: data)
        while true {
            do {
                try await submit(.event(event))
                return true
            } catch where recordUnavailable && !stopping {
                // A full disk: the task's result is kept here and recorded once it can be.
                try? await Task.sleep(for: .seconds(2))
                continue
            } catch {
                // The sequence was aborted or timed out meanwhile: the answer is moot.
                logger.info("\(name).\(phase) not applied: \(error.message)\(orAside ? "; recorded beside the sequence" : "")", metadata: ["context": "\(triggered.shkeptncontext)"])
                if orAside { recordAside([event]) }
                return false
            }
        }
    }

    /// Exports and run folders no active sequence needs any more.
    func pruneAfterSequencesEnded() {
        tasks.pruneWorktrees(keeping: Set(engine.active.compactMap(\.commit)))
        tasks.pruneRuns { id in engine.task(triggeredID: id).map { $0.execution.isActive } ?? false }
    }
}
