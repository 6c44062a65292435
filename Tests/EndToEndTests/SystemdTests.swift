import Foundation
import ShipyardTestKit
import Testing

/// The daemon under systemd's protocols, with this test playing systemd's part.
@Suite(.serialized) struct SystemdTests {
    /// An AF_UNIX datagram socket like systemd's notify socket, collecting what the daemon sends.
    final class NotifySocket: @unchecked Sendable {
        let path: String
        private let fd: Int32

        init(path: String) throws {
            self.path = path
            fd = socket(AF_UNIX, Int32(SOCK_DGRAM.rawValue), 0)
            var address = sockaddr_un()
            address.sun_family = sa_family_t(AF_UNIX)
            withUnsafeMutableBytes(of: &address.sun_path) { $0.copyBytes(from: Array(path.utf8) + [0]) }
            let bound = withUnsafePointer(to: &address) {
                $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { bind(fd, $0, socklen_t(MemoryLayout<sockaddr_un>.size)) }
            }
            guard bound == 0 else { throw ProcessFailure(description: "cannot bind \(path)") }
            var timeout = timeval(tv_sec: 0, tv_usec: 100_000)
            setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &timeout, socklen_t(MemoryLayout<timeval>.size))
        }

        deinit { close(fd) }

        private var received: [String] = []

        /// Every message so far, each one datagram.
        func messages() -> [String] {
            var buffer = [UInt8](repeating: 0, count: 4096)
            while true {
                let n = recv(fd, &buffer, buffer.count, 0)
                guard n > 0 else { break }
                received.append(String(decoding: buffer[0..<n], as: UTF8.self))
            }
            return received
        }

