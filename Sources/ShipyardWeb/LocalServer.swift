import CSupport
import Foundation
import Hummingbird
import HummingbirdCore
import Logging
import NIOCore
import NIOHTTP1
import NIOPosix
import ShipyardDaemon
import Synchronization

/// The process at the other end of a unix socket connection, as the kernel names it
/// (`SO_PEERCRED`): nothing a caller sends can change it.
public struct PeerCredentials: Sendable, Equatable {
    public var pid: Int32
    public var uid: UInt32
    public var gid: UInt32
}

/// Who holds a connection, for its limits: a local user the kernel names, or a network address.
enum ConnectionKey: Hashable, Sendable, CustomStringConvertible {
    case user(uid_t)
    case address(String)

    var description: String {
        switch self {
        case .user(let uid): return "uid \(uid)"
        case .address(let address): return address
        }
    }
}

/// How many connections a door takes: in all, per key, and the room kept beyond `total` for
/// privileged peers (root, the daemon's user, configured proxies), so that a flood of others
/// never shuts them out.
struct ConnectionLimits: Sendable {
    var total: Int
    var perKey: Int
    var privilegedRoom: Int
}

/// The open connections of one door, by connection, and how many each key holds.
final class Peers: Sendable {
    private struct State {
        var byChannel: [ObjectIdentifier: (key: ConnectionKey, credentials: PeerCredentials?)] = [:]
        var perKey: [ConnectionKey: Int] = [:]
        /// Refusals per key in the current minute, for a log line per key a minute.
        var refused: [ConnectionKey: Int] = [:]
        var minute = 0
    }

    let limits: ConnectionLimits
    private let state = Mutex(State())

    init(limits: ConnectionLimits) {
        self.limits = limits
    }

    /// Counts a new connection; false when its key (or everybody) has too many open already.
    func admit(_ channel: any Channel, _ key: ConnectionKey, credentials: PeerCredentials?, privileged: Bool) -> Bool {
        state.withLock { state in
            if privileged {
                guard state.byChannel.count < limits.total + limits.privilegedRoom else { return false }
            } else {
                guard state.byChannel.count < limits.total, state.perKey[key, default: 0] < limits.perKey else { return false }
            }
            state.byChannel[ObjectIdentifier(channel)] = (key, credentials)
            state.perKey[key, default: 0] += 1
            return true
        }
    }

    func remove(_ channel: any Channel) {
        state.withLock { state in
            guard let entry = state.byChannel.removeValue(forKey: ObjectIdentifier(channel)) else { return }
            state.perKey[entry.key, default: 1] -= 1
            if state.perKey[entry.key] == 0 { state.perKey[entry.key] = nil }
        }
    }

    func peer(of channel: any Channel) -> PeerCredentials? {
        state.withLock { $0.byChannel[ObjectIdentifier(channel)]?.credentials }
    }

    var count: Int { state.withLock { $0.byChannel.count } }

    /// Counts a refusal; true for the first of this key in this minute (the one to log).
    func refused(_ key: ConnectionKey, now: Date = Date()) -> Bool {
        state.withLock { state in
            let minute = Int(now.timeIntervalSince1970 / 60)
            if minute != state.minute || state.refused.count > 10_000 {
                state.minute = minute
                state.refused = [:]
            }
            state.refused[key, default: 0] += 1
            return state.refused[key] == 1
        }
    }
}

/// A request line must give a path (`GET /deliveries HTTP/1.1`), as a server that is not a proxy
/// expects: a full URL (`GET http://other.example/ HTTP/1.1`) names another site than the Host
/// header that was checked, and is answered 400 and closed.
final class OriginFormOnly: ChannelInboundHandler, RemovableChannelHandler, Sendable {
    typealias InboundIn = HTTPServerRequestPart
    typealias InboundOut = HTTPServerRequestPart
    typealias OutboundOut = HTTPServerResponsePart

