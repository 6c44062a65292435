import Foundation
import Synchronization

/// Tells the web view that the record or a project's status changed, so that open pages update
/// (Server-Sent Events). Each subscriber holds at most the newest change: a burst of a thousand
/// steps is one update for a page that is behind.
public final class ChangeFeed: Sendable {
    private struct State {
        var version: UInt64 = 0
        var subscribers: [UInt64: AsyncStream<UInt64>.Continuation] = [:]
        var nextID: UInt64 = 0
    }

    private let state = Mutex(State())

    public init() {}

    /// The number of changes published so far.
    public var version: UInt64 { state.withLock { $0.version } }

    public func publish() {
        let (version, subscribers) = state.withLock { s -> (UInt64, [AsyncStream<UInt64>.Continuation]) in
            s.version &+= 1
            return (s.version, Array(s.subscribers.values))
        }
        for subscriber in subscribers { subscriber.yield(version) }
    }

    /// Changes from now on, until the stream is dropped.
    public func subscribe() -> AsyncStream<UInt64> {
        let (stream, continuation) = AsyncStream.makeStream(of: UInt64.self, bufferingPolicy: .bufferingNewest(1))
        let id = state.withLock { s -> UInt64 in
            s.nextID &+= 1
            s.subscribers[s.nextID] = continuation
            return s.nextID
        }
        continuation.onTermination = { [weak self] _ in
            _ = self?.state.withLock { $0.subscribers.removeValue(forKey: id) }
        }
        return stream
    }
}

/// Something that runs beside the daemon and stops with it: the local API and the web view.
/// `stop` makes it take no new connections; `run` returns (or throws `CancellationError`) once
/// those under way ended or its task is cancelled.
public protocol DaemonFrontend: Sendable {
    func run() async throws
    func stop()
    /// A reloaded config's `http:` (its listen address unchanged).
    func update(_ http: DaemonConfig.HTTP)
}
