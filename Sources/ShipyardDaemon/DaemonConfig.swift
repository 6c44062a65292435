public import ShipyardCore
import Foundation
import ShipyardGit

/// The daemon's configuration file (`/etc/shipyardd/config.yaml`): which repositories to watch,
/// which local programs run which task names, and who may approve.
///
/// This file is the trust boundary: Git decides which tasks run in which order, only this file
/// decides what program a task name runs.
public struct DaemonConfig: Sendable, Equatable {
    public var stateDirectory: String
    public var projects: [Project]
    public var tasks: [String: TaskExecutor]
    public var approvers: Approvers?
    /// Who may `shipyardctl send event` (answer external tasks); nil: nobody.
    public var eventSenders: Approvers?
    /// Who may pause, resume and abort; nil: the approvers (everyone in the group without them).
    public var sequenceControl: Approvers?
    /// A program told about approvals (waiting, resolved) with the request as JSON on stdin.
    public var notify: TaskExecutor?
    /// On SIGTERM, how long running tasks may go on before they are interrupted (and run again
    /// at the next start).
    public var stopGracePeriod: Duration = .seconds(30)
    /// How long a triggered task may wait for its `.started` or `.finished` (Keptn's 10 minutes).
    public var taskStartTimeout: Duration = .seconds(600)
    /// How long a task an external service started may go without its `.finished`; nil: forever.
    public var taskFinishTimeout: Duration? = .seconds(86400)
    /// How many sequences one context may run (`triggeredOn` loops stop there).
    public var maxSequencesPerContext = 50
    /// How long ended deliveries stay in the record (`history: {keep: 180d}`); nil: forever.
    public var historyKeep: Duration?
    /// How many threads poll upstreams at most (nil: 4 per core, at least 4, at most 64).
    public var pollThreads: Int?
    /// The web view, API and /metrics; nil: no HTTP server.
    public var http: HTTP?
    /// Who may approve which gate, how many must, and for how long (`approvalPolicies`); empty:
    /// Keptn's one approval by any of `approvers`.
    public var approvalPolicies: [ApprovalPolicy] = []

    /// One entry of `approvalPolicies`: matched by project and stage (either left out matches
    /// all); the most specific entry that matches wins.
    public struct ApprovalPolicy: Sendable, Equatable {
        public var project: String?
        public var stage: String?
        /// Who may approve or reject this gate; nil: the config's `approvers`.
        public var approvers: Approvers?
        /// Distinct people who must approve.
        public var required = 1
        /// Whether the person who started the delivery may approve it.
        public var allowSelfApproval = false
        /// When it passes, the approval is declined with reason "expired".
        public var expireAfter: Duration?
        /// The notify program is told again at this interval while the approval waits.
        public var remindAfter: Duration?

        public init(project: String? = nil, stage: String? = nil, approvers: Approvers? = nil, required: Int = 1) {
            self.project = project
            self.stage = stage
            self.approvers = approvers
            self.required = required
        }

        /// 3: project and stage, 2: project, 1: stage, 0: every gate.
        var specificity: Int { (project != nil ? 2 : 0) + (stage != nil ? 1 : 0) }

        func matches(project: String, stage: String) -> Bool {
            (self.project == nil || self.project == project) && (self.stage == nil || self.stage == stage)
        }

        public var scope: String {
            switch (project, stage) {
            case let (project?, stage?): return "\(stage) of \(project)"
            case let (project?, nil): return "project \(project)"
            case let (nil, stage?): return stage
            case (nil, nil): return "every gate"
            }
        }
    }

    /// The policy of an approval in this project and stage: the most specific entry that matches.
    public func approvalPolicy(project: String, stage: String) -> ApprovalPolicy? {
        approvalPolicies.filter { $0.matches(project: project, stage: stage) }.max { $0.specificity < $1.specificity }
    }

    /// `http: {listen: 127.0.0.1:8420, auth: …}`.
    public struct HTTP: Sendable, Equatable {
        public enum Listen: Sendable, Equatable, CustomStringConvertible {
            case tcp(host: String, port: Int)
            case unix(path: String)

            public var description: String {
                switch self {
                case .tcp(let host, let port): return host.contains(":") ? "[\(host)]:\(port)" : "\(host):\(port)"
                case .unix(let path): return "unix:\(path)"
                }
            }
        }

        /// Who may act in the browser and through the API; without it the web view is read-only.
        public enum Auth: Sendable, Equatable {
            /// Users and bcrypt hashes (`htpasswd -B`), with a login form and a session cookie,
            /// and HTTP Basic for scripts.
            case htpasswd(path: String)
            /// A reverse proxy that authenticated the user (SSO) names them in this header; it is
            /// believed only from these addresses (and always on a unix socket, whose file
            /// permissions say who may connect).
            case proxy(header: String, trusted: [CIDR])
        }

        public var listen: Listen
        public var auth: Auth?
        /// Over the local socket, the peers that are reverse proxies passing on web users
        /// (`user:www-data`, `uid:33` in `trustedProxies`): their users sign in (htpasswd) or are
        /// named by `proxyHeader`. Every other peer is the user the kernel names.
        public var proxyUsers: [String] = []
        /// The address people open (https://… behind a TLS proxy): cookies are `Secure` when it
        /// is https. Optional.
        public var publicURL: String?

        public init(listen: Listen, auth: Auth? = nil, publicURL: String? = nil) {
            self.listen = listen
            self.auth = auth
            self.publicURL = publicURL
        }

        public var secureCookies: Bool { publicURL?.hasPrefix("https://") ?? false }
    }

    /// An address range: `10.0.0.0/8`, `::1/128`, or one address.
    public struct CIDR: Sendable, Equatable {
        public var address: [UInt8]
        public var prefix: Int

        public init?(_ text: String) {
            let parts = text.split(separator: "/", maxSplits: 1)
            guard let bytes = Self.bytes(String(parts[0])) else { return nil }
            let bits = bytes.count * 8
            if parts.count == 2 {
                guard let prefix = Int(parts[1]), (0...bits).contains(prefix) else { return nil }
                self.prefix = prefix
            } else {
                prefix = bits
            }
            address = bytes
        }

