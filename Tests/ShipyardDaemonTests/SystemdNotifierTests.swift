import Foundation
import Testing

@testable import ShipyardDaemon

@Suite struct SystemdNotifierTests {
    /// Binds a datagram socket in the abstract namespace and returns it with its `@name`.
    func abstractSocket() throws -> (Int32, String) {
        let name = "shipyard-test-\(getpid())-\(UInt32.random(in: 0...UInt32.max))"
        let fd = socket(AF_UNIX, Int32(SOCK_DGRAM.rawValue), 0)
        var address = sockaddr_un()
        address.sun_family = sa_family_t(AF_UNIX)
        let path = [UInt8(0)] + Array(name.utf8)
        withUnsafeMutableBytes(of: &address.sun_path) { $0.copyBytes(from: path) }
        let length = socklen_t(MemoryLayout<sa_family_t>.size + path.count)
        let bound = withUnsafePointer(to: &address) { $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { bind(fd, $0, length) } }
        try #require(bound == 0)
        var timeout = timeval(tv_sec: 2, tv_usec: 0)
        setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &timeout, socklen_t(MemoryLayout<timeval>.size))
        return (fd, "@" + name)
    }

    @Test func sendsToAnAbstractSocket() throws {
        let (fd, name) = try abstractSocket()
        defer { close(fd) }
        let notifier = SystemdNotifier(environment: ["NOTIFY_SOCKET": name])
        #expect(notifier.send("READY=1\nSTATUS=testing"))
        var buffer = [UInt8](repeating: 0, count: 256)
        let n = recv(fd, &buffer, buffer.count, 0)
        #expect(String(decoding: buffer[0..<max(0, n)], as: UTF8.self) == "READY=1\nSTATUS=testing")
    }

    /// A manager that does not read its socket (its queue full) never stalls the daemon: sends
    /// return at once, and once it reads, every message arrives in order, watchdog pings that
    /// waited together sent once.
    @Test func aFullNotifySocketNeverBlocksTheSenderAndLosesNothing() throws {
        let (fd, name) = try abstractSocket()
        defer { close(fd) }
        let notifier = SystemdNotifier(environment: ["NOTIFY_SOCKET": name])
        let start = ContinuousClock.now
        // More than the socket's queue holds (net.unix.max_dgram_qlen: 10 by default).
        for index in 0..<50 {
            #expect(notifier.send("STATUS=\(index)"))
            #expect(notifier.send("WATCHDOG=1"))
        }
        #expect(notifier.send("READY=1"))
        #expect(ContinuousClock.now - start < .seconds(2))
        var received: [String] = []
        var buffer = [UInt8](repeating: 0, count: 256)
        while received.last != "READY=1" {
            let n = recv(fd, &buffer, buffer.count, 0)
            guard n > 0 else { break }
            received.append(String(decoding: buffer[0..<n], as: UTF8.self))
        }
        #expect(received.filter { $0.hasPrefix("STATUS=") } == (0..<50).map { "STATUS=\($0)" })
        #expect(received.last == "READY=1")
        #expect(received.filter { $0 == "WATCHDOG=1" }.count < 50)
    }

    @Test func watchdogIsHalfTheIntervalAndOnlyForThisProcess() {
        #expect(SystemdNotifier(environment: ["WATCHDOG_USEC": "30000000"]).watchdogInterval == .seconds(15))
        #expect(SystemdNotifier(environment: ["WATCHDOG_USEC": "30000000", "WATCHDOG_PID": "\(getpid())"]).watchdogInterval == .seconds(15))
        #expect(SystemdNotifier(environment: ["WATCHDOG_USEC": "30000000", "WATCHDOG_PID": "1"]).watchdogInterval == nil)
        #expect(SystemdNotifier(environment: [:]).watchdogInterval == nil)
        #expect(SystemdNotifier(environment: [:]).send("READY=1") == false)
    }
}
