import Foundation
import ShipyardCore

/// What the config names on this host: files the daemon reads, programs it runs, users and
/// groups. `shipyardd --check-config` reports a missing or unusable file or program as an error
/// (the config is fine, the host is not ready for it); the daemon itself, at start and reload,
/// only warns (a program may be installed after the config), and tells again when it is used.
/// Users and groups that do not exist are warnings everywhere: a web-only user need not exist.
extension ConfigReader {
    enum Need {
        case read, execute
    }

    /// A file or program the daemon will open or run, checked as the daemon's user would find it.
    mutating func checkExists(_ path: String, what: String, need: Need, at mark: SourceMark) {
        guard host != .off else { return }
        if let problem = HostAccess.daemon.problem(path, need: need) {
            let message = "\(what) \(path) \(problem)"
            if host == .errors { log.error(message, at: mark) } else { log.warning(message, at: mark) }
            return
        }
        // The unit hides these from the daemon (ProtectHome=yes): found here, missing there.
        let real = HostAccess.resolved(path)
        if ["/home/", "/root/", "/run/user/"].contains(where: { path.hasPrefix($0) || real.hasPrefix($0) }) {
            log.warning("\(what) \(path) is under a folder the systemd unit hides from the daemon (ProtectHome=yes); move it, e.g. to /etc/shipyardd or /usr/local/libexec", at: mark)
        }
    }

    /// Users and groups named for a role: a warning for each the host does not know (yet).
    mutating func checkAccounts(_ principals: DaemonConfig.Approvers, what: String, at mark: SourceMark) {
        guard host != .off else { return }
        for user in principals.users where Accounts.primaryGroup(of: user) == nil {
            log.warning("\(what): no user \"\(user)\" on this host (yet); fine for a web-only user", at: mark)
        }
        for group in principals.groups where getgrnam(group) == nil {
            log.warning("\(what): no group \"\(group)\" on this host (yet)", at: mark)
        }
    }
}

extension ConfigReader {
    /// `http.apiTokens`: readable by the daemon, writable by nobody else (a line added there is a
    /// token for anyone's name), every line a token; tokens sent in clear over a network warned of.
    mutating func readAPITokens(_ path: String, http: DaemonConfig.HTTP, at mark: SourceMark) {
        checkExists(path, what: "http.apiTokens", need: .read, at: mark)
        var info = stat()
        if stat(path, &info) == 0, info.st_mode & 0o022 != 0 {
            log.error(
                "http.apiTokens \(path) is writable by more than its owner (mode \(String(info.st_mode & 0o777, radix: 8))): whoever can add a line there acts as anyone; sudo chmod go-w \(path)",
                at: mark)
        }
        if host != .off, FileManager.default.isReadableFile(atPath: path) {
            let (_, problems) = APITokens.load(path)
            for problem in problems {
                if host == .errors { log.error(problem, at: mark) } else { log.warning(problem + "; that line is ignored", at: mark) }
            }
        }
        if case .tcp(let address, _) = http.listen, !["127.0.0.1", "::1"].contains(address), !(http.publicURL?.hasPrefix("https://") ?? false) {
            log.warning(
                "http.apiTokens on \(http.listen) without an https:// publicURL: tokens would cross the network in clear; listen on 127.0.0.1 behind a TLS proxy and set publicURL",
                at: mark)
        }
    }
}

/// Whether a user may read or run a path: `access(2)` for the user running the check, or, when
/// root checks a config, the permission bits as they apply to the daemon's account (`shipyard`,
/// from the package's sysusers.d), every folder on the way included.
struct HostAccess: Sendable {
    /// The account whose view counts: nil for the user running this process.
    var account: (uid: uid_t, gids: Set<gid_t>, name: String)?

    static let daemonUser = "shipyard"