        /// An IPv4 or IPv6 address as bytes (an IPv4-mapped IPv6 address as IPv4).
        public static func bytes(_ text: String) -> [UInt8]? {
            var v4 = in_addr()
            if inet_pton(AF_INET, text, &v4) == 1 { return withUnsafeBytes(of: &v4) { Array($0) } }
            var v6 = in6_addr()
            if inet_pton(AF_INET6, text, &v6) == 1 {
                let bytes = withUnsafeBytes(of: &v6) { Array($0) }
                if bytes[0..<10].allSatisfy({ $0 == 0 }), bytes[10] == 0xFF, bytes[11] == 0xFF { return Array(bytes[12...]) }
                return bytes
            }
            return nil
        }

        public func contains(_ text: String) -> Bool {
            guard let other = Self.bytes(text), other.count == address.count else { return false }
            var remaining = prefix
            for (a, b) in zip(address, other) {
                guard remaining > 0 else { return true }
                let bits = min(8, remaining)
                let mask = UInt8(truncatingIfNeeded: 0xFF << (8 - bits))
                if a & mask != b & mask { return false }
                remaining -= bits
            }
            return true
        }
    }
    /// The poll pool's size when `pollThreads` is not set, on this machine.
    public static var defaultPollThreads: Int { BlockingPool.defaultSize }

    public struct Project: Sendable, Equatable {
        public var name: String
        public var upstream: String
        public var branch: String
        public var shipyardPath: String
        public var pollInterval: Duration
        /// How long one poll may take before it is reported as timed out (libgit2 1.5 has no
        /// network timeout of its own).
        public var pollTimeout: Duration
        public var credentials: Credentials?
        /// Where `evaluation` gets its SLI values; nil: Keptn's "no SLI provider configured" pass.
        public var sliProvider: SLIProvider?
        /// The SLO file in the repository, `{stage}` and `{service}` expanded.
        public var sloPath = "{stage}/{service}/slo.yaml"
        /// The SLI files, merged in order (a later one wins); nil: the provider's default.
        public var sliPaths: [String]?
        /// Whether an evaluation without an SLO file fails (Keptn passes it).
        public var requireSLO = false

        /// The SLI files read for this project, before `{stage}`/`{service}` are expanded.
        public var effectiveSLIPaths: [String] {
            if let sliPaths { return sliPaths }
            switch sliProvider {
            case .prometheus?: return ["prometheus/sli.yaml", "{stage}/prometheus/sli.yaml", "{stage}/{service}/prometheus/sli.yaml"]
            case .command?, nil: return []
            }
        }

        public init(
            name: String, upstream: String, branch: String = "main", shipyardPath: String = "shipyard.yaml",
            pollInterval: Duration = .seconds(30), pollTimeout: Duration = .seconds(60), credentials: Credentials? = nil
        ) {
            self.name = name
            self.upstream = upstream
            self.branch = branch
            self.shipyardPath = shipyardPath
            self.pollInterval = pollInterval
            self.pollTimeout = pollTimeout
            self.credentials = credentials
        }
    }

    public struct Credentials: Sendable, Equatable {
        public var username: String?
        public var passwordFile: String?
        public var sshKey: String?
        public var knownHosts: String?

        public init(username: String? = nil, passwordFile: String? = nil, sshKey: String? = nil, knownHosts: String? = nil) {
            self.username = username
            self.passwordFile = passwordFile
            self.sshKey = sshKey
            self.knownHosts = knownHosts
        }
    }

    public struct TaskExecutor: Sendable, Equatable {
        public var command: [String]
        public var timeout: Duration
    }

    /// A project's SLI provider: a local program, or the built-in Prometheus client.
    public enum SLIProvider: Sendable, Equatable {
        case command(TaskExecutor)
        case prometheus(Prometheus)

        public var name: String {
            switch self {
            case .command: return "command"
            case .prometheus: return "prometheus"
            }
        }
    }

    public struct Prometheus: Sendable, Equatable {
        /// The server's base URL (http or https), e.g. http://127.0.0.1:9090.
        public var url: String
        public var timeout: Duration = .seconds(30)
        public var username: String?
        /// HTTP Basic password, or with `bearerTokenFile` a token; read at each evaluation.
        public var passwordFile: String?
        public var bearerTokenFile: String?

        public init(url: String) {
            self.url = url
        }
    }

    /// Users and groups allowed to do something (approve, send events, pause/resume/abort).
    public struct Approvers: Sendable, Equatable {
        public var users: [String]
        public var groups: [String]

        public init(users: [String], groups: [String]) {
            self.users = users
            self.groups = groups
        }

        public func admits(user: String, groups memberOf: Set<String>) -> Bool {
            users.contains(user) || groups.contains(where: memberOf.contains)
        }

        public var description: String {
            "users [\(users.joined(separator: ", "))] and groups [\(groups.joined(separator: ", "))]"
        }
    }

    public static let defaultPath = "/etc/shipyardd/config.yaml"
    public static let defaultStateDirectory = "/var/lib/shipyardd"
    public static let defaultTaskTimeout: Duration = .seconds(15 * 60)

    public func project(named name: String) -> Project? {
        projects.first { $0.name == name }
    }
}

/// The outcome of reading a config file: the config when it has no errors, and every finding.
public struct ConfigDocument: Sendable {
    public var config: DaemonConfig?
    public var diagnostics: [Diagnostic]

    public init(config: DaemonConfig?, diagnostics: [Diagnostic]) {
        self.config = config
        self.diagnostics = diagnostics
    }
}

/// Reads the daemon's config with the same YAML layer and `FILE:LINE:COLUMN` reporting as shipyards.
public enum ConfigLoader {
    /// `environment` supplies `STATE_DIRECTORY`, which systemd sets from `StateDirectory=`.
    public static func load(_ bytes: some Collection<UInt8>, environment: [String: String] = [:]) -> ConfigDocument {
        var reader = ConfigReader(environment: environment)
        do {
            let root = try YAMLParser().parse(bytes)
            let config = reader.read(root)
            return ConfigDocument(config: reader.log.hasErrors ? nil : config, diagnostics: reader.log.sorted)
        } catch {
            reader.log.error(error.message, at: error.mark)
            return ConfigDocument(config: nil, diagnostics: reader.log.sorted)
        }
    }

