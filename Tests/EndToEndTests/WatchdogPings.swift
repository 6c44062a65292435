import Foundation
import ShipyardCore
import ShipyardDaemon
import ShipyardTestKit
import Synchronization
import Testing

/// systemd's notify socket, on a thread of its own, timing every `WATCHDOG=1`.
final class WatchdogPings: Sendable {
    let path: String
    private let fd: Int32
    private let times = Mutex<[Double]>([])
    private let running = Atomic<Bool>(true)

    init(path: String) {
        self.path = path
        fd = socket(AF_UNIX, Int32(SOCK_DGRAM.rawValue), 0)
        var address = sockaddr_un()
        address.sun_family = sa_family_t(AF_UNIX)
        withUnsafeMutableBytes(of: &address.sun_path) { $0.copyBytes(from: Array(path.utf8) + [0]) }
        _ = withUnsafePointer(to: &address) {
            $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { bind(fd, $0, socklen_t(MemoryLayout<sockaddr_un>.size)) }
        }
        var timeout = timeval(tv_sec: 0, tv_usec: 100_000)
        setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &timeout, socklen_t(MemoryLayout<timeval>.size))
        Thread { self.receive() }.start()
    }

    private func receive() {
        var buffer = [UInt8](repeating: 0, count: 4096)
        while running.load(ordering: .relaxed) {
            let n = recv(fd, &buffer, buffer.count, 0)
            guard n > 0 else { continue }
            if String(decoding: buffer[0..<n], as: UTF8.self).split(separator: "\n").contains("WATCHDOG=1") {
                let now = Date().timeIntervalSince1970
                times.withLock { $0.append(now) }
            }
        }
        close(fd)
    }

    func stop() { running.store(false, ordering: .relaxed) }

    var count: Int { times.withLock { $0.count } }

    /// The longest time between two pings.
    var longestGap: Double {
        let all = times.withLock { $0 }
        var gap = 0.0
        for (a, b) in zip(all, all.dropFirst()) { gap = max(gap, b - a) }
        return gap
    }
}
