import Foundation
import Synchronization

/// The local API of a standby (a shared record another host leads): `GET /api/v1/status` is
/// answered with the status file (who leads, every host's heartbeat, this host's polls), every
/// other request at once with 503 and what to do, rather than left waiting in the socket's
/// queue, so that `shipyardctl` on any host says who leads. Runs on a thread of its own until `stop()`, which
/// returns once it no longer accepts, so that the real local API may take the socket over.
final class StandbyResponder: Sendable {
    private let fd: Int32
    private let message: @Sendable () -> String
    private let status: @Sendable () -> Data?
    private let stopped = Mutex(false)
    private let done = DispatchSemaphore(value: 0)

    init(fd: Int32, status: @escaping @Sendable () -> Data?, message: @escaping @Sendable () -> String) {
        self.fd = fd
        self.status = status
        self.message = message
        let thread = Thread { [self] in
            serve()
            done.signal()
        }
        thread.name = "standby-api"
        thread.start()
    }

    func stop() {
        stopped.withLock { $0 = true }
        done.wait()
    }

    private func serve() {
        while !stopped.withLock({ $0 }) {
            var ready = pollfd(fd: fd, events: Int16(POLLIN), revents: 0)
            guard poll(&ready, 1, 100) == 1 else { continue }
            let client = accept(fd, nil, nil)
            guard client >= 0 else { continue }
            _ = fcntl(client, F_SETFD, FD_CLOEXEC)
            answer(client)
            close(client)
        }
    }

    /// Reads the request (head and body, at most 1 MiB, 2 s at most) and answers 503.
    private func answer(_ client: Int32) {
        var timeout = timeval(tv_sec: 2, tv_usec: 0)
        setsockopt(client, SOL_SOCKET, SO_RCVTIMEO, &timeout, socklen_t(MemoryLayout<timeval>.size))
        setsockopt(client, SOL_SOCKET, SO_SNDTIMEO, &timeout, socklen_t(MemoryLayout<timeval>.size))
        var received = Data()
        var buffer = [UInt8](repeating: 0, count: 16384)
        let separator = Data("\r\n\r\n".utf8)
        while received.count < 1 << 20 {
            let n = recv(client, &buffer, buffer.count, 0)
            guard n > 0 else { break }
            received.append(contentsOf: buffer[0..<n])
            if let end = received.range(of: separator) {
                let head = String(decoding: received[..<end.lowerBound], as: UTF8.self).lowercased()
                let length = head.split(separator: "\r\n").first { $0.hasPrefix("content-length:") }
                    .flatMap { Int($0.dropFirst("content-length:".count).trimmingCharacters(in: .whitespaces)) } ?? 0
                if received.count - end.upperBound >= min(length, 1 << 20) { break }
            }
        }
        let line = received.prefix { $0 != 0x0D && $0 != 0x0A }
        let (code, body): (String, Data)
        if line.starts(with: Data("GET /api/v1/status ".utf8)), let document = status() {
            (code, body) = ("200 OK", document)
        } else {
            (code, body) = ("503 Service Unavailable", (try? JSONSerialization.data(withJSONObject: ["ok": false, "message": message()], options: [.sortedKeys])) ?? Data())
        }
        var response = Data("HTTP/1.1 \(code)\r\nContent-Type: application/json\r\nContent-Length: \(body.count)\r\nConnection: close\r\n\r\n".utf8)
        response.append(body)
        _ = response.withUnsafeBytes { send(client, $0.baseAddress, $0.count, Int32(MSG_NOSIGNAL)) }
    }
}
