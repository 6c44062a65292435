import Foundation
public import Hummingbird
import HTTPTypes
import Logging
import NIOCore
import ShipyardCore
import ShipyardStore
public import ShipyardDaemon
import Synchronization

/// A request's context: Hummingbird's, with the peer: its address over TCP (a trusted proxy's
/// header is believed only from its address), the account the kernel names over the local socket.
public struct WebContext: RequestContext, RemoteAddressRequestContext {
    public var coreContext: CoreRequestContextStorage
    public let remoteAddress: SocketAddress?
    /// Over the local socket: who is at the other end (never nil there: a connection whose peer
    /// cannot be read is closed before its first byte).
    public let peer: PeerCredentials?

    public init(source: ApplicationRequestContextSource) {
        self.init(source: source, peer: nil)
    }

    init(source: ApplicationRequestContextSource, peer: PeerCredentials?) {
        coreContext = .init(source: source)
        remoteAddress = source.channel.remoteAddress
        self.peer = peer
    }

    /// Whether the request came over the local socket.
    var local: Bool { peer != nil }
}

/// The daemon's front door: the local API on its unix socket (always: `shipyardctl` and a local
/// reverse proxy use it, each caller named by the kernel), and the web view on a TCP address when
/// the config has `http.listen: ADDRESS:PORT`. Both serve the same routes: pages,
/// Server-Sent Events, `/api/v1`, `/metrics`, `/healthz` and `/readyz`.
public struct WebServer: DaemonFrontend {
    let daemon: Daemon
    let http: DaemonConfig.HTTP?
    let site: Site
    let socket: ListeningSocket
    let local: FrontServer
    let web: FrontServer?

    public init(daemon: Daemon, socket: ListeningSocket, http: DaemonConfig.HTTP?) {
        self.daemon = daemon
        self.http = http
        self.socket = socket
        let site = Site(daemon: daemon, http: http, socket: socket.path)
        self.site = site
        let router = Router(context: WebContext.self)
        router.add(middleware: HostCheck(site: site))
        site.routes(router)
        var logger = daemon.log
        logger.logLevel = .warning
        let limits = FrontLimits.current()
        local = FrontServer(door: .unix(socket), router: router, limits: limits.local, logger: logger) { _, peer in
            guard let peer else { return false }
            return peer.uid == 0 || peer.uid == geteuid() || site.isProxy(peer)
        }
        if let http, case .tcp(let host, let port) = http.listen {
            web = FrontServer(
                door: .tcp(host: host, port: port), router: router, limits: limits.web, logger: logger,
                privileged: { key, _ in
                    // A trusted reverse proxy carries many users' connections.
                    guard case .address(let address) = key, case .proxy(_, let trusted)? = site.auth else { return false }
                    return trusted.contains { $0.contains(address) }
                },
                listening: { bound in
                    site.boundPort.withLock { $0 = bound }
                    await daemon.webListening("http://\(host.contains(":") ? "[\(host)]" : host):\(bound)/")
                })
        } else {
            web = nil
        }
    }

    public func stop() {
        local.stop()
        web?.stop()
    }

    public func update(_ http: DaemonConfig.HTTP) {
        site.update(http)
    }

    public func run() async throws {
        let daemon = daemon
        await daemon.apiListening(socket.path)
        if let http, case .unix(let path) = http.listen, path != socket.path {
            daemon.log.warning(
                "http.listen \(path): the web view is served on the local API's socket \(socket.path) (one door for the CLI and a reverse proxy); point the proxy there")
        }
        try await withThrowingTaskGroup(of: Void.self) { group in
            if let web, let http {
                group.addTask {
                    // The web view failing (its port taken, say) leaves the CLI's socket serving.
                    do {
                        try await web.run()
                    } catch is CancellationError {
                    } catch {
                        daemon.log.error("the web view on \(http.listen) stopped: \(error)")
                    }
                }
            }
            try await self.local.run()
            group.cancelAll()
        }
    }
}

/// The connection limits of both doors, sized to the descriptors the process may open
/// (`LimitNOFILE`; the unit sets 8192): whatever connects, the record, tasks, fetches and
/// `/healthz` keep descriptors, so that running out of them never stops or crashes the daemon.
struct FrontLimits {
    var local: ConnectionLimits
    var web: ConnectionLimits