    public static func load(_ text: String, environment: [String: String] = [:]) -> ConfigDocument {
        load(Array(text.utf8), environment: environment)
    }
}

private struct ConfigReader {
    var log = DiagnosticLog()
    let schema = SchemaReader()
    let environment: [String: String]

    init(environment: [String: String]) {
        self.environment = environment
    }

    mutating func read(_ root: YAMLNode?) -> DaemonConfig? {
        guard let root, !root.isNull else {
            log.error("the config file is empty; it needs at least a 'projects:' list", at: .start)
            return nil
        }
        var top: [String: YAMLPair] = [:]
        guard schema.mapping(root, of: "the config", allowed: [
            "stateDirectory", "projects", "tasks", "approvers", "notify", "stopGracePeriod", "taskStartTimeout", "taskFinishTimeout",
            "maxSequencesPerContext", "eventSenders", "sequenceControl", "history", "pollThreads", "http", "approvalPolicies",
        ], log: &log, into: &top) else {
            return nil
        }
        var stateDirectory = environment["STATE_DIRECTORY"].flatMap { $0.split(separator: ":").first.map(String.init) }
            ?? DaemonConfig.defaultStateDirectory
        if let pair = top["stateDirectory"], !pair.value.isNull, let path = absolutePath(pair.value, what: "stateDirectory") {
            stateDirectory = path
        }
        let projects = readProjects(top["projects"], root: root)
        let tasks = readTasks(top["tasks"])
        let approvers = readApprovers(top["approvers"])
        let eventSenders = readPrincipals(top["eventSenders"], what: "eventSenders", empty: "nobody can send events; remove it to say the same")
        let sequenceControl = readPrincipals(
            top["sequenceControl"], what: "sequenceControl", empty: "nobody can pause, resume or abort; remove it to leave that to the approvers")
        let notify = top["notify"].flatMap { pair in pair.value.isNull ? nil : readExecutor(pair.value, what: "notify", defaultTimeout: .seconds(30)) }
        var config = DaemonConfig(stateDirectory: stateDirectory, projects: projects, tasks: tasks, approvers: approvers, notify: notify)
        config.eventSenders = eventSenders
        config.sequenceControl = sequenceControl
        if let grace = duration(top["stopGracePeriod"], what: "stopGracePeriod", minimum: .zero) { config.stopGracePeriod = grace }
        if let start = duration(top["taskStartTimeout"], what: "taskStartTimeout", minimum: .seconds(1)) { config.taskStartTimeout = start }
        if let finish = duration(top["taskFinishTimeout"], what: "taskFinishTimeout", minimum: .zero) {
            config.taskFinishTimeout = finish == .zero ? nil : finish
        }
        if let pair = top["maxSequencesPerContext"], !pair.value.isNull {
            if let count = Self.wholeNumber(pair.value), count >= 1 {
                config.maxSequencesPerContext = count
            } else {
                log.error("maxSequencesPerContext must be a whole number of at least 1", at: pair.value.mark)
            }
        }
        config.historyKeep = readHistory(top["history"])
        if let pair = top["http"], !pair.value.isNull { config.http = readHTTP(pair.value) }
        if let pair = top["approvalPolicies"], !pair.value.isNull { config.approvalPolicies = readPolicies(pair.value, fallback: approvers) }
        if let pair = top["pollThreads"], !pair.value.isNull {
            if let count = Self.wholeNumber(pair.value), (1...256).contains(count) {
                config.pollThreads = count
            } else {
                log.error("pollThreads must be a whole number from 1 to 256 (the threads that poll upstreams; leave it out for 4 per core)", at: pair.value.mark)
            }
        }
        return config
    }

    /// A YAML integer (`50`), or a string holding one (`"50"`).
    static func wholeNumber(_ node: YAMLNode) -> Int? {
        switch node.scalar?.resolved {
        case .int(let value)?: return Int(exactly: value)
        case .string(let text)?: return Int(text)
        default: return nil
        }
    }

    /// `approvalPolicies: [{project, stage, approvers, required, allowSelfApproval, expireAfter, remindAfter}]`.
    private mutating func readPolicies(_ node: YAMLNode, fallback: DaemonConfig.Approvers?) -> [DaemonConfig.ApprovalPolicy] {
        guard let items = schema.list(node, what: "approvalPolicies", log: &log) else { return [] }
        var policies: [DaemonConfig.ApprovalPolicy] = []
        var seen: [String: SourceMark] = [:]
        for item in items {
            var fields: [String: YAMLPair] = [:]
            guard schema.mapping(
                item, of: "an approval policy",
                allowed: ["project", "stage", "approvers", "required", "allowSelfApproval", "expireAfter", "remindAfter"], log: &log, into: &fields)
            else { continue }
            var policy = DaemonConfig.ApprovalPolicy()
            if let pair = fields["project"], !pair.value.isNull { policy.project = schema.string(pair.value, what: "project", log: &log) }
            if let pair = fields["stage"], !pair.value.isNull { policy.stage = schema.string(pair.value, what: "stage", log: &log) }
            policy.approvers = readPrincipals(fields["approvers"], what: "approvers", empty: "nobody can decide this gate")
            if let pair = fields["required"], !pair.value.isNull {
                if let count = Self.wholeNumber(pair.value), (1...100).contains(count) {
                    policy.required = count
                } else {
                    log.error("required must be a whole number from 1 to 100 (distinct people who must approve)", at: pair.value.mark)
                }
            }
            if let pair = fields["allowSelfApproval"], !pair.value.isNull {
                if case .bool(let value)? = pair.value.scalar?.resolved { policy.allowSelfApproval = value } else {
                    log.error("allowSelfApproval must be true or false", at: pair.value.mark)
                }
            }
            policy.expireAfter = duration(fields["expireAfter"], what: "expireAfter", minimum: .seconds(1))
            policy.remindAfter = duration(fields["remindAfter"], what: "remindAfter", minimum: .seconds(1))
            let key = "\(policy.project ?? "*")/\(policy.stage ?? "*")"
            if let first = seen[key] {
                log.error("a second policy for \(policy.scope) (the first is at line \(first.line)); merge them", at: item.mark)
                continue
            }
            seen[key] = item.mark
            checkApprovers(policy, fallback: fallback, at: fields["approvers"]?.value.mark ?? item.mark, requiredMark: fields["required"]?.value.mark ?? item.mark)
            policies.append(policy)
        }
        return policies
    }

