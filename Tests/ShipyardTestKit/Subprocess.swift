public import Foundation

/// A child process started with posix_spawn and reaped by its own pid only. Foundation's
/// `Process` reaps children from a shared SIGCHLD handler and can block waiting for the wrong
/// one when a test runs several long-lived servers, so tests use this instead.
public final class Subprocess: @unchecked Sendable {
    public let pid: pid_t
    private let lock = NSLock()
    private var exitStatus: Int32?

    /// Starts `executable` with a clean signal mask and default dispositions, standard input from
    /// /dev/null (or `stdin`), and the given descriptors as standard output and error.
    public init(
        _ executable: String, _ arguments: [String], environment: [String: String] = [:],
        stdin: Int32? = nil, stdout: Int32, stderr: Int32, passing: [Int32] = []
    ) throws {
        var actions = posix_spawn_file_actions_t()
        posix_spawn_file_actions_init(&actions)
        defer { posix_spawn_file_actions_destroy(&actions) }
        if let stdin {
            posix_spawn_file_actions_adddup2(&actions, stdin, 0)
        } else {
            posix_spawn_file_actions_addopen(&actions, 0, "/dev/null", O_RDONLY, 0)
        }
        posix_spawn_file_actions_adddup2(&actions, stdout, 1)
        posix_spawn_file_actions_adddup2(&actions, stderr, 2)
        // Descriptors handed on as systemd does (LISTEN_FDS): from 3 up.
        for (index, fd) in passing.enumerated() {
            posix_spawn_file_actions_adddup2(&actions, fd, Int32(3 + index))
        }

        var attributes = posix_spawnattr_t()
        posix_spawnattr_init(&attributes)
        defer { posix_spawnattr_destroy(&attributes) }
        var empty = sigset_t()
        sigemptyset(&empty)
        posix_spawnattr_setsigmask(&attributes, &empty)
        var defaults = sigset_t()
        sigfillset(&defaults)
        sigdelset(&defaults, SIGKILL)
        sigdelset(&defaults, SIGSTOP)
        posix_spawnattr_setsigdefault(&attributes, &defaults)
        posix_spawnattr_setflags(&attributes, Int16(POSIX_SPAWN_SETSIGMASK | POSIX_SPAWN_SETSIGDEF))

        let env = ProcessInfo.processInfo.environment.merging(environment) { $1 }.map { "\($0.key)=\($0.value)" }
        let argv = ([executable] + arguments).map { strdup($0) } + [nil]
        let envp = env.map { strdup($0) } + [nil]
        defer {
            argv.forEach { free($0) }
            envp.forEach { free($0) }
        }
        var pid: pid_t = 0
        let rc = posix_spawn(&pid, executable, &actions, &attributes, argv, envp)
        guard rc == 0 else {
            throw ProcessFailure(description: "cannot start \(executable): \(String(cString: strerror(rc)))")
        }
        self.pid = pid
    }

    public var isRunning: Bool { poll() == nil }

    /// The exit status (128 + signal for a signal), or nil while it runs.
    @discardableResult
    public func poll() -> Int32? {
        lock.lock()
        defer { lock.unlock() }
        if let exitStatus { return exitStatus }
        var status: Int32 = 0
        let rc = waitpid(pid, &status, WNOHANG)
        guard rc == pid else { return nil }
        exitStatus = Self.decode(status)
        return exitStatus
    }

    @discardableResult
    public func wait() -> Int32 {
        lock.lock()
        defer { lock.unlock() }
        if let exitStatus { return exitStatus }
        var status: Int32 = 0
        while waitpid(pid, &status, 0) < 0 && errno == EINTR {}
        exitStatus = Self.decode(status)
        return exitStatus!
    }

    public func signal(_ signo: Int32) {
        if isRunning { kill(pid, signo) }
    }

    /// SIGKILL and reap.
    public func kill9() {
        guard isRunning else { return }
        kill(pid, SIGKILL)
        wait()
    }

    static func decode(_ status: Int32) -> Int32 {
        let signal = status & 0x7F
        return signal == 0 ? (status >> 8) & 0xFF : 128 + signal
    }
}

/// A listening unix socket held by the test as systemd holds `shipyardd.socket`'s: it outlives
/// the daemons it is handed to, so connections made while none runs wait in the kernel.
public final class HeldSocket: @unchecked Sendable {
    public let path: String
    public let fd: Int32

    /// Mode 0660 and the given group, as `SocketMode=0660` and `SocketGroup=` make it.
    public init(path: String, group: gid_t? = nil) throws {
        self.path = path
        unlink(path)
        fd = socket(AF_UNIX, Int32(SOCK_STREAM.rawValue) | Int32(SOCK_CLOEXEC.rawValue), 0)
        var address = sockaddr_un()
        address.sun_family = sa_family_t(AF_UNIX)
        withUnsafeMutableBytes(of: &address.sun_path) { $0.copyBytes(from: Array(path.utf8) + [0]) }
        let bound = withUnsafePointer(to: &address) {
            $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { bind(fd, $0, socklen_t(MemoryLayout<sockaddr_un>.size)) }
        }
        guard fd >= 0, bound == 0, listen(fd, 4096) == 0 else {
            throw ProcessFailure(description: "cannot listen on \(path): \(String(cString: strerror(errno)))")
        }
        if let group { chown(path, 0, group) }
        chmod(path, 0o660)
    }

    deinit { close(fd) }
}
