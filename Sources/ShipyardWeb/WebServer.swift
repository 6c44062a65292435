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
    /// Keptn API tokens, with `http.apiTokens`.
    var apiTokens: APITokenFile? { settings.withLock { $0.apiTokens } }
    struct Settings {
        var http: DaemonConfig.HTTP?
        var allowed: Set<String>
        var passwords: PasswordFile?
        var apiTokens: APITokenFile?
    }

    let settings: Mutex<Settings>
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
    let storeHandle = Mutex<(any Store)?>(nil)
    static let cookie = "shipyard_session"

    init(daemon: Daemon, http: DaemonConfig.HTTP?, socket: String) {
        self.daemon = daemon
        socketPath = socket
        state = daemon.stateDirectory
        settings = Mutex(Settings(
            http: http, allowed: http.map(Self.allowedHosts) ?? [], passwords: Self.passwordFile(http, logger: daemon.log),
            apiTokens: Self.tokenFile(http, logger: daemon.log)))
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
            if settings.apiTokens?.path != http.apiTokens {
                settings.apiTokens = Self.tokenFile(http, logger: logger)
            }
            settings.http = http
            settings.allowed = Self.allowedHosts(http)
        }
    }

    static func tokenFile(_ http: DaemonConfig.HTTP?, logger: Logger) -> APITokenFile? {
        guard let path = http?.apiTokens else { return nil }
        return APITokenFile(path: path) { logger.warning("\($0)") }
    }

    static func passwordFile(_ http: DaemonConfig.HTTP?, logger: Logger) -> PasswordFile? {
        guard case .htpasswd(let path)? = http?.auth else { return nil }
        return PasswordFile(path: path) { logger.warning("\($0)") }
    }

    /// The record, read-only (as the CLI opens it); nil until the daemon created it. A shared
    /// PostgreSQL record is read on a session of the web view's own.
    var store: (any Store)? {
        if let reader = daemon.recordReader { return reader.store() }
        return storeHandle.withLock { handle in
            if handle == nil, FileManager.default.fileExists(atPath: state.storeFile) {
                handle = try? SQLiteStore(readingAt: state.storeFile)
            }
            return handle
        }
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

    /// The one context a path or query names: all of it, or a unique prefix of at least 4.
    func resolve(context given: String) -> Result<String, ContextRefusal> {
        guard Self.validContext(given) else { return .failure(ContextRefusal(message: "no sequence has the context \(Untrusted.printable(given, limit: 100))", status: .notFound)) }
        guard let store else { return .failure(ContextRefusal(message: "no record yet", status: .serviceUnavailable)) }
        do {
            return .success(try store.context(named: given))
        } catch let lookup as ContextLookup {
            return .failure(ContextRefusal(message: lookup.description, status: lookup.description.contains("ambiguous") ? .conflict : .notFound))
        } catch {
            return .failure(ContextRefusal(message: "\(error)", status: .internalServerError))
        }
    }

    struct ContextRefusal: Error {
        var message: String
        var status: HTTPResponse.Status
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

    func check(_ request: Request, context: WebContext, next: (Request, WebContext) async throws -> Response) async throws -> Response {
        guard site.hostAllowed(request, context: context, port: site.boundPort.withLock { $0 }) else {
            site.daemon.metrics.request("web-host", outcome: "refused")
            return site.refusal(
                "this address does not serve \(Untrusted.printable(request.head.authority ?? "(no Host)", limit: 100)); set http.publicURL to the name people open",
                status: .misdirectedRequest)
        }
        return try await next(request, context)
    }
}