    /// A quarter of the descriptors is kept for everything but connections.
    static func current() -> FrontLimits {
        var limit = rlimit()
        getrlimit(Int32(RLIMIT_NOFILE.rawValue), &limit)
        // Take what the hard limit allows (Go's runtime does the same): a daemon started by hand
        // under a soft 1,024 gets its hard limit's room.
        if limit.rlim_cur < limit.rlim_max {
            var raised = limit
            raised.rlim_cur = min(limit.rlim_max, 65536)
            if setrlimit(Int32(RLIMIT_NOFILE.rawValue), &raised) == 0 { limit = raised }
        }
        return FrontLimits(descriptors: Int(min(limit.rlim_cur, 1 << 20)))
    }

    init(descriptors: Int) {
        let room = max(64, descriptors * 3 / 4)
        local = ConnectionLimits(
            total: min(LocalAPI.maxConnections, room / 4), perKey: min(LocalAPI.connectionsPerUser, max(8, room / 16)),
            privilegedRoom: min(LocalAPI.connectionsPerUser * 4, room / 8))
        web = ConnectionLimits(
            total: min(Self.webConnections, room / 2), perKey: min(Self.webConnectionsPerAddress, max(8, room / 16)),
            privilegedRoom: min(256, room / 8))
    }

    /// The web view's connections in all, and from one address.
    static let webConnections = 2048
    static let webConnectionsPerAddress = 64
}

/// Everything the routes share: who is who, the read-only store, and the daemon.
final class Site: Sendable {
    let daemon: Daemon
    /// The web view's settings, as the config has them now (a reload changes them); nil: none
    /// configured (the local API alone, pages read-only to web users).
    var http: DaemonConfig.HTTP? { settings.withLock { $0.http } }
    /// The names this site answers to (see `allowedHosts`).
    var allowed: Set<String> { settings.withLock { $0.allowed } }
    /// The htpasswd file's users, with `http.auth.htpasswd`.
    var passwords: PasswordFile? { settings.withLock { $0.passwords } }
    private struct Settings {
        var http: DaemonConfig.HTTP?
        var allowed: Set<String>
        var passwords: PasswordFile?
    }

    private let settings: Mutex<Settings>
    /// The local API's socket.
    let socketPath: String
    let state: StateDirectory
    let sessions = Sessions()
    /// Live-update streams open now, and the most at once.
    let streams = Mutex(0)
    static let maxStreams = 1024
    let throttle = LoginThrottle()
    /// The port the server was given (the config may say 0).
    let boundPort = Mutex<Int?>(nil)
    private let storeHandle = Mutex<SQLiteStore?>(nil)
    static let cookie = "shipyard_session"

    init(daemon: Daemon, http: DaemonConfig.HTTP?, socket: String) {
        self.daemon = daemon
        socketPath = socket
        state = daemon.stateDirectory
        settings = Mutex(Settings(http: http, allowed: http.map(Self.allowedHosts) ?? [], passwords: Self.passwordFile(http, logger: daemon.log)))
    }

    /// A reload: who may sign in and act, which peers are proxies, the public name.
    func update(_ http: DaemonConfig.HTTP) {
        let logger = daemon.log
        settings.withLock { settings in
            if case .htpasswd(let path)? = http.auth, settings.passwords?.path == path {
                // The same file: it is re-read when it changes anyway.
            } else {
                settings.passwords = Self.passwordFile(http, logger: logger)
            }
            settings.http = http
            settings.allowed = Self.allowedHosts(http)
        }
    }

    static func passwordFile(_ http: DaemonConfig.HTTP?, logger: Logger) -> PasswordFile? {
        guard case .htpasswd(let path)? = http?.auth else { return nil }
        return PasswordFile(path: path) { logger.warning("\($0)") }
    }

    /// The record, read-only (as the CLI opens it); nil until the daemon created it.
    var store: SQLiteStore? {
        storeHandle.withLock { handle in
            if handle == nil, FileManager.default.fileExists(atPath: state.storeFile) {
                handle = try? SQLiteStore(readingAt: state.storeFile)
            }
            return handle
        }
    }

    // MARK: Who is asking

    struct Identity {
        var user: String?
        var token: String?
        var session: Sessions.Session?
        /// A session made for this request: its cookie goes with the response.
        var newToken: String?
        /// Over the local socket: the caller the kernel named.
        var local: Daemon.Caller?
    }

    static func cookies(_ request: Request) -> [String: String] {
        var result: [String: String] = [:]
        for header in request.headers[values: .cookie] {
            for part in header.split(separator: ";") {
                let pair = part.split(separator: "=", maxSplits: 1)
                guard pair.count == 2 else { continue }
                result[pair[0].trimmingCharacters(in: .whitespaces)] = String(pair[1]).trimmingCharacters(in: .whitespaces)
            }
        }
        return result
    }

    var auth: DaemonConfig.HTTP.Auth? { http?.auth }

