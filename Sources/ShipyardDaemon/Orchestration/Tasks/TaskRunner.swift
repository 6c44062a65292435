import Foundation
import Logging
import ShipyardCore
import ShipyardGit

/// Local task programs: which are configured (`tasks:`), which run now (with the handle that
/// cancels each), the attempt each records durably before it starts, the worktree each runs in,
/// and the files runs leave behind. The orchestrator owns one; it records what the programs
/// answer (Orchestrator+Tasks).
///
/// May touch: `<state>/runs/`, `<state>/logs/`, `<state>/worktrees/`, the project mirrors (read),
/// child processes. Never the record.
struct TaskRunner {
    let state: StateDirectory
    let worktrees: Worktrees
    let logger: Logger
    /// `tasks:` of the config in force.
    var executors: [String: DaemonConfig.TaskExecutor]
    /// Tasks whose program (or evaluation) runs now, by their `.triggered` id.
    var running: [String: TaskCancel] = [:]

    init(state: StateDirectory, executors: [String: DaemonConfig.TaskExecutor], logger: Logger) {
        self.state = state
        self.worktrees = Worktrees(root: state.root + "/worktrees")
        self.executors = executors
        self.logger = logger
    }

    /// Whether a task name runs as a local program here.
    func runsLocally(_ task: String) -> Bool { executors[task] != nil }

    /// The program of a task of this execution, ready to run, its attempt recorded first; nil
    /// (and logged) when the attempt cannot be recorded.
    func program(_ triggered: KeptnEvent, name: String, executor: DaemonConfig.TaskExecutor, execution: SequenceExecution) -> TaskProcess? {
        let runDirectory = state.root + "/runs/\(triggered.id)"
        let attempt: Int
        do {
            attempt = try Self.recordAttempt(in: runDirectory)
        } catch {
            logger.error("cannot record an attempt of \(name): \(error)")
            return nil
        }
        return TaskProcess(
            triggered: triggered, command: executor.command, timeout: executor.timeout, project: execution.project,
            stage: execution.stage, service: execution.service, sequence: execution.sequence, task: name, attempt: attempt,
            worktree: worktrees.path(commit: execution.commit ?? "none"), runDirectory: runDirectory, home: state.home,
            logFile: state.root + "/logs/\(execution.context)/\(execution.stage)-\(name).log")
    }

    /// What running a program of this project needs, without the runner's own state.
    func launcher(project: String) -> Launcher {
        Launcher(mirror: Mirror(path: state.mirror(project: project)), worktrees: worktrees, logger: logger)
    }

    struct Launcher: Sendable {
        let mirror: Mirror
        let worktrees: Worktrees
        let logger: Logger

        /// Runs a program on a thread of its own, in the worktree of its commit (exported first).
        func run(_ process: TaskProcess, name: String, cancel: TaskCancel, commit: String?) async -> TaskProcess.Outcome {
            let (mirror, worktrees, logger) = (mirror, worktrees, logger)
            return await TaskRunner.onThread(name: "task-\(name)") {
                if let failure = worktrees.ensure(mirror: mirror, commit: commit, tampered: { logger.warning("\($0)") }) {
                    return TaskProcess.Outcome(result: .fail, status: .errored, message: failure)
                }
                return process.run(cancel: cancel)
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
    func pruneWorktrees(keeping commits: Set<String>) {
        for left in worktrees.prune(keeping: commits) {
            logger.warning("cannot remove all of the export \(left); remove it by hand")
        }
    }

    /// Removes the per-task folders (event file, result file, attempt record) of tasks whose
    /// sequence has ended: they matter only while a task may still be run again.
    func pruneRuns(isActive: (String) -> Bool) {
        let root = state.root + "/runs"
        for name in (try? FileManager.default.contentsOfDirectory(atPath: root)) ?? [] where running[name] == nil && !isActive(name) {
            try? FileManager.default.removeItem(atPath: root + "/" + name)
        }
    }

    /// Terminates the process group of every program still running (the runner kills it after
    /// its grace period).
    func interruptAll() {
        for cancel in running.values {
            if let pid = cancel.pid { kill(-pid, SIGTERM) }
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
