import Foundation
import Hummingbird
import HTTPTypes
import NIOCore
import ShipyardCore
import ShipyardStore
import ShipyardDaemon
import Synchronization

extension Site {
    func routes(_ router: Router<WebContext>) {
        router.get("/") { _, _ in self.redirect("/deliveries") }
        router.get("/static/app.css") { _, _ in
            self.response(type: "text/css; charset=utf-8", body: Assets.css, extra: [(.cacheControl, "max-age=300")])
        }
        router.get("/static/app.js") { _, _ in
            self.response(type: "text/javascript; charset=utf-8", body: Assets.js, extra: [(.cacheControl, "max-age=300")])
        }
        router.get("/healthz") { _, _ in self.response(type: "text/plain", body: "ok\n") }
        router.get("/readyz") { _, _ in
            await self.daemon.isReady
                ? self.response(type: "text/plain", body: "ready\n")
                : self.response(.serviceUnavailable, type: "text/plain", body: "not ready\n")
        }
        router.get("/metrics") { _, _ in self.metrics() }
        router.get("/events/stream") { request, _ in self.stream(request) }

        // Pages.
        router.get("/projects") { request, context in
            let identity = self.identify(request, context: context, makeSession: true)
            return self.page(Pages.projects(self.status(), viewer: await self.viewer(identity)), identity: identity)
        }
        router.get("/deliveries") { request, context in
            let identity = self.identify(request, context: context, makeSession: true)
            let query = request.uri.queryParameters
            func value(_ key: String) -> String? { query.get(key).flatMap { $0.isEmpty ? nil : String($0) } }
            let filter = Pages.DeliveryFilter(project: value("project"), service: value("service"), state: value("state"))
            let page = (try? self.store?.sequences(SequenceQuery(
                project: filter.project, service: filter.service, state: filter.state.flatMap(SequenceState.init), limit: 200))) ?? nil
            let projects = await self.daemon.currentConfig.projects.map(\.name)
            let html = Pages.deliveries(page?.sequences ?? [], more: page?.more ?? false, filter: filter, projects: projects, viewer: await self.viewer(identity))
            return self.page(html, identity: identity)
        }
        router.get("/deliveries/:context") { request, context in
            let identity = self.identify(request, context: context, makeSession: true)
            let id = context.parameters.get("context") ?? ""
            let executions = Site.validContext(id) ? ((try? self.store?.sequences(context: id)) ?? []) : []
            let viewer = await self.viewer(identity)
            guard !executions.isEmpty else {
                let html = Pages.layout(title: "Not found", active: "/deliveries", viewer: viewer) { html in
                    html.raw("<h1>No delivery has the context <code>")
                    html.add(id)
                    html.raw("</code></h1>")
                }
                return self.page(html, identity: identity, status: .notFound)
            }
            let events = self.events(context: id)
            var extras: [String: Pages.TaskExtras] = [:]
            for execution in executions {
                for task in execution.tasks {
                    guard let triggered = task.triggeredID else { continue }
                    var extra = Pages.TaskExtras()
                    if let finished = events.last(where: { $0.triggeredid == triggered && $0.type.hasSuffix(".finished") }) {
                        if task.name == "approval" { extra.decision = finished.data["approval"] }
                        if task.name == "evaluation" { extra.evaluation = finished.data }
                    }
                    extra.log = self.logTail(context: id, stage: execution.stage, task: task.name)
                    extras[triggered] = extra
                }
            }
            let flash = self.takeFlash(identity)
            return self.page(Pages.delivery(context: id, executions: executions, extras: extras, events: events, viewer: viewer, flash: flash), identity: identity)
        }
        router.get("/approvals") { request, context in
            let identity = self.identify(request, context: context, makeSession: true)
            await self.daemon.approvalsSettled()
            let pending = (try? PendingApprovals.read(self.state)) ?? []
            let evaluations = (try? self.store?.latestEvaluations(contexts: pending.map(\.context))) ?? [:]
            let flash = self.takeFlash(identity)
            return self.page(Pages.approvals(pending, evaluations: evaluations, viewer: await self.viewer(identity), flash: flash), identity: identity)
        }
        router.post("/approvals/:id/:decision") { request, context in
            await self.decideFromForm(request, context: context)
        }

        // Signing in (htpasswd).
        router.get("/login") { request, context in
            let identity = self.identify(request, context: context, makeSession: true)
            guard self.passwords != nil else { return self.redirect("/deliveries", identity: identity) }
            return self.page(Pages.login(viewer: await self.viewer(identity), error: nil, user: ""), identity: identity)
        }
        router.post("/login") { request, context in await self.login(request, context: context) }
        router.post("/logout") { request, context in
            var request = request
            let identity = self.identify(request, context: context, makeSession: false)
            let form = Site.form(String(buffer: (try? await request.collectBody(upTo: 16384)) ?? ByteBuffer()))
            guard let token = identity.token, Site.same(form["csrf"], identity.session?.csrf), !Site.crossSite(request) else {
                return self.refusal("refused: no valid session or CSRF token")
            }
            if let user = identity.session?.user {
                self.daemon.log.info("web: \(Untrusted.printable(user, limit: 64)) signed out")
            }
            self.sessions.end(token)
            return self.redirect("/deliveries", extra: [(.setCookie, self.cookie("", expire: true))])
        }

        // The JSON API: the CLI's keys.
        router.get("/api/v1/status") { _, _ in
            guard let data = FileManager.default.contents(atPath: self.state.root + "/status.json") else {
                return self.refusal("no status yet", status: .serviceUnavailable)
            }
            return self.response(type: "application/json", body: String(decoding: data, as: UTF8.self))
        }
        router.get("/api/v1/sequences") { request, context in
            let query = request.uri.queryParameters
            func value(_ key: String) -> String? { query.get(key).flatMap { $0.isEmpty ? nil : String($0) } }
            if let state = value("state"), SequenceState(rawValue: state) == nil {
                return self.refusal("state takes one of \(SequenceState.allCases.map(\.rawValue).joined(separator: ", "))", status: .badRequest)
            }
            if let since = value("since"), Timestamps.parse(since) == nil {
                return self.refusal("since takes a time like 2026-11-01T00:00:00Z", status: .badRequest)
            }
            let limit = max(1, min(value("limit").flatMap(Int.init) ?? 50, 10_000))
            // The whole history only for a caller of the local socket (shipyardctl sequences --all);
            // a web visitor gets at most 10,000.
            let all = value("all") == "true"
            let page: SequencePage?
            do {
                page = try self.store?.sequences(SequenceQuery(
                    project: value("project"), service: value("service"), state: value("state").flatMap(SequenceState.init),
                    since: value("since").flatMap(Timestamps.parse), limit: all ? (context.local ? nil : 10_000) : limit))
            } catch {
                return self.refusal("\(error)", status: .internalServerError)
            }
            // Whether older sequences were left out (the CLI says so on standard error).
            return self.json((page?.sequences ?? []).map(SequenceSummary.init), extra: [(Site.moreHeader, page?.more == true ? "true" : "false")])
        }
        router.post("/api/v1/sequences") { request, context in
            await self.command(request, context: context) { body in
                let trigger = try JSON.decode(TriggerBody.self, from: body)
                if let id = trigger.requestID, !CommandRequest.isValidID(id) {
                    throw BadRequest("requestID takes lowercase letters, digits and -, at most 64")
                }
                var command = CommandRequest(id: trigger.requestID ?? CommandRequest.newID(), kind: .trigger, project: trigger.project)
                command.sequence = trigger.sequence
                command.service = trigger.service
                command.stage = trigger.stage
                command.image = trigger.image
                command.labels = trigger.labels
                command.evaluation = trigger.evaluation
                return command
            }
        }
        router.post("/api/v1/sequences/:context/:action") { request, context in
            let id = context.parameters.get("context") ?? ""
            let action = context.parameters.get("action") ?? ""
            return await self.command(request, context: context) { body in
                guard let kind = ["pause": CommandRequest.Kind.pause, "resume": .resume, "abort": .abort][action] else {
                    throw BadRequest("a sequence takes /pause, /resume or /abort, not /\(action)")
                }
                var command = CommandRequest(kind: kind)
                command.context = id
                command.reason = try Site.reason(body)
                return command
            }
        }
        router.post("/api/v1/events") { request, context in
            await self.command(request, context: context) { body in
                var command = CommandRequest(kind: .event)
                command.event = try JSON.decode(KeptnEvent.self, from: body)
                return command
            }
        }
        router.post("/api/v1/sync") { request, context in
            await self.command(request, context: context) { body in
                CommandRequest(kind: .sync, project: body.isEmpty ? nil : try JSON.decode(SyncBody.self, from: body).project)
            }
        }
        router.get("/api/v1/evaluations") { request, _ in
            let query = request.uri.queryParameters
            func value(_ key: String) -> String? { query.get(key).flatMap { $0.isEmpty ? nil : String($0) } }
            guard let project = value("project"), let stage = value("stage"), let service = value("service") else {
                return self.refusal("evaluations takes project, stage and service", status: .badRequest)
            }
            let limit = max(1, min(value("limit").flatMap(Int.init) ?? 10, 1000))
            let found = (try? self.store?.evaluations(EvaluationQuery(
                project: project, stage: stage, service: service, includeInvalidated: value("includeInvalidated") == "true", limit: limit))) ?? []
            return self.json(found.reversed().map(EvaluationRow.init))
        }
        router.post("/api/v1/evaluations/:id/invalidate") { request, context in
            let id = context.parameters.get("id") ?? ""
            return await self.command(request, context: context) { body in
                var command = CommandRequest(kind: .invalidate)
                command.evaluationID = id
                command.reason = try Site.reason(body)
                return command
            }
        }
        router.get("/api/v1/sequences/:context") { _, context in
            let id = context.parameters.get("context") ?? ""
            let executions = Site.validContext(id) ? ((try? self.store?.sequences(context: id)) ?? []) : []
            guard !executions.isEmpty else { return self.refusal("no sequence has the context \(id)", status: .notFound) }
            return self.json(DeliveryView(context: id, executions: executions))
        }
        router.get("/api/v1/events") { request, _ in
            let query = request.uri.queryParameters
            let context = query.get("context").map { String($0) }
            let after = query.get("after").flatMap { Int64($0) } ?? 0
            let limit = max(1, min(query.get("limit").flatMap { Int($0) } ?? 1000, 5000))
            let recorded: [RecordedEvent]
            do {
                recorded = try self.store?.events(context: context, after: after, limit: limit) ?? []
            } catch {
                return self.refusal("\(error)", status: .internalServerError)
            }
            // The position of the last event given: the next page starts after it.
            let position: [(HTTPField.Name, String)] = [(Site.positionHeader, "\(recorded.last?.position ?? after)")]
            var body = ByteBuffer()
            if query.get("format") == "lines" {
                // One recorded event a line, exactly as recorded (shipyardctl events).
                for event in recorded {
                    body.writeBytes(event.json)
                    body.writeInteger(UInt8(0x0A))
                }
                return self.response(type: "application/x-ndjson", body: body, extra: position)
            }
            body.writeString("[")
            for (index, event) in recorded.enumerated() {
                if index > 0 { body.writeString(",") }
                body.writeBytes(event.json)
            }
            body.writeString("]")
            return self.response(type: "application/json", body: body, extra: position)
        }
        router.get("/api/v1/approvals") { request, _ in
            let project = request.uri.queryParameters.get("project").map { String($0) }
            await self.daemon.approvalsSettled()
            return self.json((try? PendingApprovals.read(self.state, project: project)) ?? [])
        }
        router.post("/api/v1/approvals/:id/:decision") { request, context in
            await self.decideFromAPI(request, context: context)
        }
    }

