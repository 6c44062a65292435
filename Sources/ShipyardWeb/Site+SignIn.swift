import Foundation
import Hummingbird
import HTTPTypes
import NIOCore
import ShipyardCore
import ShipyardDaemon
import Synchronization

/// Signing in with the htpasswd file (bounded guessing), and the one-time messages of a session.
extension Site {
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

    static let flashes = FlashStore()

    func setFlash(_ token: String, _ message: String) { Self.flashes.set(token, message) }

    /// The confirmation for this session, taken by the page it was meant for: never by a live
    /// refresh of another page (which does not show it), which would take it from under the
    /// page the answer redirects to.
    func takeFlash(_ identity: Identity, _ request: Request) -> String? {
        guard let token = identity.token, request.headers[HTTPField.Name("X-Shipyard-Refresh")!] == nil else { return nil }
        return Self.flashes.take(token)
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
