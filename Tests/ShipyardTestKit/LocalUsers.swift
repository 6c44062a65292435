public import Foundation

/// Real local users for tests that must not run everything as root: the daemon's own user and
/// group (as sysusers.d creates `shipyard`), two operators in that group (alice, an approver;
/// mallory, who is not one) and eve, outside it. Created with `useradd` (so only as root) under
/// names unique to the test, and removed when the value goes away.
public final class LocalUsers: Sendable {
    /// The daemon's group: the operators' group.
    public let group: String
    public let daemon: String
    public let alice: String
    public let mallory: String
    public let eve: String
    /// More operators in the group, by the short name asked for (`others["bob"]`).
    public let others: [String: String]

    public static var canCreate: Bool {
        getuid() == 0 && FileManager.default.isExecutableFile(atPath: "/usr/sbin/useradd")
            && FileManager.default.isExecutableFile(atPath: "/usr/bin/setpriv")
    }

    public init(others names: [String] = []) throws {
        let suffix = String(UInt32.random(in: 0..<1_000_000))
        group = "sy-ops-\(suffix)"
        daemon = "sy-d-\(suffix)"
        alice = "sy-alice-\(suffix)"
        mallory = "sy-mal-\(suffix)"
        eve = "sy-eve-\(suffix)"
        others = Dictionary(uniqueKeysWithValues: names.map { ($0, "sy-\($0)-\(suffix)") })
        let extra = names.map { "sy-\($0)-\(suffix)" }
        try Self.serialized {
            try Run.checked("/usr/sbin/groupadd", [group])
            try Run.checked("/usr/sbin/useradd", ["-M", "-N", "-g", group, "-d", "/nonexistent", "-s", "/usr/sbin/nologin", daemon])
            for user in [alice, mallory] + extra {
                try Run.checked("/usr/sbin/useradd", ["-M", "-U", "-G", group, "-s", "/usr/sbin/nologin", user])
            }
            try Run.checked("/usr/sbin/useradd", ["-M", "-U", "-s", "/usr/sbin/nologin", eve])
        }
    }

    /// Accounts renamed by a test (`usermod -l`), by the name they have now: removed with the rest.
    private let renamed = RenamedAccounts()

    private final class RenamedAccounts: @unchecked Sendable {
        let lock = NSLock()
        var names: [String] = []
    }

    deinit {
        let (daemon, alice, mallory, eve, group) = (daemon, alice, mallory, eve, group)
        let others = Array(others.values)
        let box = renamed
        let renamed: [String] = box.lock.withLock { box.names }
        try? Self.serialized {
            for user in [daemon, alice, mallory, eve] + others + renamed { _ = try? Run.capture("/usr/sbin/userdel", [user]) }
            for extra in [alice, mallory, eve] + others { _ = try? Run.capture("/usr/sbin/groupdel", [extra]) }
            _ = try? Run.capture("/usr/sbin/groupdel", [group])
        }
    }

    /// `executable arguments` run as `user` with that user's groups, through setpriv.
    public func command(as user: String, _ executable: String, _ arguments: [String]) -> (executable: String, arguments: [String]) {
        let gid = passwdEntry(user).map { "\($0.gid)" } ?? primaryGroup(of: user)
        return ("/usr/bin/setpriv", ["--reuid=\(user)", "--regid=\(gid)", "--init-groups", "--", executable] + arguments)
    }

    /// `usermod -l new old`: the same account (uid) under a new name, as an administrator renames
    /// a person. The new name is a fresh one of this test's (`sy-<new>-<suffix>`), returned.
    public func rename(_ user: String, to short: String) throws -> String {
        let new = "sy-\(short)-\(group.dropFirst("sy-ops-".count))"
        try Self.serialized {
            try Run.checked("/usr/sbin/usermod", ["-l", new, user])
            renamed.lock.withLock { renamed.names.append(new) }
        }
        return new
    }

    /// `gpasswd -d user group`: the user leaves a group they were added to.
    public func remove(_ user: String, fromGroup group: String) throws {
        try Self.serialized { try Run.checked("/usr/bin/gpasswd", ["-d", user, group]) }
    }

    public func run(as user: String, _ executable: String, _ arguments: [String], environment: [String: String] = [:]) throws -> ProcessOutput {
        let (program, argv) = command(as: user, executable, arguments)
        return try Run.capture(program, argv, environment: environment)
    }

    public func uid(_ user: String) -> uid_t { passwdEntry(user)?.uid ?? uid_t.max }
    public func gid(_ group: String) -> gid_t { getgrnam(group)?.pointee.gr_gid ?? gid_t.max }

    private func primaryGroup(of user: String) -> String {
        user == daemon ? group : user
    }

    /// useradd and userdel lock /etc/passwd: tests running at once take turns.
    private static func serialized(_ body: () throws -> Void) throws {
        // In /run, where only root makes files (a name in the shared /tmp could be made first by
        // another user); not /etc/passwd itself, which useradd replaces by renaming a new file
        // over it, so a lock taken on it after the rename would not exclude one taken before.
        let fd = open("/run/shipyard-test-users.lock", O_RDWR | O_CREAT | O_NOFOLLOW | O_CLOEXEC, 0o600)
        guard fd >= 0 else { throw ProcessFailure(description: "cannot open the users lock") }
        defer { close(fd) }
        flock(fd, LOCK_EX)
        defer { flock(fd, LOCK_UN) }
        try body()
    }
}

/// A user's uid and primary group, read with getpwnam_r: tests run in parallel, and getpwnam's
/// answer lives in one buffer for the whole process (another thread's lookup overwrites it).
public func passwdEntry(_ user: String) -> (uid: uid_t, gid: gid_t)? {
    var entry = passwd()
    var result: UnsafeMutablePointer<passwd>?
    var storage = [CChar](repeating: 0, count: 16384)
    guard getpwnam_r(user, &entry, &storage, storage.count, &result) == 0, result != nil else { return nil }
    return (entry.pw_uid, entry.pw_gid)
}
