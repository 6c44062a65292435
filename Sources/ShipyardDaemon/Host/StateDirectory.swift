public import Foundation
import ShipyardCore

/// The daemon's state directory and the crash-safe way everything in it is written.
public struct StateDirectory: Sendable {
    public let root: String

    public init(_ root: String) {
        self.root = root
    }

    public var statusFile: String { root + "/status.json" }
    public var reloadFile: String { root + "/reload.json" }
    /// The event record: sequences, tasks and events (SQLite, with its -wal and -shm files),
    /// private to the daemon: the CLI reads it through the local API.
    public var storeFile: String { root + "/shipyard.db" }
    /// The local API's socket when the daemon makes it itself (not socket-activated).
    public var socket: String { root + "/shipyardd.sock" }
    /// Held (flock) by the running daemon: a second one on the same state refuses to start.
    public var lockFile: String { root + "/shipyardd.lock" }
    /// Where earlier releases kept the record; imported into the store at the first start.
    public var oldJournal: String { root + "/journal/events.jsonl" }
    /// Earlier releases' request spool and answers, removed at the first start of this one.
    var oldSpool: String { root + "/requests" }
    var oldOutcomes: String { root + "/outcomes" }
    /// `HOME` for task programs: a folder of their own, not the state directory.
    public var home: String { root + "/home" }
    public func mirror(project: String) -> String { root + "/projects/\(project)/mirror.git" }

    public struct Refusal: Error, CustomStringConvertible {
        public var description: String
    }

    /// Creates the folders the daemon writes to, with modes that do not depend on the umask:
    /// the daemon's group reads the state (status, approvals, logs), others nothing. The setgid
    /// bit gives everything created inside the state directory's group, so a daemon run as root
    /// still writes files its operators can read.
    ///
    /// Nobody but the daemon's user (and root) may write here: a state directory others can write
    /// to, or one holding a record the daemon did not create, is refused with the command that
    /// fixes it, since anything in it may have been planted. Returns what was converted from an
    /// earlier release, to be logged once.
    public func prepare() throws -> (notes: [String], lock: Int32) {
        var notes: [String] = []
        try FileManager.default.createDirectory(atPath: root, withIntermediateDirectories: true)
        try Self.checkOwnedAndClosed(root, what: "the state directory")
        var info = stat()
        if stat(root, &info) == 0, info.st_uid == geteuid(), info.st_mode & 0o7777 != 0o2750 { chmod(root, 0o2750) }
        let lock = try lock()
        notes += try removeOldSpool()
        for (path, mode) in [(root + "/projects", 0o2750), (root + "/approvals", 0o2750), (root + "/logs", 0o2750), (home, 0o700)] as [(String, mode_t)] {
            try FileManager.default.createDirectory(atPath: path, withIntermediateDirectories: true)
            try Self.checkOwnedAndClosed(path, what: "the state directory's folder")
            // A folder tmpfiles.d made, or an older release: put the mode right where we own it.
            if stat(path, &info) == 0, info.st_uid == geteuid(), info.st_mode & 0o7777 != mode { chmod(path, mode) }
        }
        notes += try makeRecordPrivate()
        return (notes, lock)
    }

    /// Refuses a path that someone other than the daemon's user and root owns, or that its group
    /// or others may write to.
    static func checkOwnedAndClosed(_ path: String, what: String) throws {
        var info = stat()
        guard lstat(path, &info) == 0 else { throw Refusal(description: "cannot read \(path): \(String(cString: strerror(errno)))") }
        let me = geteuid()
        if info.st_mode & S_IFMT == S_IFLNK, what != "the state directory" {
            throw Refusal(description: "\(what) \(path) is a symbolic link, which shipyardd did not make: remove it (sudo rm \(path)) and start again")
        }
        if info.st_mode & S_IFMT == S_IFLNK { guard stat(path, &info) == 0 else { throw Refusal(description: "cannot read \(path)") } }
        if info.st_uid != me {
            // Another user's (it could write here) or root's (shipyardd could not).
            throw Refusal(description:
                "\(what) \(path) belongs to \(Accounts.name(uid: info.st_uid) ?? "uid \(info.st_uid)"), not to shipyardd's user \(Accounts.name(uid: me) ?? "uid \(me)"); "
                + "shipyardd uses only what is its own: fix it with: sudo chown -R \(Accounts.name(uid: me) ?? "\(me)") \(path)")
        }
        if info.st_mode & 0o022 != 0 {
            let who = info.st_mode & 0o002 != 0 ? "everyone" : "its group \(Accounts.groupName(info.st_gid) ?? "gid \(info.st_gid)")"
            throw Refusal(description:
                "\(what) \(path) may be written by \(who) (mode \(String(info.st_mode & 0o7777, radix: 8))), so anything in it may have been put there by someone else; "
                + "check what is in it, then: sudo chmod go-w \(path)")
        }
    }

