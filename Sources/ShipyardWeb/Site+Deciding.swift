import Foundation
import Hummingbird
import HTTPTypes
import NIOCore
import ShipyardCore
import ShipyardDaemon
import Synchronization

/// Decisions from pages and scripts, and the CLI's requests over the local socket: each caller
/// identified here, then judged by the daemon's command layer.
extension Site {
    // MARK: Deciding

    /// The form of a page: a session with a signed-in user who may decide, and its CSRF token.
    func decideFromForm(_ request: Request, context: WebContext) async -> Response {
        await fromForm(request, context: context, what: "decision") { form, caller in
            (await self.decide(context: context, as: caller, reason: form["reason"]), form["back"])
        }
    }

    /// A page's form: a session with a signed-in user and its CSRF token, from this site; the
    /// command's answer is shown on the page `body` names (back), until dismissed.
    func fromForm(
        _ request: Request, context: WebContext, what: String,
        _ body: ([String: String], Caller) async -> (CommandOutcome, String?)
    ) async -> Response {
        var request = request
        let identity = identify(request, context: context, makeSession: false)
        let form = Site.form(String(buffer: (try? await request.collectBody(upTo: 16384)) ?? ByteBuffer()))
        guard auth != nil || identity.local != nil else {
            daemon.metrics.request("web-\(what)", outcome: "refused")
            return refusal("the web view is read-only: the config has no http.auth")
        }
        guard identity.session != nil, Site.same(form["csrf"], identity.session?.csrf), !Site.crossSite(request) else {
            daemon.metrics.request("web-\(what)", outcome: "refused")
            daemon.log.warning("web: a \(what) without a valid session or CSRF token was refused", metadata: ["peer": "\(context.remoteAddress?.description ?? "?")"])
            return refusal("refused: no valid session or CSRF token; open the page again")
        }
        guard let user = identity.user else {
            daemon.metrics.request("web-\(what)", outcome: "refused")
            return refusal("refused: sign in first")
        }
        let (outcome, back) = await body(form, identity.local ?? .web(user: user))
        if let token = identity.token { setFlash(token, outcome.message) }
        return redirect(Site.safeBack(back))
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
                return decisionResponse(await decide(context: context, as: local, reason: try reason))
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
            return decisionResponse(await decide(context: context, as: .web(user: user!), reason: try reason))
        } catch {
            return refusal("\(error)", status: .badRequest)
        }
    }

    func decisionResponse(_ outcome: CommandOutcome) -> Response {
        json(Message(ok: outcome.ok, message: outcome.message, context: outcome.context, warnings: outcome.warnings), status: Site.status(of: outcome))
    }

    /// A decision of a caller (the kernel's, or a web user's): a request like every other, judged,
    /// logged and counted by the command layer.
    func decide(context: WebContext, as caller: Caller, reason: String?) async -> CommandOutcome {
        let verb = context.parameters.get("decision") ?? ""
        guard let kind = ["approve": CommandRequest.Kind.approve, "reject": .reject][verb] else {
            return CommandOutcome(id: "", ok: false, message: "decide with /approve or /reject, not /\(verb)")
        }
        var command = CommandRequest(kind: kind)
        command.approval = context.parameters.get("id") ?? ""
        command.reason = reason
        let peer = context.peer.map { "pid \($0.pid)" } ?? context.remoteAddress?.description ?? "?"
        return await daemon.commands.perform(command, as: caller, peer: peer)
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
        let outcome = await daemon.commands.perform(command, as: caller)
        return json(Message(ok: outcome.ok, message: outcome.message, context: outcome.context, warnings: outcome.warnings), status: Site.status(of: outcome))
    }

    /// 200 for a request applied; for one refused, what kind of refusal.
    static func status(of outcome: CommandOutcome) -> HTTPResponse.Status {
        if outcome.ok { return .ok }
        if outcome.message.hasPrefix("too many requests") { return .tooManyRequests }
        if outcome.message.contains("may not") || outcome.message.contains("is closed on this host") || outcome.message.contains("is closed to API tokens") || outcome.message.contains("cannot approve their own") { return .forbidden }
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
}
