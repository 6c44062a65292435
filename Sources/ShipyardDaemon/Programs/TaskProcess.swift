import CSupport
import Foundation
import ShipyardCore
import Synchronization

/// Runs one task's local program to completion: no shell, its own process group, output to a
/// size-capped log, a timeout that terminates and then kills the whole group.
struct TaskProcess: Sendable {
    var triggered: KeptnEvent
    var command: [String]
    var timeout: Duration
    var project: String
    var stage: String
    var service: String
    var sequence: String
    var task: String
    var attempt: Int
    var worktree: String
    var runDirectory: String
    /// `HOME` for the program (`<state>/home`); nil leaves it unset.
    var home: String? = nil
    var logFile: String
    /// A file given to the program as its standard input (else /dev/null).
    var input: String? = nil
    /// A file that takes the program's standard output apart from its log (its standard error
    /// still goes to the log); the caller reads it. Without it, no result file is read either.
    var output: String? = nil

    /// How long to wait before each new try of a spawn that failed with ETXTBSY (about 3 s in all).
    var busyRetryDelays: [TimeInterval] = [0.05, 0.1, 0.2, 0.4, 0.8, 1.5]

    static let maxLogBytes = 10 << 20
    static let gracePeriod: TimeInterval = 5

    struct Outcome: Sendable, Equatable {
        var result: TaskResult
        var status: TaskStatus
        var message: String
        var data: JSONValue?
    }

    /// The environment a task sees: its names and files, nothing of the daemon's but PATH and LANG.
    func environment() -> [String] {
        let inherited = ProcessInfo.processInfo.environment
        var env: [String: String] = [
            "PATH": inherited["PATH"] ?? "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin",
            "SHIPYARD_PROJECT": project, "SHIPYARD_STAGE": stage, "SHIPYARD_SERVICE": service,
            "SHIPYARD_SEQUENCE": sequence, "SHIPYARD_TASK": task,
            "SHIPYARD_CONTEXT": triggered.shkeptncontext, "SHIPYARD_TRIGGERED_ID": triggered.id,
            "SHIPYARD_EVENT": runDirectory + "/event.json", "SHIPYARD_RESULT": runDirectory + "/result.json",
            "SHIPYARD_WORKTREE": worktree, "SHIPYARD_ATTEMPT": "\(attempt)",
            "KEPTN_PROJECT": project, "KEPTN_STAGE": stage, "KEPTN_SERVICE": service,
        ]
        if let lang = inherited["LANG"] { env["LANG"] = lang }
        if let home { env["HOME"] = home }
        if let image = triggered.data["configurationChange"]?["values"]?["image"]?.string { env["SHIPYARD_IMAGE"] = image }
        if let labels = triggered.data["labels"]?.object {
            for (key, value) in labels {
                guard let text = value.string else { continue }
                let name = key.uppercased().map { $0.isLetter || $0.isNumber ? $0 : "_" }
                env["LABELS_" + String(name)] = text
            }
        }
        return env.map { "\($0.key)=\($0.value)" }.sorted()
    }

