/// Keptn's `webhook/webhook.yaml` (webhook-service, `webhookconfig.keptn.sh/v1beta1` and the
/// older `v1alpha1` whose requests are curl command lines), read with a diagnostic at its line and
/// column for everything Keptn would refuse only when an event arrives, or misread.
///
/// Where Shipyard differs from Keptn's reader (webhook-service/lib/webhook_config.go):
/// - a `v1alpha1` request is parsed here, option by option, into a method, URL, headers and body;
///   no shell and no curl ever run it. The options it reads are listed in `CurlCommand`.
/// - templates are parsed when the file is read (Keptn finds a broken one at send time), and a
///   `.env.NAME` must name an `envFrom` entry;
/// - `PATCH` and `DELETE`, which Keptn's spec documents and its code refuses, are accepted.
public struct WebhookFile: Sendable, Equatable {
    public static let v1alpha1 = "webhookconfig.keptn.sh/v1alpha1"
    public static let v1beta1 = "webhookconfig.keptn.sh/v1beta1"
    public static let methods = ["POST", "PUT", "GET", "HEAD", "PATCH", "DELETE"]
    /// At most this many requests per webhook, and webhooks per file.
    public static let maxRequests = 16
    public static let maxWebhooks = 256

    public var apiVersion: String
    public var webhooks: [Webhook]

    /// The webhook a subscription calls: by subscription id when it names one (Keptn's rule: the
    /// first webhook with that id), otherwise the first whose type is the event's.
    public func webhook(subscriptionID: String?, type: String) -> Webhook? {
        if let subscriptionID { return webhooks.first { $0.subscriptionID == subscriptionID } }
        return webhooks.first { $0.type == type }
    }

    /// A secret's name or key, an envFrom name: letters, digits, `.`, `_` and `-` (a file name
    /// in the secret's folder, never `.` or `..`).
    public static func isSecretName(_ text: String) -> Bool {
        !text.isEmpty && text.count <= 253 && text != "." && text != ".."
            && text.unicodeScalars.allSatisfy { $0.isASCII && ($0.properties.isAlphabetic || ("0"..."9").contains($0) || "._-".unicodeScalars.contains($0)) }
    }

    public static func recognizes(_ root: YAMLNode) -> Bool {
        (root["apiVersion"]?.scalar?.text ?? "").hasPrefix("webhookconfig.keptn.sh/")
    }

    public static func load(_ text: String) -> (file: WebhookFile?, diagnostics: [Diagnostic]) {
        load(Array(text.utf8))
    }

    /// Reads a webhook.yaml. The file comes back only without errors: a webhook with a broken
    /// request never half-runs.
    public static func load(_ bytes: some Collection<UInt8>) -> (file: WebhookFile?, diagnostics: [Diagnostic]) {
        var log = DiagnosticLog()
        guard let root = SchemaReader().document(
            bytes, empty: "a webhook file has apiVersion, kind, metadata and spec.webhooks",
            what: "a webhook file is a mapping with apiVersion, kind, metadata and spec", log: &log)
        else { return (nil, log.sorted) }
        var reader = WebhookFileReader(log: log)
        let file = reader.read(root)
        return (reader.log.hasErrors ? nil : file, reader.log.sorted)
    }
}

public struct Webhook: Sendable, Equatable {
    /// The event type the file says it is for (Keptn never compares it; Shipyard uses it when a
    /// subscription names no subscription id).
    public var type: String
    public var subscriptionID: String
    public var sendStarted: Bool
    public var sendFinished: Bool
    /// `.env.NAME` → a key of a named secret.
    public var secrets: [SecretReference]
    public var requests: [WebhookRequest]
    public var mark: SourceMark

    public struct SecretReference: Sendable, Equatable {
        public var env: String
        public var secret: String
        public var key: String
    }

}

/// One HTTP request of a webhook, every part a template over the event.
public struct WebhookRequest: Sendable, Equatable {
    public struct Header: Sendable, Equatable {
        public var name: WebhookTemplate
        public var value: WebhookTemplate
    }

    public var method: String
    public var url: WebhookTemplate
    public var headers: [Header]
    public var payload: WebhookTemplate?
    /// `--location`: follow redirects (the host config must allow it too).
    public var followRedirects: Bool
    /// `--max-time` in seconds, when the file asks for less than the host's limit.
    public var maxTime: Double?
    public var mark: SourceMark
    /// How the file wrote it, for messages and the record (templates unrendered, so no secret).
    public var written: String
}