    /// Users and groups that do not exist (yet) are worth a warning; more required approvals than
    /// people who could give them is an error: the gate could never open.
    private mutating func checkApprovers(_ policy: DaemonConfig.ApprovalPolicy, fallback: DaemonConfig.Approvers?, at mark: SourceMark, requiredMark: SourceMark) {
        guard let approvers = policy.approvers ?? fallback else { return }
        // A user named is a person (a web-only user of the htpasswd file or an SSO proxy need
        // not exist on the host); a group counts the members it has on the host.
        var people = Set(approvers.users)
        for user in approvers.users where Accounts.primaryGroup(of: user) == nil {
            log.warning("approvers: no user \"\(user)\" on this host (yet); fine for a web-only user", at: mark)
        }
        for group in approvers.groups {
            guard let entry = getgrnam(group) else {
                log.warning("approvers: no group \"\(group)\" on this host (yet)", at: mark)
                continue
            }
            var member = entry.pointee.gr_mem
            while let name = member?.pointee {
                people.insert(String(cString: name))
                member = member?.advanced(by: 1)
            }
            let gid = entry.pointee.gr_gid
            setpwent()
            while let user = getpwent() {
                if user.pointee.pw_gid == gid, let name = user.pointee.pw_name { people.insert(String(cString: name)) }
            }
            endpwent()
        }
        if policy.required > people.count {
            log.error(
                "required is \(policy.required) but the approvers for \(policy.scope) are \(people.count) people (users named and members of groups on this host: \(people.sorted().joined(separator: ", "))): the gate could never open",
                at: requiredMark)
        } else if policy.required == people.count, !policy.allowSelfApproval {
            log.warning(
                "required is \(policy.required) and the approvers for \(policy.scope) are \(people.count == 1 ? "1 person" : "\(people.count) people") (\(people.sorted().joined(separator: ", "))) with allowSelfApproval false: a delivery \(people.count == 1 ? "they trigger" : "one of them triggers") can never pass this gate (\(people.count == 1 ? "nobody else may approve it" : "only \(people.count - 1) other\(people.count == 2 ? "" : "s") may approve it")); add an approver, lower required, or set allowSelfApproval: true",
                at: requiredMark)
        }
    }

