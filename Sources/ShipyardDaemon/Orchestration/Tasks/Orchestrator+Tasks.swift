import Foundation
import Logging
import ShipyardCore
import ShipyardGit

/// Local task programs: launching them in their worktree, recording their outcome as the
/// task's `.started`/`.finished`, and the files runs leave behind.
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
        guard let executor = executors[name], let (execution, _) = engine.task(triggeredID: triggered.id) else {
            logger.info("\(name) has no local executor; waiting for an external .started/.finished (shipyardctl send event)",
                        metadata: ["context": "\(triggered.shkeptncontext)", "triggeredid": "\(triggered.id)"])
            return
        }
        let runDirectory = state.root + "/runs/\(triggered.id)"
        let attempt: Int
        do {
            attempt = try Self.recordAttempt(in: runDirectory)
        } catch {
            logger.error("cannot record an attempt of \(name): \(error)")
            return
        }
        let process = TaskProcess(
            triggered: triggered, command: executor.command, timeout: executor.timeout, project: execution.project,
            stage: execution.stage, service: execution.service, sequence: execution.sequence, task: name, attempt: attempt,
            worktree: worktrees.path(commit: execution.commit ?? "none"), runDirectory: runDirectory, home: state.home,
            logFile: state.root + "/logs/\(execution.context)/\(execution.stage)-\(name).log")
        let cancel = TaskCancel()
        running[triggered.id] = cancel
        let mirror = Mirror(path: state.mirror(project: execution.project))
        let commit = execution.commit
        let worktrees = worktrees
        let logger = logger
        Task {
            // The program runs only once its .started is recorded.
            if !alreadyStarted, await !self.answer(triggered, phase: "started", outcome: nil) {
                self.taskNotRun(triggered)
                return
            }
            let outcome = await Self.onThread(name: "task-\(name)") {
                if let failure = worktrees.ensure(mirror: mirror, commit: commit, tampered: { logger.warning("\($0)") }) {
                    return TaskProcess.Outcome(result: .fail, status: .errored, message: failure)
                }
                return process.run(cancel: cancel)
            }
            await self.taskEnded(triggered, outcome: outcome)
        }
    }

    func taskEnded(_ triggered: KeptnEvent, outcome: TaskProcess.Outcome) async {
        running[triggered.id] = nil
        if stopping {
            logger.info("task interrupted by the daemon's stop; it runs again at the next start", metadata: ["triggeredid": "\(triggered.id)"])
            return
        }
        await answer(triggered, phase: "finished", outcome: outcome)
    }

    func taskNotRun(_ triggered: KeptnEvent) {
        running[triggered.id] = nil
    }

    /// Sends a task's `.started` or `.finished` through the engine, as any executor would.
    /// Returns whether it was recorded.
    @discardableResult
    /// `orAside`: when the sequence has ended meanwhile, the answer is recorded beside it rather
    /// than dropped (an aborted evaluation's `.finished`, as Keptn records it).
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

    /// Appends one line to the task's attempt record, durably, before its program starts: a
    /// restart counts the lines and never runs the same attempt twice.
    static func recordAttempt(in directory: String) throws -> Int {
        try FileManager.default.createDirectory(atPath: directory, withIntermediateDirectories: true)
        let path = directory + "/attempts"
        let previous = (try? String(contentsOfFile: path, encoding: .utf8))?.split(separator: "\n").count ?? 0
        let attempt = previous + 1
        let fd = open(path, O_WRONLY | O_APPEND | O_CREAT | O_CLOEXEC, 0o640)
        guard fd >= 0 else { throw AtomicFile.Failure(description: "cannot open \(path)") }
        defer { close(fd) }
        let line = Array("\(attempt) \(Timestamps.format(Date()))\n".utf8)
        guard line.withUnsafeBytes({ write(fd, $0.baseAddress, $0.count) }) == line.count, fsync(fd) == 0 else {
            throw AtomicFile.Failure(description: "cannot write \(path)")
        }
        return attempt
    }

    /// Removes exported worktrees that no active sequence runs with.
    func pruneWorktrees() {
        for left in worktrees.prune(keeping: Set(engine.active.compactMap(\.commit))) {
            logger.warning("cannot remove all of the export \(left); remove it by hand")
        }
    }

    /// Removes the per-task folders (event file, result file, attempt record) of tasks whose
    /// sequence has ended: they matter only while a task may still be run again.
    func pruneRuns() {
        let root = state.root + "/runs"
        for name in (try? FileManager.default.contentsOfDirectory(atPath: root)) ?? [] where running[name] == nil {
            if let (execution, _) = engine.task(triggeredID: name), execution.isActive { continue }
            try? FileManager.default.removeItem(atPath: root + "/" + name)
        }
    }

    static func onThread<T: Sendable>(name: String, _ work: @escaping @Sendable () -> T) async -> T {
        await withCheckedContinuation { continuation in
            let thread = Thread { continuation.resume(returning: work()) }
            thread.name = name
            thread.start()
        }
    }
}