    /// Runs the program and returns how it ended. Blocks: call it on a thread of its own.
    func run(cancel: TaskCancel) -> Outcome {
        let fm = FileManager.default
        try? fm.createDirectory(atPath: runDirectory, withIntermediateDirectories: true)
        try? fm.createDirectory(atPath: (logFile as NSString).deletingLastPathComponent, withIntermediateDirectories: true)
        unlink(runDirectory + "/result.json")
        do {
            try AtomicFile.write(try JSON.encode(triggered, pretty: true), to: runDirectory + "/event.json", mode: 0o640)
        } catch {
            return Outcome(result: .fail, status: .errored, message: "cannot write the task's event file: \(error)")
        }
        let log = open(logFile, O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC, 0o640)
        defer { if log >= 0 { close(log) } }
        var written = 0
        func note(_ text: String) {
            let line = Array("[shipyardd \(Timestamps.format(Date()))] \(text)\n".utf8)
            _ = line.withUnsafeBytes { write(log, $0.baseAddress, $0.count) }
        }
        note("\(task) attempt \(attempt): \(command.joined(separator: " "))")

        // Close-on-exec from the start: another thread's child must not inherit the write end.
        var fds: [Int32] = [0, 0]
        guard shipyard_pipe_cloexec(&fds) == 0 else { return Outcome(result: .fail, status: .errored, message: "cannot create a pipe") }
        let argv = command.map { strdup($0) } + [nil]
        let envp = environment().map { strdup($0) } + [nil]
        defer {
            argv.forEach { free($0) }
            envp.forEach { free($0) }
        }
        var inputFD: Int32 = -1
        var outputFD = fds[1]
        defer {
            if inputFD >= 0 { close(inputFD) }
            if outputFD != fds[1] { close(outputFD) }
        }
        if let input {
            inputFD = open(input, O_RDONLY | O_CLOEXEC)
            guard inputFD >= 0 else {
                close(fds[0]); close(fds[1])
                return Outcome(result: .fail, status: .errored, message: "cannot open \(input): \(String(cString: strerror(errno)))")
            }
        }
        if let output {
            outputFD = open(output, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0o640)
            guard outputFD >= 0 else {
                outputFD = fds[1]
                close(fds[0]); close(fds[1])
                return Outcome(result: .fail, status: .errored, message: "cannot create \(output): \(String(cString: strerror(errno)))")
            }
        }
        func spawn(_ pid: inout pid_t) -> Int32 {
            shipyard_spawn_task_split(&pid, command[0], argv, envp, worktree, inputFD, outputFD, fds[1])
        }
        var pid: pid_t = 0
        var spawned = spawn(&pid)
        // ETXTBSY: the program is open for writing somewhere (a deployment tool replacing it right
        // now, or a child that inherited a descriptor). That passes: try again for a short while.
        var waited: TimeInterval = 0
        var tries = 1
        for delay in busyRetryDelays where spawned == ETXTBSY && !cancel.isCancelled {
            note("cannot start \(command[0]): \(String(cString: strerror(spawned))) (open for writing by another process); trying again in \(Int(delay * 1000)) ms")
            Thread.sleep(forTimeInterval: delay)
            waited += delay
            tries += 1
            spawned = spawn(&pid)
        }
        close(fds[1])
        guard spawned == 0 else {
            close(fds[0])
            var reason = String(cString: strerror(spawned))
            if spawned == ETXTBSY {
                reason += " after \(tries) tries over \(GoDuration.format(.milliseconds(Int64(waited * 1000)))): another process keeps it open for writing"
            }
            note("cannot start: \(reason)")
            return Outcome(result: .fail, status: .errored, message: "cannot start \(command[0]): \(reason)")
        }
        if tries > 1 { note("started on try \(tries)") }
        cancel.started(pid)
        let reader = fds[0]
        defer { close(reader) }
        _ = fcntl(reader, F_SETFL, fcntl(reader, F_GETFL) | O_NONBLOCK)

        let deadline = Date().addingTimeInterval(timeout.seconds)
        var terminatedAt: Date?
        var reason: String?
        var status: Int32 = 0
        var buffer = [UInt8](repeating: 0, count: 65536)
        func drain() {
            while true {
                let n = read(reader, &buffer, buffer.count)
                guard n > 0 else { return }
                if written < Self.maxLogBytes {
                    let keep = min(n, Self.maxLogBytes - written)
                    _ = buffer.withUnsafeBytes { write(log, $0.baseAddress, keep) }
                    written += keep
                    if written >= Self.maxLogBytes { note("output truncated at \(Self.maxLogBytes) bytes") }
                }
            }
        }
        while true {
            var poller = pollfd(fd: reader, events: Int16(POLLIN), revents: 0)
            _ = poll(&poller, 1, 200)
            drain()
            if waitpid(pid, &status, WNOHANG) == pid { break }
            let now = Date()
            if terminatedAt == nil {
                if now >= deadline {
                    reason = "timed out after \(GoDuration.format(timeout))"
                } else if cancel.isCancelled {
                    reason = "aborted"
                }
                if let reason {
                    note("\(reason): terminating process group \(pid)")
                    kill(-pid, SIGTERM)
                    terminatedAt = now
                }
            } else if let at = terminatedAt, now.timeIntervalSince(at) >= Self.gracePeriod {
                kill(-pid, SIGKILL)
            }
        }
        if terminatedAt != nil { kill(-pid, SIGKILL) }
        drain()
        cancel.finished()
        return outcome(status: status, reason: reason, cancelled: cancel.isCancelled, note: note)
    }

