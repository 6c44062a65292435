import Foundation
import ShipyardTestKit
import Testing

/// The web view on TCP under the attacks a network can mount, with the daemon under the unit's
/// `LimitNOFILE`: thousands of idle event streams and incomplete requests must neither crash it
/// nor starve `/healthz`, a delivery, or an approver's CLI.
@Suite(.serialized) struct WebAttackTests {
    typealias World = SequenceTests.World

    /// 2,000 Server-Sent-Events clients from 127.0.0.2 and 2,000 slowloris connections (a request
    /// head never finished, a header line every 5 s) from 127.0.0.3, held at once, with the daemon
    /// under `LimitNOFILE=8192` as the unit sets it. Each address gets its 64 connections and the
    /// rest a 503 at once (logged once per address a minute); `/healthz` from 127.0.0.1 answers
    /// within a second, a delivery triggered during the attack reaches its approval and the
    /// approver's `shipyardctl approve` is answered within a second; the slowloris connections
    /// that were let in are closed after the idle timeout (30 s).
    @Test(.timeLimit(.minutes(5)))
    func thousandsOfStreamsAndSlowRequestsStarveNothing() async throws {
        let world = try World(shipyard: GitWatchingTests.tutorialWithApproval, extraConfig: "http:\n  listen: 127.0.0.1:0")
        #expect(await world.ready())
        #expect(await world.daemon.stop() == 0)
        let unit = try String(contentsOf: Repository.root.appendingPathComponent("systemd/shipyardd.service"), encoding: .utf8)
        let limit = try #require(unit.split(separator: "\n").first { $0.hasPrefix("LimitNOFILE=") }.map { String($0.dropFirst("LimitNOFILE=".count)) })
        world.daemon.prefix = ["/usr/bin/prlimit", "--nofile=\(limit):\(limit)", "--"]
        try world.daemon.start()
        #expect(await world.ready())
        var web: String?
        _ = await eventually { web = world.daemon.status()?.web; return web != nil }
        let base = try #require(web)
        let port = try #require(URLComponents(string: base)?.port)

        let out = world.dir.path + "/attack.json"
        let attack = try Subprocess("/usr/bin/python3", ["-c", Self.attack, String(port), out], stdout: 1, stderr: 2)
        defer { attack.kill9() }
        #expect(await eventually(timeout: .seconds(120)) { FileManager.default.fileExists(atPath: out + ".holding") }, "\(world.daemon.log.suffix(2000))")

        // /healthz from another address: the median of five probes.
        let client = HTTPClient(base: "http://127.0.0.1:\(port)")
        var probes: [Duration] = []
        for _ in 0..<5 {
            let start = ContinuousClock.now
            let reply = try client.get("/healthz")
            probes.append(ContinuousClock.now - start)
            #expect(reply.status == 200)
        }
        let median = probes.sorted()[2]
        print("attack: /healthz answered in \(probes) (median \(median))")
        #expect(median < .seconds(1), "\(probes)")

        // A delivery during the attack reaches its approval; the approver decides at once.
        let context = try world.trigger()
        #expect(await world.waitState(context, "production", "waitingForApproval", timeout: .seconds(60)))
        let approvals = try world.daemon.ctl(["approvals", "--output", "json"])
        let id = try #require(((try JSONSerialization.jsonObject(with: Data(approvals.stdout.utf8)) as? [[String: Any]])?.first?["id"]) as? String)
        let start = ContinuousClock.now
        let approved = try world.daemon.ctl(["approve", id, "--reason", "during the attack"])
        let took = ContinuousClock.now - start
        print("attack: shipyardctl approve answered in \(took)")
        #expect(approved.status == 0, "\(approved.stderr)")
        #expect(took < .seconds(1))
        #expect(await world.waitState(context, "production", "finished", timeout: .seconds(60)))

        // The attacker's counts: its excess refused at once, its slow requests closed.
        #expect(FileManager.default.createFile(atPath: out + ".stop", contents: nil))
        #expect(await eventually(timeout: .seconds(120)) { FileManager.default.fileExists(atPath: out) })
        let counts = (try? JSONSerialization.jsonObject(with: Data(contentsOf: URL(fileURLWithPath: out)))) as? [String: Int] ?? [:]
        print("attack: \(counts)")
        #expect(counts["streams"] == 64 && counts["streamsRefused"] == 2000 - 64, "\(counts)")
        #expect(counts["slowRefused"] == 2000 - 64 && counts["slowClosedByServer"] == 64, "\(counts)")
        #expect(world.daemon.isRunning)
        let log = world.daemon.log
        for address in ["127.0.0.2", "127.0.0.3"] {
            let lines = log.components(separatedBy: "connections from \(address) over the limit").count - 1
            #expect(lines >= 1 && lines <= 3, "\(address): \(lines) log lines")
        }
    }

