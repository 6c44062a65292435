import Foundation
import ShipyardCore
import ShipyardGit

/// Finds the webhook a subscription calls in the repository at the sequence's commit.
enum WebhookFiles {
    static let maxBytes = 256 << 10

    struct Found: Sendable {
        var webhook: Webhook
        var file: String
        /// More specific files passed over (malformed, a link, too large): said in the log.
        var passedOver: [String] = []
    }

    /// Keptn's order: the service's file, the stage's, the project's; the first that has the
    /// webhook wins (no merging). A file that cannot be read is passed over, and said.
    static func paths(stage: String, service: String) -> [String] {
        ["\(stage)/\(service)/webhook/webhook.yaml", "\(stage)/webhook/webhook.yaml", "webhook/webhook.yaml"]
    }

    static func load(mirror: Mirror, commit: String?, event: KeptnEvent, subscription: DaemonConfig.WebhookSubscription) -> Result<Found, OutboundFailure> {
        guard let commit else { return .failure(OutboundFailure("the sequence names no commit to read webhook.yaml from")) }
        let stage = event.data["stage"]?.string ?? ""
        let service = event.data["service"]?.string ?? ""
        let paths = paths(stage: stage, service: service)
        var notes: [String] = []
        for path in paths {
            let file: Mirror.File
            do {
                file = try mirror.file(at: ObjectID(hex: commit), path: path, limit: maxBytes)
            } catch {
                return .failure(OutboundFailure("cannot read \(path) at \(commit.prefix(12)): \(error)"))
            }
            switch file {
            case .missing:
                continue
            case .notAFile(let kind):
                notes.append("\(path) is \(kind), not read")
            case .tooLarge(let size):
                notes.append("\(path) is \(ByteCount.format(size)), over the \(ByteCount.format(maxBytes)) read")
            case .blob(_, let bytes):
                let loaded = WebhookFile.load(bytes)
                guard let parsed = loaded.file else {
                    let first = loaded.diagnostics.first { $0.severity == .error }.map { $0.formatted(file: path) } ?? path
                    notes.append("\(first) (shipyardctl lint \(path) lists every problem)")
                    continue
                }
                if let webhook = parsed.webhook(subscriptionID: subscription.subscriptionID, type: subscription.eventType) {
                    return .success(Found(webhook: webhook, file: path, passedOver: notes))
                }
            }
        }
        let wanted = subscription.subscriptionID.map { "subscriptionID \"\($0)\"" } ?? "type \(subscription.eventType)"
        var message = "no webhook with \(wanted) in \(paths.joined(separator: ", ")) at commit \(commit.prefix(12))"
        if !notes.isEmpty { message += " (\(notes.joined(separator: "; ")))" }
        return .failure(OutboundFailure(message))
    }
}

/// Renders a webhook's requests for one event and sends them.
struct WebhookSender: Sendable {
    var settings: DaemonConfig.Webhooks
    var project: DaemonConfig.Project
    var event: KeptnEvent
    /// The web view's public URL, without a trailing slash ("" without one).
    var base: String
    var limiter: WebhookLimiter
    var retries: Int

    /// What templates see: the CloudEvent, `.env` (the webhook's secrets) and `.shipyard` (links).
    func data(secrets: [String: String]) -> JSONValue {
        var root: JSONValue = (try? JSON.decode(JSONValue.self, from: JSON.encode(event))) ?? .object([:])
        root["env"] = .object(secrets.mapValues(JSONValue.string))
        root["shipyard"] = .object([
            "url": .string(base),
            "deliveryURL": .string(base.isEmpty ? "" : "\(base)/deliveries/\(event.shkeptncontext)"),
            "approvalsURL": .string(base.isEmpty ? "" : "\(base)/approvals"),
        ])
        return root
    }