    /// Over the local socket, a peer that is a configured proxy (`trustedProxies: [user:www-data]`)
    /// passes on web users; every other peer is the user the kernel names.
    func isProxy(_ peer: PeerCredentials) -> Bool {
        // Root is never a proxy: every shipyardctl root runs would be believed as its header says.
        guard peer.uid != 0, peer.uid != geteuid() else { return false }
        return http?.proxyUsers.contains { entry in
            if entry.hasPrefix("uid:") { return UInt32(entry.dropFirst(4)) == peer.uid }
            if entry.hasPrefix("user:") { return Accounts.uid(of: String(entry.dropFirst(5))) == peer.uid }
            return false
        } ?? false
    }

    /// The caller the kernel names, for a request over the local socket from anyone but a
    /// configured proxy: whatever the request says (a proxy header, a cookie), it is them.
    func localCaller(_ context: WebContext) -> Daemon.Caller? {
        guard let peer = context.peer, !isProxy(peer) else { return nil }
        return Daemon.Caller(uid: peer.uid)
    }

    /// The proxy's header, when the request came from a trusted proxy: an address of
    /// `trustedProxies` over TCP, a proxy user of it over the local socket.
    func proxyUser(_ request: Request, context: WebContext) -> String? {
        guard case .proxy(let header, let trusted)? = auth, let name = HTTPField.Name(header) else { return nil }
        let fromTrusted: Bool
        if let peer = context.peer {
            fromTrusted = isProxy(peer)
        } else if let address = context.remoteAddress?.ipAddress {
            fromTrusted = trusted.contains { $0.contains(address) }
        } else {
            fromTrusted = false
        }
        guard fromTrusted, let value = request.headers[name]?.trimmingCharacters(in: .whitespaces), !value.isEmpty, value.count <= 128,
            value.unicodeScalars.allSatisfy({ $0.value > 0x20 && $0.value < 0x7F })
        else { return nil }
        return value
    }

    /// Who this is: over the local socket the user the kernel names (unless a proxy); else the
    /// session's user (login), or the proxy's header. A session is made for a page view that has
    /// none (its CSRF token guards the forms).
    func identify(_ request: Request, context: WebContext, makeSession: Bool) -> Identity {
        let token = Self.cookies(request)[Self.cookie]
        var identity = Identity()
        if let session = sessions.session(token) {
            identity.token = token
            identity.session = session
        } else if makeSession, request.headers[HTTPField.Name("X-Shipyard-Refresh")!] == nil,
            request.headers[HTTPField.Name("Sec-Fetch-Mode")!].map({ $0 == "navigate" }) ?? true
        {
            // A page opened, not a page's own refresh: a refresh that made a cookie would replace
            // the one a form on screen (the sign-in form) was made for.
            let (fresh, session) = sessions.create()
            identity.token = fresh
            identity.newToken = fresh
            identity.session = session
        }
        if let caller = localCaller(context) {
            identity.user = caller.user
            identity.local = caller
            return identity
        }
        switch auth {
        case .htpasswd?:
            identity.user = identity.session?.user
            // The line the session was made from must still be there, unchanged: removing a user
            // or changing their password signs out every session they had, at its next request.
            if let user = identity.user, let token = identity.token, passwords?.hash(of: user) != identity.session?.credential {
                identity.user = nil
                identity.session?.user = nil
                if sessions.signOut(token) != nil {
                    let why = passwords?.hash(of: user) == nil ? "their htpasswd entry was removed" : "their password was changed"
                    daemon.log.notice("web: a session of \(Untrusted.printable(user, limit: 64)) ended: \(why)")
                }
            }
        case .proxy?: identity.user = proxyUser(request, context: context)
        case nil: identity.user = nil
        }
        return identity
    }

    func viewer(_ identity: Identity) async -> Viewer {
        var mayDecide = false
        var rights: Daemon.DecisionRights?
        if let user = identity.user {
            let groups = Daemon.groupNames(user: user)
            mayDecide = await daemon.mayDecide(user: user, groups: groups)
            rights = await daemon.decisionRights(user: user, groups: groups)
        }
        var loginForm = false
        if identity.local == nil, case .htpasswd? = auth { loginForm = true }
        return Viewer(user: identity.user, csrf: identity.session?.csrf, mayDecide: mayDecide, rights: rights, authConfigured: auth != nil || identity.local != nil, loginForm: loginForm)
    }

    // MARK: Responses

