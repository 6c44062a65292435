import Foundation
import HummingbirdBcrypt
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

    /// The tutorial with an htpasswd file of cost-10 hashes (about what `htpasswd -B` makes).
    static func guessingWorld() throws -> (World, TemporaryDirectory, HTTPClient.Type) {
        let secrets = try TemporaryDirectory()
        let alice = Bcrypt.hash("alice-secret", cost: 10).replacingOccurrences(of: "$2b$", with: "$2y$")
        let others = (0..<7).map { "k\($0):" + Bcrypt.hash("k-secret", cost: 10) + "\n" }.joined()
        let passwords = try secrets.write("htpasswd", "alice:\(alice)\n" + others, mode: 0o600)
        let world = try World(shipyard: GitWatchingTests.tutorialWithApproval, extraConfig: """
            approvers:
              users: [alice]
            http:
              listen: 127.0.0.1:0
              auth:
                htpasswd: \(passwords)
            """)
        return (world, secrets, HTTPClient.self)
    }

    /// Guessing is limited, not just delayed: 200 guesses at once from one address are checked
    /// at the throttle's rate (at most 5 in 10 s) and the rest refused unchecked (429); a flood of
    /// made-up names from 60 addresses does not take the checks a real user needs to sign in; a failed
    /// sign-in takes as long for a user who does not exist as for one who does (within 20 %).
    @Test(.timeLimit(.minutes(5)))
    func guessingIsLimitedAndUnknownNamesTakeNothingFromKnownUsers() async throws {
        let (world, secrets, _) = try Self.guessingWorld()
        defer { withExtendedLifetime(secrets) {} }
        #expect(await world.ready())
        var web: String?
        _ = await eventually { web = world.daemon.status()?.web; return web != nil }
        let base = try #require(web)
        let port = try #require(URLComponents(string: base)?.port)

        // 200 at once from 127.0.0.2, for alice, with wrong passwords (20 a second for 10 s).
        let guesses = try Run.checked("/usr/bin/python3", ["-c", Self.client + #"""
            import threading
            counts = {}
            lock = threading.Lock()
            def guess(i):
                status = basic("127.0.0.2", "alice", "guess-%d" % i)
                with lock:
                    counts[status] = counts.get(status, 0) + 1
            threads = []
            start = time.time()
            for i in range(200):
                t = threading.Thread(target=guess, args=(i,))
                t.start()
                threads.append(t)
                time.sleep(0.05)
            for t in threads: t.join()
            print(json.dumps({"checked": counts.get(401, 0), "refused": counts.get(429, 0), "other": sum(v for k, v in counts.items() if k not in (401, 429)), "seconds": time.time() - start}))
            """#, String(port)])
        let counts = try #require(try JSONSerialization.jsonObject(with: Data(guesses.utf8)) as? [String: Double])
        print("guessing: \(counts)")
        // The documented rate: checks may start at 0, 0, 0.5, 1.5, 3.5, 7.5, 15.5, 23.5 … s (the
        // waits after each failure); no more may have fitted in the time the guesses took.
        let seconds = counts["seconds"] ?? 0
        var starts: [Double] = [0]
        while let last = starts.last, last <= seconds { starts.append(last + [0, 0.5, 1, 2, 4][min(starts.count - 1, 4)] + (starts.count > 5 ? 4 : 0)) }
        let allowed = starts.filter { $0 <= seconds }.count
        #expect((counts["checked"] ?? 0) >= 1 && (counts["checked"] ?? 99) <= Double(allowed), "\(counts), at most \(allowed) in \(seconds) s")
        #expect((counts["refused"] ?? 0) >= 190 && counts["other"] == 0, "\(counts)")

        // Made-up names from 60 addresses, 12 at a time, while alice signs in from 127.0.0.1.
        let flood = try Subprocess("/usr/bin/python3", ["-c", Self.client + #"""
            import threading
            stop = time.time() + 60
            def flood(k):
                i = 0
                while time.time() < stop and not os.path.exists(sys.argv[2]):
                    basic("127.0.1.%d" % (10 + (k * 5 + i % 5)), "nobody-%d-%d" % (k, i), "x")
                    i += 1
            threads = [threading.Thread(target=flood, args=(k,)) for k in range(12)]
            for t in threads: t.start()
            for t in threads: t.join()
            """#, String(port), world.dir.path + "/stop-flood"], stdout: 1, stderr: 2)
        defer { flood.kill9() }
        try await Task.sleep(for: .seconds(2))
        let client = HTTPClient(base: "http://127.0.0.1:\(port)")
        // k0 (alice is still waiting after the guesses above, as she should).
        for _ in 0..<3 {
            // The password is checked (no such approval: 404), never "busy" or throttled.
            let reply = try client.post("/api/v1/approvals/none/approve", json: "{}", headers: ["Authorization": HTTPClient.basic("k0", "k-secret")])
            #expect(![401, 429, 503].contains(reply.status), "k0 during the flood: \(reply.status) \(reply.body.prefix(200))")
        }
        let page = try client.get("/login")
        let cookie = try #require(page.cookie)
        let csrf = try #require(WebTests.csrf(page.body))
        let signIn = try client.post("/login", form: ["csrf": csrf, "user": "k0", "password": "k-secret"], headers: ["Cookie": cookie])
        #expect(signIn.status == 303, "k0's sign-in during the flood: \(signIn.status)")
        FileManager.default.createFile(atPath: world.dir.path + "/stop-flood", contents: nil)
        _ = flood.wait()

        // A first failed sign-in: known users (k0…k6) and unknown ones, each from an address of its own.
        let timing = try Run.checked("/usr/bin/python3", ["-c", Self.client + #"""
            known, unknown = [], []
            for i in range(7):
                pair = (("k%d" % i, known), ("nobody%d" % i, unknown))
                # Each kind goes first as often as second, after a pause: a request that follows
                # another shares the tail of its work (its thread, its log line), and would
                # carry that time as its own.
                for user, into in (pair if i % 2 == 0 else pair[::-1]):
                    time.sleep(0.1)
                    start = time.time()
                    assert basic("127.0.2.%d" % (10 + i * 2 + (into is known)), user, "wrong") == 401
                    into.append(time.time() - start)
            # The least disturbed of the seven: other tests load the machine, and load only adds time.
            print(json.dumps({"known": min(known), "unknown": min(unknown)}))
            """#, String(port)])
        let times = try #require(try JSONSerialization.jsonObject(with: Data(timing.utf8)) as? [String: Double])
        print("guessing: quickest failed sign-in of 7 \(times)")
        let known = times["known"] ?? 0, unknown = times["unknown"] ?? 0
        #expect(known > 0 && unknown > 0 && abs(known - unknown) <= 0.2 * max(known, unknown), "\(times)")
    }

    /// `basic(source, user, password)`: a GET of /api/v1/approvals with Basic credentials from a
    /// loopback address of its own; the status.
    static let client = #"""
        import json, os, socket, sys, time, base64
        port = int(sys.argv[1])
        def basic(source, user, password):
            s = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
            s.bind((source, 0))
            s.settimeout(60)
            s.connect(("127.0.0.1", port))
            token = base64.b64encode(("%s:%s" % (user, password)).encode()).decode()
            s.sendall(("POST /api/v1/approvals/none/approve HTTP/1.1\r\nHost: 127.0.0.1:%d\r\nAuthorization: Basic %s\r\nContent-Type: application/json\r\nContent-Length: 2\r\nConnection: close\r\n\r\n{}" % (port, token)).encode())
            data = b""
            while True:
                chunk = s.recv(65536)
                if not chunk:
                    break
                data += chunk
            s.close()
            return int(data.split()[1])

        """#

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
