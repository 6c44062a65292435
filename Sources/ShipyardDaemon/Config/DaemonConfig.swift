public import ShipyardCore
import Foundation
public import ShipyardStore
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
    /// `store: {postgres: {url, passwordFile}}`: the record on PostgreSQL, shared by every host
    /// that names it, one of them leading; nil: SQLite in the state directory (one host).
    public var postgres: Postgres?
    /// Who may approve which gate, how many must, and for how long (`approvalPolicies`); empty:
    /// Keptn's one approval by any of `approvers`.
    public var approvalPolicies: [ApprovalPolicy] = []
    public var webhooks = Webhooks()

    /// One entry of `approvalPolicies` (the rules themselves are ShipyardCore's).
    public typealias ApprovalPolicy = ShipyardCore.ApprovalPolicy

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
        /// The file of Keptn API tokens' hashes (`x-token`); nil: Keptn's API answers 401 to
        /// every caller but the local socket's.
        public var apiTokens: String?

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
        /// Which task events call the project's webhook.yaml (Git says what a request looks like;
        /// these say whether it is sent).
        public var webhooks: [WebhookSubscription] = []
        /// Secret name → the folder holding a file per key, for webhooks' `envFrom`.
        public var secrets: [String: String] = [:]

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

    /// `projects[].webhooks[]`: an event of a task (`on: TASK.PHASE`), optionally only in some
    /// stages or for some services, calls the webhook of webhook.yaml with `subscriptionID`, or
    /// without one the first whose `type` is the event's.
    public struct WebhookSubscription: Sendable, Equatable {
        public var task: String
        public var phase: String
        public var subscriptionID: String?
        public var stages: [String] = []
        public var services: [String] = []

        public var eventType: String { "sh.keptn.event.\(task).\(phase)" }
        /// The label it has in logs and metrics: bounded by the config, never by Git.
        public var name: String { subscriptionID ?? "\(task).\(phase)" }
        /// What tells it from every other subscription of its project.
        public var identity: String { "\(eventType) \(subscriptionID ?? "") \(stages) \(services)" }

        public func matches(stage: String, service: String) -> Bool {
            (stages.isEmpty || stages.contains(stage)) && (services.isEmpty || services.contains(service))
        }
    }

    /// `webhooks:` (top level): how every webhook request is sent.
    public struct Webhooks: Sendable, Equatable {
        /// The whole request, connection included (a file's --max-time may ask for less).
        public var timeout: Duration = .seconds(10)
        /// More of a response is not read (the excerpt kept is shorter still).
        public var maxResponseBytes = 1 << 20
        /// Whether a file's `-L`/`--location` may follow redirects (each target checked again).
        public var followRedirects = false
        /// Addresses refused by default (loopback, link-local and metadata, this host's own)
        /// that webhooks may call.
        public var allow: [CIDR] = []
        /// Certificates to trust besides the system's (a private CA), PEM.
        public var caFile: String?
        /// Attempts after the first for a notification that failed to arrive (back-off 1 s, 4 s, 16 s …).
        public var retries = 3
        /// Requests in flight at once for one subscription (a receiver that hangs holds up no other's).
        public var concurrency = 8

        public init() {}
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

    public struct Postgres: Sendable, Equatable {
        /// A libpq URI or key=value string without a password.
        public var url: String
        /// The password, read at start (the daemon's own file).
        public var passwordFile: String?
        /// How this daemon is named in the lease and among the hosts (default: host name).
        public var name: String?

        public init(url: String) {
            self.url = url
        }

        /// How this host connects: the password read from its file now.
        public func settings(holder: String) throws -> PostgresSettings {
            var password: String?
            if let file = passwordFile {
                guard let text = try? String(contentsOfFile: file, encoding: .utf8) else {
                    throw StoreError("cannot read store.postgres.passwordFile \(file): \(String(cString: strerror(errno))); it must be readable by the daemon's user")
                }
                password = text.trimmingCharacters(in: .newlines)
            }
            return PostgresSettings(url: url, password: password, holder: name ?? holder)
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
    public typealias Approvers = ShipyardCore.Approvers

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