    /// `http: {listen, auth: {htpasswd} | {proxyHeader, trustedProxies}, publicURL}`.
    private mutating func readHTTP(_ node: YAMLNode) -> DaemonConfig.HTTP? {
        var fields: [String: YAMLPair] = [:]
        guard schema.mapping(node, of: "http", allowed: ["listen", "auth", "publicURL"], log: &log, into: &fields) else { return nil }
        guard let pair = fields["listen"], !pair.value.isNull, let text = pair.value.string else {
            log.error("http needs listen: an address and port (127.0.0.1:8420) for the web view on TCP", at: fields["listen"]?.value.mark ?? node.mark)
            return nil
        }
        let listen: DaemonConfig.HTTP.Listen
        if text.hasPrefix("/") {
            listen = .unix(path: text)
            log.warning(
                "http.listen \(text): pages, API and metrics are served on the local API's socket (\(LocalAPI.systemSocket) under systemd, <state>/shipyardd.sock otherwise), which the CLI uses too; point the reverse proxy there",
                at: pair.value.mark)
        } else if let colon = text.lastIndex(of: ":"), let port = Int(text[text.index(after: colon)...]), (0...65535).contains(port) {
            var host = String(text[..<colon])
            if host.hasPrefix("["), host.hasSuffix("]") { host = String(host.dropFirst().dropLast()) }
            guard DaemonConfig.CIDR.bytes(host) != nil else {
                log.error("http.listen: \"\(host)\" is not an IP address; listen on 127.0.0.1 (or an address of this host) and put a reverse proxy in front for a name", at: pair.value.mark)
                return nil
            }
            listen = .tcp(host: host, port: port)
        } else {
            log.error("http.listen must be ADDRESS:PORT (127.0.0.1:8420, [::1]:8420) or an absolute unix socket path, not \"\(text)\"", at: pair.value.mark)
            return nil
        }
        var http = DaemonConfig.HTTP(listen: listen)
        if let pair = fields["publicURL"], !pair.value.isNull, let url = schema.string(pair.value, what: "http.publicURL", log: &log) {
            if url.hasPrefix("http://") || url.hasPrefix("https://") {
                http.publicURL = url
            } else {
                log.error("http.publicURL must be the http:// or https:// address people open", at: pair.value.mark)
            }
        }
        if let pair = fields["auth"], !pair.value.isNull {
            var auth: [String: YAMLPair] = [:]
            guard schema.mapping(pair.value, of: "http.auth", allowed: ["htpasswd", "proxyHeader", "trustedProxies"], log: &log, into: &auth) else { return http }
            var trusted: [DaemonConfig.CIDR] = []
            if let list = auth["trustedProxies"], !list.value.isNull, let items = schema.list(list.value, what: "http.auth.trustedProxies", log: &log) {
                for item in items {
                    guard let text = schema.string(item, what: "a trusted proxy", log: &log) else { continue }
                    if text.hasPrefix("user:") || text.hasPrefix("uid:") {
                        let value = text.hasPrefix("user:") ? String(text.dropFirst(5)) : String(text.dropFirst(4))
                        if text.hasPrefix("uid:"), UInt32(value) == nil {
                            log.error("\"\(text)\" is not uid:NUMBER (the proxy's user id, e.g. uid:33)", at: item.mark)
                        } else if value.isEmpty {
                            log.error("\"\(text)\" names no user: write user:www-data (the reverse proxy's user)", at: item.mark)
                        } else {
                            if text.hasPrefix("user:"), Accounts.uid(of: value) == nil {
                                log.warning("trustedProxies: this host has no user \(value); nothing is believed from it until it exists", at: item.mark)
                            }
                            if value == "root" || (text.hasPrefix("uid:") && UInt32(value) == 0) || (text.hasPrefix("user:") && Accounts.uid(of: value) == 0) {
                                log.error("trustedProxies: root is no proxy; every shipyardctl run by root would be believed as whoever its header names", at: item.mark)
                                continue
                            }
                            http.proxyUsers.append(text)
                        }
                    } else if let range = DaemonConfig.CIDR(text) {
                        trusted.append(range)
                    } else {
                        log.error("\"\(text)\" is not an address or range like 127.0.0.1/32, or a proxy's user on the local socket like user:www-data or uid:33", at: item.mark)
                    }
                }
            }
            if let file = auth["htpasswd"], !file.value.isNull {
                if auth["proxyHeader"] != nil {
                    log.error("http.auth takes htpasswd or proxyHeader, not both", at: pair.value.mark)
                }
                if let path = absolutePath(file.value, what: "http.auth.htpasswd") {
                    checkSecret(path, what: "http.auth.htpasswd", at: file.value.mark)
                    http.auth = .htpasswd(path: path)
                }
            } else if let header = auth["proxyHeader"], !header.value.isNull {
                guard let name = schema.string(header.value, what: "http.auth.proxyHeader", log: &log) else { return http }
                guard !name.isEmpty, name.unicodeScalars.allSatisfy({ $0.isASCII && ($0.properties.isAlphabetic || ("0"..."9").contains($0) || $0 == "-") }) else {
                    log.error("http.auth.proxyHeader must be a header name like X-Forwarded-User", at: header.value.mark)
                    return http
                }
                if case .unix = listen, http.proxyUsers.isEmpty {
                    log.error(
                        "http.auth.proxyHeader on the local socket needs the proxy's user in trustedProxies (user:www-data or uid:33): every member of the socket's group can connect, and the header is believed only from the proxy",
                        at: header.value.mark)
                }
                if trusted.isEmpty, case .tcp = listen {
                    log.error("http.auth.proxyHeader needs trustedProxies, the addresses of the reverse proxy (e.g. [127.0.0.1/32]): the header is believed only from them", at: header.value.mark)
                }
                if case .tcp = listen, trusted.contains(where: { $0.contains("127.0.0.1") || $0.contains("::1") }) {
                    log.warning(
                        "with proxyHeader on a loopback address, any user of this host can send \(name) and be believed; let the proxy use the local socket (\(LocalAPI.systemSocket)) with trustedProxies: [user:PROXY-USER] instead",
                        at: header.value.mark)
                }
                http.auth = .proxy(header: name, trusted: trusted)
            } else if auth["trustedProxies"] != nil, case .unix = listen {
                log.error("http.auth on the local socket takes htpasswd (its users sign in through the proxy) or proxyHeader (the proxy names them), besides trustedProxies", at: pair.value.mark)
            } else {
                log.error("http.auth needs htpasswd: FILE, or proxyHeader: X-Forwarded-User with trustedProxies", at: pair.value.mark)
            }
        }
        var proxied = false
        if case .proxy? = http.auth { proxied = true }
        if case .unix(let path) = listen, http.proxyUsers.isEmpty, !proxied {
            log.error(
                "http.listen \(path): on the local socket every caller is the user the kernel names, so a reverse proxy there would act as its own user for every visitor; name its user in http.auth.trustedProxies (user:www-data) beside htpasswd or proxyHeader, or listen on 127.0.0.1:PORT",
                at: pair.value.mark)
        }
        return http
    }

    /// `history: {keep: 180d}`: a period in days (`d`), weeks (`w`) or a Go duration (`4320h`).
    private mutating func readHistory(_ pair: YAMLPair?) -> Duration? {
        guard let pair, !pair.value.isNull else { return nil }
        var fields: [String: YAMLPair] = [:]
        guard schema.mapping(pair.value, of: "history", allowed: ["keep"], log: &log, into: &fields) else { return nil }
        guard let keep = fields["keep"], !keep.value.isNull else {
            log.error("history needs 'keep:', how long ended deliveries stay in the record (e.g. keep: 180d); leave history out to keep them forever", at: pair.value.mark)
            return nil
        }
        guard let text = keep.value.string else {
            log.error("history.keep must be a period like \"180d\", \"26w\" or \"4320h\", not \(keep.value.kindDescription)", at: keep.value.mark)
            return nil
        }
        let period: Duration
        if let unit = text.last, unit == "d" || unit == "w", let count = Int(text.dropLast()), count >= 0, count < 100_000 {
            period = .seconds(Int64(count) * (unit == "d" ? 86400 : 7 * 86400))
        } else {
            do {
                period = try GoDuration.duration(text)
            } catch {
                log.error("history.keep: \"\(text)\" is not a period like \"180d\", \"26w\" or \"4320h\"", at: keep.value.mark)
                return nil
            }
        }
        guard period >= .seconds(3600) else {
            log.error("history.keep must be at least 1h: ended deliveries are kept at least that long", at: keep.value.mark)
            return nil
        }
        return period
    }

    // MARK: Projects

    private mutating func readProjects(_ pair: YAMLPair?, root: YAMLNode) -> [DaemonConfig.Project] {
        guard let pair, !pair.value.isNull else {
            log.error("projects is missing; list the repositories to watch under 'projects:'", at: root.mark)
            return []
        }
        guard let items = schema.list(pair.value, what: "projects", log: &log) else { return [] }
        if items.isEmpty {
            log.error("projects is empty; add at least one project with a name and an upstream", at: pair.value.mark)
        }
        var projects: [DaemonConfig.Project] = []
        var seen: [String: SourceMark] = [:]
        for item in items {
            guard let project = readProject(item) else { continue }
            if let first = seen[project.name] {
                log.error("duplicate project name \"\(project.name)\" (first defined at line \(first.line))", at: item["name"]?.mark ?? item.mark)
                continue
            }
            seen[project.name] = item["name"]?.mark ?? item.mark
            projects.append(project)
        }
        return projects
    }