    // MARK: Deciding

    /// The form of a page: a session with a signed-in user who may decide, and its CSRF token.
    func decideFromForm(_ request: Request, context: WebContext) async -> Response {
        var request = request
        let identity = identify(request, context: context, makeSession: false)
        let form = Site.form(String(buffer: (try? await request.collectBody(upTo: 16384)) ?? ByteBuffer()))
        guard auth != nil || identity.local != nil else {
            daemon.metrics.request("web-decision", outcome: "refused")
            return refusal("the web view is read-only: the config has no http.auth")
        }
        guard identity.session != nil, Site.same(form["csrf"], identity.session?.csrf), !Site.crossSite(request) else {
            daemon.metrics.request("web-decision", outcome: "refused")
            daemon.log.warning("web: a decision without a valid session or CSRF token was refused", metadata: ["peer": "\(context.remoteAddress?.description ?? "?")"])
            return refusal("refused: no valid session or CSRF token; open the page again")
        }
        guard let user = identity.user else {
            daemon.metrics.request("web-decision", outcome: "refused")
            return refusal("refused: sign in first")
        }
        let outcome: CommandOutcome
        if let local = identity.local {
            outcome = await decideLocally(context: context, as: local, reason: form["reason"])
        } else {
            outcome = await decide(request, context: context, as: webCaller(user), reason: form["reason"])
        }
        if let token = identity.token { setFlash(token, outcome.message) }
        return redirect(Site.safeBack(form["back"]))
    }