    /// The spool of earlier releases: nothing takes requests from files any more (the CLI talks
    /// to the local API's socket), so it is closed first (nobody can add to it) and removed.
    private func removeOldSpool() throws -> [String] {
        var notes: [String] = []
        var info = stat()
        if lstat(oldSpool, &info) == 0, info.st_mode & S_IFMT == S_IFDIR, info.st_uid == geteuid() {
            chmod(oldSpool, 0o700)
            let waiting = ((try? FileManager.default.contentsOfDirectory(atPath: oldSpool)) ?? []).filter { $0.hasSuffix(".json") && !$0.hasPrefix(".") }
            Worktrees.removeTree(oldSpool)
            if FileManager.default.fileExists(atPath: oldSpool) {
                notes.append("the request spool of an earlier release (\(oldSpool)) holds folders of other users that shipyardd cannot remove; it is closed (mode 0700): remove it as root (sudo rm -rf \(oldSpool))")
            } else {
                notes.append("the request spool of an earlier release is gone: shipyardctl now talks to shipyardd over its socket"
                    + (waiting.isEmpty ? "" : "; \(waiting.count) request(s) still waiting in it were not applied: send them again"))
            }
        }
        if lstat(oldOutcomes, &info) == 0, info.st_mode & S_IFMT == S_IFDIR, info.st_uid == geteuid() {
            Worktrees.removeTree(oldOutcomes)
        }
        return notes
    }

    /// The record's files must be the daemon's own (a record it did not create is refused), and
    /// private to it. One an earlier release left readable by the group is copied to new files
    /// (nobody can hold the new ones open or locked), and the shared memory index is dropped.
    private func makeRecordPrivate() throws -> [String] {
        var converted = false
        for suffix in ["", "-wal", "-shm", "-journal"] {
            let path = storeFile + suffix
            var info = stat()
            guard lstat(path, &info) == 0 else { continue }
            guard info.st_mode & S_IFMT == S_IFREG, info.st_nlink == 1 else {
                throw Refusal(description: "\(path) is not a plain file shipyardd made (a link or something else): move it aside (sudo mv \(path) \(path).suspect) and start again")
            }
            if info.st_uid != geteuid() {
                throw Refusal(description:
                    "\(path) belongs to \(Accounts.name(uid: info.st_uid) ?? "uid \(info.st_uid)"), not to shipyardd's user: shipyardd never uses a record it did not create; "
                    + "move it aside (sudo mv \(path) \(path).suspect), or, if it is the real record, give it back: sudo chown \(Accounts.name(uid: geteuid()) ?? "\(geteuid())") \(path)")
            }
            if info.st_mode & 0o077 != 0 { converted = true }
        }
        guard converted else { return [] }
        for suffix in ["", "-wal"] {
            let path = storeFile + suffix
            guard FileManager.default.fileExists(atPath: path) else { continue }
            try Self.copyPrivately(path)
        }
        unlink(storeFile + "-shm")
        return ["the record (\(storeFile)) is now private to shipyardd (mode 0600); shipyardctl reads it through the daemon's socket"]
    }

