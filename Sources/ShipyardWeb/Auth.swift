import Foundation
import HummingbirdBcrypt
import ShipyardDaemon
import Synchronization

/// `http.auth.htpasswd`: `user:hash` lines, bcrypt only (`htpasswd -B` writes `$2y$`, other tools
/// `$2b$` or `$2a$`). Read again whenever the file changes, so adding a user needs no reload.
final class PasswordFile: Sendable {
    let path: String
    private struct Loaded {
        var identity: (dev: UInt64, ino: UInt64, size: Int64, mtime: Int, nsec: Int)?
        var hashes: [String: String] = [:]
    }

    private let loaded = Mutex(Loaded())
    private let logger: @Sendable (String) -> Void

    init(path: String, warn: @escaping @Sendable (String) -> Void) {
        self.path = path
        self.logger = warn
    }

    /// The user's hash, from the file as it is now.
    func hash(of user: String) -> String? {
        var info = stat()
        guard stat(path, &info) == 0 else {
            logger("http.auth.htpasswd \(path) cannot be read: \(String(cString: strerror(errno))); nobody can log in")
            return nil
        }
        let identity = (UInt64(info.st_dev), UInt64(info.st_ino), Int64(info.st_size), info.st_mtim.tv_sec, info.st_mtim.tv_nsec)
        return loaded.withLock { state -> String? in
            if state.identity.map({ $0 != identity }) ?? true {
                state.hashes = Self.parse(FileManager.default.contents(atPath: path) ?? Data(), warn: logger, path: path)
                state.identity = identity
            }
            return state.hashes[user]
        }
    }

    static func parse(_ data: Data, warn: (String) -> Void, path: String) -> [String: String] {
        var hashes: [String: String] = [:]
        for (index, line) in String(decoding: data.prefix(1 << 20), as: UTF8.self).split(separator: "\n").enumerated() {
            let text = line.trimmingCharacters(in: .whitespaces)
            guard !text.isEmpty, !text.hasPrefix("#"), let colon = text.firstIndex(of: ":") else { continue }
            let user = String(text[..<colon])
            let hash = String(text[text.index(after: colon)...])
            guard ["$2y$", "$2b$", "$2a$"].contains(where: hash.hasPrefix) else {
                warn("\(path):\(index + 1): the entry of \(user) is not a bcrypt hash (create it with htpasswd -B); it is ignored")
                continue
            }
            hashes[user] = hash
        }
        return hashes
    }

    /// bcrypt checks running now: at most `maxChecks`, so that a flood of guesses cannot take
    /// every core (the others are told to try again).
    private let checks = Mutex(0)
    static let maxChecks = 4

    enum Check: Equatable {
        /// The password matches the hash given, which a session made from it is bound to.
        case valid(hash: String)
        case invalid, busy
    }

    /// Checks a password on a thread of its own: bcrypt is slow on purpose.
    func check(user: String, password: String) async -> Check {
        let admitted = checks.withLock { running -> Bool in
            guard running < Self.maxChecks else { return false }
            running += 1
            return true
        }
        guard admitted else { return .busy }
        defer { checks.withLock { $0 -= 1 } }
        guard let hash = hash(of: user) else {
            // As long as a real check, so that timing does not tell which users exist.
            _ = await Self.onThread { Bcrypt.verify(password, hash: Self.decoy) }
            return .invalid
        }
        // OpenBSD's checker knows $2a$ and $2b$; $2y$ (PHP's and htpasswd's name) is the same.
        let normalized = hash.hasPrefix("$2y$") ? "$2b$" + hash.dropFirst(4) : hash
        return await Self.onThread { Bcrypt.verify(password, hash: normalized) } ? .valid(hash: hash) : .invalid
    }

    /// Cost 12, as `shipyardctl htpasswd` makes them: an unknown user takes as long as a known one.
    static let decoy = "$2b$12$CCCCCCCCCCCCCCCCCCCCC.E5YPO9kmyuRGyh0XouQYb4YMJKvyOeW"

    static func onThread<T: Sendable>(_ work: @escaping @Sendable () -> T) async -> T {
        await withCheckedContinuation { continuation in
            let thread = Thread { continuation.resume(returning: work()) }
            thread.name = "bcrypt"
            thread.start()
        }
    }
}