    func channelRead(context: ChannelHandlerContext, data: NIOAny) {
        if case .head(let head) = unwrapInboundIn(data), !head.uri.hasPrefix("/"), !(head.method == .OPTIONS && head.uri == "*") {
            let body = "the request line must give a path, not a full URL\n"
            var headers = HTTPHeaders()
            headers.add(name: "Content-Type", value: "text/plain; charset=utf-8")
            headers.add(name: "Content-Length", value: String(body.utf8.count))
            headers.add(name: "Connection", value: "close")
            context.write(wrapOutboundOut(.head(HTTPResponseHead(version: .http1_1, status: .badRequest, headers: headers))), promise: nil)
            context.write(wrapOutboundOut(.body(.byteBuffer(context.channel.allocator.buffer(string: body)))), promise: nil)
            context.writeAndFlush(wrapOutboundOut(.end(nil))).whenComplete { _ in context.close(promise: nil) }
            return
        }
        context.fireChannelRead(data)
    }
}

/// Answers a connection over the limits with a 503 saying why, and closes it.
final class Refusal: ChannelInboundHandler, Sendable {
    typealias InboundIn = ByteBuffer
    let text: String

    init(text: String) {
        self.text = text
    }

    func handlerAdded(context: ChannelHandlerContext) {
        if context.channel.isActive { refuse(context) }
    }

    func channelActive(context: ChannelHandlerContext) {
        refuse(context)
    }

    func channelRead(context: ChannelHandlerContext, data: NIOAny) {}

    private func refuse(_ context: ChannelHandlerContext) {
        context.writeAndFlush(NIOAny(context.channel.allocator.buffer(string: text)), promise: nil)
        context.close(promise: nil)
    }
}

/// Where a `FrontServer` listens: the local API's unix socket (handed over by systemd or made by
/// the daemon), or the web view's TCP address.
enum Door: Sendable {
    case unix(ListeningSocket)
    case tcp(host: String, port: Int)
}

/// Hummingbird's HTTP/1.1 on one door, on NIO. Each connection is counted before any byte of it
/// is parsed: over the local socket by the user the kernel names (`SO_PEERCRED`), over TCP by
/// its address. A key over its limit, or a door at its total, gets a 503 saying why and is
/// closed at once (logged once per key a minute); a connection that sends no complete request
/// head or nothing at all for `LocalAPI.idleSeconds` is closed (slowloris), while a response is
/// being written (an event stream) it is not.
final class FrontServer: Sendable {
    let door: Door
    let responder: RouterResponder<WebContext>
    let peers: Peers
    let logger: Logger
    /// Peers without a limit of their own: root, the daemon's user, configured proxies.
    let privileged: @Sendable (ConnectionKey, PeerCredentials?) -> Bool
    /// Told the bound port once a TCP door listens.
    let listening: @Sendable (Int) async -> Void
    private let listener = Mutex<(any Channel)?>(nil)
    private let stopped = Mutex(false)

    init(
        door: Door, router: Router<WebContext>, limits: ConnectionLimits, logger: Logger,
        privileged: @escaping @Sendable (ConnectionKey, PeerCredentials?) -> Bool, listening: @escaping @Sendable (Int) async -> Void = { _ in }
    ) {
        self.door = door
        self.privileged = privileged
        self.responder = router.buildResponder()
        self.peers = Peers(limits: limits)
        self.logger = logger
        self.listening = listening
    }

    /// Takes no new connection (under systemd they wait in the kernel for the next start); those
    /// under way go on until they end or the task running the server is cancelled.
    func stop() {
        let channel: (any Channel)? = stopped.withLock { stopped in
            stopped = true
            return listener.withLock { $0 }
        }
        channel?.close(promise: nil)
    }