    /// A script: HTTP Basic against the htpasswd file, the proxy's header, or a session with its
    /// CSRF token in `X-CSRF-Token`.
    func decideFromAPI(_ request: Request, context: WebContext) async -> Response {
        var request = request
        let local = localCaller(context)
        guard auth != nil || local != nil else {
            daemon.metrics.request("web-decision", outcome: "refused")
            return refusal("the web view is read-only: the config has no http.auth")
        }
        // Only a JSON body: a cross-site HTML form cannot send one (and no CORS lets a script).
        guard request.headers[.contentType]?.lowercased().hasPrefix("application/json") == true, !Site.crossSite(request) else {
            daemon.metrics.request("web-decision", outcome: "refused")
            return refusal("refused: send Content-Type: application/json from this site", status: .unsupportedMediaType)
        }
        let body: ByteBuffer
        do {
            body = try await request.collectBody(upTo: LocalAPI.maxBodyBytes)
        } catch {
            return refusal("the body is larger than \(LocalAPI.maxBodyBytes) bytes", status: .contentTooLarge)
        }
        // Parsed only once the caller is known: an anonymous client gets nothing from the parser.
        var reason: String? { get throws { try Site.reason(Data(buffer: body)) } }
        if let local {
            // The kernel named the caller: nothing in the request (a header, a cookie) counts.
            do {
                return decisionResponse(await decideLocally(context: context, as: local, reason: try reason))
            } catch {
                return refusal("\(error)", status: .badRequest)
            }
        }
        var user: String?
        if let authorization = request.headers[.authorization], authorization.hasPrefix("Basic "), let passwords {
            let decoded = Data(base64Encoded: String(authorization.dropFirst(6))).map { String(decoding: $0, as: UTF8.self) } ?? ""
            let parts = decoded.split(separator: ":", maxSplits: 1).map(String.init)
            let address = context.remoteAddress?.ipAddress ?? "unix"
            if parts.count == 2 {
                switch await signIn(user: parts[0], password: parts[1], address: address, passwords: passwords) {
                case .valid:
                    user = parts[0]
                case .invalid:
                    break
                case .busy:
                    return refusal("too many sign-ins at once; try again in a moment", status: .serviceUnavailable)
                case .wait(let seconds):
                    var response = refusal("too many failed sign-ins for this user or from this address; try again in \(Int(seconds.rounded(.up))) s", status: .tooManyRequests)
                    response.headers[.retryAfter] = String(Int(seconds.rounded(.up)))
                    return response
                }
            }
            if user == nil {
                daemon.metrics.request("web-decision", outcome: "refused")
                return refusal("refused: wrong user or password", status: .unauthorized)
            }
        } else if case .proxy? = auth, let proxied = proxyUser(request, context: context) {
            user = proxied
        } else {
            let identity = identify(request, context: context, makeSession: false)
            guard identity.session != nil, Site.same(request.headers[HTTPField.Name("X-CSRF-Token")!], identity.session?.csrf), !Site.crossSite(request),
                let signedIn = identity.user
            else {
                daemon.metrics.request("web-decision", outcome: "refused")
                return refusal("refused: give HTTP Basic credentials (or a session and its X-CSRF-Token)", status: .unauthorized)
            }
            user = signedIn
        }
        do {
            return decisionResponse(await decide(request, context: context, as: webCaller(user!), reason: try reason))
        } catch {
            return refusal("\(error)", status: .badRequest)
        }
    }

