import ShipyardCore
import Foundation
import ShipyardGit

/// Reads the daemon's config with the same YAML layer and `FILE:LINE:COLUMN` reporting as shipyards.
public enum ConfigLoader {
    /// `environment` supplies `STATE_DIRECTORY`, which systemd sets from `StateDirectory=`.
    /// `host`: whether the files, programs and accounts the config names are looked for on this
    /// host, and what a missing one is.
    public static func load(_ bytes: some Collection<UInt8>, environment: [String: String] = [:], host: HostChecks = .off) -> ConfigDocument {
        var reader = ConfigReader(environment: environment)
        reader.host = host
        do {
            let root = try YAMLParser().parse(bytes)
            let config = reader.read(root)
            return ConfigDocument(config: reader.log.hasErrors ? nil : config, diagnostics: reader.log.sorted)
        } catch {
            reader.log.error(error.message, at: error.mark)
            return ConfigDocument(config: nil, diagnostics: reader.log.sorted)
        }
    }

    public static func load(_ text: String, environment: [String: String] = [:], host: HostChecks = .off) -> ConfigDocument {
        load(Array(text.utf8), environment: environment, host: host)
    }
}

/// What the config names on this host (files, programs, users, groups) and how a missing one
/// counts: not looked for (the config as text), warnings (the daemon's start and reload, and
/// `shipyardctl lint`: a program may be installed after the config), or errors for files and
/// programs (`shipyardd --check-config`: is this host ready for it?).
public enum HostChecks: Sendable {
    case off, warnings, errors
}

