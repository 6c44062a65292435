public import Foundation
import ShipyardCore
import Synchronization

/// `http.apiTokens`: the tokens Keptn's clients send as `x-token` (the `keptn` CLI, CI scripts,
/// job-executor-service and other integrations). The file holds only their SHA-256, one token a
/// line, each naming who it acts as:
///
///     # alice's token for `keptn send event approval.finished`
///     sha256:9f86d081884c7d659a2feaa0c55ad015a3bf4f1b2b0b822cd15d6c15b0f00a08 user:alice
///     # job-executor-service on the build host
///     sha256:60303ae22b998861bce3b28f33eec1be758a213c86c93c076dbe9f558c11c752 role:job-executor
///
/// A `user:` token is that account of this host: its groups count, and approvers and event
/// senders judge it exactly as when that person runs shipyardctl. A `role:` token is a program,
/// never a person: the config's lists admit it by `roles: [NAME]`, and it decides no approval.
/// `shipyardctl api-token new` makes a token and prints its line.
public struct APITokens: Sendable {
    /// Who a token acts as.
    public enum Principal: Sendable, Equatable, CustomStringConvertible {
        case user(String)
        case role(String)

        public var description: String {
            switch self {
            case .user(let name): return "user:\(name)"
            case .role(let name): return "role:\(name)"
            }
        }
    }

    struct Entry: Sendable {
        var digest: [UInt8]
        var principal: Principal
        var line: Int
    }

    let entries: [Entry]
    public let path: String

    public var count: Int { entries.count }

    /// The file's lines, each checked; a line that is not a token is an error that names it
    /// (`FILE:LINE: …`) and what to write instead.
    public static func parse(_ text: String, path: String) -> (tokens: APITokens, problems: [String]) {
        var entries: [Entry] = []
        var problems: [String] = []
        var seen: [[UInt8]: Int] = [:]
        for (index, raw) in text.split(separator: "\n", omittingEmptySubsequences: false).enumerated() {
            let line = raw.trimmingCharacters(in: .whitespaces)
            guard !line.isEmpty, !line.hasPrefix("#") else { continue }
            let number = index + 1
            let fields = line.split(whereSeparator: { $0 == " " || $0 == "\t" }).map(String.init)
            guard fields.count == 2 || (fields.count > 2 && fields[2].hasPrefix("#")) else {
                problems.append("\(path):\(number): a token line is 'sha256:HEX user:NAME' or 'sha256:HEX role:NAME' (shipyardctl api-token new prints one)")
                continue
            }
            guard fields[0].hasPrefix("sha256:"), let digest = hexBytes(String(fields[0].dropFirst(7))), digest.count == 32 else {
                problems.append("\(path):\(number): \"\(fields[0].prefix(80))\" is not sha256: and 64 hex digits; the file holds the token's SHA-256, never the token (shipyardctl api-token new prints the line)")
                continue
            }
            let principal: Principal
            if fields[1].hasPrefix("user:"), isName(String(fields[1].dropFirst(5))) {
                principal = .user(String(fields[1].dropFirst(5)))
            } else if fields[1].hasPrefix("role:"), isName(String(fields[1].dropFirst(5))) {
                principal = .role(String(fields[1].dropFirst(5)))
            } else {
                problems.append("\(path):\(number): \"\(fields[1].prefix(80))\" names no one: write user:NAME (an account of this host) or role:NAME (a program, e.g. role:job-executor)")
                continue
            }
            if let earlier = seen[digest] {
                problems.append("\(path):\(number): the same token as line \(earlier); one token acts as one user or role")
                continue
            }
            seen[digest] = number
            entries.append(Entry(digest: digest, principal: principal, line: number))
        }
        return (APITokens(entries: entries, path: path), problems)
    }