    func decisionResponse(_ outcome: CommandOutcome) -> Response {
        json(Message(ok: outcome.ok, message: outcome.message, context: outcome.context), status: Site.status(of: outcome))
    }

    /// A web user (signed in, or named by a trusted proxy): their groups and uid are the host's
    /// account of that name, when it has one.
    func webCaller(_ user: String) -> WebCaller {
        WebCaller(user: user, uid: Accounts.uid(of: user), groups: Daemon.groupNames(user: user), via: "web")
    }

    struct WebCaller {
        var user: String
        var uid: uid_t?
        var groups: Set<String>
        var via: String
    }

    /// A decision of a caller the kernel named: a request like every other of the CLI's (its rate,
    /// its log line, its metric).
    private func decideLocally(context: WebContext, as caller: Daemon.Caller, reason: String?) async -> CommandOutcome {
        let verb = context.parameters.get("decision") ?? ""
        guard let kind = ["approve": CommandRequest.Kind.approve, "reject": .reject][verb] else {
            return CommandOutcome(id: "", ok: false, message: "decide with /approve or /reject, not /\(verb)")
        }
        var command = CommandRequest(kind: kind)
        command.approval = context.parameters.get("id") ?? ""
        command.reason = reason
        return await daemon.handle(command, from: caller)
    }

