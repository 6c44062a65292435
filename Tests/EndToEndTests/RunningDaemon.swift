import Foundation
import ShipyardCore
import ShipyardDaemon
import ShipyardTestKit

/// The real `shipyardd` binary running on a config in a temporary directory.
final class RunningDaemon: @unchecked Sendable {
    let directory: String
    let configPath: String
    let state: String
    let logPath: String
    private var process: Subprocess?
    /// Extra environment for the daemon (NOTIFY_SOCKET, WATCHDOG_USEC, …).
    var environment: [String: String] = [:]
    /// A command the daemon is started under (e.g. `prlimit --nofile=8192:8192 --`).
    var prefix: [String] = []
    /// When set, the daemon runs as `users.daemon` (as the unit runs it as `shipyard`), and
    /// `ctl` runs as `operatorUser`.
    let users: LocalUsers?
    var operatorUser: String?
    /// The local API's socket, held here as systemd holds `shipyardd.socket`'s and handed to each
    /// start of the daemon (LISTEN_FDS); nil: the daemon makes `<state>/shipyardd.sock` itself.
    let socket: HeldSocket?

    init(directory: String, users: LocalUsers? = nil, config: String, environment: [String: String] = [:], activated: Bool = false, prefix: [String] = []) throws {
        self.environment = environment
        self.prefix = prefix
        self.directory = directory
        self.users = users
        operatorUser = users?.alice
        configPath = directory + "/config.yaml"
        state = directory + "/state"
        logPath = directory + "/shipyardd.log"
        // What systemd's StateDirectory= does: the daemon's user owns its state directory.
        try FileManager.default.createDirectory(atPath: state, withIntermediateDirectories: true)
        if let users {
            chown(state, users.uid(users.daemon), users.gid(users.group))
        }
        socket = activated ? try HeldSocket(path: state + "/shipyardd.sock", group: users.map { $0.gid($0.group) }) : nil
        try write(config: config)
        try start()
    }

    deinit {
        process?.kill9()
    }

    /// One project on `upstream` whose `je-deployment` runs `program`, polled every hour (tests
    /// that need a poll ask for one).
    static func oneTask(project: String, upstream: String, program: String) -> String {
        """
        projects:
          - name: \(project)
            upstream: \(upstream)
            pollInterval: 1h
        tasks:
          je-deployment:
            command: ["\(program)"]
        """
    }

    /// A config with `stateDirectory` set to this daemon's state folder.
    func write(config: String) throws {
        try Data("stateDirectory: \(state)\n\(config)".utf8).write(to: URL(fileURLWithPath: configPath))
    }

    func start() throws {
        let log = open(logPath, O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC, 0o644)
        defer { close(log) }
        var (program, arguments) = (Command.path("shipyardd"), ["--config", configPath])
        if socket != nil {
            // systemd sets LISTEN_PID to the daemon's own pid: a shell that execs into it has it.
            (program, arguments) = ("/bin/sh", ["-c", #"LISTEN_PID=$$ LISTEN_FDS=1 exec "$0" "$@""#, program] + arguments)
        }
        if !prefix.isEmpty { (program, arguments) = (prefix[0], Array(prefix.dropFirst()) + [program] + arguments) }
        // It dies with the test process, whatever becomes of this object: a daemon left running
        // would poll and hold on for the next test run. (Set after the switch to the daemon's
        // user, which clears it; its parent is the spawning thread, which lasts.)
        (program, arguments) = ("/usr/bin/setpriv", ["--pdeathsig", "KILL", "--", program] + arguments)
        if let users { (program, arguments) = users.command(as: users.daemon, program, arguments) }
        let (command, argv, environment, passing) = (program, arguments, environment, socket.map { [$0.fd] } ?? [])
        process = try LastingThread.shared.run {
            try Subprocess(command, argv, environment: environment, stdout: log, stderr: log, passing: passing)
        }
    }

    var pid: Int32 { process?.pid ?? 0 }

    /// False once the process exited (and has been reaped).
    var isRunning: Bool { process?.isRunning ?? false }

    func signal(_ signo: Int32) {
        process?.signal(signo)
    }

    /// SIGTERM, then waits (bounded) for the exit; returns the exit status.
    @discardableResult
    func stop() async -> Int32? {
        guard let process else { return nil }
        process.signal(SIGTERM)
        guard await eventually(timeout: .seconds(15), { !process.isRunning }) else {
            process.kill9()
            return nil
        }
        return process.poll()
    }

    var log: String { (try? String(contentsOfFile: logPath, encoding: .utf8)) ?? "" }

    func status() -> DaemonStatus? {
        guard let data = FileManager.default.contents(atPath: state + "/status.json") else { return nil }
        return try? JSON.decode(DaemonStatus.self, from: data)
    }

    /// The project's status as written by this run of the daemon (never a previous run's).
    func project(_ name: String) -> ProjectStatus? {
        guard let status = status(), status.pid == pid else { return nil }
        return status.projects.first { $0.name == name }
    }

    /// Waits until the project's status satisfies the condition; returns the last status seen.
    func waitFor(_ name: String, timeout: Duration = .seconds(30), _ condition: @escaping (ProjectStatus) -> Bool) async -> ProjectStatus? {
        var last: ProjectStatus?
        _ = await eventually(timeout: timeout) {
            last = project(name)
            return last.map(condition) ?? false
        }
        return last
    }

    /// shipyardctl as the operator (root, unless the daemon runs as an unprivileged user), or as `user`.
    func ctl(_ arguments: [String], as user: String? = nil) throws -> ProcessOutput {
        if let users, let user = user ?? operatorUser {
            return try users.run(as: user, Command.path("shipyardctl"), arguments + ["--state-dir", state])
        }
        return try Command.run("shipyardctl", arguments + ["--state-dir", state])
    }
}