/// Browser sessions: a random token in an `HttpOnly; SameSite=Strict` cookie, with the signed-in
/// user (if any) and the CSRF token every form carries. In memory: a restart signs everyone out.
final class Sessions: Sendable {
    struct Session: Sendable {
        var user: String?
        /// The user's htpasswd hash when they signed in: the session is worth only as much as the
        /// line it was made from (a removed user or a changed password ends it).
        var credential: String?
        var csrf: String
        var lastSeen: Date
    }

    private let sessions = Mutex<[String: Session]>([:])
    static let idle: TimeInterval = 12 * 3600
    static let limit = 10_000

    static func token() -> String {
        var bytes = [UInt8](repeating: 0, count: 32)
        for index in bytes.indices { bytes[index] = UInt8.random(in: 0...255) }
        return Data(bytes).base64EncodedString().replacingOccurrences(of: "+", with: "-").replacingOccurrences(of: "/", with: "_")
            .replacingOccurrences(of: "=", with: "")
    }

    /// The session of this token, if it is live (touching it).
    func session(_ token: String?) -> Session? {
        guard let token, !token.isEmpty else { return nil }
        return sessions.withLock { all -> Session? in
            guard var session = all[token] else { return nil }
            if Date().timeIntervalSince(session.lastSeen) > Self.idle {
                all[token] = nil
                return nil
            }
            session.lastSeen = Date()
            all[token] = session
            return session
        }
    }

    /// A new session (anonymous until `signIn`); the oldest go when there are too many.
    func create(user: String? = nil, credential: String? = nil) -> (token: String, session: Session) {
        let token = Self.token()
        let session = Session(user: user, credential: credential, csrf: Self.token(), lastSeen: Date())
        sessions.withLock { all in
            if all.count >= Self.limit {
                let cutoff = Date().addingTimeInterval(-Self.idle)
                all = all.filter { $0.value.lastSeen > cutoff }
                if all.count >= Self.limit {
                    // Visitors' sessions go first, oldest first: a flood of page views never
                    // signs anyone out.
                    let order = all.sorted { ($0.value.user != nil ? 1 : 0, $0.value.lastSeen) < ($1.value.user != nil ? 1 : 0, $1.value.lastSeen) }
                    for key in order.prefix(Self.limit / 10).map(\.key) { all[key] = nil }
                }
            }
            all[token] = session
        }
        return (token, session)
    }

    func end(_ token: String) {
        _ = sessions.withLock { $0.removeValue(forKey: token) }
    }

    /// The session's user is signed out; the session (and its CSRF token) stays for the visitor.
    /// Returns the user who was signed in, or nil when nobody was (or another request did it).
    func signOut(_ token: String) -> String? {
        sessions.withLock { all -> String? in
            guard let user = all[token]?.user else { return nil }
            all[token]?.user = nil
            all[token]?.credential = nil
            return user
        }
    }
}

/// Failed logins slow further attempts down, per user and per address: half a second, doubled
/// per failure, at most eight seconds, forgotten after a success or fifteen quiet minutes.
final class LoginThrottle: Sendable {
    private let failures = Mutex<[String: (count: Int, last: Date)]>([:])

    func delay(user: String, address: String) -> Duration {
        let count = failures.withLock { all -> Int in
            let now = Date()
            return [user, address].map { key -> Int in
                guard let entry = all[key], now.timeIntervalSince(entry.last) < 900 else { return 0 }
                return entry.count
            }.max() ?? 0
        }
        guard count > 0 else { return .zero }
        return .milliseconds(Int64(min(8000, 500 * (1 << min(count - 1, 10)))))
    }

    func failed(user: String, address: String) {
        failures.withLock { all in
            if all.count > 50_000 { all.removeAll() }
            for key in [user, address] {
                let previous = all[key].map { Date().timeIntervalSince($0.last) < 900 ? $0.count : 0 } ?? 0
                all[key] = (previous + 1, Date())
            }
        }
    }

    func succeeded(user: String, address: String) {
        failures.withLock { all in
            all[user] = nil
            all[address] = nil
        }
    }
}