    static let securityHeaders: [(HTTPField.Name, String)] = [
        (.contentSecurityPolicy, "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self'; connect-src 'self'; form-action 'self'; frame-ancestors 'none'; base-uri 'none'"),
        (HTTPField.Name("X-Content-Type-Options")!, "nosniff"),
        (HTTPField.Name("X-Frame-Options")!, "DENY"),
        (HTTPField.Name("Referrer-Policy")!, "same-origin"),
        (.cacheControl, "no-store"),
    ]

    func response(_ status: HTTPResponse.Status = .ok, type: String, body: String, identity: Identity? = nil, extra: [(HTTPField.Name, String)] = []) -> Response {
        response(status, type: type, body: ByteBuffer(string: body), identity: identity, extra: extra)
    }

    func response(_ status: HTTPResponse.Status = .ok, type: String, body: ByteBuffer, identity: Identity? = nil, extra: [(HTTPField.Name, String)] = []) -> Response {
        var headers = HTTPFields()
        headers[.contentType] = type
        for (name, value) in Self.securityHeaders + extra { headers[name] = value }
        if let token = identity?.newToken {
            headers.append(HTTPField(name: .setCookie, value: cookie(token)))
        }
        return Response(status: status, headers: headers, body: .init(byteBuffer: body))
    }

    func cookie(_ token: String, expire: Bool = false) -> String {
        var value = "\(Self.cookie)=\(token); Path=/; HttpOnly; SameSite=Strict"
        if http?.secureCookies == true { value += "; Secure" }
        if expire { value += "; Max-Age=0" }
        return value
    }

    func page(_ html: String, identity: Identity, status: HTTPResponse.Status = .ok) -> Response {
        response(status, type: "text/html; charset=utf-8", body: html, identity: identity)
    }

    func json(_ value: some Encodable, status: HTTPResponse.Status = .ok, extra: [(HTTPField.Name, String)] = []) -> Response {
        let body = (try? JSON.encode(value)).map { String(decoding: $0, as: UTF8.self) } ?? "null"
        return response(status, type: "application/json", body: body, extra: extra)
    }

    /// `GET /api/v1/sequences`: `true` when older sequences were left out.
    static let moreHeader = HTTPField.Name("Shipyard-More")!
    /// `GET /api/v1/events`: the position of the last event given (the next page's `after`).
    static let positionHeader = HTTPField.Name("Shipyard-Position")!

    struct Message: Encodable {
        var ok: Bool
        var message: String
        var context: String?
    }

    func refusal(_ message: String, status: HTTPResponse.Status = .forbidden) -> Response {
        json(Message(ok: false, message: message), status: status)
    }

    func redirect(_ location: String, identity: Identity? = nil, extra: [(HTTPField.Name, String)] = []) -> Response {
        var headers = HTTPFields()
        headers[.location] = location
        for (name, value) in Self.securityHeaders + extra { headers[name] = value }
        if let token = identity?.newToken { headers.append(HTTPField(name: .setCookie, value: cookie(token))) }
        return Response(status: .seeOther, headers: headers)
    }

    /// A page-relative location to go back to: only a path of this site.
    static func safeBack(_ path: String?) -> String {
        guard let path, path.hasPrefix("/"), !path.hasPrefix("//"), !path.contains("\\"), path.count < 300,
            path.unicodeScalars.allSatisfy({ $0.value > 0x20 && $0.value < 0x7F })
        else { return "/approvals" }
        return path
    }

    static func form(_ body: String) -> [String: String] {
        var fields: [String: String] = [:]
        for pair in body.split(separator: "&") {
            let parts = pair.split(separator: "=", maxSplits: 1, omittingEmptySubsequences: false)
            func decode(_ s: Substring) -> String { s.replacingOccurrences(of: "+", with: " ").removingPercentEncoding ?? "" }
            guard let key = parts.first, !key.isEmpty else { continue }
            fields[decode(key)] = parts.count > 1 ? decode(parts[1]) : ""
        }
        return fields
    }

    /// Compares tokens in constant time.
    static func same(_ a: String?, _ b: String?) -> Bool {
        guard let a, let b, a.utf8.count == b.utf8.count, !a.isEmpty else { return false }
        var difference: UInt8 = 0
        for (x, y) in zip(a.utf8, b.utf8) { difference |= x ^ y }
        return difference == 0
    }

    /// The names this site answers to: the listen address, `localhost` on a loopback one, and
    /// publicURL's host. Anything else is refused, so that a page whose name was rebound to this
    /// address (DNS rebinding) cannot read or act through a browser on this host.
    static func allowedHosts(_ http: DaemonConfig.HTTP) -> Set<String> {
        var hosts: Set<String> = []
        if case .tcp(let host, let port) = http.listen {
            let name = host.contains(":") ? "[\(host)]" : host
            hosts.insert("\(name):\(port)")
            if host == "127.0.0.1" || host == "::1" { hosts.insert("localhost:\(port)") }
        }
        if let url = http.publicURL.flatMap(URL.init(string:)), let host = url.host {
            hosts.insert(host)
            if let port = url.port { hosts.insert("\(host):\(port)") }
        }
        return hosts
    }