    /// Replaces a file by a private copy of itself: a new inode, so that no descriptor opened
    /// while it was readable by others reaches the new one.
    static func copyPrivately(_ path: String) throws {
        let temporary = path + ".private"
        unlink(temporary)
        let source = open(path, O_RDONLY | O_NOFOLLOW | O_CLOEXEC)
        guard source >= 0 else { throw Refusal(description: "cannot read \(path): \(String(cString: strerror(errno)))") }
        defer { close(source) }
        let target = open(temporary, O_WRONLY | O_CREAT | O_EXCL | O_NOFOLLOW | O_CLOEXEC, 0o600)
        guard target >= 0 else { throw Refusal(description: "cannot create \(temporary): \(String(cString: strerror(errno)))") }
        var buffer = [UInt8](repeating: 0, count: 1 << 20)
        var ok = true
        while true {
            let n = read(source, &buffer, buffer.count)
            if n == 0 { break }
            if n < 0 {
                if errno == EINTR { continue }
                ok = false
                break
            }
            var offset = 0
            while offset < n {
                let w = buffer.withUnsafeBytes { write(target, $0.baseAddress! + offset, n - offset) }
                if w < 0, errno == EINTR { continue }
                guard w > 0 else {
                    ok = false
                    break
                }
                offset += w
            }
            if !ok { break }
        }
        fchmod(target, 0o600)
        ok = ok && fsync(target) == 0
        close(target)
        guard ok, rename(temporary, path) == 0 else {
            unlink(temporary)
            throw Refusal(description: "cannot make \(path) private: \(String(cString: strerror(errno)))")
        }
        AtomicFile.syncDirectory((path as NSString).deletingLastPathComponent)
    }

    /// Takes the state directory for this process: an exclusive lock on a file only the daemon's
    /// user can open, held until the process exits. A second daemon on the same state is refused,
    /// naming the first.
    func lock() throws -> Int32 {
        let fd = open(lockFile, O_RDWR | O_CREAT | O_NOFOLLOW | O_CLOEXEC, 0o600)
        guard fd >= 0 else {
            throw Refusal(description: "cannot open \(lockFile): \(String(cString: strerror(errno))); it must be shipyardd's own: sudo chown \(Accounts.name(uid: geteuid()) ?? "\(geteuid())") \(lockFile)")
        }
        var info = stat()
        if fstat(fd, &info) == 0, info.st_uid != geteuid() {
            close(fd)
            throw Refusal(description: "\(lockFile) belongs to \(Accounts.name(uid: info.st_uid) ?? "uid \(info.st_uid)"), not to shipyardd's user: remove it (sudo rm \(lockFile)) and start again")
        }
        fchmod(fd, 0o600)
        guard flock(fd, LOCK_EX | LOCK_NB) == 0 else {
            var text = [UInt8](repeating: 0, count: 32)
            let n = pread(fd, &text, text.count, 0)
            let pid = n > 0 ? String(decoding: text[0..<n], as: UTF8.self).trimmingCharacters(in: .whitespacesAndNewlines) : "?"
            close(fd)
            throw Refusal(description: "another shipyardd (pid \(pid)) is running with the state directory \(root); stop it first (systemctl stop shipyardd), or give this one another stateDirectory")
        }
        let pid = Data("\(getpid())\n".utf8)
        _ = ftruncate(fd, 0)
        _ = pid.withUnsafeBytes { pwrite(fd, $0.baseAddress, $0.count, 0) }
        return fd
    }

    /// Why the current user cannot read this state directory as the CLI does, if it cannot:
    /// missing, or not readable (not in the daemon's group).
    public func accessProblem() -> String? {
        var info = stat()
        if stat(root, &info) != 0 {
            if errno == EACCES { return Self.notInGroup(root, info: nil) }
            return "no state directory at \(root): is shipyardd running with this state directory? (--state-dir or SHIPYARD_STATE_DIR)"
        }
        if access(root, R_OK | X_OK) != 0 { return Self.notInGroup(root, info: info) }
        return nil
    }

    /// The message for a user outside the daemon's group.
    public static func notInGroup(_ path: String, info: stat?) -> String {
        let me = getpwuid(geteuid()).flatMap { $0.pointee.pw_name.map { String(cString: $0) } } ?? "uid \(geteuid())"
        let group = info.flatMap { getgrgid($0.st_gid) }.flatMap { $0.pointee.gr_name.map { String(cString: $0) } } ?? "shipyard"
        return "permission denied: \(path) is for members of the \(group) group, and \(me) is not one (or has not logged in again since joining); an administrator adds you with: sudo usermod -aG \(group) \(me)"
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