struct ConfigReader {
    var log = DiagnosticLog()
    let schema = SchemaReader()
    let environment: [String: String]
    var host = HostChecks.off
    /// Where each project's webhooks: list is written (for checks that need the whole config).
    var webhookMarks: [String: SourceMark] = [:]

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
            "store", "webhooks",
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
        if let pair = top["store"], !pair.value.isNull { config.postgres = readStore(pair.value) }
        if let pair = top["approvalPolicies"], !pair.value.isNull { config.approvalPolicies = readPolicies(pair.value, fallback: approvers) }
        if let pair = top["webhooks"], !pair.value.isNull { config.webhooks = readWebhookSettings(pair.value) }
        checkWebhookExecutors(projects, tasks: tasks, marks: webhookMarks)
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
    mutating func readPolicies(_ node: YAMLNode, fallback: DaemonConfig.Approvers?) -> [DaemonConfig.ApprovalPolicy] {
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
            policy.approvers = readPrincipals(fields["approvers"], what: "approvers", empty: "nobody can decide this gate", roles: false)
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
    mutating func checkApprovers(_ policy: DaemonConfig.ApprovalPolicy, fallback: DaemonConfig.Approvers?, at mark: SourceMark, requiredMark: SourceMark) {
        guard let approvers = policy.approvers ?? fallback else { return }
        // A user named is a person (a web-only user of the htpasswd file or an SSO proxy need
        // not exist on the host); a group counts the members it has on the host.
        var people = Set(approvers.users)
        // Users and groups unknown to the host were warned of where they are written (readPrincipals).
        for group in approvers.groups {
            guard let entry = getgrnam(group) else { continue }
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
    mutating func readHTTP(_ node: YAMLNode) -> DaemonConfig.HTTP? {
        var fields: [String: YAMLPair] = [:]
        guard schema.mapping(node, of: "http", allowed: ["listen", "auth", "publicURL", "apiTokens"], log: &log, into: &fields) else { return nil }
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
        if let pair = fields["apiTokens"], !pair.value.isNull, let path = absolutePath(pair.value, what: "http.apiTokens") {
            readAPITokens(path, http: http, at: pair.value.mark)
            http.apiTokens = path
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
                    checkExists(path, what: "http.auth.htpasswd", need: .read, at: file.value.mark)
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

    /// `store: {postgres: {url, passwordFile, name}}` (`store: {sqlite: {}}` is the default).
    mutating func readStore(_ node: YAMLNode) -> DaemonConfig.Postgres? {
        var kinds: [String: YAMLPair] = [:]
        guard schema.mapping(node, of: "store", allowed: ["postgres", "sqlite"], log: &log, into: &kinds) else { return nil }
        guard let pair = kinds["postgres"], !pair.value.isNull else { return nil }
        if kinds["sqlite"] != nil {
            log.error("store names both postgres and sqlite; keep one (sqlite: the record in the state directory, for one host)", at: node.mark)
        }
        var fields: [String: YAMLPair] = [:]
        guard schema.mapping(pair.value, of: "store.postgres", allowed: ["url", "passwordFile", "name"], log: &log, into: &fields) else { return nil }
        guard let urlPair = fields["url"], !urlPair.value.isNull, let url = schema.string(urlPair.value, what: "store.postgres.url", log: &log) else {
            log.error("store.postgres needs url: the database, as libpq takes it (postgresql://shipyard@db.example:5432/shipyard)", at: fields["url"]?.value.mark ?? pair.value.mark)
            return nil
        }
        if let parts = URLComponents(string: url), parts.password != nil {
            log.error("store.postgres.url holds a password; put it in a file only the daemon reads and name it in store.postgres.passwordFile", at: urlPair.value.mark)
            return nil
        }
        if url.range(of: #"(^|\s)password\s*="#, options: .regularExpression) != nil {
            log.error("store.postgres.url holds a password; put it in a file only the daemon reads and name it in store.postgres.passwordFile", at: urlPair.value.mark)
            return nil
        }
        var postgres = DaemonConfig.Postgres(url: url)
        if let file = fields["passwordFile"], !file.value.isNull, let path = absolutePath(file.value, what: "store.postgres.passwordFile") {
            checkExists(path, what: "store.postgres.passwordFile", need: .read, at: file.value.mark)
            checkSecret(path, what: "passwordFile", at: file.value.mark)
            postgres.passwordFile = path
        }
        if let name = fields["name"], !name.value.isNull, let text = schema.string(name.value, what: "store.postgres.name", log: &log) {
            if text.isEmpty || text.count > 100 || text.contains(where: { $0.isWhitespace || $0.isNewline }) {
                log.error("store.postgres.name must be 1 to 100 characters without spaces (it names this host to the others)", at: name.value.mark)
            } else {
                postgres.name = text
            }
        }
        return postgres
    }

    /// `history: {keep: 180d}`: a period in days (`d`), weeks (`w`) or a Go duration (`4320h`).
    mutating func readHistory(_ pair: YAMLPair?) -> Duration? {
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

    // MARK: Tasks and approvers

    mutating func readTasks(_ pair: YAMLPair?) -> [String: DaemonConfig.TaskExecutor] {
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
    mutating func readExecutor(_ node: YAMLNode, what: String, defaultTimeout: Duration) -> DaemonConfig.TaskExecutor? {
        var fields: [String: YAMLPair] = [:]
        guard schema.mapping(node, of: what, allowed: ["command", "timeout"], log: &log, into: &fields) else { return nil }
        // The timeout first: a mistake there is reported with one in the command, in one pass.
        let timeout = duration(fields["timeout"], what: "timeout", minimum: .seconds(1)) ?? defaultTimeout
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
        checkExists(program, what: "\(what): the program", need: .execute, at: items[0].mark)
        return DaemonConfig.TaskExecutor(command: command, timeout: timeout)
    }

    mutating func readApprovers(_ pair: YAMLPair?) -> DaemonConfig.Approvers? {
        readPrincipals(pair, what: "approvers", empty: "nobody can approve; remove it to let every operator approve", roles: false)
    }

    /// `{users: [...], groups: [...], roles: [...]}`; `empty` says what an empty one means.
    /// `roles`: whether API tokens' roles may be named (never for approvers: an approval names a person).
    mutating func readPrincipals(_ pair: YAMLPair?, what: String, empty: String, roles: Bool = true) -> DaemonConfig.Approvers? {
        guard let pair, !pair.value.isNull else { return nil }
        var fields: [String: YAMLPair] = [:]
        guard schema.mapping(pair.value, of: what, allowed: ["users", "groups", "roles"], log: &log, into: &fields) else { return nil }
        if !roles, let named = fields["roles"], !named.value.isNull {
            log.error("\(what) takes users and groups, not roles: an approval is a person's decision, and a role's API token is a program's (give the person a user: token)", at: named.key.mark)
        }
        func names(_ key: String, _ log: inout DiagnosticLog) -> [String] {
            guard let pair = fields[key], !pair.value.isNull,
                let items = schema.list(pair.value, what: "\(what).\(key)", log: &log)
            else { return [] }
            return items.compactMap { schema.string($0, what: "a name in \(what).\(key)", log: &log) }
        }
        var principals = DaemonConfig.Approvers(users: names("users", &log), groups: names("groups", &log))
        if roles {
            principals.roles = names("roles", &log)
            for (index, role) in principals.roles.enumerated() where !APITokens.isName(role) {
                log.error("\(what).roles: \"\(role)\" is not a role name (letters, digits, ., _ and -, as role:NAME in http.apiTokens)", at: fields["roles"]?.value.sequence?[index].mark ?? pair.value.mark)
            }
        }
        if principals.users.isEmpty, principals.groups.isEmpty, principals.roles.isEmpty {
            log.warning("\(what) lists no users\(roles ? ", groups or roles" : " and no groups"), so \(empty)", at: pair.value.mark)
        }
        checkAccounts(principals, what: what, at: pair.value.mark)
        return principals
    }

    // MARK: Values

    mutating func duration(_ pair: YAMLPair?, what: String, minimum: Duration) -> Duration? {
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

    mutating func absolutePath(_ node: YAMLNode, what: String) -> String? {
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