    /// Reads and checks the file; nil and the problems when it cannot be read at all.
    public static func load(_ path: String) -> (tokens: APITokens?, problems: [String]) {
        guard let data = FileManager.default.contents(atPath: path) else {
            return (nil, ["\(path): cannot be read by the daemon's user (it holds the API tokens' hashes: sudo chown shipyard \(path) && sudo chmod 0400 \(path))"])
        }
        guard data.count <= 1 << 20 else { return (nil, ["\(path): \(data.count) bytes; an API token file holds at most 1 MiB"]) }
        let parsed = parse(String(decoding: data, as: UTF8.self), path: path)
        return (parsed.tokens, parsed.problems)
    }

    /// Who a presented token acts as, or nil. Every entry is compared, in constant time each, so
    /// the time taken says nothing about which (if any) matched.
    public func principal(of token: String) -> Principal? {
        let presented = SHA256.hash(Array(token.utf8))
        var found: Principal?
        for entry in entries {
            var difference: UInt8 = 0
            for index in 0..<32 { difference |= entry.digest[index] ^ presented[index] }
            if difference == 0 { found = entry.principal }
        }
        return found
    }

    /// A new token: 32 random bytes, hex (what clients send), and the file's line for it.
    public static func make(for principal: Principal) -> (token: String, line: String) {
        var generator = SystemRandomNumberGenerator()
        let bytes = (0..<32).map { _ in UInt8.random(in: 0...255, using: &generator) }
        let token = hex(bytes)
        return (token, line(token: token, principal: principal))
    }

    /// The file's line for a token.
    public static func line(token: String, principal: Principal) -> String {
        "sha256:\(SHA256.hex(Array(token.utf8))) \(principal)"
    }

    /// Names as accounts and roles are written: letters, digits, `.`, `_`, `-`, at most 64.
    public static func isName(_ name: String) -> Bool {
        !name.isEmpty && name.count <= 64 && name.unicodeScalars.allSatisfy {
            $0.isASCII && ($0.properties.isAlphabetic || ("0"..."9").contains($0) || "._-".unicodeScalars.contains($0))
        }
    }

    static func hex(_ bytes: [UInt8]) -> String {
        bytes.map { String(format: "%02x", $0) }.joined()
    }

    static func hexBytes(_ text: String) -> [UInt8]? {
        let scalars = Array(text.lowercased().unicodeScalars)
        guard scalars.count % 2 == 0 else { return nil }
        var bytes: [UInt8] = []
        var index = 0
        while index < scalars.count {
            guard let high = Int(String(scalars[index]), radix: 16), let low = Int(String(scalars[index + 1]), radix: 16) else { return nil }
            bytes.append(UInt8(high * 16 + low))
            index += 2
        }
        return bytes
    }
}

/// The token file as the daemon reads it: again whenever it changed (its size, mtime or inode),
/// so that adding or removing a token needs no reload. A file that is gone or cannot be read
/// accepts no token at all (and says so in the log once per change); a wrong line is skipped.
public final class APITokenFile: Sendable {
    public let path: String
    private struct State {
        var tokens: APITokens?
        var stamp: [Int] = []
        var checkedAt: ContinuousClock.Instant?
    }
    private let state: Mutex<State>
    private let warn: @Sendable (String) -> Void

    public init(path: String, warn: @escaping @Sendable (String) -> Void) {
        self.path = path
        self.warn = warn
        state = Mutex(State())
    }

    /// The tokens in force; the file is looked at again at most once a second.
    public var tokens: APITokens? {
        state.withLock { state in
            let now = ContinuousClock.now
            if let at = state.checkedAt, now - at < .seconds(1) { return state.tokens }
            state.checkedAt = now
            var info = stat()
            let stamp = stat(path, &info) == 0
                ? [Int(info.st_ino), Int(info.st_size), Int(info.st_mtim.tv_sec), Int(info.st_mtim.tv_nsec)] : []
            guard stamp != state.stamp else { return state.tokens }
            state.stamp = stamp
            let (loaded, problems) = APITokens.load(path)
            // A file that is gone or unreadable revokes every token: removing it must stop them.
            for problem in problems.prefix(20) { warn(problem + (loaded == nil ? "; no API token is accepted until it can be read" : "")) }
            state.tokens = loaded
            return state.tokens
        }
    }
}
