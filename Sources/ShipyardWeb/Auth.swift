import Foundation
import HummingbirdBcrypt
import ShipyardDaemon
import ShipyardGit
import Synchronization

/// `http.auth.htpasswd`: `user:hash` lines, bcrypt only (`htpasswd -B` writes `$2y$`, other tools
/// `$2b$` or `$2a$`). Read again whenever the file changes, so adding a user needs no reload.
final class PasswordFile: Sendable {
    let path: String
    private struct Loaded {
        var identity: (dev: UInt64, ino: UInt64, size: Int64, mtime: Int, nsec: Int)?
        var hashes: [String: String] = [:]
        /// The bcrypt cost most of the file's hashes have: an unknown user's decoy check costs
        /// as much, so that its time does not tell which users exist.
        var decoyCost = 12
    }

    private let loaded = Mutex(Loaded())
    private let logger: @Sendable (String) -> Void

    init(path: String, warn: @escaping @Sendable (String) -> Void) {
        self.path = path
        self.logger = warn
    }

    /// The user's hash, from the file as it is now.
    func hash(of user: String) -> String? {
        current { $0.hashes[user] }
    }

    /// A hash of the cost the file's hashes have, which no password matches.
    var decoy: String {
        let cost = current { $0.decoyCost }
        return "$2b$" + (cost < 10 ? "0" : "") + String(cost) + "$CCCCCCCCCCCCCCCCCCCCC.E5YPO9kmyuRGyh0XouQYb4YMJKvyOeW"
    }

    private func current<T>(_ read: (Loaded) -> T) -> T {
        var info = stat()
        guard stat(path, &info) == 0 else {
            logger("http.auth.htpasswd \(path) cannot be read: \(String(cString: strerror(errno))); nobody can log in")
            return read(Loaded())
        }
        let identity = (UInt64(info.st_dev), UInt64(info.st_ino), Int64(info.st_size), info.st_mtim.tv_sec, info.st_mtim.tv_nsec)
        return loaded.withLock { state -> T in
            if state.identity.map({ $0 != identity }) ?? true {
                state.hashes = Self.parse(FileManager.default.contents(atPath: path) ?? Data(), warn: logger, path: path)
                state.identity = identity
                state.decoyCost = Self.commonCost(state.hashes.values)
            }
            return read(state)
        }
    }

    /// The cost most hashes have (the higher on a tie); 12 for an empty file.
    static func commonCost(_ hashes: some Sequence<String>) -> Int {
        var counts: [Int: Int] = [:]
        for hash in hashes {
            let parts = hash.split(separator: "$")
            if parts.count >= 2, let cost = Int(parts[1]), (4...31).contains(cost) { counts[cost, default: 0] += 1 }
        }
        return counts.max { ($0.value, $0.key) < ($1.value, $1.key) }?.key ?? 12
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

    /// bcrypt checks running now, for users of the file and for names it does not hold, each at
    /// most `maxChecks`: a flood of guesses cannot take every core, and a flood of made-up names
    /// cannot take the checks known users need (the others are told to try again).
    private let running = Mutex((known: 0, unknown: 0))
    static let maxChecks = 4

    enum Check: Equatable {
        /// The password matches the hash given, which a session made from it is bound to.
        case valid(hash: String)
        case invalid, busy
    }

    /// Checks a password on a thread of its own: bcrypt is slow on purpose.
    func check(user: String, password: String) async -> Check {
        let hash = hash(of: user)
        let known = hash != nil
        let admitted = running.withLock { running -> Bool in
            guard (known ? running.known : running.unknown) < Self.maxChecks else { return false }
            if known { running.known += 1 } else { running.unknown += 1 }
            return true
        }
        guard admitted else { return .busy }
        defer {
            running.withLock { running in
                if known { running.known -= 1 } else { running.unknown -= 1 }
            }
        }
        guard let hash else {
            // As long as a real check, so that timing does not tell which users exist.
            let decoy = decoy
            _ = await Self.onThread { Bcrypt.verify(password, hash: decoy) }
            return .invalid
        }
        // OpenBSD's checker knows $2a$ and $2b$; $2y$ (PHP's and htpasswd's name) is the same.
        let normalized = hash.hasPrefix("$2y$") ? "$2b$" + hash.dropFirst(4) : hash
        return await Self.onThread { Bcrypt.verify(password, hash: normalized) } ? .valid(hash: hash) : .invalid
    }

    static func onThread<T: Sendable>(_ work: @escaping @Sendable () -> T) async -> T {
        await withCheckedContinuation { continuation in
            let thread = Thread { continuation.resume(returning: work()) }
            thread.name = "bcrypt"
            thread.start()
        }
    }
}

/// Browser sessions: a random token in an `HttpOnly; SameSite=Strict` cookie, and the CSRF token
/// every form carries. A visitor's session is kept nowhere: its CSRF token is an HMAC of the
/// cookie's token under a key that lives in this process, so no number of cookie-less page views
/// can push a visitor's session (and the sign-in form it guards) out of a table. Signed-in
/// sessions are kept, in memory (a restart signs everyone out), bound to the user's htpasswd line.
final class Sessions: Sendable {
    struct Session: Sendable {
        var user: String?
        /// The user's htpasswd hash when they signed in: the session is worth only as much as the
        /// line it was made from (a removed user or a changed password ends it).
        var credential: String?
        var csrf: String
        var lastSeen: Date
    }