    private func decide(_ request: Request, context: WebContext, as caller: WebCaller, reason: String?) async -> CommandOutcome {
        let id = context.parameters.get("id") ?? ""
        let verb = context.parameters.get("decision") ?? ""
        guard verb == "approve" || verb == "reject" else {
            return CommandOutcome(id: "", ok: false, message: "decide with /approve or /reject, not /\(verb)")
        }
        let outcome = await daemon.decide(Daemon.Decision(
            approve: verb == "approve", approval: id, reason: reason, user: caller.user, uid: caller.uid, groups: caller.groups, via: caller.via))
        let kind = caller.via == "web" ? "web-decision" : verb
        daemon.metrics.request(kind, outcome: outcome.ok ? "accepted" : "refused")
        let who = "\(caller.user)\(caller.uid.map { " (uid \($0))" } ?? "")"
        if outcome.ok {
            daemon.log.info("\(caller.via == "web" ? "web: " : "request ")\(verb) \(id) by \(who): \(outcome.message)")
        } else {
            daemon.log.warning("\(caller.via == "web" ? "web: " : "request ")\(verb) \(id) by \(who) refused: \(outcome.message)", metadata: ["peer": "\(context.peer.map { "pid \($0.pid)" } ?? context.remoteAddress?.description ?? "?")"])
        }
        return outcome
    }

    // MARK: Commands over the local socket

    /// A request of the CLI's (trigger, pause, resume, abort, send event, sync, invalidate): only
    /// over the local socket, from the caller the kernel names, with a JSON body of at most
    /// `LocalAPI.maxBodyBytes`. Authorisation is the daemon's, exactly as for every caller.
    func command(_ request: Request, context: WebContext, _ build: (Data) throws -> CommandRequest) async -> Response {
        var request = request
        guard let caller = localCaller(context) else {
            daemon.metrics.request("web-command", outcome: "refused")
            return refusal("this request is taken over the local socket only, from the user the kernel names (shipyardctl)")
        }
        guard request.headers[.contentType]?.lowercased().hasPrefix("application/json") == true else {
            return refusal("send Content-Type: application/json", status: .unsupportedMediaType)
        }
        let body: ByteBuffer
        do {
            body = try await request.collectBody(upTo: LocalAPI.maxBodyBytes)
        } catch {
            daemon.metrics.request("oversized", outcome: "refused")
            return refusal("the body is larger than \(LocalAPI.maxBodyBytes) bytes", status: .contentTooLarge)
        }
        let command: CommandRequest
        do {
            command = try build(Data(buffer: body))
        } catch let error as BadRequest {
            return refusal(error.message, status: .badRequest)
        } catch {
            return refusal("the body is not what this request takes: \(error)", status: .badRequest)
        }
        let outcome = await daemon.handle(command, from: caller)
        return json(Message(ok: outcome.ok, message: outcome.message, context: outcome.context), status: Site.status(of: outcome))
    }