    private mutating func readProject(_ node: YAMLNode) -> DaemonConfig.Project? {
        var fields: [String: YAMLPair] = [:]
        guard schema.mapping(
            node, of: "a project",
            allowed: ["name", "upstream", "branch", "shipyardPath", "pollInterval", "pollTimeout", "credentials", "sliProvider", "sloPath", "sliPath", "requireSLO"],
            log: &log, into: &fields)
        else { return nil }

        var name: String?
        if let pair = fields["name"], !pair.value.isNull {
            if let text = schema.string(pair.value, what: "a project name", log: &log) {
                if EntityName.check(text) != .valid || text.count > 200 {
                    log.error("project name \"\(text)\" is invalid: use \(EntityName.rule), at most 200 characters", at: pair.value.mark)
                } else {
                    name = text
                }
            }
        } else {
            log.error("this project has no name; add 'name: ...'", at: node.mark)
        }

        var upstream: String?
        if let pair = fields["upstream"], !pair.value.isNull {
            upstream = readUpstream(pair.value)
        } else {
            log.error("this project has no upstream; add 'upstream: https://…/repo.git' (or file://, git://, ssh://)", at: node.mark)
        }

        var branch = "main"
        if let pair = fields["branch"], !pair.value.isNull, let text = schema.string(pair.value, what: "branch", log: &log) {
            if Self.isValidBranch(text) {
                branch = text
            } else {
                log.error("branch \"\(text)\" is not a valid Git branch name", at: pair.value.mark)
            }
        }

        var shipyardPath = "shipyard.yaml"
        if let pair = fields["shipyardPath"], !pair.value.isNull, let text = repositoryPath(pair.value, what: "shipyardPath", example: "\"shipyard.yaml\" or \"deploy/shipyard.yaml\"") {
            shipyardPath = text
        }

        let pollInterval = duration(fields["pollInterval"], what: "pollInterval", minimum: .seconds(1)) ?? .seconds(30)
        let pollTimeout = duration(fields["pollTimeout"], what: "pollTimeout", minimum: .seconds(1)) ?? .seconds(60)
        let credentials = fields["credentials"].flatMap { readCredentials($0.value, upstream: upstream) }
        if let upstream, upstream.hasPrefix("ssh://"), credentials?.knownHosts == nil {
            log.error(
                "an ssh upstream needs credentials.knownHosts (unknown host keys are refused); create it with ssh-keyscan",
                at: fields["credentials"]?.key.mark ?? fields["upstream"]?.value.mark ?? node.mark)
        }
        guard let name, let upstream else { return nil }
        var project = DaemonConfig.Project(
            name: name, upstream: upstream, branch: branch, shipyardPath: shipyardPath,
            pollInterval: pollInterval, pollTimeout: pollTimeout, credentials: credentials)
        readEvaluation(fields, into: &project)
        return project
    }

    /// A path inside the repository: Git's tree paths have no empty, "." or ".." component and
    /// no NUL (it would never match).
    private mutating func repositoryPath(_ node: YAMLNode, what: String, example: String) -> String? {
        guard let text = schema.string(node, what: what, log: &log) else { return nil }
        let parts = text.split(separator: "/", omittingEmptySubsequences: false)
        if text.hasPrefix("/") || text.isEmpty || parts.contains("..") || parts.contains(".") || parts.contains("") || text.contains("\u{0}") {
            log.error("\(what) must be a path inside the repository, like \(example)", at: node.mark)
            return nil
        }
        // Shown in status, logs and terminals: a control or invisible format character there
        // could hide or rewrite what an operator reads.
        if let bad = text.unicodeScalars.first(where: { $0.properties.generalCategory == .control || $0.properties.generalCategory == .format }) {
            log.error(
                "\(what) holds the character U+\(String(bad.value, radix: 16, uppercase: true).leftPadded(4)), a control or invisible format character; "
                    + "write the path with visible characters only, like \(example)",
                at: node.mark)
            return nil
        }
        return text
    }

    // MARK: Quality gates

    private mutating func readEvaluation(_ fields: [String: YAMLPair], into project: inout DaemonConfig.Project) {
        if let pair = fields["sliProvider"], !pair.value.isNull {
            project.sliProvider = readSLIProvider(pair.value)
        }
        let example = "\"{stage}/{service}/slo.yaml\""
        if let pair = fields["sloPath"], !pair.value.isNull, let path = repositoryPath(pair.value, what: "sloPath", example: example) {
            project.sloPath = path
        }
        if let pair = fields["sliPath"], !pair.value.isNull {
            let nodes = pair.value.sequence ?? [pair.value]
            project.sliPaths = nodes.compactMap { repositoryPath($0, what: "sliPath", example: "\"{stage}/{service}/prometheus/sli.yaml\"") }
        }
        if let pair = fields["requireSLO"], !pair.value.isNull {
            if case .bool(let value)? = pair.value.scalar?.resolved {
                project.requireSLO = value
            } else {
                log.error("requireSLO must be true or false", at: pair.value.mark)
            }
        }
    }