    private let signedIn = Mutex<[String: Session]>([:])
    private let key: [UInt8]
    static let idle: TimeInterval = 12 * 3600
    static let limit = 10_000

    init() {
        key = (0..<32).map { _ in UInt8.random(in: 0...255) }
    }

    static func token() -> String {
        var bytes = [UInt8](repeating: 0, count: 32)
        for index in bytes.indices { bytes[index] = UInt8.random(in: 0...255) }
        return base64url(bytes)
    }

    private static func base64url(_ bytes: [UInt8]) -> String {
        Data(bytes).base64EncodedString().replacingOccurrences(of: "+", with: "-").replacingOccurrences(of: "/", with: "_")
            .replacingOccurrences(of: "=", with: "")
    }

    /// Whether a cookie's value can be a token of ours (43 base64url characters).
    static func wellFormed(_ token: String) -> Bool {
        token.utf8.count == 43 && token.utf8.allSatisfy { ("a"..."z").contains(Character(UnicodeScalar($0))) || ("A"..."Z").contains(Character(UnicodeScalar($0)))
            || ("0"..."9").contains(Character(UnicodeScalar($0))) || $0 == UInt8(ascii: "-") || $0 == UInt8(ascii: "_") }
    }

    /// The CSRF token of a session token.
    func csrf(for token: String) -> String {
        Self.base64url(SHA1.hmac(key: key, message: Array(("csrf:" + token).utf8)))
    }

    /// The session of this token: a signed-in one if it is live (touching it), else a visitor's.
    func session(_ token: String?) -> Session? {
        guard let token, Self.wellFormed(token) else { return nil }
        let kept = signedIn.withLock { all -> Session? in
            guard var session = all[token] else { return nil }
            if Date().timeIntervalSince(session.lastSeen) > Self.idle {
                all[token] = nil
                return nil
            }
            session.lastSeen = Date()
            all[token] = session
            return session
        }
        return kept ?? Session(user: nil, csrf: csrf(for: token), lastSeen: Date())
    }

    /// A new session: a visitor's (kept nowhere) or, with `user`, a signed-in one; the oldest
    /// signed-in sessions go when there are too many (only a password makes one).
    func create(user: String? = nil, credential: String? = nil) -> (token: String, session: Session) {
        let token = Self.token()
        let session = Session(user: user, credential: credential, csrf: csrf(for: token), lastSeen: Date())
        guard user != nil else { return (token, session) }
        signedIn.withLock { all in
            if all.count >= Self.limit {
                let cutoff = Date().addingTimeInterval(-Self.idle)
                all = all.filter { $0.value.lastSeen > cutoff }
                if all.count >= Self.limit {
                    for key in all.sorted(by: { $0.value.lastSeen < $1.value.lastSeen }).prefix(Self.limit / 10).map(\.key) { all[key] = nil }
                }
            }
            all[token] = session
        }
        return (token, session)
    }

    func end(_ token: String) {
        _ = signedIn.withLock { $0.removeValue(forKey: token) }
    }

    /// The session's user is signed out; the token (and its CSRF token) stays the visitor's.
    /// Returns the user who was signed in, or nil when nobody was (or another request did it).
    func signOut(_ token: String) -> String? {
        signedIn.withLock { $0.removeValue(forKey: token)?.user }
    }
}

/// Password guessing is limited, not just delayed. After failures a user and an address each
/// wait before their next check (none after the first failure, so a mistyped password can be
/// typed again at once; then 0.5 s, doubled per failure, at most 8 s; forgotten after a success
/// or fifteen quiet minutes). An attempt is checked only when both waits are over and neither has
/// a check running; others are refused at once, unchecked, with the time to wait (so 200 guesses
/// sent together are checked at that rate, not all after a delay). Nothing waits while holding
/// the user or the address: a refused attempt costs nothing and blocks nothing.
///
/// Users and addresses are kept apart (a failure under the name "127.0.0.2" never slows that
/// address); addresses are grouped as `ClientAddress` does. Names and addresses are kept in a
/// table of at most `capacity`, from which the least recently seen entry that is not waiting goes
/// first, else the one whose wait ends first: a flood of made-up names or of addresses cannot
/// flush the ones being throttled.
final class LoginThrottle: Sendable {
    enum Key: Hashable, Sendable {
        case user(String)
        case address(String)
    }