    /// The attacker: streams from 127.0.0.2, slowloris from 127.0.0.3 (both loopback), held until
    /// told to stop (or three minutes); writes what the server did to each kind.
    static let attack = #"""
        import json, os, resource, socket, sys, time
        soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
        resource.setrlimit(resource.RLIMIT_NOFILE, (min(hard, 16384), hard))
        port, out = int(sys.argv[1]), sys.argv[2]
        def connect(source):
            s = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
            s.bind((source, 0))
            s.connect(("127.0.0.1", port))
            return s
        streams, slow = [], []
        for _ in range(2000):
            s = connect("127.0.0.2")
            s.sendall(b"GET /events/stream HTTP/1.1\r\nHost: 127.0.0.1:%d\r\nAccept: text/event-stream\r\n\r\n" % port)
            streams.append(s)
        for _ in range(2000):
            s = connect("127.0.0.3")
            s.sendall(b"GET /deliveries HTTP/1.1\r\nHost: 127.0.0.1:%d\r\n" % port)
            slow.append(s)
        for s in streams + slow:
            s.setblocking(False)
        got = {}
        closed = set()
        def read_all():
            for s in streams + slow:
                if s in closed:
                    continue
                try:
                    data = s.recv(65536)
                    if data == b"":
                        closed.add(s)
                    else:
                        got[s] = got.get(s, b"") + data
                except BlockingIOError:
                    pass
                except OSError:
                    closed.add(s)
        deadline = time.time() + 60
        while time.time() < deadline:
            read_all()
            answered = sum(1 for s in streams if s in got and (b"text/event-stream" in got[s] or got[s].startswith(b"HTTP/1.1 503")))
            refused = sum(1 for s in slow if got.get(s, b"").startswith(b"HTTP/1.1 503"))
            if answered == 2000 and refused >= 2000 - 64:
                break
            time.sleep(0.2)
        open(out + ".holding", "w").close()
        holding = last = time.time()
        slow_closed_at = {}
        while time.time() < holding + 180:
            read_all()
            for s in slow:
                if s in closed and not got.get(s, b"").startswith(b"HTTP/1.1 503") and s not in slow_closed_at:
                    slow_closed_at[s] = time.time()
            # The slow ones trickle a header line every 5 s (never the blank line ending the head).
            if time.time() > last + 5:
                for s in slow:
                    if s not in closed:
                        try:
                            s.send(b"X-Slow: 1\r\n")
                        except OSError:
                            closed.add(s)
                last = time.time()
            if os.path.exists(out + ".stop") and (len(slow_closed_at) >= 64 or time.time() > holding + 90):
                break
            time.sleep(0.2)
        counts = {
            "streams": sum(1 for s in streams if b"text/event-stream" in got.get(s, b"")),
            "streamsRefused": sum(1 for s in streams if got.get(s, b"").startswith(b"HTTP/1.1 503")),
            "slowRefused": sum(1 for s in slow if got.get(s, b"").startswith(b"HTTP/1.1 503")),
            "slowClosedByServer": len(slow_closed_at),
        }
        json.dump(counts, open(out, "w"))
        """#
}