    /// `{command: [...], timeout: 1m}` or `{prometheus: {url, timeout, username, passwordFile, bearerTokenFile}}`.
    private mutating func readSLIProvider(_ node: YAMLNode) -> DaemonConfig.SLIProvider? {
        guard let pairs = node.mapping else {
            log.error("sliProvider must be {command: [\"/path/to/program\"], timeout: 1m} or {prometheus: {url: http://127.0.0.1:9090}}, not \(node.kindDescription)", at: node.mark)
            return nil
        }
        let keys = pairs.compactMap { $0.key.scalar?.text }
        if keys.contains("prometheus") {
            var fields: [String: YAMLPair] = [:]
            guard schema.mapping(node, of: "sliProvider", allowed: ["prometheus"], log: &log, into: &fields),
                let settings = fields["prometheus"]?.value
            else { return nil }
            var options: [String: YAMLPair] = [:]
            guard schema.mapping(settings, of: "sliProvider.prometheus", allowed: ["url", "timeout", "username", "passwordFile", "bearerTokenFile"], log: &log, into: &options) else {
                return nil
            }
            guard let urlPair = options["url"], let url = schema.string(urlPair.value, what: "sliProvider.prometheus.url", log: &log) else {
                if options["url"] == nil { log.error("sliProvider.prometheus needs url: (e.g. http://127.0.0.1:9090)", at: settings.mark) }
                return nil
            }
            guard url.hasPrefix("http://") || url.hasPrefix("https://"), url.count > 8, !url.contains("?"), !url.contains("#") else {
                log.error("sliProvider.prometheus.url must be an http:// or https:// URL of the server, like http://127.0.0.1:9090", at: urlPair.value.mark)
                return nil
            }
            if let scheme = url.range(of: "://"), url[scheme.upperBound...].prefix(while: { $0 != "/" }).contains("@") {
                log.error("sliProvider.prometheus.url holds credentials; use username and passwordFile (or bearerTokenFile)", at: urlPair.value.mark)
                return nil
            }
            var prometheus = DaemonConfig.Prometheus(url: url.hasSuffix("/") ? String(url.dropLast()) : url)
            if let timeout = duration(options["timeout"], what: "sliProvider.prometheus.timeout", minimum: .seconds(1)) { prometheus.timeout = timeout }
            if let pair = options["username"], !pair.value.isNull { prometheus.username = schema.string(pair.value, what: "username", log: &log) }
            for key in ["passwordFile", "bearerTokenFile"] {
                guard let pair = options[key], !pair.value.isNull, let path = absolutePath(pair.value, what: key) else { continue }
                checkSecret(path, what: key, at: pair.value.mark)
                if key == "passwordFile" { prometheus.passwordFile = path } else { prometheus.bearerTokenFile = path }
            }
            if prometheus.passwordFile != nil, prometheus.username == nil {
                log.error("passwordFile needs a username beside it (HTTP Basic authentication)", at: options["passwordFile"]!.key.mark)
            }
            if prometheus.passwordFile != nil, prometheus.bearerTokenFile != nil {
                log.error("give either passwordFile (HTTP Basic) or bearerTokenFile, not both", at: options["bearerTokenFile"]!.key.mark)
            }
            return .prometheus(prometheus)
        }
        return readExecutor(node, what: "sliProvider", defaultTimeout: .seconds(60)).map(DaemonConfig.SLIProvider.command)
    }

    private mutating func readUpstream(_ node: YAMLNode) -> String? {
        guard let text = schema.string(node, what: "upstream", log: &log) else { return nil }
        let schemes = ["file://", "git://", "http://", "https://", "ssh://"]
        guard schemes.contains(where: { text.hasPrefix($0) }), text.count > 7 else {
            if text.contains("@"), text.contains(":"), !text.contains("://") {
                log.error("write the upstream as a URL: ssh://\(text.replacingOccurrences(of: ":", with: "/"))", at: node.mark)
            } else if text.hasPrefix("/") {
                log.error("write a local upstream as a URL: file://\(text)", at: node.mark)
            } else {
                log.error("upstream \"\(text)\" must start with file://, git://, http://, https:// or ssh://", at: node.mark)
            }
            return nil
        }
        if let scheme = text.range(of: "://"),
            case let authority = text[scheme.upperBound...].prefix(while: { $0 != "/" && $0 != "?" && $0 != "#" }),
            let at = authority.lastIndex(of: "@"),
            text[scheme.upperBound..<at].contains(":") || text[scheme.upperBound..<at].lowercased().contains("%3a")
        {
            log.error("upstream holds a password; put it in a file and name it in credentials.passwordFile", at: node.mark)
            return nil
        }
        if RemoteAccess.holdsCredential(text) {
            // Never shown (pages, status, the journal show it as ***), but a config file is read
            // by more eyes than a secret's file should be.
            log.warning(
                "upstream holds a credential (\(RemoteAccess.redact(text))); it is never shown, but it belongs in credentials.username and credentials.passwordFile (a file only the daemon can read)",
                at: node.mark)
        }
        return text
    }

    private mutating func readCredentials(_ node: YAMLNode, upstream: String?) -> DaemonConfig.Credentials? {
        if node.isNull { return nil }
        var fields: [String: YAMLPair] = [:]
        guard schema.mapping(node, of: "credentials", allowed: ["username", "passwordFile", "sshKey", "knownHosts"], log: &log, into: &fields) else {
            return nil
        }
        var credentials = DaemonConfig.Credentials()
        if let pair = fields["username"], !pair.value.isNull {
            credentials.username = schema.string(pair.value, what: "username", log: &log)
        }
        let isHTTP = upstream.map { $0.hasPrefix("http://") || $0.hasPrefix("https://") } ?? true
        let isSSH = upstream.map { $0.hasPrefix("ssh://") } ?? true
        if let pair = fields["passwordFile"], !pair.value.isNull {
            credentials.passwordFile = absolutePath(pair.value, what: "passwordFile")
            if let path = credentials.passwordFile { checkSecret(path, what: "passwordFile", at: pair.value.mark) }
            if !isHTTP { log.error("passwordFile is for http(s) upstreams; this upstream is not one", at: pair.key.mark) }
            if credentials.username == nil {
                log.error("passwordFile needs a username beside it (for a token, any name the server accepts)", at: pair.key.mark)
            }
        }
        for key in ["sshKey", "knownHosts"] {
            guard let pair = fields[key], !pair.value.isNull else { continue }
            let path = absolutePath(pair.value, what: key)
            if key == "sshKey" {
                credentials.sshKey = path
                if let path { checkSecret(path, what: "sshKey", at: pair.value.mark) }
            } else {
                credentials.knownHosts = path
            }
            if !isSSH { log.error("\(key) is for ssh:// upstreams; this upstream is not one", at: pair.key.mark) }
        }
        return credentials
    }