    func call(_ request: WebhookRequest, webhook: Webhook) async -> WebhookCall {
        var call = WebhookCall(method: request.method, url: request.written)
        var secrets: [String: String] = [:]
        for reference in webhook.secrets {
            do {
                secrets[reference.env] = try WebhookSecrets.value(project: project, secret: reference.secret, key: reference.key)
            } catch {
                call.message = error.message
                return call
            }
        }
        let mask = Masker(secrets: Array(secrets.values))
        let data = data(secrets: secrets)
        var outbound: OutboundHTTP.Request
        do {
            outbound = try render(request, data: data)
        } catch {
            call.message = mask(error.message)
            return call
        }
        // The URL as the record keeps it: rendered with every secret as ***, so that no form of
        // one (escaped by a function, cut, joined) reaches the record; masked as a fallback.
        let shown = self.data(secrets: secrets.mapValues { _ in "***" })
        call.url = mask((try? request.url.render(shown)) ?? outbound.url)
        outbound.followRedirects = request.followRedirects && settings.followRedirects
        var timeout = settings.timeout
        if let maxTime = request.maxTime, maxTime.isFinite, maxTime > 0 {
            let asked = Duration.milliseconds(Int64(max(1, min(maxTime, 86_400) * 1000)))
            if asked < timeout { timeout = asked }
        }
        let http = OutboundHTTP(limits: .init(timeout: timeout, maxResponseBytes: settings.maxResponseBytes, allow: settings.allow, caFile: settings.caFile))
        let started = ContinuousClock.now
        while true {
            call.attempts += 1
            await limiter.acquire()
            let request = outbound
            let response = await TaskRunner.onThread(name: "webhook") { http.send(request) }
            limiter.release()
            call.status = response.status
            // Masked whole, then cut: a secret the receiver echoes at the cut is masked too.
            call.fullBody = mask(String(decoding: response.body, as: UTF8.self))
            call.body = String(call.fullBody.prefix(Orchestrator.webhookExcerpt))
            if let failure = response.failure {
                call.outcome = response.refused ? "refused" : response.timedOut ? "timeout" : "error"
                call.message = mask(failure)
            } else if (200..<300).contains(response.status) {
                call.outcome = "ok"
                call.message = response.truncated ? "the body was longer than \(ByteCount.format(settings.maxResponseBytes)); the rest was not read" : ""
            } else {
                call.outcome = "failed"
                call.message = (300..<400).contains(response.status)
                    ? "a redirect\(response.locationHeader.map { " to \(mask($0))" } ?? ""), not followed: the file's --location and webhooks.followRedirects in the host config must both allow it"
                    : ""
            }
            let transient = call.outcome == "timeout" || call.outcome == "error" || response.status >= 500 || response.status == 429
            guard transient, call.attempts <= retries else { break }
            // 1 s, 4 s, 16 s, then every minute.
            let delay = min(60, pow(4, Double(call.attempts - 1)))
            try? await Task.sleep(for: .seconds(delay))
        }
        call.milliseconds = Int((ContinuousClock.now - started).seconds * 1000)
        return call
    }

    struct RenderFailure: Error {
        var message: String
    }

    func render(_ request: WebhookRequest, data: JSONValue) throws(RenderFailure) -> OutboundHTTP.Request {
        func text(_ template: WebhookTemplate, _ what: String) throws(RenderFailure) -> String {
            do {
                return try template.render(data)
            } catch {
                throw RenderFailure(message: "\(what): \(error.message)")
            }
        }
        let url = try text(request.url, "url")
        var headers: [(String, String)] = []
        for header in request.headers {
            let name = try text(header.name, "a header's key")
            let value = try text(header.value, "header \(name)")
            guard !name.isEmpty, name.unicodeScalars.allSatisfy({ $0.isASCII && $0.value > 0x20 && $0.value < 0x7F && !"()<>@,;:\\\"/[]?={}".unicodeScalars.contains($0) }) else {
                throw RenderFailure(message: "a header's key rendered to something that is not a header name (letters, digits and !#$%&'*+-.^_`|~)")
            }
            guard !value.unicodeScalars.contains(where: { $0 == "\r" || $0 == "\n" || $0 == "\0" }) else {
                throw RenderFailure(message: "header \(name): the value holds a line break, which would add a header of its own")
            }
            headers.append((name, value))
        }
        let body = try request.payload.map { template throws(RenderFailure) in Array(try text(template, "payload").utf8) }
        return OutboundHTTP.Request(method: request.method, url: url, headers: headers, body: body)
    }
}

/// Replaces every secret, as written and as a URL would escape it, with `***`.
struct Masker: Sendable {
    var forms: [String]

    init(secrets: [String]) {
        var forms: Set<String> = []
        for secret in secrets where !secret.isEmpty {
            forms.formUnion(WebhookTemplate.writtenForms(of: secret))
            if let escaped = secret.addingPercentEncoding(withAllowedCharacters: .alphanumerics) { forms.insert(escaped) }
            if let escaped = secret.addingPercentEncoding(withAllowedCharacters: .urlQueryAllowed) { forms.insert(escaped) }
        }
        forms.remove("")
        // Longest first: a secret inside another is masked as part of it.
        self.forms = forms.sorted { $0.count > $1.count }
    }

    func callAsFunction(_ text: String) -> String {
        var text = text
        for form in forms { text = text.replacingOccurrences(of: form, with: "***") }
        return text
    }
}