    private struct Entry {
        var failures = 0
        var last = Date.distantPast
        var busy = false
        var seen = Date()
    }

    private let entries = Mutex<[Key: Entry]>([:])
    let capacity: Int
    static let forget: TimeInterval = 900

    init(capacity: Int = 10_000) {
        self.capacity = capacity
    }

    static func wait(after failures: Int) -> TimeInterval {
        failures <= 1 ? 0 : Double(min(8000, 500 * (1 << min(failures - 2, 10)))) / 1000
    }

    /// An address as throttled.
    static func addressKey(_ address: String) -> Key {
        .address(ClientAddress.group(address))
    }

    enum Admission: Equatable {
        /// Check the password now; `done` or `cancel` must follow.
        case check
        /// Refused unchecked: try again after this many seconds.
        case wait(TimeInterval)
    }

    /// Whether an attempt for `user` (counted by name when `known`) from `address` may be checked
    /// now; marks both busy while it is.
    func admit(user: String, known: Bool, address: String, now: Date = Date()) -> Admission {
        let keys = (known ? [Key.user(user)] : []) + [Self.addressKey(address)]
        return entries.withLock { all -> Admission in
            var longest: TimeInterval = 0
            for key in keys {
                guard var entry = all[key] else { continue }
                if now.timeIntervalSince(entry.last) > Self.forget { entry.failures = 0 }
                longest = max(longest, entry.last.addingTimeInterval(Self.wait(after: entry.failures)).timeIntervalSince(now))
                // A check takes a fraction of a second: try again in a moment.
                if entry.busy { longest = max(longest, 0.5) }
                all[key] = entry
            }
            if longest > 0 { return .wait(longest) }
            for key in keys {
                if all[key] == nil { makeRoom(&all, now: now) }
                all[key, default: Entry()].busy = true
                all[key]?.seen = now
            }
            return .check
        }
    }

    /// Records the outcome of an admitted attempt.
    func done(user: String, known: Bool, address: String, succeeded: Bool, now: Date = Date()) {
        let keys = (known ? [Key.user(user)] : []) + [Self.addressKey(address)]
        entries.withLock { all in
            for key in keys {
                if succeeded {
                    all[key] = nil
                    continue
                }
                var entry = all[key] ?? Entry()
                if now.timeIntervalSince(entry.last) > Self.forget { entry.failures = 0 }
                entry.failures += 1
                entry.last = now
                entry.busy = false
                entry.seen = now
                if all[key] == nil { makeRoom(&all, now: now) }
                all[key] = entry
            }
        }
    }

    /// Under the lock: at capacity, forgotten entries go, then the least recently seen one that
    /// is neither waiting nor busy, else the one whose wait ends first (the most throttled are
    /// kept whatever else arrives).
    private func makeRoom(_ all: inout [Key: Entry], now: Date) {
        guard all.count >= capacity else { return }
        all = all.filter { $0.value.busy || now.timeIntervalSince($0.value.last) <= Self.forget }
        guard all.count >= capacity else { return }
        let idle = all.filter { !$0.value.busy && $0.value.last.addingTimeInterval(Self.wait(after: $0.value.failures)) <= now }
        if let oldest = idle.min(by: { $0.value.seen < $1.value.seen }) {
            all[oldest.key] = nil
        } else if let least = all.filter({ !$0.value.busy }).min(by: {
            $0.value.last.addingTimeInterval(Self.wait(after: $0.value.failures)) < $1.value.last.addingTimeInterval(Self.wait(after: $1.value.failures))
        }) {
            // Everyone waits: the one whose wait ends first goes, the most throttled stay.
            all[least.key] = nil
        }
    }

    /// An admitted attempt that was not checked after all (the check pool was full): no failure.
    func cancel(user: String, known: Bool, address: String) {
        let keys = (known ? [Key.user(user)] : []) + [Self.addressKey(address)]
        entries.withLock { all in
            for key in keys { all[key]?.busy = false }
        }
    }

    var count: Int { entries.withLock { $0.count } }
}

/// A client's address as limits count it: IPv4 whole (also when a dual-stack listener reports it
/// as `::ffff:a.b.c.d`), IPv6 by its /64, which one host or one customer holds whole.
enum ClientAddress {
    static func group(_ address: String) -> String {
        guard address.contains(":") else { return address }
        var bytes = in6_addr()
        guard inet_pton(AF_INET6, address, &bytes) == 1 else { return address }
        let raw = withUnsafeBytes(of: bytes) { Array($0) }
        if raw.prefix(10).allSatisfy({ $0 == 0 }), raw[10] == 0xFF, raw[11] == 0xFF {
            return raw.suffix(4).map { String($0) }.joined(separator: ".")
        }
        return raw.prefix(8).map { String(format: "%02x", $0) }.joined() + "::/64"
    }
}
