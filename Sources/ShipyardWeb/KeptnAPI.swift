import Foundation
import Hummingbird
import HTTPTypes
import NIOCore
import ShipyardCore
import ShipyardDaemon
import ShipyardGit
import ShipyardStore

/// Keptn's HTTP API, the part Keptn's `keptn` CLI and its go-sdk (job-executor-service and other
/// integrations) use, so that moving to Shipyard is changing an endpoint and a token. Every call
/// carries an `x-token` from `http.apiTokens` (or comes over the local socket, whose caller the
/// kernel names); every change goes through the daemon's command layer, judged there exactly as
/// the same user's shipyardctl would be. Replies have Keptn's shapes; errors are Keptn's
/// `{"code","message"}`.
///
/// Where Shipyard differs, on purpose: projects, stages and services come from the config and
/// Git (no `keptn create project`/`service`); a task's `.triggered` comes from the shipyard (as
/// in Keptn); a registered integration answers only tasks no local program runs.
extension Site {
    struct KeptnError: Encodable {
        var code: Int
        var message: String
    }

    /// The version of Keptn's API served (what `keptn` CLI 1.4.x expects to see).
    static let keptnVersion = "1.4.5"
    static let tokenHeader = HTTPField.Name("x-token")!

    func keptnError(_ status: HTTPResponse.Status, _ message: String) -> Response {
        json(KeptnError(code: status.code, message: message), status: status)
    }

    /// Who calls: over the local socket the user the kernel names (unless a proxy); otherwise the
    /// user or role of the request's `x-token`. Anything else is answered 401 before a byte of
    /// the body is read.
    func keptnCaller(_ request: Request, context: WebContext) -> Result<Caller, KeptnRefusal> {
        if let local = localCaller(context) { return .success(local) }
        guard let token = request.headers[Self.tokenHeader], !token.isEmpty else {
            return .failure(KeptnRefusal(.unauthorized, "unauthenticated for invalid credentials: send an API token in x-token (shipyardctl api-token new makes one)"))
        }
        guard let tokens = apiTokens?.tokens else {
            return .failure(KeptnRefusal(.unauthorized, "incorrect api key auth: this host takes no API tokens (no http.apiTokens in its config)"))
        }
        guard token.utf8.count <= 512, let principal = tokens.principal(of: token) else {
            return .failure(KeptnRefusal(.unauthorized, "incorrect api key auth"))
        }
        return .success(.api(principal))
    }

    struct KeptnRefusal: Error {
        var status: HTTPResponse.Status
        var message: String
        init(_ status: HTTPResponse.Status, _ message: String) {
            self.status = status
            self.message = message
        }
    }

    /// A Keptn API call: its caller first, then `body`; refusals counted and answered as Keptn does.
    func keptn(_ request: Request, _ context: WebContext, _ body: (Caller) async throws(KeptnRefusal) -> Response) async -> Response {
        switch keptnCaller(request, context: context) {
        case .failure(let refusal):
            daemon.metrics.request("api-auth", outcome: "refused")
            return keptnError(refusal.status, refusal.message)
        case .success(let caller):
            do {
                return try await body(caller)
            } catch {
                return keptnError(error.status, error.message)
            }
        }
    }

    /// A JSON body of at most `LocalAPI.maxBodyBytes`.
    func keptnBody(_ request: Request) async throws(KeptnRefusal) -> JSONValue {
        var request = request
        let buffer: ByteBuffer
        do {
            buffer = try await request.collectBody(upTo: LocalAPI.maxBodyBytes)
        } catch {
            throw KeptnRefusal(.contentTooLarge, "the body is larger than \(LocalAPI.maxBodyBytes) bytes")
        }
        guard buffer.readableBytes > 0 else { return .object([:]) }
        guard let value = try? JSON.decode(JSONValue.self, from: Data(buffer: buffer)), value.object != nil else {
            throw KeptnRefusal(.badRequest, "the body must be a JSON object")
        }
        return value
    }

    /// A command's answer as Keptn's API gives it: `{"keptnContext"}` when applied.
    func keptnAnswer(_ outcome: CommandOutcome, context: String?) -> Response {
        guard outcome.ok else {
            // Passing states a client should try again after.
            if outcome.message == "the daemon is starting" || outcome.message.contains("cannot be written") {
                return keptnError(.serviceUnavailable, outcome.message)
            }
            let status = Site.status(of: outcome)
            return keptnError(status == .conflict ? .badRequest : status, outcome.message)
        }
        var headers: [(HTTPField.Name, String)] = []
        if let warnings = outcome.warnings, !warnings.isEmpty {
            headers.append((HTTPField.Name("Shipyard-Warning")!, Untrusted.printable(warnings.joined(separator: "; "), limit: 1000)))
        }
        return json(["keptnContext": outcome.context ?? context ?? ""], extra: headers)
    }

    func keptnRoutes(_ router: Router<WebContext>) {
        // `keptn auth`: 200 and no body, as Keptn's api-service answers.
        router.post("/api/v1/auth") { request, context in
            await self.keptn(request, context) { _ in Response(status: .ok, headers: HTTPFields(Self.securityHeaders.map { HTTPField(name: $0.0, value: $0.1) })) }
        }
        router.get("/api/v1/metadata") { request, context in
            await self.keptn(request, context) { _ in
                self.json(KeptnMetadata(
                    automaticprovisioning: false, bridgeversion: Daemon.version, keptnlabel: "keptn", keptnversion: Self.keptnVersion,
                    namespace: "shipyard", shipyardversion: "0.2.0"))
            }
        }
        router.post("/api/v1/event") { request, context in
            await self.keptn(request, context) { caller throws(KeptnRefusal) in
                let body = try await self.keptnBody(request)
                return await self.keptnEvent(body, caller: caller, peer: context.remoteAddress?.description)
            }
        }
        projectRoutes(router)
        uniformRoutes(router)
        resourceRoutes(router)
    }

