public import Foundation

/// The daemon's state directory and the crash-safe way everything in it is written.
public struct StateDirectory: Sendable {
    public let root: String

    public init(_ root: String) {
        self.root = root
    }

    public var statusFile: String { root + "/status.json" }
    public var requests: String { root + "/requests" }
    public var outcomes: String { root + "/outcomes" }
    public var reloadFile: String { root + "/reload.json" }
    /// The event record: sequences, tasks and events (SQLite, with its -wal and -shm files).
    public var storeFile: String { root + "/shipyard.db" }
    /// Where earlier releases kept the record; imported into the store at the first start.
    public var oldJournal: String { root + "/journal/events.jsonl" }
    /// The daemon's answer to one user's request.
    public func outcome(id: String, requester: uid_t) -> String { outcomes + "/\(requester)-\(id).json" }
    /// `HOME` for task programs: a folder of their own, not the state directory.
    public var home: String { root + "/home" }
    public func mirror(project: String) -> String { root + "/projects/\(project)/mirror.git" }

    /// The request spool's mode: the daemon's group may drop files (rwx), the sticky bit keeps
    /// anyone from removing another's request, and setgid gives every request the daemon's group
    /// whatever the requester's primary group is, so the daemon can read it.
    public static let spoolMode: mode_t = 0o3770

    /// Creates the folders the daemon writes to, with modes that do not depend on the umask:
    /// the daemon's group reads the state (the CLI is run by its members), others nothing. The
    /// setgid bit gives everything created inside the state directory's group, so a daemon run as
    /// root still writes files its operators can read.
    public func prepare() throws {
        for (path, mode) in [
            (root, 0o2750), (root + "/projects", 0o2750), (outcomes, 0o2750), (root + "/approvals", 0o2750), (root + "/logs", 0o2750),
            (home, 0o700), (requests, Self.spoolMode),
        ] as [(String, mode_t)] {
            try FileManager.default.createDirectory(atPath: path, withIntermediateDirectories: true)
            // A folder tmpfiles.d made, or an older release: put the mode right where we own it.
            var info = stat()
            if stat(path, &info) == 0, info.st_uid == geteuid(), info.st_mode & 0o7777 != mode {
                chmod(path, mode)
            }
        }
    }

    /// Why the current user cannot use this state directory as the CLI does, if it cannot:
    /// missing, not readable (not in the daemon's group), or a spool it cannot write to.
    public func accessProblem(needsSpool: Bool) -> String? {
        var info = stat()
        if stat(root, &info) != 0 {
            if errno == EACCES { return Self.notInGroup(root, info: nil) }
            return "no state directory at \(root): is shipyardd running with this state directory? (--state-dir or SHIPYARD_STATE_DIR)"
        }
        if access(root, R_OK | X_OK) != 0 { return Self.notInGroup(root, info: info) }
        if needsSpool {
            var spool = stat()
            guard stat(requests, &spool) == 0 else {
                return "no request spool at \(requests): has shipyardd ever run with state directory \(root)? (--state-dir or SHIPYARD_STATE_DIR)"
            }
            if access(requests, W_OK | X_OK) != 0 { return Self.notInGroup(requests, info: spool) }
        }
        return nil
    }

    private static func notInGroup(_ path: String, info: stat?) -> String {
        let me = getpwuid(geteuid()).flatMap { $0.pointee.pw_name.map { String(cString: $0) } } ?? "uid \(geteuid())"
        let group = info.flatMap { getgrgid($0.st_gid) }.flatMap { $0.pointee.gr_name.map { String(cString: $0) } } ?? "shipyard"
        return "permission denied: \(path) is for members of the \(group) group, and \(me) is not one (or has not logged in again since joining); an administrator adds you with: sudo usermod -aG \(group) \(me)"
    }
}

/// Writes files so that a reader, or the daemon after `kill -9`, sees either the old or the
/// new content, never a mix: a temporary file in the same directory, fsync, rename, fsync the
/// directory.
public enum AtomicFile {
    public struct Failure: Error, CustomStringConvertible {
        public var description: String
    }

    /// `durable: false` skips the fsyncs, for files that are refreshed often and cost nothing to
    /// lose (the rename still keeps readers from seeing a torn file).
    public static func write(_ data: Data, to path: String, mode: mode_t = 0o640, durable: Bool = true) throws {
        let directory = (path as NSString).deletingLastPathComponent
        let temporary = directory + "/.\((path as NSString).lastPathComponent).\(getpid()).\(UInt32.random(in: 0...UInt32.max)).tmp"
        let fd = open(temporary, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, mode)
        guard fd >= 0 else { throw Failure(description: "cannot create \(temporary): \(String(cString: strerror(errno)))") }
        _ = fchmod(fd, mode)  // exactly this mode, whatever the umask
        var ok = data.withUnsafeBytes { buffer -> Bool in
            var offset = 0
            while offset < buffer.count {
                let n = Foundation.write(fd, buffer.baseAddress! + offset, buffer.count - offset)
                if n < 0 {
                    if errno == EINTR { continue }
                    return false
                }
                offset += n
            }
            return true
        }
        if ok, durable { ok = fsync(fd) == 0 }
        let writeError = errno
        close(fd)
        guard ok, rename(temporary, path) == 0 else {
            let reason = String(cString: strerror(ok ? errno : writeError))
            unlink(temporary)
            throw Failure(description: "cannot write \(path): \(reason)")
        }
        if durable { syncDirectory(directory) }
    }

    static func syncDirectory(_ path: String) {
        let fd = open(path, O_RDONLY | O_DIRECTORY | O_CLOEXEC)
        guard fd >= 0 else { return }
        fsync(fd)
        close(fd)
    }
}

/// Timestamps as operators read them in JSON: RFC 3339 in UTC.
enum Timestamp {
    /// `2026-11-27T20:50:00Z`, from the C library's calendar: status carries three per poll,
    /// and a thousand projects poll.
    static func string(_ date: Date) -> String {
        var seconds = time_t(date.timeIntervalSince1970.rounded(.down))
        var parts = tm()
        gmtime_r(&seconds, &parts)
        func two(_ n: Int32) -> String { n < 10 ? "0\(n)" : "\(n)" }
        return "\(parts.tm_year + 1900)-\(two(parts.tm_mon + 1))-\(two(parts.tm_mday))T\(two(parts.tm_hour)):\(two(parts.tm_min)):\(two(parts.tm_sec))Z"
    }
}

/// `<state>/reload.json`: how the daemon's last reload went, so that `shipyardd --reload` (the
/// unit's `ExecReload=`) can make `systemctl reload` fail when the new config was refused.
public struct ReloadResult: Codable, Sendable, Equatable {
    public var pid: Int32
    /// Counts the reloads of this run of the daemon.
    public var generation: Int
    public var ok: Bool
    public var message: String

    /// Sends SIGHUP to the daemon and waits for its verdict on the config.
    public static func request(pid: Int32, state: StateDirectory, timeout: Duration) async -> ReloadResult? {
        func read() -> ReloadResult? {
            FileManager.default.contents(atPath: state.reloadFile).flatMap { try? JSON.decode(ReloadResult.self, from: $0) }
        }
        let before = read().flatMap { $0.pid == pid ? $0.generation : nil } ?? 0
        guard kill(pid, SIGHUP) == 0 else { return nil }
        let deadline = ContinuousClock.now + timeout
        while ContinuousClock.now < deadline {
            if let result = read(), result.pid == pid, result.generation > before { return result }
            try? await Task.sleep(for: .milliseconds(50))
        }
        return nil
    }
}
