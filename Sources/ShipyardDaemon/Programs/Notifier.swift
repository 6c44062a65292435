import CSupport
import Foundation

/// Runs the config's `notify` program for an approval that started or stopped waiting, with the
/// request as JSON on standard input, so operators can wire chat or mail. It never blocks the
/// daemon: it runs on a thread of its own, is killed at its timeout, and a failure is only logged.
struct Notifier: Sendable {
    var command: [String]
    var timeout: Duration
    var logFile: String

    /// Returns a line for the daemon's log when the program failed.
    func run(_ input: Data) -> String? {
        var stdin: [Int32] = [0, 0]
        guard pipe(&stdin) == 0 else { return "notify: cannot create a pipe" }
        _ = fcntl(stdin[1], F_SETFD, FD_CLOEXEC)
        _ = fcntl(stdin[0], F_SETFD, FD_CLOEXEC)
        let log = open(logFile, O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC, 0o640)
        defer { if log >= 0 { close(log) } }
        let argv = command.map { strdup($0) } + [nil]
        let path = "PATH=" + (ProcessInfo.processInfo.environment["PATH"] ?? "/usr/local/bin:/usr/bin:/bin")
        let envp = [strdup(path), nil]
        defer {
            argv.forEach { free($0) }
            envp.forEach { free($0) }
        }
        var pid: pid_t = 0
        let spawned = shipyard_spawn_task(&pid, command[0], argv, envp, nil, stdin[0], log >= 0 ? log : 2)
        close(stdin[0])
        guard spawned == 0 else {
            close(stdin[1])
            return "notify: cannot start \(command[0]): \(String(cString: strerror(spawned)))"
        }
        // A program that does not read its input must not block us: SIGPIPE is ignored by the
        // daemon's runtime, so a write to a closed pipe just fails.
        input.withUnsafeBytes { raw in
            var offset = 0
            while offset < raw.count {
                let n = write(stdin[1], raw.baseAddress! + offset, raw.count - offset)
                if n <= 0 { break }
                offset += n
            }
        }
        close(stdin[1])
        let deadline = Date().addingTimeInterval(timeout.seconds)
        var status: Int32 = 0
        while waitpid(pid, &status, WNOHANG) != pid {
            if Date() >= deadline {
                kill(-pid, SIGKILL)
                waitpid(pid, &status, 0)
                return "notify: \(command[0]) took longer than \(timeout) and was killed"
            }
            usleep(20_000)
        }
        let code = (status >> 8) & 0xFF
        if status & 0x7F != 0 { return "notify: \(command[0]) was killed by signal \(status & 0x7F)" }
        return code == 0 ? nil : "notify: \(command[0]) exited with status \(code) (see \(logFile))"
    }
}
