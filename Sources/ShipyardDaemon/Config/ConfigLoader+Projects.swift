import ShipyardCore
import Foundation
import ShipyardGit

/// `projects:`: each project's upstream, branch, credentials, polling and quality-gate settings.
extension ConfigReader {

    mutating func readProjects(_ pair: YAMLPair?, root: YAMLNode) -> [DaemonConfig.Project] {
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

    mutating func readProject(_ node: YAMLNode) -> DaemonConfig.Project? {
        var fields: [String: YAMLPair] = [:]
        guard schema.mapping(
            node, of: "a project",
            allowed: ["name", "upstream", "branch", "shipyardPath", "pollInterval", "pollTimeout", "credentials", "sliProvider", "sloPath", "sliPath", "requireSLO",
                      "webhooks", "secrets"],
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
        // The quality gate's settings are checked whatever else is wrong: every mistake in one pass.
        var project = DaemonConfig.Project(
            name: name ?? "", upstream: upstream ?? "", branch: branch, shipyardPath: shipyardPath,
            pollInterval: pollInterval, pollTimeout: pollTimeout, credentials: credentials)
        readEvaluation(fields, into: &project)
        readProjectWebhooks(fields, into: &project)
        if let name, let pair = fields["webhooks"] { webhookMarks[name] = pair.key.mark }
        guard name != nil, upstream != nil else { return nil }
        return project
    }

    /// A path inside the repository: Git's tree paths have no empty, "." or ".." component and
    /// no NUL (it would never match).
    mutating func repositoryPath(_ node: YAMLNode, what: String, example: String) -> String? {
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
                "\(what) holds the character U+\(String(bad.value, radix: 16, uppercase: true).leftPadded(to: 4)), a control or invisible format character; "
                    + "write the path with visible characters only, like \(example)",
                at: node.mark)
            return nil
        }
        return text
    }

    // MARK: Quality gates

    mutating func readEvaluation(_ fields: [String: YAMLPair], into project: inout DaemonConfig.Project) {
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
    mutating func readSLIProvider(_ node: YAMLNode) -> DaemonConfig.SLIProvider? {
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
                checkExists(path, what: "sliProvider.prometheus.\(key)", need: .read, at: pair.value.mark)
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

    mutating func readUpstream(_ node: YAMLNode) -> String? {
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

    mutating func readCredentials(_ node: YAMLNode, upstream: String?) -> DaemonConfig.Credentials? {
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
            if let path = credentials.passwordFile {
                checkExists(path, what: "passwordFile", need: .read, at: pair.value.mark)
                checkSecret(path, what: "passwordFile", at: pair.value.mark)
            }
            if !isHTTP { log.error("passwordFile is for http(s) upstreams; this upstream is not one", at: pair.key.mark) }
            if credentials.username == nil {
                log.error("passwordFile needs a username beside it (for a token, any name the server accepts)", at: pair.key.mark)
            }
        }
        for key in ["sshKey", "knownHosts"] {
            guard let pair = fields[key], !pair.value.isNull else { continue }
            let path = absolutePath(pair.value, what: key)
            if let path { checkExists(path, what: key, need: .read, at: pair.value.mark) }
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
    mutating func checkSecret(_ path: String, what: String, at mark: SourceMark) {
        var info = stat()
        guard stat(path, &info) == 0, info.st_mode & 0o077 != 0 else { return }
        let owner = Accounts.name(uid: info.st_uid) ?? "uid \(info.st_uid)"
        log.warning(
            "\(what) \(path) is readable by more than its owner \(owner) (mode \(String(info.st_mode & 0o777, radix: 8))): make it readable by the daemon's user alone (sudo chown shipyard \(path) && sudo chmod 0400 \(path)), or hand it over with systemd's LoadCredential=",
            at: mark)
    }
}