    private func outcome(status: Int32, reason: String?, cancelled: Bool, note: (String) -> Void) -> Outcome {
        let signal = status & 0x7F
        let code = (status >> 8) & 0xFF
        let ended: Outcome
        if let reason {
            ended = Outcome(result: .fail, status: cancelled && reason == "aborted" ? .aborted : .errored, message: "\(task) \(reason)")
        } else if signal != 0 {
            ended = Outcome(result: .fail, status: .errored, message: "\(task) was killed by signal \(signal)")
        } else if code != 0 {
            ended = Outcome(result: .fail, status: .errored, message: "\(task) exited with status \(code); its output is in \(logFile)")
        } else if output != nil {
            ended = Outcome(result: .pass, status: .succeeded, message: "")
        } else {
            ended = readResultFile()
        }
        note("\(task) ended: \(ended.result.rawValue)/\(ended.status.rawValue) \(ended.message)")
        return ended
    }

    /// `{"result": "pass|warning|fail", "message": "…", "data": {…}}`, all optional.
    private func readResultFile() -> Outcome {
        let path = runDirectory + "/result.json"
        guard let data = FileManager.default.contents(atPath: path) else {
            return Outcome(result: .pass, status: .succeeded, message: "")
        }
        guard data.count <= 1 << 20, let value = try? JSON.decode(JSONValue.self, from: data), value.object != nil else {
            return Outcome(result: .fail, status: .errored, message: "\(task) wrote a result file that is not a JSON object (\(path))")
        }
        var result = TaskResult.pass
        if let text = value["result"]?.string {
            guard let parsed = TaskResult(rawValue: text) else {
                return Outcome(result: .fail, status: .errored, message: "\(task) wrote result \"\(text)\"; use pass, warning or fail")
            }
            result = parsed
        }
        return Outcome(result: result, status: .succeeded, message: value["message"]?.string ?? "", data: value["data"])
    }
}

/// Lets the orchestrator abort a running task: its process group is terminated, then killed.
final class TaskCancel: Sendable {
    private let state = Mutex<(pid: pid_t?, cancelled: Bool)>((nil, false))

    /// Every running program's process group, for a leader that must stop all work at once.
    private static let live = Mutex<Set<pid_t>>([])

    func started(_ pid: pid_t) {
        state.withLock { $0.pid = pid }
        Self.live.withLock { _ = $0.insert(pid) }
    }

    func finished() {
        let pid = state.withLock { state -> pid_t? in
            defer { state.pid = nil }
            return state.pid
        }
        if let pid { Self.live.withLock { _ = $0.remove(pid) } }
    }

    /// SIGKILL to the process group of every program running now.
    static func killAll() {
        for pid in live.withLock({ $0 }) { kill(-pid, SIGKILL) }
    }
    var isCancelled: Bool { state.withLock { $0.cancelled } }

    func cancel() {
        state.withLock { $0.cancelled = true }
    }

    /// For a stop of the daemon: SIGTERM to the group now (the runner kills it after the grace period).
    var pid: pid_t? { state.withLock { $0.pid } }
}
