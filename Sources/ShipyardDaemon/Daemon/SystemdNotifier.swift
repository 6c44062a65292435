import Dispatch
import Foundation
import Synchronization

/// systemd's notify protocol, without libsystemd: one datagram per message to the AF_UNIX socket
/// named by `$NOTIFY_SOCKET` (a leading `@` means the abstract namespace).
///
/// Messages leave from a thread of their own, in order: a datagram to a socket whose queue is
/// full (a manager that does not read, `net.unix.max_dgram_qlen` messages behind) waits there
/// until it reads, never in the daemon. A watchdog ping already waiting is not queued twice.
public struct SystemdNotifier: Sendable {
    let socketPath: String?
    let outbox: Outbox?
    /// Half of `$WATCHDOG_USEC`, when systemd watches this process.
    public let watchdogInterval: Duration?

    public init(environment: [String: String]) {
        socketPath = environment["NOTIFY_SOCKET"].flatMap { $0.isEmpty ? nil : $0 }
        outbox = socketPath.map { Outbox(path: $0) }
        if let usec = environment["WATCHDOG_USEC"].flatMap(Int64.init), usec > 0,
            environment["WATCHDOG_PID"].flatMap(Int32.init).map({ $0 == getpid() }) ?? true
        {
            watchdogInterval = .microseconds(usec / 2)
        } else {
            watchdogInterval = nil
        }
    }

    public var isEnabled: Bool { socketPath != nil }

    /// Queues `KEY=VALUE` lines for systemd and returns at once: true when there is a socket to
    /// send them to (not that they were delivered), false when there is none.
    @discardableResult
    public func send(_ message: String) -> Bool {
        guard let outbox else { return false }
        outbox.post(message)
        return true
    }

    /// Waits (at most `within`) until the queued messages left: the last of a stop (STOPPING=1)
    /// reaches systemd before the process exits.
    public func flush(within: Duration) {
        guard let outbox else { return }
        let deadline = ContinuousClock.now + within
        while !outbox.isIdle, ContinuousClock.now < deadline { usleep(5000) }
    }

    /// Messages for the socket, sent in order by one thread that may wait on a full socket.
    final class Outbox: Sendable {
        let path: String
        private let state = Mutex<(pending: [String], started: Bool, sending: Bool)>(([], false, false))
        private let ready = DispatchSemaphore(value: 0)
        /// The most status and watchdog lines that wait: beyond it the oldest go (the lines that
        /// change the unit's state, READY, RELOADING, STOPPING, are never dropped).
        static let limit = 256

        /// Nothing waits and nothing is being sent.
        var isIdle: Bool { state.withLock { $0.pending.isEmpty && !$0.sending } }

        init(path: String) { self.path = path }

        func post(_ message: String) {
            let start = state.withLock { state -> Bool in
                if message == "WATCHDOG=1", state.pending.contains(message) { return false }
                state.pending.append(message)
                if state.pending.count > Self.limit,
                    let stale = state.pending.firstIndex(where: { $0 == "WATCHDOG=1" || ($0.hasPrefix("STATUS=") && !$0.contains("\n")) })
                {
                    state.pending.remove(at: stale)
                }
                defer { state.started = true }
                return !state.started
            }
            if start {
                let thread = Thread { [self] in self.run() }
                thread.name = "sd-notify"
                thread.start()
            }
            ready.signal()
        }

        private func run() {
            while true {
                ready.wait()
                while let next = state.withLock({ state -> String? in
                    state.sending = !state.pending.isEmpty
                    return state.pending.isEmpty ? nil : state.pending.removeFirst()
                }) {
                    _ = SystemdNotifier.deliver(next, to: path)
                }
            }
        }
    }

    /// One datagram, sent now (waiting while the socket's queue is full); false when it failed.
    static func deliver(_ message: String, to socketPath: String) -> Bool {
        let fd = socket(AF_UNIX, Int32(SOCK_DGRAM.rawValue) | Int32(SOCK_CLOEXEC.rawValue), 0)
        guard fd >= 0 else { return false }
        defer { close(fd) }
        var address = sockaddr_un()
        address.sun_family = sa_family_t(AF_UNIX)
        var path = Array(socketPath.utf8)
        if path.first == UInt8(ascii: "@") { path[0] = 0 }
        let capacity = MemoryLayout.size(ofValue: address.sun_path)
        guard path.count < capacity else { return false }
        withUnsafeMutableBytes(of: &address.sun_path) { raw in
            raw.copyBytes(from: path)
        }
        let length = socklen_t(MemoryLayout<sa_family_t>.size + path.count + (path.first == 0 ? 0 : 1))
        let bytes = Array(message.utf8)
        let sent = withUnsafePointer(to: &address) { pointer in
            pointer.withMemoryRebound(to: sockaddr.self, capacity: 1) { sockaddrPointer in
                bytes.withUnsafeBytes { sendto(fd, $0.baseAddress, $0.count, Int32(MSG_NOSIGNAL), sockaddrPointer, length) }
            }
        }
        return sent == bytes.count
    }

    /// `MONOTONIC_USEC=` for `RELOADING=1`: systemd 253+ uses it to order the reload.
    public static var monotonicMicroseconds: UInt64 {
        var now = timespec()
        clock_gettime(CLOCK_MONOTONIC, &now)
        return UInt64(now.tv_sec) * 1_000_000 + UInt64(now.tv_nsec) / 1000
    }
}