    func run() async throws {
        let responder = responder
        let peers = peers
        let privileged = privileged
        let logger = logger
        let door = door
        let http = HTTP1Channel(
            responder: { request, writer, channel in
                let context = WebContext(source: .init(channel: channel, logger: logger), peer: peers.peer(of: channel))
                var response: Response
                do {
                    response = try await responder.respond(to: request, context: context)
                } catch {
                    response = Response(status: .internalServerError)
                }
                try await writer.write(response: response.head, body: response.body)
            },
            configuration: .init(idleTimeout: .seconds(LocalAPI.idleSeconds)))
        let bootstrap = ServerBootstrap(group: MultiThreadedEventLoopGroup.singleton)
            .serverChannelOption(ChannelOptions.backlog, value: 512)
            .serverChannelOption(ChannelOptions.socketOption(.so_reuseaddr), value: 1)
            .childChannelOption(ChannelOptions.allowRemoteHalfClosure, value: true)
        let initializer: @Sendable (any Channel) -> EventLoopFuture<HTTP1Channel.Value> = { channel in
            Self.key(of: channel, door: door).flatMap { identified -> EventLoopFuture<HTTP1Channel.Value> in
                guard let (key, credentials) = identified, peers.admit(channel, key, credentials: credentials, privileged: privileged(key, credentials)) else {
                    let key = identified?.key
                    if let key, peers.refused(key) {
                        logger.warning(
                            "connections from \(key) over the limit (\(peers.limits.perKey) at once per \(door.isUnix ? "user" : "address"), \(peers.limits.total) in all) are refused; further refusals of \(key) this minute are not logged")
                    }
                    // Said, not just closed: the CLI tells its user why rather than "no answer".
                    let body = #"{"ok":false,"message":"too many connections from \#(key.map { "\($0)" } ?? "an unknown peer") (at most \#(peers.limits.perKey) at once, \#(peers.limits.total) in all); close some and try again"}"#
                    let refusal = "HTTP/1.1 503 Service Unavailable\r\nContent-Type: application/json\r\nContent-Length: \(body.utf8.count)\r\nConnection: close\r\n\r\n" + body
                    // Said as soon as the connection is up (it is not yet while this runs), then
                    // closed; the HTTP handlers behind never see a byte of it.
                    do {
                        try channel.pipeline.syncOperations.addHandler(Refusal(text: refusal))
                    } catch {
                        channel.close(promise: nil)
                    }
                    return http.setup(channel: channel, logger: logger)
                }
                channel.closeFuture.whenComplete { _ in peers.remove(channel) }
                return http.setup(channel: channel, logger: logger).flatMapThrowing { value in
                    // Looked at as the decoder reads it, before the request line's form is lost.
                    let decoder = try channel.pipeline.syncOperations.handler(type: ByteToMessageHandler<HTTPRequestDecoder>.self)
                    try channel.pipeline.syncOperations.addHandler(OriginFormOnly(), position: .after(decoder))
                    return value
                }
            }
        }
        let server: NIOAsyncChannel<HTTP1Channel.Value, Never>
        switch door {
        case .unix(let socket):
            server = try await bootstrap.bind(NIOBSDSocket.Handle(socket.fd), cleanupExistingSocketFile: false, serverBackPressureStrategy: nil, childChannelInitializer: initializer)
        case .tcp(let host, let port):
            server = try await bootstrap.bind(host: host, port: port, serverBackPressureStrategy: nil, childChannelInitializer: initializer)
            await listening(server.channel.localAddress?.port ?? port)
        }
        let early = stopped.withLock { stopped in
            listener.withLock { $0 = server.channel }
            return stopped
        }
        if early { server.channel.close(promise: nil) }
        try await withThrowingDiscardingTaskGroup { group in
            try await server.executeThenClose { inbound in
                for try await connection in inbound {
                    group.addTask { await http.handle(value: connection, logger: logger) }
                }
            }
        }
    }

    /// Who is at the other end: over the local socket `SO_PEERCRED`, read on the connection's
    /// event loop before anything else; over TCP its address.
    static func key(of channel: any Channel, door: Door) -> EventLoopFuture<(key: ConnectionKey, credentials: PeerCredentials?)?> {
        guard case .unix = door else {
            let address = channel.remoteAddress?.ipAddress
            return channel.eventLoop.makeSucceededFuture(address.map { (ConnectionKey.address(ClientAddress.group($0)), nil) })
        }
        guard let provider = channel as? any SocketOptionProvider else { return channel.eventLoop.makeSucceededFuture(nil) }
        let future: EventLoopFuture<shipyard_ucred> = provider.unsafeGetSocketOption(level: SocketOptionLevel(SOL_SOCKET), name: SocketOptionName(SO_PEERCRED))
        return future.map { credentials -> (key: ConnectionKey, credentials: PeerCredentials?)? in
            (.user(credentials.uid), PeerCredentials(pid: credentials.pid, uid: credentials.uid, gid: credentials.gid))
        }.recover { _ in nil }
    }
}

extension Door {
    var isUnix: Bool {
        if case .unix = self { return true }
        return false
    }
}