    /// Whether the request names this site (always over the local socket: the proxy in front
    /// decides what names reach it, and no browser connects to it by itself).
    func hostAllowed(_ request: Request, context: WebContext, port: Int?) -> Bool {
        if context.local { return true }
        guard let authority = request.head.authority?.lowercased() else { return false }
        if allowed.contains(authority) { return true }
        // With port 0 in the config, the port is the one the server was given.
        if let port, case .tcp(let host, _)? = http?.listen {
            let name = host.contains(":") ? "[\(host)]" : host
            if authority == "\(name):\(port)" || ((host == "127.0.0.1" || host == "::1") && authority == "localhost:\(port)") { return true }
        }
        return false
    }

    /// A browser sends Origin with a POST: one that is not this site is refused whatever else the
    /// request holds (the cookie is SameSite=Strict as well).
    static func crossSite(_ request: Request) -> Bool {
        guard let origin = request.headers[.origin] else { return false }
        guard let host = request.head.authority else { return true }
        guard let url = URL(string: origin), let originHost = url.host else { return true }
        let originAuthority = url.port.map { "\(originHost):\($0)" } ?? originHost
        return originAuthority != host && originHost != host
    }

    // MARK: Data the pages share

    func status() -> DaemonStatus? {
        FileManager.default.contents(atPath: state.root + "/status.json").flatMap { try? JSON.decode(DaemonStatus.self, from: $0) }
    }

    func events(context: String) -> [KeptnEvent] {
        guard let store else { return [] }
        let recorded = (try? store.events(context: context, after: 0, limit: 5000)) ?? []
        let decoder = JSONDecoder()
        return recorded.compactMap { try? decoder.decode(KeptnEvent.self, from: $0.json) }
    }

    /// The last 16 KiB of a task's log.
    func logTail(context: String, stage: String, task: String) -> String? {
        let path = state.root + "/logs/\(context)/\(stage)-\(task).log"
        guard let handle = FileHandle(forReadingAtPath: path) else { return nil }
        defer { try? handle.close() }
        let size = (try? handle.seekToEnd()) ?? 0
        let start = size > 16384 ? size - 16384 : 0
        try? handle.seek(toOffset: start)
        let data = (try? handle.readToEnd()) ?? Data()
        var text = String(decoding: data, as: UTF8.self)
        if start > 0, let newline = text.firstIndex(of: "\n") { text = "…" + text[newline...] }
        return text
    }

    static func validContext(_ context: String) -> Bool {
        !context.isEmpty && context.count <= 100 && context.unicodeScalars.allSatisfy { $0.properties.isAlphabetic && $0.isASCII || ("0"..."9").contains($0) || $0 == "-" }
    }
}

/// A request body the route cannot take, with what it takes.
struct BadRequest: Error, CustomStringConvertible {
    var message: String
    init(_ message: String) { self.message = message }
    var description: String { message }
}

/// Refuses a request that does not name this site (DNS rebinding).
struct HostCheck: RouterMiddleware {
    typealias Context = WebContext
    let site: Site

    func handle(_ request: Request, context: WebContext, next: (Request, WebContext) async throws -> Response) async throws -> Response {
        // The first Host header is the request's authority; a second one left among the fields
        // could be read by whatever sits behind (a cache, a log) as the name asked for.
        if request.headers[HTTPField.Name("Host")!] != nil {
            site.daemon.metrics.request("web-host", outcome: "refused")
            return site.refusal("a request names one host (it has more than one Host header)", status: .badRequest)
        }
        var response = try await check(request, context: context, next: next)
        // Every answer, /metrics and the API's included, is what its Content-Type says.
        response.headers[HTTPField.Name("X-Content-Type-Options")!] = "nosniff"
        return response
    }

    private func check(_ request: Request, context: WebContext, next: (Request, WebContext) async throws -> Response) async throws -> Response {
        guard site.hostAllowed(request, context: context, port: site.boundPort.withLock { $0 }) else {
            site.daemon.metrics.request("web-host", outcome: "refused")
            return site.refusal(
                "this address does not serve \(Untrusted.printable(request.head.authority ?? "(no Host)", limit: 100)); set http.publicURL to the name people open",
                status: .misdirectedRequest)
        }
        return try await next(request, context)
    }
}