    /// 200 for a request applied; for one refused, what kind of refusal.
    static func status(of outcome: CommandOutcome) -> HTTPResponse.Status {
        if outcome.ok { return .ok }
        if outcome.message.hasPrefix("too many requests") { return .tooManyRequests }
        if outcome.message.contains("may not") || outcome.message.contains("is closed on this host") || outcome.message.contains("cannot approve their own") { return .forbidden }
        return .conflict
    }

    /// `{"reason": "…"}`, or an empty body.
    static func reason(_ body: Data) throws -> String? {
        guard !body.isEmpty else { return nil }
        guard let decoded = try? JSONDecoder().decode(ReasonBody.self, from: body) else {
            throw BadRequest("the body must be a JSON object like {\"reason\": \"…\"}")
        }
        return decoded.reason
    }

    // MARK: Signing in

    func login(_ request: Request, context: WebContext) async -> Response {
        var request = request
        let identity = identify(request, context: context, makeSession: false)
        let form = Site.form(String(buffer: (try? await request.collectBody(upTo: 16384)) ?? ByteBuffer()))
        guard let passwords else { return refusal("signing in takes http.auth.htpasswd in the config") }
        guard let token = identity.token, Site.same(form["csrf"], identity.session?.csrf), !Site.crossSite(request) else {
            return refusal("refused: no valid session or CSRF token; open the sign-in page again")
        }
        let user = (form["user"] ?? "").trimmingCharacters(in: .whitespaces)
        let address = context.remoteAddress?.ipAddress ?? "unix"
        let check = await signIn(user: user, password: form["password"] ?? "", address: address, passwords: passwords)
        if check == .busy {
            return page(Pages.login(viewer: await viewer(identity), error: "Too many sign-ins at once; try again in a moment.", user: user), identity: identity, status: .serviceUnavailable)
        }
        if case .wait(let seconds) = check {
            daemon.metrics.request("login", outcome: "throttled")
            return page(
                Pages.login(viewer: await viewer(identity), error: "Too many failed sign-ins; try again in \(Int(seconds.rounded(.up))) s.", user: user), identity: identity,
                status: .tooManyRequests)
        }
        guard case .valid(let credential) = check else {
            daemon.metrics.request("login", outcome: "refused")
            daemon.log.warning("web: a failed sign-in as \(Untrusted.printable(user, limit: 64))", metadata: ["peer": "\(context.remoteAddress?.description ?? "?")"])
            return page(Pages.login(viewer: await viewer(identity), error: "Wrong user or password.", user: user), identity: identity, status: .unauthorized)
        }
        daemon.metrics.request("login", outcome: "accepted")
        // A new session on sign-in: a token seen before it (fixation) is worth nothing after.
        sessions.end(token)
        let (fresh, _) = sessions.create(user: user, credential: credential)
        return redirect("/approvals", extra: [(.setCookie, cookie(fresh))])
    }

    enum SignIn: Equatable {
        case valid(credential: String)
        case invalid, busy
        /// Refused unchecked (`LoginThrottle`): try again after this many seconds.
        case wait(TimeInterval)
    }

