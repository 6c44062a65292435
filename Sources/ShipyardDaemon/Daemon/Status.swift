import Foundation
import ShipyardCore
import Synchronization

/// `status.json`: what the daemon is doing, for `shipyardctl status` and for monitoring.
public struct DaemonStatus: Codable, Sendable, Equatable {
    public var pid: Int32
    public var version: String
    public var startedAt: String
    /// Where the web view listens (`http://127.0.0.1:8420/`, `unix:/run/…`); absent without `http:`.
    public var web: String?
    public var projects: [ProjectStatus]
    /// With a shared PostgreSQL record: who leads, and every host's last heartbeat.
    public var cluster: ClusterStatus?
    /// Keptn integrations registered through the Uniform API, with when each was last seen.
    public var integrations: [Integration]?

    public init(pid: Int32, version: String, startedAt: String, web: String? = nil, projects: [ProjectStatus], cluster: ClusterStatus? = nil) {
        self.cluster = cluster
        self.pid = pid
        self.version = version
        self.startedAt = startedAt
        self.web = web
        self.projects = projects
    }
}

/// The shared record's leadership as this host last read it (every second while it stands by,
/// every few seconds while it leads).
public struct ClusterStatus: Codable, Sendable, Equatable {
    /// This host's name in the lease.
    public var name: String
    /// `leader` or `standby`.
    public var role: String
    public var leader: String?
    public var epoch: Int64?
    /// Since when the leader leads.
    public var leaderSince: String?
    public var hosts: [Host]
    /// When this was read from the database.
    public var readAt: String

    public struct Host: Codable, Sendable, Equatable {
        public var name: String
        public var host: String
        public var pid: Int32
        public var version: String
        public var startedAt: String
        public var lastHeartbeat: String
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
    /// Quality gates that passed without measuring anything (no SLO file), since the daemon started.
    public var qualityGate: QualityGateNotice?

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
        case nextPollAt, consecutiveFailures, error, qualityGate
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
        try c.encode(qualityGate, forKey: .qualityGate)
    }
}

/// Keptn passes an evaluation that has no SLO file; Shipyard does too, and says so here, so that
/// a gate that checks nothing does not go unnoticed (keptn#1212).
public struct QualityGateNotice: Codable, Sendable, Equatable {
    /// Evaluations that passed without an SLO file since the daemon started.
    public var passedWithoutSLO: Int
    public var lastMessage: String
    public var lastContext: String
    public var lastAt: String

    public init(passedWithoutSLO: Int, lastMessage: String, lastContext: String, lastAt: String) {
        self.passedWithoutSLO = passedWithoutSLO
        self.lastMessage = lastMessage
        self.lastContext = lastContext
        self.lastAt = lastAt
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

/// Every project's latest status, posted by the watchers as they poll (a lock, no actor hop:
/// a quiet poll costs O(1) here) and read by the daemon when it writes `status.json`.
final class StatusBoard: Sendable {
    private struct State {
        var statuses: [String: ProjectStatus] = [:]
        var notices: [String: QualityGateNotice] = [:]
        /// Each project's entry of `status.json`, encoded once per change.
        var fragments: [String: Data] = [:]
        var dirty = false
    }

    private let state = Mutex(State())
    /// One encoder for every entry (made once: making one costs more than using it).
    private let encoder = Mutex<JSONEncoder>({
        let encoder = JSONEncoder()
        encoder.outputFormatting = [.sortedKeys, .withoutEscapingSlashes]
        return encoder
    }())
    /// Called when a change people look for was posted (a commit, an error, a failure count,
    /// a first poll): the daemon writes `status.json` soon. Other changes (times only) wait
    /// for its next periodic write.
    private let urgent = Mutex<@Sendable () -> Void>({})

    func whenUrgent(_ action: @escaping @Sendable () -> Void) {
        urgent.withLock { $0 = action }
    }

    func post(_ status: ProjectStatus) {
        let isUrgent = state.withLock { s -> Bool in
            var status = status
            status.qualityGate = s.notices[status.name]
            let before = s.statuses.updateValue(status, forKey: status.name)
            s.fragments[status.name] = nil
            s.dirty = true
            return before.map { !Self.onlyTimesDiffer($0, status) } ?? true
        }
        if isUrgent { urgent.withLock { $0 }() }
    }

    /// An evaluation of the project passed without an SLO file.
    func notePassWithoutSLO(project: String, message: String, context: String) {
        state.withLock { s in
            var notice = s.notices[project] ?? QualityGateNotice(passedWithoutSLO: 0, lastMessage: "", lastContext: "", lastAt: "")
            notice.passedWithoutSLO += 1
            notice.lastMessage = message
            notice.lastContext = context
            notice.lastAt = Timestamps.format(Date())
            s.notices[project] = notice
            guard var status = s.statuses[project] else { return }
            status.qualityGate = notice
            s.statuses[project] = status
            s.fragments[project] = nil
            s.dirty = true
        }
        urgent.withLock { $0 }()
    }

    func remove(_ name: String) {
        state.withLock { s in
            s.statuses[name] = nil
            s.fragments[name] = nil
            s.notices[name] = nil
            s.dirty = true
        }
    }

    var errorCount: Int { state.withLock { s in s.statuses.values.filter { $0.error != nil }.count } }

    /// Whether anything was posted since the last `entries`.
    var isDirty: Bool { state.withLock { $0.dirty } }

    /// The projects' entries in this order, one JSON object per line, without the brackets.
    func entries(order: [String]) throws -> Data {
        try state.withLock { s in
            s.dirty = false
            var document = Data()
            for name in order {
                guard let status = s.statuses[name] else { continue }
                let fragment: Data
                if let cached = s.fragments[name] {
                    fragment = cached
                } else {
                    fragment = try encoder.withLock { try $0.encode(status) }
                    s.fragments[name] = fragment
                }
                if !document.isEmpty { document.append(Data(",\n".utf8)) }
                document.append(fragment)
            }
            return document
        }
    }

    /// Whether two statuses of a project differ only in when things happened (a quiet poll):
    /// whether there was a poll, a success or an error matters, not when.
    static func onlyTimesDiffer(_ a: ProjectStatus, _ b: ProjectStatus) -> Bool {
        a.commit == b.commit && a.shipyardCommit == b.shipyardCommit && a.consecutiveFailures == b.consecutiveFailures
            && (a.lastPollAt == nil) == (b.lastPollAt == nil) && (a.lastSuccessAt == nil) == (b.lastSuccessAt == nil)
            && a.error?.message == b.error?.message && a.error?.kind == b.error?.kind && a.error?.commit == b.error?.commit
            && a.stages == b.stages && a.upstream == b.upstream && a.branch == b.branch && a.shipyardPath == b.shipyardPath
    }
}