private struct WebhookFileReader {
    var log: DiagnosticLog
    let schema = SchemaReader()

    mutating func read(_ root: YAMLNode) -> WebhookFile {
        var top: [String: YAMLPair] = [:]
        _ = schema.mapping(root, of: "the webhook file", allowed: ["apiVersion", "kind", "metadata", "spec"], log: &log, into: &top)
        let version = top["apiVersion"].flatMap { SLOFile.scalarText($0.value) } ?? ""
        if ![WebhookFile.v1alpha1, WebhookFile.v1beta1].contains(version) {
            log.error(
                "apiVersion must be \(WebhookFile.v1beta1) (requests as url, method, headers, payload) or \(WebhookFile.v1alpha1) (requests as curl command lines)\(version.isEmpty ? "" : ", not \"\(version)\"")",
                at: top["apiVersion"]?.value.mark ?? root.mark)
        }
        if let kind = top["kind"], SLOFile.scalarText(kind.value) != "WebhookConfig" {
            log.warning("kind is WebhookConfig in Keptn's webhook files", at: kind.value.mark)
        }
        var file = WebhookFile(apiVersion: version, webhooks: [])
        guard let spec = top["spec"], !spec.value.isNull else {
            log.error("the webhook file has no spec; add spec: with webhooks: under it", at: root.mark)
            return file
        }
        var specKeys: [String: YAMLPair] = [:]
        guard schema.mapping(spec.value, of: "spec", allowed: ["webhooks"], log: &log, into: &specKeys) else { return file }
        guard let list = specKeys["webhooks"], let items = schema.list(list.value, what: "spec.webhooks", log: &log), !items.isEmpty else {
            if specKeys["webhooks"]?.value.sequence?.isEmpty ?? true, specKeys["webhooks"]?.value.mapping == nil {
                log.error("spec.webhooks is empty; a webhook file has at least one webhook", at: specKeys["webhooks"]?.value.mark ?? spec.value.mark)
            }
            return file
        }
        if items.count > WebhookFile.maxWebhooks {
            log.error("spec.webhooks has \(items.count) webhooks; at most \(WebhookFile.maxWebhooks) are read", at: list.value.mark)
            return file
        }
        var seen: [String: SourceMark] = [:]
        for item in items {
            guard let webhook = readWebhook(item, version: version) else { continue }
            if !webhook.subscriptionID.isEmpty, let first = seen[webhook.subscriptionID] {
                log.warning(
                    "subscriptionID \"\(webhook.subscriptionID)\" is also at line \(first.line); Keptn calls only the first webhook with an id, so this one never runs",
                    at: webhook.mark)
            } else {
                seen[webhook.subscriptionID] = webhook.mark
            }
            file.webhooks.append(webhook)
        }
        return file
    }

    private mutating func readWebhook(_ node: YAMLNode, version: String) -> Webhook? {
        var keys: [String: YAMLPair] = [:]
        guard schema.mapping(
            node, of: "a webhook", allowed: ["type", "subscriptionID", "sendStarted", "sendFinished", "envFrom", "requests"], log: &log, into: &keys)
        else { return nil }
        let errorsBefore = log.items.filter { $0.severity == .error }.count
        func text(_ key: String, hint: String) -> String {
            guard let pair = keys[key], !pair.value.isNull else {
                log.error("a webhook needs \(key): \(hint)", at: node.mark)
                return ""
            }
            guard let text = SLOFile.scalarText(pair.value), !text.isEmpty else {
                log.error("\(key) must be a string, not \(pair.value.kindDescription)", at: pair.value.mark)
                return ""
            }
            return text
        }
        let type = text("type", hint: "the event it is for, such as sh.keptn.event.approval.triggered")
        if !type.isEmpty {
            if case .task(let task, let phase)? = KeptnEvent.kind(of: type), !task.isEmpty, ["triggered", "started", "finished"].contains(phase) {
            } else {
                log.error("type must be a task event, sh.keptn.event.TASK.triggered|started|finished, not \"\(type)\"", at: keys["type"]!.value.mark)
            }
        }
        var subscriptionID = ""
        if let pair = keys["subscriptionID"], !pair.value.isNull {
            subscriptionID = SLOFile.scalarText(pair.value) ?? ""
            if subscriptionID.isEmpty { log.error("subscriptionID must be a string, not \(pair.value.kindDescription)", at: pair.value.mark) }
        } else {
            log.warning(
                "no subscriptionID: Keptn's webhook-service ignores this webhook; shipyardd calls it for a subscription that names its type and no subscriptionID",
                at: node.mark)
        }
        let sendStarted = flag(keys["sendStarted"], default: true)
        let sendFinished = flag(keys["sendFinished"], default: false)
        if sendFinished, !type.isEmpty, !type.hasSuffix(".triggered") {
            log.warning("sendFinished applies to a webhook for a .triggered event (one that performs the task); \(type) only notifies", at: keys["sendFinished"]!.value.mark)
        }
        var secrets = readEnvFrom(keys["envFrom"])
        impliedSecrets = []
        secretCollisions = []
        var requests: [WebhookRequest] = []
        if let pair = keys["requests"], let items = schema.list(pair.value, what: "requests", log: &log) {
            if items.isEmpty { log.error("requests is empty; a webhook sends at least one request", at: pair.value.mark) }
            if items.count > WebhookFile.maxRequests {
                log.error("requests has \(items.count) entries; at most \(WebhookFile.maxRequests) per webhook", at: pair.value.mark)
            }
            for item in items.prefix(WebhookFile.maxRequests) {
                let request = version == WebhookFile.v1alpha1 && item.scalar != nil ? readCurl(item) : readRequest(item, version: version)
                if let request { requests.append(request) }
            }
            for collision in secretCollisions { log.error(collision, at: pair.value.mark) }
            for implied in impliedSecrets {
                if let named = secrets.first(where: { $0.env == implied.env }), named != implied {
                    log.error("envFrom \"\(implied.env)\" names another secret than {{.secret.\(implied.secret).\(implied.key)}}, which becomes {{.env.\(implied.env)}}", at: pair.value.mark)
                } else if !secrets.contains(where: { $0.env == implied.env }) {
                    secrets.append(implied)
                }
            }
            for request in requests { checkTemplates(request, secrets: secrets) }
        } else if keys["requests"] == nil {
            log.error("a webhook needs requests: the HTTP requests it sends", at: node.mark)
        }
        guard log.items.filter({ $0.severity == .error }).count == errorsBefore else { return nil }
        return Webhook(
            type: type, subscriptionID: subscriptionID, sendStarted: sendStarted, sendFinished: sendFinished, secrets: secrets,
            requests: requests, mark: node.mark)
    }

    private mutating func flag(_ pair: YAMLPair?, default value: Bool) -> Bool {
        guard let pair, !pair.value.isNull else { return value }
        guard case .bool(let b)? = pair.value.scalar?.resolved else {
            log.error("\(pair.key.scalar?.text ?? "") must be true or false, not \(pair.value.kindDescription)", at: pair.value.mark)
            return value
        }
        return b
    }

    private mutating func readEnvFrom(_ pair: YAMLPair?) -> [Webhook.SecretReference] {
        guard let pair, !pair.value.isNull, let items = schema.list(pair.value, what: "envFrom", log: &log) else { return [] }
        var references: [Webhook.SecretReference] = []
        for item in items {
            var keys: [String: YAMLPair] = [:]
            guard schema.mapping(item, of: "an envFrom entry", allowed: ["name", "secretRef"], log: &log, into: &keys) else { continue }
            let name = keys["name"].flatMap { SLOFile.scalarText($0.value) } ?? ""
            guard WebhookFile.isSecretName(name) else {
                log.error("an envFrom entry needs name: the NAME of {{.env.NAME}} (letters, digits, _ and -)", at: keys["name"]?.value.mark ?? item.mark)
                continue
            }
            var ref: [String: YAMLPair] = [:]
            guard let secretRef = keys["secretRef"], schema.mapping(secretRef.value, of: "secretRef", allowed: ["name", "key"], log: &log, into: &ref) else {
                if keys["secretRef"] == nil { log.error("envFrom \"\(name)\" needs secretRef: with the secret's name and key", at: item.mark) }
                continue
            }
            let secret = ref["name"].flatMap { SLOFile.scalarText($0.value) } ?? ""
            let key = ref["key"].flatMap { SLOFile.scalarText($0.value) } ?? ""
            guard WebhookFile.isSecretName(secret), WebhookFile.isSecretName(key) else {
                log.error(
                    "secretRef needs name and key (letters, digits, ., _ and -): the secret and the key in it that the host config's secrets: point at",
                    at: secretRef.value.mark)
                continue
            }
            if references.contains(where: { $0.env == name }) {
                log.error("envFrom names \"\(name)\" twice", at: keys["name"]!.value.mark)
                continue
            }
            references.append(Webhook.SecretReference(env: name, secret: secret, key: key))
        }
        return references
    }


    /// `{{.secret.NAME.KEY}}`, the Bridge editor's syntax (Keptn's examples for Jenkins and
    /// GitHub use it), rewritten as the Bridge rewrites it on save: `{{.env.secret_NAMEKEY}}`
    /// (non-alphanumerics dropped) with an implied envFrom entry.
    var impliedSecrets: [Webhook.SecretReference] = []
    var secretCollisions: [String] = []

    private mutating func bridgeSecrets(_ text: String) -> String {
        // Only inside actions: https://vault.secret.example.com/ stays as written.
        var out = ""
        var rest = Substring(text)
        while let open = rest.range(of: "{{") {
            out += rest[..<open.upperBound]
            rest = rest[open.upperBound...]
            let close = rest.range(of: "}}")?.lowerBound ?? rest.endIndex
            out += rewriteSecrets(rest[..<close])
            rest = rest[close...]
        }
        return out + rest
    }

    private mutating func rewriteSecrets(_ action: Substring) -> String {
        var out = ""
        var rest = action
        while let range = rest.range(of: ".secret.") {
            out += rest[..<range.lowerBound]
            // Only where a field chain starts (`{{.secret.…`, `( .secret.…`, after a blank):
            // `.data.secret.token` is the event's own field.
            let before = range.lowerBound == action.startIndex ? nil : action[action.index(before: range.lowerBound)]
            if let before, !(before == " " || before == "(" || before == "\t" || before == "-") {
                out += ".secret."
                rest = rest[range.upperBound...]
                continue
            }
            var tail = rest[range.upperBound...]
            let allowed: (Character) -> Bool = { $0.isASCII && ($0.isLetter || $0.isNumber || $0 == "-" || $0 == "_" || $0 == ".") }
            let reference = tail.prefix(while: allowed)
            guard let dot = reference.firstIndex(of: "."), dot != reference.startIndex, reference.index(after: dot) != reference.endIndex else {
                out += ".secret."
                rest = tail
                continue
            }
            let secret = String(reference[..<dot])
            let key = String(reference[reference.index(after: dot)...])
            let env = "secret_" + (secret + key).filter { $0.isASCII && ($0.isLetter || $0.isNumber) }
            if let other = impliedSecrets.first(where: { $0.env == env }), other.secret != secret || other.key != key {
                secretCollisions.append("{{.secret.\(secret).\(key)}} and {{.secret.\(other.secret).\(other.key)}} both become {{.env.\(env)}} as the Bridge writes them; name them under envFrom instead")
            } else if !impliedSecrets.contains(where: { $0.env == env }) {
                impliedSecrets.append(.init(env: env, secret: secret, key: key))
            }
            out += ".env." + env
            tail = tail.dropFirst(reference.count)
            rest = tail
        }
        return out + rest
    }

    private mutating func template(_ text: String, what: String, at mark: SourceMark) -> WebhookTemplate? {
        let text = text.contains(".secret.") ? bridgeSecrets(text) : text
        do {
            return try WebhookTemplate(text)
        } catch {
            log.error("\(what): \(error.message)", at: mark)
            return nil
        }
    }

    private mutating func readRequest(_ node: YAMLNode, version: String) -> WebhookRequest? {
        if node.scalar != nil {
            log.error("in a \(WebhookFile.v1beta1) file a request is a mapping with url, method, headers and payload; curl command lines belong to \(WebhookFile.v1alpha1)", at: node.mark)
            return nil
        }
        var keys: [String: YAMLPair] = [:]
        guard schema.mapping(node, of: "a request", allowed: ["url", "method", "headers", "payload", "options"], log: &log, into: &keys) else { return nil }
        let url = keys["url"].flatMap { SLOFile.scalarText($0.value) } ?? ""
        if url.isEmpty { log.error("a request needs url:", at: keys["url"]?.value.mark ?? node.mark) }
        let method = keys["method"].flatMap { SLOFile.scalarText($0.value) } ?? ""
        if !WebhookFile.methods.contains(method) {
            let hint = WebhookFile.methods.contains(method.uppercased()) ? "; write it in capitals: \(method.uppercased())" : ""
            log.error("a request needs method: one of \(WebhookFile.methods.joined(separator: ", "))\(method.isEmpty ? "" : ", not \"\(method)\"")\(hint)", at: keys["method"]?.value.mark ?? node.mark)
        }
        var headers: [(String, String, SourceMark)] = []
        if let pair = keys["headers"], !pair.value.isNull, let items = schema.list(pair.value, what: "headers", log: &log) {
            for item in items {
                var h: [String: YAMLPair] = [:]
                guard schema.mapping(item, of: "a header", allowed: ["key", "value"], log: &log, into: &h) else { continue }
                let key = h["key"].flatMap { SLOFile.scalarText($0.value) } ?? ""
                let value = h["value"].flatMap { SLOFile.scalarText($0.value) } ?? ""
                guard !key.isEmpty, !value.isEmpty else {
                    log.error("a header needs key: and value:, neither empty", at: item.mark)
                    continue
                }
                headers.append((key, value, item.mark))
            }
        }
        var payload: String?
        if let pair = keys["payload"], !pair.value.isNull {
            payload = SLOFile.scalarText(pair.value)
            if payload == nil { log.error("payload must be a string (the body, a template), not \(pair.value.kindDescription); write it as a block: payload: |", at: pair.value.mark) }
        }
        var request = WebhookRequest(
            method: method, url: .empty, headers: [], payload: nil, followRedirects: false,
            maxTime: nil, mark: node.mark, written: "\(method) \(url)")
        if let options = keys["options"].flatMap({ SLOFile.scalarText($0.value) }), !options.isEmpty {
            do {
                let parsed = try CurlCommand.parse(options, optionsOnly: true)
                request.followRedirects = parsed.followRedirects
                request.maxTime = parsed.maxTime
            } catch {
                log.error("options: \(error.message)", at: keys["options"]!.value.mark)
            }
        }
        guard !url.isEmpty, let urlTemplate = template(url, what: "url", at: keys["url"]!.value.mark) else { return nil }
        request.url = urlTemplate
        for (key, value, mark) in headers {
            guard let name = template(key, what: "header key", at: mark), let text = template(value, what: "header \(key)", at: mark) else { continue }
            request.headers.append(.init(name: name, value: text))
        }
        if let payload { request.payload = template(payload, what: "payload", at: keys["payload"]!.value.mark) }
        return request
    }

    private mutating func readCurl(_ node: YAMLNode) -> WebhookRequest? {
        guard let line = SLOFile.scalarText(node) else { return nil }
        let command: CurlCommand
        do {
            command = try CurlCommand.parse(line, optionsOnly: false)
        } catch {
            log.error("\(error.message)", at: node.mark)
            return nil
        }
        guard let url = template(command.url, what: "the URL", at: node.mark) else { return nil }
        var request = WebhookRequest(
            method: command.method, url: url, headers: [], payload: nil, followRedirects: command.followRedirects, maxTime: command.maxTime,
            mark: node.mark, written: line)
        for (key, value) in command.headers {
            guard let name = template(key, what: "header key", at: node.mark), let text = template(value, what: "header \(key)", at: node.mark) else { continue }
            request.headers.append(.init(name: name, value: text))
        }
        if let data = command.data { request.payload = template(data, what: "--data", at: node.mark) }
        return request
    }

    /// `.env.NAME` must be an envFrom name; `.secret.…` is the Bridge's editor syntax.
    private mutating func checkTemplates(_ request: WebhookRequest, secrets: [Webhook.SecretReference]) {
        var templates = [request.url] + request.headers.flatMap { [$0.name, $0.value] }
        if let payload = request.payload { templates.append(payload) }
        for chain in templates.flatMap(\.fieldChains) {
            if chain.first == "env" {
                guard chain.count == 2 else {
                    log.error("{{.\(chain.joined(separator: "."))}}: a secret is {{.env.NAME}}, NAME an envFrom entry", at: request.mark)
                    continue
                }
                if !secrets.contains(where: { $0.env == chain[1] }) {
                    log.error(
                        "{{.env.\(chain[1])}} names no envFrom entry of this webhook\(secrets.isEmpty ? "" : " (it has \(secrets.map(\.env).joined(separator: ", ")))"); add - name: \(chain[1]) with its secretRef",
                        at: request.mark)
                }
            }
        }
    }
}

extension WebhookTemplate {
    static let empty = try! WebhookTemplate("")
}