    /// One password check, when the throttle lets it be made: the user (if the file has them)
    /// and the address each have one attempt under way at most and wait after a failure.
    func signIn(user: String, password: String, address: String, passwords: PasswordFile) async -> SignIn {
        guard !user.isEmpty, user.count <= 128 else { return .invalid }
        // Every name is counted, made-up ones too: a name that were not would answer at once
        // after failures where a real one waits, telling which users exist.
        let known = true
        if case .wait(let seconds) = throttle.admit(user: user, known: known, address: address) { return .wait(seconds) }
        switch await passwords.check(user: user, password: password) {
        case .valid(let hash):
            throttle.done(user: user, known: known, address: address, succeeded: true)
            return .valid(credential: hash)
        case .invalid:
            throttle.done(user: user, known: known, address: address, succeeded: false)
            return .invalid
        case .busy:
            throttle.cancel(user: user, known: known, address: address)
            return .busy
        }
    }

    // MARK: Flash messages (kept in the session, shown once)

    private static let flashes = FlashStore()

    func setFlash(_ token: String, _ message: String) { Self.flashes.set(token, message) }

    func takeFlash(_ identity: Identity) -> String? {
        guard let token = identity.token else { return nil }
        return Self.flashes.take(token)
    }

    // MARK: Metrics and events

    func metrics() -> Response {
        let pending = (try? PendingApprovals.read(state)) ?? []
        daemon.metrics.pendingApprovals.set(to: Double(pending.count))
        let oldest = pending.compactMap { Timestamps.parse($0.requestedAt) }.min()
        daemon.metrics.oldestApproval.set(to: oldest.map { max(0, Date().timeIntervalSince($0)) } ?? 0)
        var headers = HTTPFields()
        headers[.contentType] = "text/plain; version=0.0.4; charset=utf-8"
        return Response(status: .ok, headers: headers, body: .init(byteBuffer: ByteBuffer(bytes: daemon.metrics.emit())))
    }

    /// Server-Sent Events: `change` whenever the record or a project's status changed, and a
    /// comment every 20 s so that proxies keep the connection.
    func stream(_ request: Request) -> Response {
        // Each stream holds a connection and a subscription for as long as the page is open.
        let admitted = streams.withLock { count -> Bool in
            guard count < Self.maxStreams else { return false }
            count += 1
            return true
        }
        guard admitted else {
            return refusal("too many live-update streams (\(Self.maxStreams)); the page refreshes without one", status: .serviceUnavailable)
        }
        var headers = HTTPFields()
        headers[.contentType] = "text/event-stream"
        headers[.cacheControl] = "no-store"
        headers[HTTPField.Name("X-Accel-Buffering")!] = "no"
        let feed = daemon.feed
        // Given back when the body is done with, written or not (the client may be gone first).
        let ticket = StreamTicket(site: self)
        let body = ResponseBody { writer in
            withExtendedLifetime(ticket) {}
            let changes = feed.subscribe()
            let (chunks, continuation) = AsyncStream.makeStream(of: String.self, bufferingPolicy: .bufferingNewest(8))
            let forward = Task {
                for await version in changes { continuation.yield("event: change\ndata: \(version)\n\n") }
                continuation.finish()
            }
            let ticker = Task {
                while !Task.isCancelled {
                    try? await Task.sleep(for: .seconds(20))
                    continuation.yield(": keep-alive\n\n")
                }
            }
            defer {
                forward.cancel()
                ticker.cancel()
                continuation.finish()
            }
            try await writer.write(ByteBuffer(string: "retry: 2000\n\n"))
            for await chunk in chunks {
                try await writer.write(ByteBuffer(string: chunk))
            }
            try await writer.finish(nil)
        }
        return Response(status: .ok, headers: headers, body: body)
    }
}

/// A live-update stream's place in `Site.streams`, given back when the stream's body goes.
final class StreamTicket: Sendable {
    let site: Site

    init(site: Site) {
        self.site = site
    }

    deinit {
        site.streams.withLock { $0 -= 1 }
    }
}

/// One message per session for the next page it sees ("approved: production je-deployment …").
final class FlashStore: Sendable {
    private let messages = Mutex<[String: String]>([:])

    func set(_ token: String, _ message: String) {
        messages.withLock { all in
            if all.count > 10_000 { all.removeAll() }
            all[token] = message
        }
    }

    func take(_ token: String) -> String? {
        messages.withLock { $0.removeValue(forKey: token) }
    }
}