    /// A secret readable by anyone but its owner (the daemon's user) is worth a warning: the
    /// operators' group reads the config, not the credentials.
    private mutating func checkSecret(_ path: String, what: String, at mark: SourceMark) {
        var info = stat()
        guard stat(path, &info) == 0, info.st_mode & 0o077 != 0 else { return }
        let owner = Accounts.name(uid: info.st_uid) ?? "uid \(info.st_uid)"
        log.warning(
            "\(what) \(path) is readable by more than its owner \(owner) (mode \(String(info.st_mode & 0o777, radix: 8))): make it readable by the daemon's user alone (sudo chown shipyard \(path) && sudo chmod 0400 \(path)), or hand it over with systemd's LoadCredential=",
            at: mark)
    }

    // MARK: Tasks and approvers

    private mutating func readTasks(_ pair: YAMLPair?) -> [String: DaemonConfig.TaskExecutor] {
        guard let pair, !pair.value.isNull else { return [:] }
        guard let entries = pair.value.mapping else {
            log.error("tasks must be a mapping from task name to {command, timeout}, not \(pair.value.kindDescription)", at: pair.value.mark)
            return [:]
        }
        var tasks: [String: DaemonConfig.TaskExecutor] = [:]
        for entry in entries {
            let name = entry.key.scalar?.text ?? ""
            if name == "approval" {
                log.error("approval is built in and cannot be given a command", at: entry.key.mark)
                continue
            }
            if name == "evaluation" {
                log.error("evaluation is built in (Keptn's quality gate); give the project an sliProvider instead of a command", at: entry.key.mark)
                continue
            }
            if let executor = readExecutor(entry.value, what: "task \"\(name)\"", defaultTimeout: DaemonConfig.defaultTaskTimeout) {
                tasks[name] = executor
            }
        }
        return tasks
    }

    /// `{command: ["/abs/program", "arg"], timeout: 15m}`.
    private mutating func readExecutor(_ node: YAMLNode, what: String, defaultTimeout: Duration) -> DaemonConfig.TaskExecutor? {
        var fields: [String: YAMLPair] = [:]
        guard schema.mapping(node, of: what, allowed: ["command", "timeout"], log: &log, into: &fields) else { return nil }
        guard let commandPair = fields["command"], !commandPair.value.isNull else {
            log.error("\(what) has no command; add 'command: [\"/path/to/program\", \"arg\"]'", at: node.mark)
            return nil
        }
        guard let items = schema.list(commandPair.value, what: "command", log: &log) else { return nil }
        let command = items.compactMap { schema.string($0, what: "a command argument", log: &log) }
        guard command.count == items.count else { return nil }
        guard let program = command.first else {
            log.error("command is empty; name the program to run", at: commandPair.value.mark)
            return nil
        }
        guard program.hasPrefix("/") else {
            log.error("the program \"\(program)\" must be an absolute path (no shell and no PATH lookup is used)", at: items[0].mark)
            return nil
        }
        let timeout = duration(fields["timeout"], what: "timeout", minimum: .seconds(1)) ?? defaultTimeout
        return DaemonConfig.TaskExecutor(command: command, timeout: timeout)
    }

    private mutating func readApprovers(_ pair: YAMLPair?) -> DaemonConfig.Approvers? {
        readPrincipals(pair, what: "approvers", empty: "nobody can approve; remove it to let every operator approve")
    }

    /// `{users: [...], groups: [...]}`; `empty` says what an empty one means.
    private mutating func readPrincipals(_ pair: YAMLPair?, what: String, empty: String) -> DaemonConfig.Approvers? {
        guard let pair, !pair.value.isNull else { return nil }
        var fields: [String: YAMLPair] = [:]
        guard schema.mapping(pair.value, of: what, allowed: ["users", "groups"], log: &log, into: &fields) else { return nil }
        func names(_ key: String, _ log: inout DiagnosticLog) -> [String] {
            guard let pair = fields[key], !pair.value.isNull,
                let items = schema.list(pair.value, what: "\(what).\(key)", log: &log)
            else { return [] }
            return items.compactMap { schema.string($0, what: "a name in \(what).\(key)", log: &log) }
        }
        let principals = DaemonConfig.Approvers(users: names("users", &log), groups: names("groups", &log))
        if principals.users.isEmpty, principals.groups.isEmpty {
            log.warning("\(what) lists no users and no groups, so \(empty)", at: pair.value.mark)
        }
        return principals
    }

    // MARK: Values

    private mutating func duration(_ pair: YAMLPair?, what: String, minimum: Duration) -> Duration? {
        guard let pair, !pair.value.isNull else { return nil }
        guard let text = pair.value.string else {
            log.error("\(what) must be a duration like \"30s\" or \"5m\", not \(pair.value.kindDescription)", at: pair.value.mark)
            return nil
        }
        do {
            let value = try GoDuration.duration(text)
            guard value >= minimum else {
                log.error("\(what) must be at least \(GoDuration.format(minimum))", at: pair.value.mark)
                return nil
            }
            return value
        } catch {
            log.error("\(what): \(error)", at: pair.value.mark)
            return nil
        }
    }

    private mutating func absolutePath(_ node: YAMLNode, what: String) -> String? {
        guard let text = schema.string(node, what: what, log: &log) else { return nil }
        guard text.hasPrefix("/") else {
            log.error("\(what) must be an absolute path, not \"\(text)\"", at: node.mark)
            return nil
        }
        return text
    }

    static func isValidBranch(_ name: String) -> Bool {
        guard !name.isEmpty, !name.hasPrefix("-"), !name.hasPrefix("/"), !name.hasSuffix("/"), !name.hasSuffix(".lock"),
            !name.hasSuffix("."), !name.contains(".."), !name.contains("//"), !name.contains("@{"), name != "@"
        else { return false }
        return name.unicodeScalars.allSatisfy { $0.value > 0x20 && $0.value != 0x7F && !"~^:?*[\\".unicodeScalars.contains($0) }
    }
}

extension String {
    fileprivate func leftPadded(_ width: Int) -> String {
        count >= width ? self : String(repeating: "0", count: width - count) + self
    }
}
