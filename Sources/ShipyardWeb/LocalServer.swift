import CSupport
public import Foundation
import Hummingbird
import HummingbirdCore
import Logging
import NIOCore
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

/// The peers of the local socket's open connections, by connection, and how many each user has.
final class Peers: Sendable {
    private struct State {
        var byChannel: [ObjectIdentifier: PeerCredentials] = [:]
        var perUser: [uid_t: Int] = [:]
    }

    private let state = Mutex(State())

    /// Counts a new connection; false when its user (or everybody) has too many open already.
    /// `privileged` (root, the daemon's user, a configured proxy): no limit of its own, and room
    /// kept beyond the others' total, so that members' connections never shut them out.
    func admit(_ channel: any Channel, _ peer: PeerCredentials, privileged: Bool) -> Bool {
        state.withLock { state in
            if privileged {
                guard state.byChannel.count < LocalAPI.maxConnections + LocalAPI.connectionsPerUser * 4 else { return false }
            } else {
                guard state.byChannel.count < LocalAPI.maxConnections, state.perUser[peer.uid, default: 0] < LocalAPI.connectionsPerUser else { return false }
            }
            state.byChannel[ObjectIdentifier(channel)] = peer
            state.perUser[peer.uid, default: 0] += 1
            return true
        }
    }

    func remove(_ channel: any Channel) {
        state.withLock { state in
            guard let peer = state.byChannel.removeValue(forKey: ObjectIdentifier(channel)) else { return }
            state.perUser[peer.uid, default: 1] -= 1
            if state.perUser[peer.uid] == 0 { state.perUser[peer.uid] = nil }
        }
    }

    func peer(of channel: any Channel) -> PeerCredentials? {
        state.withLock { $0.byChannel[ObjectIdentifier(channel)] }
    }

    /// Connections refused for being over a limit, per user, for the log.
    let refused = Mutex<[uid_t: Int]>([:])
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

/// The local API: Hummingbird's HTTP/1.1 on a listening unix socket the daemon was handed
/// (socket activation) or made. Each connection's peer is read from the kernel before any byte
/// of it is parsed; a user over the connection limit is closed at once, idle connections are
/// closed after `LocalAPI.idleSeconds`.
final class LocalServer: Sendable {
    let socket: ListeningSocket
    let responder: RouterResponder<WebContext>
    let peers: Peers
    let logger: Logger
    /// Peers without a connection limit of their own: root, the daemon's user, configured proxies.
    let privileged: @Sendable (PeerCredentials) -> Bool
    private let listener = Mutex<(any Channel)?>(nil)
    private let stopped = Mutex(false)

    init(socket: ListeningSocket, router: Router<WebContext>, peers: Peers, logger: Logger, privileged: @escaping @Sendable (PeerCredentials) -> Bool) {
        self.privileged = privileged
        self.socket = socket
        self.responder = router.buildResponder()
        self.peers = peers
        self.logger = logger
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
            .childChannelOption(ChannelOptions.allowRemoteHalfClosure, value: true)
        let server = try await bootstrap.bind(NIOBSDSocket.Handle(socket.fd), cleanupExistingSocketFile: false, serverBackPressureStrategy: nil) { channel in
            Self.credentials(of: channel).flatMap { peer -> EventLoopFuture<HTTP1Channel.Value> in
                guard let peer, peers.admit(channel, peer, privileged: privileged(peer)) else {
                    if let peer { peers.refused.withLock { $0[peer.uid, default: 0] += 1 } }
                    // Said, not just closed: the CLI tells its user why rather than "no answer".
                    let body = #"{"ok":false,"message":"too many connections from uid \#(peer?.uid ?? 0) (at most \#(LocalAPI.connectionsPerUser) at once); close some and try again"}"#
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
                return http.setup(channel: channel, logger: logger)
            }
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

    /// `SO_PEERCRED` of a new connection, read on its event loop before anything else.
    static func credentials(of channel: any Channel) -> EventLoopFuture<PeerCredentials?> {
        guard let provider = channel as? any SocketOptionProvider else { return channel.eventLoop.makeSucceededFuture(nil) }
        let future: EventLoopFuture<shipyard_ucred> = provider.unsafeGetSocketOption(level: SocketOptionLevel(SOL_SOCKET), name: SocketOptionName(SO_PEERCRED))
        return future.map { credentials -> PeerCredentials? in
            PeerCredentials(pid: credentials.pid, uid: credentials.uid, gid: credentials.gid)
        }.recover { _ -> PeerCredentials? in nil }
    }
}
