import Foundation
import Hummingbird
import HTTPTypes
import NIOCore
import ShipyardCore
import ShipyardDaemon
import Synchronization

/// `/metrics`, and the pages' live updates (Server-Sent Events).
extension Site {
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
            // Subscribed first, then the version: a page read at an older one refreshes at once.
            continuation.yield("event: hello\ndata: \(feed.version)\n\n")
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