    static var daemon: HostAccess {
        guard geteuid() == 0, let uid = Accounts.uid(of: daemonUser), let gid = Accounts.primaryGroup(of: daemonUser) else { return HostAccess() }
        var gids: Set<gid_t> = [gid]
        for name in Accounts.groups(of: daemonUser, primary: gid) {
            if let group = getgrnam(name) { gids.insert(group.pointee.gr_gid) }
        }
        return HostAccess(account: (uid, gids, daemonUser))
    }

    /// Why the path cannot be used, or nil. Judged where it leads: a symbolic link is followed,
    /// and the folders checked are those of the file it names.
    func problem(_ given: String, need: ConfigReader.Need) -> String? {
        var info = stat()
        guard stat(given, &info) == 0 else {
            let code = errno
            if code == ENOENT || code == ENOTDIR { return "does not exist" }
            if code == EACCES { return "cannot be reached by \(who) (a folder on the way is closed to it)" }
            return "cannot be checked: \(String(cString: strerror(code)))"
        }
        let path = Self.resolved(given)
        let kind = info.st_mode & S_IFMT
        switch need {
        case .execute:
            guard kind == S_IFREG else { return kind == S_IFDIR ? "is a folder, not a program" : "is not a regular file" }
            if !allowed(path, info, bit: 1) { return "is not executable by \(who)\(advice(path, need))" }
            // A script is read by its interpreter too.
            if Self.isScript(path), !allowed(path, info, bit: 4) { return "is a script not readable by \(who)\(advice(path, .read))" }
        case .read:
            guard kind == S_IFREG else { return kind == S_IFDIR ? "is a folder, not a file" : "is not a regular file" }
            if !allowed(path, info, bit: 4) { return "is not readable by \(who)\(advice(path, need))" }
        }
        if let account, let folder = closedFolder(path, account: account) {
            return "cannot be reached by \(who): \(folder) is closed to it"
        }
        return nil
    }

    /// Where a path leads, symbolic links followed (the path itself when it leads nowhere).
    static func resolved(_ path: String) -> String {
        path.withCString { pointer -> String in
            guard let resolved = realpath(pointer, nil) else { return path }
            defer { free(resolved) }
            return String(cString: resolved)
        }
    }

    static func isScript(_ path: String) -> Bool {
        guard let handle = FileHandle(forReadingAtPath: path) else { return false }
        defer { try? handle.close() }
        return (try? handle.read(upToCount: 2)) == Data("#!".utf8)
    }

    var who: String {
        account.map { "the daemon's user \($0.name)" } ?? "\(Accounts.name(uid: geteuid()) ?? "uid \(geteuid())") (run this check as the daemon's user: sudo -u shipyard shipyardd --check-config …)"
    }

    func advice(_ path: String, _ need: ConfigReader.Need) -> String {
        guard account != nil else { return "" }
        return need == .execute ? " (sudo chmod a+x \(path))" : " (sudo chown \(Self.daemonUser) \(path) && sudo chmod 0400 \(path))"
    }

    /// `bit`: 4 read, 1 execute.
    func allowed(_ path: String, _ info: stat, bit: mode_t) -> Bool {
        guard let account else { return access(path, bit == 4 ? R_OK : X_OK) == 0 }
        if account.uid == 0 { return bit == 4 || info.st_mode & 0o111 != 0 }
        if info.st_uid == account.uid { return info.st_mode & (bit << 6) != 0 }
        if account.gids.contains(info.st_gid) { return info.st_mode & (bit << 3) != 0 }
        return info.st_mode & bit != 0
    }

    /// The first folder above `path` the account may not pass through.
    func closedFolder(_ path: String, account: (uid: uid_t, gids: Set<gid_t>, name: String)) -> String? {
        var folder = (path as NSString).deletingLastPathComponent
        var folders: [String] = []
        while folder != "/" && !folder.isEmpty {
            folders.append(folder)
            folder = (folder as NSString).deletingLastPathComponent
        }
        for folder in folders.reversed() {
            var info = stat()
            guard stat(folder, &info) == 0 else { return folder }
            if !allowed(folder, info, bit: 1) { return folder }
        }
        return nil
    }
}
