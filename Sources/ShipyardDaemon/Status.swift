public import Foundation

/// `status.json`: what the daemon is doing, for `shipyardctl status` and for monitoring.
public struct DaemonStatus: Codable, Sendable, Equatable {
    public var pid: Int32
    public var version: String
    public var startedAt: String
    public var projects: [ProjectStatus]

    public init(pid: Int32, version: String, startedAt: String, projects: [ProjectStatus]) {
        self.pid = pid
        self.version = version
        self.startedAt = startedAt
        self.projects = projects
    }
}

/// One project's Git watching state. `error` is null when all is well.
public struct ProjectStatus: Codable, Sendable, Equatable {
    public var name: String
    public var upstream: String
    public var branch: String
    public var shipyardPath: String
    /// The branch tip last seen upstream.
    public var commit: String?
    /// The commit whose shipyard is loaded (the newest commit that has the loaded shipyard).
    public var shipyardCommit: String?
    public var stages: [String]
    public var lastPollAt: String?
    public var lastSuccessAt: String?
    public var nextPollAt: String?
    public var consecutiveFailures: Int
    public var error: StatusError?

    public init(name: String, upstream: String, branch: String, shipyardPath: String) {
        self.name = name
        self.upstream = upstream
        self.branch = branch
        self.shipyardPath = shipyardPath
        self.stages = []
        self.consecutiveFailures = 0
    }

    enum CodingKeys: String, CodingKey {
        case name, upstream, branch, shipyardPath, commit, shipyardCommit, stages, lastPollAt, lastSuccessAt
        case nextPollAt, consecutiveFailures, error
    }

    /// Every key is always present (null when unknown), so scripts can rely on the shape.
    public func encode(to encoder: any Encoder) throws {
        var c = encoder.container(keyedBy: CodingKeys.self)
        try c.encode(name, forKey: .name)
        try c.encode(upstream, forKey: .upstream)
        try c.encode(branch, forKey: .branch)
        try c.encode(shipyardPath, forKey: .shipyardPath)
        try c.encode(commit, forKey: .commit)
        try c.encode(shipyardCommit, forKey: .shipyardCommit)
        try c.encode(stages, forKey: .stages)
        try c.encode(lastPollAt, forKey: .lastPollAt)
        try c.encode(lastSuccessAt, forKey: .lastSuccessAt)
        try c.encode(nextPollAt, forKey: .nextPollAt)
        try c.encode(consecutiveFailures, forKey: .consecutiveFailures)
        try c.encode(error, forKey: .error)
    }
}

/// Why a project is not in a good state. `line` and `column` point into the shipyard at `commit`
/// when the shipyard itself is the problem.
public struct StatusError: Codable, Sendable, Equatable {
    /// `upstream` (the remote could not be polled) or `shipyard` (the file at `commit` is invalid).
    public var kind: String
    public var message: String
    public var commit: String?
    public var line: Int?
    public var column: Int?
    public var since: String?

    public init(kind: String, message: String, commit: String? = nil, line: Int? = nil, column: Int? = nil, since: String? = nil) {
        self.kind = kind
        self.message = message
        self.commit = commit
        self.line = line
        self.column = column
        self.since = since
    }

    enum CodingKeys: String, CodingKey { case kind, message, commit, line, column, since }

    public func encode(to encoder: any Encoder) throws {
        var c = encoder.container(keyedBy: CodingKeys.self)
        try c.encode(kind, forKey: .kind)
        try c.encode(message, forKey: .message)
        try c.encode(commit, forKey: .commit)
        try c.encode(line, forKey: .line)
        try c.encode(column, forKey: .column)
        try c.encode(since, forKey: .since)
    }
}

public enum JSON {
    public static func encode(_ value: some Encodable, pretty: Bool = false) throws -> Data {
        let encoder = JSONEncoder()
        encoder.outputFormatting = pretty ? [.sortedKeys, .prettyPrinted, .withoutEscapingSlashes] : [.sortedKeys, .withoutEscapingSlashes]
        return try encoder.encode(value)
    }

    public static func decode<T: Decodable>(_ type: T.Type, from data: Data) throws -> T {
        try JSONDecoder().decode(type, from: data)
    }
}