        func waitFor(_ timeout: Duration = .seconds(20), _ condition: ([String]) -> Bool) async -> [String] {
            var last: [String] = []
            _ = await eventually(timeout: timeout) {
                last = messages()
                return condition(last)
            }
            return last
        }
    }

    @Test func readyStatusWatchdogReloadAndStop() async throws {
        let world = try SequenceTests.World(seconds: "gate", extraConfig: "stopGracePeriod: 1s")
        #expect(await world.ready())
        #expect(await world.daemon.stop() == 0)
        let socket = try NotifySocket(path: world.dir.path + "/notify.sock")
        world.daemon.environment = ["NOTIFY_SOCKET": socket.path, "WATCHDOG_USEC": "400000"]
        try world.daemon.start()

        var messages = await socket.waitFor { $0.contains { $0.hasPrefix("READY=1") } }
        let ready = try #require(messages.first { $0.hasPrefix("READY=1") })
        #expect(ready == "READY=1\nSTATUS=1 project, 0 running, 0 waiting for approval")
        // The watchdog is petted at half of WATCHDOG_USEC, again and again.
        messages = await socket.waitFor { $0.filter { $0 == "WATCHDOG=1" }.count >= 5 }
        #expect(messages.filter { $0 == "WATCHDOG=1" }.count >= 5)

        // SIGHUP with a changed config: RELOADING=1 with MONOTONIC_USEC, then READY=1.
        let config = try String(contentsOfFile: world.daemon.configPath, encoding: .utf8)
        try Data(config.replacingOccurrences(of: "pollInterval: 1s", with: "pollInterval: 2s").utf8)
            .write(to: URL(fileURLWithPath: world.daemon.configPath))
        world.daemon.signal(SIGHUP)
        messages = await socket.waitFor { $0.filter { $0.hasPrefix("READY=1") }.count == 2 }
        let reloading = try #require(messages.first { $0.hasPrefix("RELOADING=1") })
        #expect(reloading.range(of: #"^RELOADING=1\nMONOTONIC_USEC=\d+$"#, options: .regularExpression) != nil)
        #expect(messages.firstIndex(of: reloading)! < messages.lastIndex { $0.hasPrefix("READY=1") }!)
        #expect(world.daemon.log.contains("config reloaded"))

        // A bad config on SIGHUP is refused; the daemon says READY again with the old one.
        try Data("projects: [".utf8).write(to: URL(fileURLWithPath: world.daemon.configPath))
        world.daemon.signal(SIGHUP)
        messages = await socket.waitFor { $0.filter { $0.hasPrefix("READY=1") }.count == 3 }
        #expect(messages.filter { $0.hasPrefix("RELOADING=1") }.count == 2)
        #expect(world.daemon.log.contains("config reload refused, keeping the running config"))

        // STATUS follows what runs; SIGTERM with a task running: STOPPING=1, exit 0, and the
        // task runs again at the next start.
        let context = try world.trigger()
        messages = await socket.waitFor { $0.contains("STATUS=1 project, 1 running, 0 waiting for approval") }
        #expect(messages.contains("STATUS=1 project, 1 running, 0 waiting for approval"))
        #expect(await eventually { world.runs.count == 1 })
        #expect(await world.daemon.stop() == 0)
        #expect(socket.messages().contains("STOPPING=1"))
        try Data(config.utf8).write(to: URL(fileURLWithPath: world.daemon.configPath))
        try world.daemon.start()
        #expect(await eventually { world.runs.count == 2 })
        try world.openGate()
        #expect(await world.waitState(context, "production", "finished", timeout: .seconds(60)), "\(world.daemon.log.suffix(3000))")
        #expect(world.runs.filter { $0.contains(" qa je-deployment ") }.map { $0.split(separator: " ")[3] } == ["attempt=1", "attempt=2"])
    }

    @Test func underJournaldEachLineCarriesItsPriority() async throws {
        let dir = try TemporaryDirectory()
        let daemon = try RunningDaemon(
            directory: dir.path, config: "projects:\n  - name: demo\n    upstream: file://\(dir.path)/missing.git\n",
            environment: ["JOURNAL_STREAM": "8:12345"])
        #expect(await eventually { daemon.log.contains("upstream poll failed") })
        #expect(await daemon.stop() == 0)
        let lines = daemon.log.split(separator: "\n")
        #expect(lines.first?.hasPrefix("<6>shipyardd 0.1.0 starting") == true)
        #expect(lines.contains { $0.hasPrefix("<3>[demo] upstream poll failed: ") })
        #expect(lines.allSatisfy { $0.hasPrefix("<") })
    }

    @Test func theUnitVerifiesAndItsSandboxScoresOK() throws {
        let dir = try TemporaryDirectory()
        let unit = try String(contentsOf: Repository.root.appendingPathComponent("systemd/shipyardd.service"), encoding: .utf8)
        // verify checks that ExecStart exists: point it at the built daemon.
        let local = try dir.write("shipyardd.service", unit.replacingOccurrences(of: "/usr/local/bin/shipyardd", with: Command.path("shipyardd")))
        // The socket unit it requires sits beside it, as make install puts them.
        let socket = try dir.write("shipyardd.socket", String(contentsOf: Repository.root.appendingPathComponent("systemd/shipyardd.socket"), encoding: .utf8))
        // verify opens each Documentation= page with man(1): the pages of docs/man, laid out as
        // they are installed, so that a page the unit names and the package lacks fails here.
        let manual = dir.path + "/man"
        for (page, section) in [("shipyardd.8", "8"), ("shipyardd.yaml.5", "5"), ("shipyardctl.1", "1")] {
            try FileManager.default.createDirectory(atPath: manual + "/man" + section, withIntermediateDirectories: true)
            try FileManager.default.copyItem(atPath: Repository.root.path + "/docs/man/" + page, toPath: manual + "/man\(section)/" + page)
        }
        let verify = try Run.capture("/usr/bin/systemd-analyze", ["verify", local, socket], environment: ["MANPATH": manual])
        #expect(verify.status == 0, "\(verify.stderr)")
        #expect(!verify.stderr.contains("shipyardd.service:"), "\(verify.stderr)")

        let security = try Run.capture("/usr/bin/systemd-analyze", [
            "security", "--offline=true", Repository.root.appendingPathComponent("systemd/shipyardd.service").path,
        ])
        let line = try #require(security.stdout.split(separator: "\n").first { $0.contains("Overall exposure level") })
        let score = Double(line.split(separator: ":").last?.split(separator: " ").first ?? "") ?? 10
        #expect(score <= 2.0, "\(line)")
    }
}