    /// `POST /api/v1/event`, checked as Keptn's api-service checks it, then applied as the same
    /// user's shipyardctl would: a sequence `.triggered` is a trigger, a task's `.started` and
    /// `.finished` are `send event`, and an `approval.finished` is approve or reject.
    func keptnEvent(_ body: JSONValue, caller: Caller, peer: String?) async -> Response {
        guard let type = body["type"]?.string, !type.isEmpty else { return keptnError(.badRequest, "type is required") }
        guard let source = body["source"]?.string, !source.isEmpty else { return keptnError(.badRequest, "source is required") }
        guard let data = body["data"], data.object != nil else { return keptnError(.badRequest, "data is required (an object)") }
        guard type.hasPrefix(KeptnEvent.prefix), let kind = KeptnEvent.kind(of: type) else {
            return keptnError(.badRequest, "\(Untrusted.printable(type, limit: 120)) is not a Keptn event type (sh.keptn.event.STAGE.SEQUENCE.triggered or sh.keptn.event.TASK.started|finished)")
        }
        // The client's id makes a retried event the same event (the go-sdk retries three times).
        let given = body["id"]?.string ?? ""
        let id = !given.isEmpty && given.count <= 128 && Untrusted.printable(given, limit: 128) == given && !given.contains(" ") ? given : UUID().uuidString.lowercased()
        switch kind {
        case .sequence(let stage, let name, let phase):
            guard phase == "triggered" else {
                return keptnError(.badRequest, "\(type): a sequence's .\(phase) comes from shipyardd; send sh.keptn.event.\(stage).\(name).triggered to start one")
            }
            for key in ["project", "stage", "service"] where (data[key]?.string ?? "").isEmpty {
                return keptnError(.badRequest, "data.\(key) is required for \(type)")
            }
            guard data["stage"]?.string == stage else {
                return keptnError(.badRequest, "data.stage \(Untrusted.printable(data["stage"]?.string ?? "", limit: 60)) is not the stage of \(type)")
            }
            var command = CommandRequest(id: CommandRequest.isValidID(id) ? id : CommandRequest.newID(), kind: .trigger, project: data["project"]?.string)
            command.sequence = name
            command.stage = stage
            command.service = data["service"]?.string
            command.image = data["configurationChange"]?["values"]?["image"]?.string
            if let labels = data["labels"]?.object {
                var strings: [String: String] = [:]
                for (key, value) in labels {
                    guard let text = value.string else { return keptnError(.badRequest, "data.labels.\(Untrusted.printable(key, limit: 60)) must be a string") }
                    strings[key] = text
                }
                command.labels = strings
            }
            if let window = data["evaluation"] {
                command.evaluation = CommandRequest.EvaluationWindow(timeframe: window["timeframe"]?.string, start: window["start"]?.string, end: window["end"]?.string)
            }
            return keptnAnswer(await daemon.commands.perform(command, as: caller, peer: peer), context: nil)
        case .task(let task, let phase):
            if phase == "triggered" {
                return keptnError(.badRequest, "\(type): a task's .triggered comes from the shipyard's sequence; trigger the sequence instead (sh.keptn.event.STAGE.SEQUENCE.triggered)")
            }
            guard let triggeredID = body["triggeredid"]?.string, !triggeredID.isEmpty else {
                return keptnError(.badRequest, "triggeredid is required for \(type)")
            }
            if phase == "finished" {
                for key in ["status", "result"] where (data[key]?.string ?? "").isEmpty {
                    return keptnError(.badRequest, "data.\(key) is required for \(type)")
                }
            }
            // The context the event names, else the one of the task it answers.
            var context = body["shkeptncontext"]?.string ?? ""
            if context.isEmpty || !Self.validContext(context) {
                guard let found = try? store?.task(triggeredID: triggeredID) else {
                    return keptnError(.badRequest, "no open task has the triggeredid \(Untrusted.printable(triggeredID, limit: 80))")
                }
                context = found.sequence.context
            }
            if task == "approval", phase == "finished" {
                // `keptn send event approval.finished`: a person's decision, as shipyardctl approve/reject.
                let result = data["result"]?.string ?? ""
                var command = CommandRequest(kind: result == "pass" ? .approve : .reject)
                command.approval = triggeredID
                command.reason = data["message"]?.string.flatMap { $0.isEmpty ? nil : $0 } ?? (result == "pass" ? nil : "rejected through Keptn's API (result \(Untrusted.printable(result, limit: 40)))")
                return keptnAnswer(await daemon.commands.perform(command, as: caller, peer: peer), context: context)
            }
            let event = KeptnEvent(
                id: id, source: source, type: type, time: Timestamps.format(Date()), context: context, triggeredid: triggeredID,
                gitcommitid: body["gitcommitid"]?.string, data: data)
            var command = CommandRequest(kind: .event)
            command.event = event
            return keptnAnswer(await daemon.commands.perform(command, as: caller, peer: peer), context: context)
        }
    }
}

/// `GET /api/v1/metadata`, as Keptn's api-service answers it.
struct KeptnMetadata: Encodable {
    var automaticprovisioning: Bool
    var bridgeversion: String
    var keptnlabel: String
    var keptnversion: String
    var namespace: String
    var shipyardversion: String
}
