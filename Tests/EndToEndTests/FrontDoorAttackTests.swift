import Foundation
import ShipyardCore
import ShipyardDaemon
import ShipyardTestKit
import Synchronization
import Testing

/// The approval gate is a security control, and every member of the daemon's group can connect
/// to its socket and read what it shares: mallory (a member, not an approver) tries what the
/// attacks on the earlier spool tried, with the daemon running as an unprivileged user of its own
/// under a socket held as systemd holds it, and alice's everyday path must keep working.
@Suite(.serialized, .enabled(if: LocalUsers.canCreate, "needs root to create users (useradd) and switch to them (setpriv)"))
struct FrontDoorAttackTests {
    typealias World = SequenceTests.World

    /// Runs a Python script as `user` (python3 is among the test packages): the attacker's own
    /// client, which sends whatever it likes on the socket.
    func python(_ users: LocalUsers, as user: String, _ script: String, arguments: [String] = []) throws -> ProcessOutput {
        try users.run(as: user, "/usr/bin/python3", ["-c", Self.client + script] + arguments)
    }

    /// `request(path, method, target, body, headers)` over a unix socket: status and body.
    static let client = #"""
        import socket, json, os, sys, time, fcntl, errno
        def request(path, method, target, body=b"", headers={}):
            s = socket.socket(socket.AF_UNIX)
            s.connect(path)
            head = "%s %s HTTP/1.1\r\nHost: x\r\nConnection: close\r\nContent-Length: %d\r\n" % (method, target, len(body))
            head += "".join("%s: %s\r\n" % kv for kv in headers.items()) + "\r\n"
            s.sendall(head.encode() + body)
            data = b""
            while True:
                chunk = s.recv(65536)
                if not chunk:
                    break
                data += chunk
            s.close()
            head, _, rest = data.partition(b"\r\n\r\n")
            return int(head.split()[1]), rest.decode(errors="replace")

        """#

    @Test func aMemberWhoIsNotAnApproverCannotDecideAnything() async throws {
        let users = try LocalUsers()
        let world = try World(shipyard: GitWatchingTests.tutorialWithApproval, extraConfig: "approvers:\n  users: [\(users.alice)]\n", users: users, activated: true)
        #expect(await world.ready(), "\(world.daemon.log)")
        let context = try world.trigger()
        #expect(await world.waitState(context, "production", "waitingForApproval"))
        let test = try #require(world.events().first { $0["type"] as? String == "sh.keptn.event.je-test.triggered" })

        // A result for a task: send event is closed on a host that did not open it.
        let forged = try world.dir.write("forged.json", """
            {"specversion":"1.0","id":"m-1","source":"ci","type":"sh.keptn.event.je-test.finished",
             "shkeptncontext":"\(context)","triggeredid":"\(test["id"] as? String ?? "")","data":{"result":"pass"}}
            """)
        let sent = try world.daemon.ctl(["send", "event", "--file", forged], as: users.mallory)
        #expect(sent.status == 1)
        #expect(sent.stderr.contains("send event is closed on this host"), "\(sent.stderr)")

        // Pausing or aborting a delivery (a rejection by another name) is the approvers' call.
        for verb in ["pause", "abort"] {
            let out = try world.daemon.ctl([verb, context, "--reason", "mine"], as: users.mallory)
            #expect(out.status == 1)
            #expect(out.stderr.contains("\(users.mallory) may not \(verb) sequences: approvers in the config allows users [\(users.alice)]"), "\(out.stderr)")
        }
        #expect(try world.state(context, "production") == "waitingForApproval")
        #expect(world.daemon.log.contains("request abort from \(users.mallory) (uid \(users.uid(users.mallory))) refused"))

        // alice may, and the record says who and why.
        let aborted = try world.daemon.ctl(["abort", context, "--reason", "wrong image"])
        #expect(aborted.status == 0, "\(aborted.stderr)")
        let finished = try #require(world.events().last { $0["type"] as? String == "sh.keptn.event.production.delivery.finished" })
        let data = finished["data"] as? [String: Any]
        #expect(finished["source"] as? String == "shipyardctl/\(users.alice)")
        #expect(data?["by"] as? String == users.alice && data?["reason"] as? String == "wrong image")
        #expect(data?["message"] as? String == "sequence aborted by \(users.alice): wrong image")
    }

    /// A member's proxy header over the socket decides nothing: she is herself, whatever the
    /// header says. The same header from the configured proxy's user is believed.
    @Test func aHeaderOverTheSocketIsBelievedOnlyFromTheProxysUser() async throws {
        let users = try LocalUsers(others: ["proxy"])
        let proxy = try #require(users.others["proxy"])
        let world = try World(shipyard: GitWatchingTests.tutorialWithApproval, extraConfig: """
            approvers:
              users: [\(users.alice)]
            approvalPolicies:
              - stage: production
                approvers:
                  users: [bob-web, carol-web]
                required: 2
            http:
              listen: 127.0.0.1:0
              auth:
                proxyHeader: X-Forwarded-User
                trustedProxies: [127.0.0.1/32, user:\(proxy)]
            """, users: users, activated: true)
        #expect(await world.ready(), "\(world.daemon.log)")
        let context = try world.trigger()
        #expect(await world.waitState(context, "production", "waitingForApproval"))
        let id = try #require(try approvalIDs(world).first)
        let socket = world.daemon.state + "/shipyardd.sock"

        // mallory names bob, then carol: each is refused as mallory, and nothing is counted.
        let forged = try python(users, as: users.mallory, #"""
            for name in ["bob-web", "carol-web"]:
                status, body = request(sys.argv[1], "POST", "/api/v1/approvals/%s/approve" % sys.argv[2], b"{}",
                                       {"Content-Type": "application/json", "X-Forwarded-User": name})
                print(status, body)
            """#, arguments: [socket, id])
        #expect(forged.status == 0, "\(forged.stderr)")
        let lines = forged.stdout.split(separator: "\n")
        #expect(lines.count == 2 && lines.allSatisfy { $0.hasPrefix("403 ") && $0.contains("\(users.mallory) may not decide production") }, "\(forged.stdout)")
        #expect(!world.events().contains { $0["type"] as? String == "sh.shipyard.approval.approved" })
        #expect(try world.state(context, "production") == "waitingForApproval")

        // The proxy's user passes on who its users are: bob, then carol, open the gate.
        let proxied = try python(users, as: proxy, #"""
            for name in ["bob-web", "carol-web"]:
                status, body = request(sys.argv[1], "POST", "/api/v1/approvals/%s/approve" % sys.argv[2], b'{"reason":"ok"}',
                                       {"Content-Type": "application/json", "X-Forwarded-User": name})
                print(status, body)
            """#, arguments: [socket, id])
        #expect(proxied.stdout.split(separator: "\n").allSatisfy { $0.hasPrefix("200 ") }, "\(proxied.stdout)")
        #expect(await world.waitState(context, "production", "finished"))
        let finished = try #require(world.events().last { $0["type"] as? String == "sh.keptn.event.approval.finished" })
        #expect(((finished["data"] as? [String: Any])?["approval"] as? [String: Any])?["by"] as? String == "bob-web, carol-web")
    }

    /// Whatever mallory can open she may lock or hold open: none of it is the record, and none of
    /// it delays a write. She can create nothing in the state directory.
    @Test func locksOnWhatTheGroupCanOpenDelayNothing() async throws {
        let users = try LocalUsers()
        let world = try World(shipyard: GitWatchingTests.tutorialWithApproval, extraConfig: "approvers:\n  users: [\(users.alice)]\n", users: users, activated: true)
        #expect(await world.ready(), "\(world.daemon.log)")
        let first = try world.trigger()
        #expect(await world.waitState(first, "production", "waitingForApproval"))
        let state = world.daemon.state

        // She can create nothing anywhere in the state directory.
        let planted = try python(users, as: users.mallory, #"""
            made = []
            for folder, _, _ in os.walk(sys.argv[1]):
                for attempt in ("file", "folder", "link"):
                    target = os.path.join(folder, "planted-" + attempt)
                    try:
                        if attempt == "file": os.close(os.open(target, os.O_CREAT | os.O_EXCL | os.O_WRONLY))
                        elif attempt == "folder": os.mkdir(target)
                        else: os.symlink("/etc/passwd", target)
                        made.append(target)
                    except OSError:
                        pass
            print(json.dumps(made))
            """#, arguments: [state])
        #expect(planted.status == 0, "\(planted.stderr)")
        #expect(planted.stdout == "[]\n", "\(planted.stdout)")

        // She opens, read-locks (fcntl and flock) and holds every file she can, and tries the record.
        let out = world.dir.path + "/held.json"
        let holder = try Subprocess("/usr/bin/setpriv", [
            "--reuid=\(users.mallory)", "--regid=\(users.mallory)", "--init-groups", "--", "/usr/bin/python3", "-c", Self.client + #"""
            held, denied = [], []
            for folder, _, files in os.walk(sys.argv[1]):
                for name in files:
                    path = os.path.join(folder, name)
                    try:
                        fd = os.open(path, os.O_RDONLY | os.O_NONBLOCK)
                    except OSError as e:
                        denied.append(name)
                        continue
                    try:
                        fcntl.lockf(fd, fcntl.LOCK_SH | fcntl.LOCK_NB)
                        fcntl.lockf(fd, fcntl.LOCK_SH | fcntl.LOCK_NB, 1, 120)
                        fcntl.flock(fd, fcntl.LOCK_SH | fcntl.LOCK_NB)
                    except OSError:
                        pass
                    held.append(name)
            with open(sys.argv[2] + ".tmp", "w") as f:
                json.dump({"held": held, "denied": denied}, f)
            os.rename(sys.argv[2] + ".tmp", sys.argv[2])
            time.sleep(120)
            """#, state, out,
        ], stdout: 1, stderr: 2)
        defer { holder.kill9() }
        chmod(world.dir.path, 0o777)
        #expect(await eventually { FileManager.default.fileExists(atPath: out) })
        let report = try JSONSerialization.jsonObject(with: Data(contentsOf: URL(fileURLWithPath: out))) as? [String: [String]] ?? [:]
        let denied = Set(report["denied"] ?? [])
        #expect(["shipyard.db", "shipyard.db-shm", "shipyardd.lock"].allSatisfy(denied.contains), "\(report)")
        #expect((report["held"] ?? []).contains("status.json"), "\(report)")

        // alice's approve, trigger and the next approve go through at their usual pace.
        let id = try #require(try approvalIDs(world).first)
        var slowest: Duration = .zero
        func timed(_ arguments: [String]) throws -> ProcessOutput {
            let start = ContinuousClock.now
            let result = try world.daemon.ctl(arguments)
            slowest = max(slowest, ContinuousClock.now - start)
            return result
        }
        #expect(try timed(["approve", id, "--reason", "while she holds everything"]).status == 0)
        #expect(await world.waitState(first, "production", "finished"))
        let second = try world.trigger()
        #expect(await world.waitState(second, "production", "waitingForApproval"))
        let next = try #require(try approvalIDs(world).first)
        #expect(try timed(["approve", next]).status == 0)
        #expect(await world.waitState(second, "production", "finished"))
        // SQLite waited 10 s for a lock before: a write held up by her would show.
        #expect(slowest < .seconds(5), "the slowest CLI call took \(slowest)")
        #expect(!world.daemon.log.contains("database is locked"))
    }

    /// A state directory an administrator left writable by the group, or a record the daemon did
    /// not create, is refused at start with what to do; nothing in it is used.
    @Test func aPlantedRecordIsRefused() async throws {
        let users = try LocalUsers()
        let world = try World(users: users, activated: true)
        #expect(await world.ready(), "\(world.daemon.log)")
        let state = world.daemon.state
        #expect(await world.daemon.stop() == 0)

        chmod(state, 0o2770)
        try world.daemon.start()
        #expect(await eventually { !world.daemon.isRunning })
        #expect(world.daemon.log.contains("the state directory \(state) may be written by its group \(users.group) (mode 2770)"), "\(world.daemon.log.suffix(2000))")
        #expect(world.daemon.log.contains("sudo chmod go-w \(state)"))
        chmod(state, 0o2750)

        // mallory's own record in its place.
        chmod(world.dir.path, 0o777)
        let record = state + "/shipyard.db"
        #expect(rename(record, record + ".real") == 0)
        unlink(record + "-wal")
        unlink(record + "-shm")
        let planted = try python(users, as: users.mallory, #"""
            import sqlite3
            sqlite3.connect(sys.argv[1]).execute("CREATE TABLE forged (x)").connection.commit()
            """#, arguments: [world.dir.path + "/forged.db"])
        #expect(planted.status == 0, "\(planted.stderr)")
        #expect(rename(world.dir.path + "/forged.db", record) == 0)
        try world.daemon.start()
        #expect(await eventually { !world.daemon.isRunning })
        #expect(world.daemon.log.contains("\(record) belongs to \(users.mallory), not to shipyardd's user: shipyardd never uses a record it did not create"), "\(world.daemon.log.suffix(2000))")

        // Put right, it starts on its own record.
        unlink(record)
        #expect(rename(record + ".real", record) == 0)
        try world.daemon.start()
        #expect(await world.ready())
        #expect(try world.daemon.ctl(["sequences"]).status == 0)
    }

    /// A member's request while the daemon restarts waits in the socket's queue and is answered
    /// once the daemon is back, without an error.
    @Test func aRequestDuringARestartIsAnsweredWhenTheDaemonIsBack() async throws {
        let users = try LocalUsers()
        let world = try World(users: users, activated: true)
        #expect(await world.ready(), "\(world.daemon.log)")
        #expect(await world.daemon.stop() == 0)
        let out = world.dir.path + "/cli.out"
        let log = open(out, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0o644)
        defer { close(log) }
        let (program, arguments) = users.command(
            as: users.alice, Command.path("shipyardctl"),
            ["trigger", "delivery", "--project", "fulltour", "--service", "helloservice", "--timeout", "60", "--state-dir", world.daemon.state])
        let cli = try Subprocess(program, arguments, stdout: log, stderr: log)
        defer { cli.kill9() }
        try await Task.sleep(for: .seconds(1))
        #expect(cli.isRunning, "the CLI gave up while the daemon was down: \((try? String(contentsOfFile: out, encoding: .utf8)) ?? "")")
        try world.daemon.start()
        #expect(await eventually(timeout: .seconds(60)) { !cli.isRunning })
        let printed = (try? String(contentsOfFile: out, encoding: .utf8)) ?? ""
        #expect(cli.poll() == 0, "\(printed)")
        // (stdout and stderr share the log: the first delivery's warning comes first)
        #expect(printed.contains("\nqa.delivery triggered for helloservice (context "), "\(printed)")
    }

    /// The state of an earlier release: a spool with a request waiting and a record its group
    /// could read, whose shared memory mallory holds locked. The spool goes, the record becomes
    /// the daemon's alone (on new files), each said once, and her lock delays nothing.
    @Test func anEarlierReleasesStateIsConvertedOnce() async throws {
        let users = try LocalUsers()
        let world = try World(shipyard: GitWatchingTests.tutorialWithApproval, extraConfig: "approvers:\n  users: [\(users.alice)]\n", users: users, activated: true)
        #expect(await world.ready(), "\(world.daemon.log)")
        let state = world.daemon.state
        #expect(await world.daemon.stop() == 0)
        let daemonUID = users.uid(users.daemon)
        let groupID = users.gid(users.group)
        for folder in ["requests", "outcomes"] {
            try FileManager.default.createDirectory(atPath: state + "/" + folder, withIntermediateDirectories: true)
            chown(state + "/" + folder, daemonUID, groupID)
        }
        chmod(state + "/requests", 0o3770)
        let waiting = try python(users, as: users.mallory, "open(sys.argv[1], 'w').write('{}')", arguments: [state + "/requests/x.json"])
        #expect(waiting.status == 0, "\(waiting.stderr)")
        for suffix in ["", "-wal", "-shm"] where FileManager.default.fileExists(atPath: state + "/shipyard.db" + suffix) {
            chmod(state + "/shipyard.db" + suffix, 0o640)
        }
        // What the old layout allowed her: the shared memory, opened and locked (SQLite's WAL write lock).
        let out = world.dir.path + "/locked"
        let holder = try Subprocess("/usr/bin/setpriv", [
            "--reuid=\(users.mallory)", "--regid=\(users.mallory)", "--init-groups", "--", "/usr/bin/python3", "-c", Self.client + #"""
            path = sys.argv[1]
            if not os.path.exists(path):
                open(sys.argv[2], "w").write("none")
            else:
                fd = os.open(path, os.O_RDONLY)
                fcntl.lockf(fd, fcntl.LOCK_SH, 1, 120)
                open(sys.argv[2], "w").write("locked")
            time.sleep(120)
            """#, state + "/shipyard.db-shm", out,
        ], stdout: 1, stderr: 2)
        defer { holder.kill9() }
        chmod(world.dir.path, 0o777)
        #expect(await eventually { FileManager.default.fileExists(atPath: out) })

        try world.daemon.start()
        #expect(await world.ready(), "\(world.daemon.log.suffix(3000))")
        #expect(!FileManager.default.fileExists(atPath: state + "/requests") && !FileManager.default.fileExists(atPath: state + "/outcomes"))
        var info = stat()
        #expect(stat(state + "/shipyard.db", &info) == 0 && info.st_mode & 0o777 == 0o600)
        let context = try world.trigger()
        #expect(await world.waitState(context, "production", "waitingForApproval"))
        let id = try #require(try approvalIDs(world).first)
        let start = ContinuousClock.now
        #expect(try world.daemon.ctl(["approve", id]).status == 0)
        #expect(ContinuousClock.now - start < .seconds(5))
        #expect(await world.waitState(context, "production", "finished"))

        #expect(await world.daemon.stop() == 0)
        try world.daemon.start()
        #expect(await world.ready())
        let log = world.daemon.log
        #expect(log.components(separatedBy: "is now private to shipyardd (mode 0600)").count == 2, "\(log.suffix(3000))")
        #expect(log.components(separatedBy: "the request spool of an earlier release is gone").count == 2)
        #expect(log.contains("1 request(s) still waiting in it were not applied: send them again"))
    }

    @Test func imagesAndLabelsAreChecked() async throws {
        let users = try LocalUsers()
        let world = try World(users: users, activated: true)
        #expect(await world.ready())
        let hidden = try world.daemon.ctl(["trigger", "delivery", "--project", "fulltour", "--service", "s", "--image", "app:v1\u{1b}[8m hidden"])
        #expect(hidden.status != 0)
        #expect(hidden.stderr.contains("is not an image reference") && !hidden.stderr.contains("\u{1b}"), "\(hidden.stderr)")
        let label = try world.daemon.ctl(["trigger", "delivery", "--project", "fulltour", "--service", "s", "--label", "bad key=x"])
        #expect(label.status != 0)
        // The daemon checks too: a request written by hand.
        let raw = try python(users, as: users.mallory, #"""
            body = json.dumps({"project": "fulltour", "sequence": "delivery", "service": "s", "image": "app\u001b[8m"}).encode()
            print(*request(sys.argv[1], "POST", "/api/v1/sequences", body, {"Content-Type": "application/json"}))
            """#, arguments: [world.daemon.state + "/shipyardd.sock"])
        #expect(raw.status == 0, "\(raw.stderr)")
        #expect(raw.stdout.hasPrefix("409 ") && raw.stdout.contains("is not an image reference"), "\(raw.stdout)")
        #expect(try world.sequences().isEmpty)
        let good = try world.trigger(["--image", "ghcr.io/podtato-head/podtatoserver:v0.1.1", "--label", "team=checkout"])
        #expect(await world.waitState(good, "production", "finished"))
    }

    /// Request ids are each user's own: another user's request with the same id is a request of
    /// its own, and alice's stays hers.
    @Test func requestIDsAreEachUsersOwn() async throws {
        let users = try LocalUsers()
        let world = try World(users: users, activated: true)
        #expect(await world.ready())
        let first = try world.daemon.ctl(["trigger", "delivery", "--project", "fulltour", "--service", "helloservice", "--request-id", "release-7"])
        #expect(first.status == 0, "\(first.stderr)")
        // mallory's request with alice's id is hers: it neither takes over alice's nor is refused as one.
        let again = try world.daemon.ctl(["trigger", "delivery", "--project", "fulltour", "--service", "other", "--request-id", "release-7"], as: users.mallory)
        #expect(again.status == 0, "\(again.stderr)")
        #expect(!again.stdout.contains("already applied"))
        let retried = try world.daemon.ctl(["trigger", "delivery", "--project", "fulltour", "--service", "helloservice", "--request-id", "release-7"])
        #expect(retried.status == 0 && retried.stdout.contains("already applied"), "\(retried.stdout)")
        let context = { (text: String) in text.components(separatedBy: "context ").last?.prefix(36) ?? "" }
        #expect(context(retried.stdout) == context(first.stdout) && context(again.stdout) != context(first.stdout))
    }

    /// One member's flood: 200 connections held open (over her limit of 64, the rest closed at
    /// once) and thousands of requests on 8 threads. The watchdog keeps its beat, another user's
    /// approve is answered long before the flood is through, and her refusals do not flood the log.
    @Test(.timeLimit(.minutes(5)))
    func aFloodFromOneMemberStarvesNobody() async throws {
        let users = try LocalUsers()
        let world = try World(shipyard: GitWatchingTests.tutorialWithApproval, extraConfig: "approvers:\n  users: [\(users.alice)]\n", users: users, activated: true)
        #expect(await world.ready())
        let context = try world.trigger()
        #expect(await world.waitState(context, "production", "waitingForApproval"))
        let id = try #require(try approvalIDs(world).first)

        // Play systemd's part: a notify socket, and a watchdog of 6 s (a ping every 3 s).
        #expect(await world.daemon.stop() == 0)
        let pings = WatchdogPings(path: world.dir.path + "/notify.sock")
        chmod(pings.path, 0o777)
        world.daemon.environment = ["NOTIFY_SOCKET": pings.path, "WATCHDOG_USEC": "6000000"]
        try world.daemon.start()
        #expect(await world.ready())
        #expect(await eventually { pings.count >= 2 })

        let out = world.dir.path + "/flood.json"
        chmod(world.dir.path, 0o777)
        let flood = try Subprocess("/usr/bin/setpriv", [
            "--reuid=\(users.mallory)", "--regid=\(users.mallory)", "--init-groups", "--", "/usr/bin/python3", "-c", Self.client + #"""
            import threading
            path = sys.argv[1]
            idle = []
            for _ in range(200):
                s = socket.socket(socket.AF_UNIX)
                s.connect(path)
                s.setblocking(False)
                idle.append(s)
            refused = set()
            def count():
                # Refused: told so (a 503 saying why), then closed.
                for i, s in enumerate(idle):
                    try:
                        data = s.recv(4096)
                        if data == b"" or data.startswith(b"HTTP/1.1 503"):
                            refused.add(i)
                    except BlockingIOError:
                        pass
                    except ConnectionResetError:
                        refused.add(i)
                return len(refused)
            deadline = time.time() + 20
            while time.time() < deadline and count() < 136:
                time.sleep(0.1)
            time.sleep(0.3)
            closed = count()
            for s in idle:
                s.close()
            # The flood sends at least 400 requests a thread and goes on until the test says
            # stop (alice has her answer), so alice's approve always falls inside it however the
            # test process itself is scheduled; "seconds" is how long its first 3,200 took.
            start = time.time()
            counts = {"200": 0, "429": 0, "other": 0}
            lock = threading.Lock()
            sent = [0]
            minimum = [None]
            deadline = start + 180
            def send():
                n = 0
                while time.time() < deadline and (n < 400 or not os.path.exists(sys.argv[2] + ".stop")):
                    n += 1
                    try:
                        status, _ = request(path, "POST", "/api/v1/sequences", b'{"project":"nope","sequence":"delivery","service":"s"}', {"Content-Type": "application/json"})
                        key = str(status) if str(status) in counts else "other"
                    except OSError:
                        key = "other"
                    with lock:
                        counts[key] += 1
                        sent[0] += 1
                        if sent[0] == 3200:
                            minimum[0] = time.time() - start
            threads = [threading.Thread(target=send) for _ in range(8)]
            open(sys.argv[2] + ".started", "w").close()
            for t in threads: t.start()
            for t in threads: t.join()
            counts["closed"] = closed
            counts["seconds"] = minimum[0] if minimum[0] is not None else -1
            counts["stopped"] = 1 if os.path.exists(sys.argv[2] + ".stop") else 0
            json.dump(counts, open(sys.argv[2], "w"))
            """#, world.daemon.state + "/shipyardd.sock", out,
        ], stdout: 1, stderr: 2)
        defer { flood.kill9() }
        #expect(await eventually(timeout: .seconds(30)) { FileManager.default.fileExists(atPath: out + ".started") })

        // alice, in the middle of it.
        let start = ContinuousClock.now
        let approved = try world.daemon.ctl(["approve", id, "--reason", "during the flood"])
        let took = ContinuousClock.now - start
        #expect(approved.status == 0, "\(approved.stderr)")
        #expect(FileManager.default.createFile(atPath: out + ".stop", contents: nil))
        #expect(await eventually(timeout: .seconds(240)) { FileManager.default.fileExists(atPath: out) })
        let counts = (try? JSONSerialization.jsonObject(with: Data(contentsOf: URL(fileURLWithPath: out)))) as? [String: Double] ?? [:]
        let drained = Duration.milliseconds(Int((counts["seconds"] ?? 0) * 1000))
        print("flood: alice answered after \(took), the flood's first 3,200 requests took \(drained): \(counts)")
        // The flood was still on when alice had her answer (it stops only when told).
        #expect(counts["stopped"] == 1, "\(counts)")
        // Her connections beyond 64 were closed at once; most of her requests were refused for
        // their rate, none was taken as a delivery.
        #expect(counts["closed"] == 136, "\(counts)")
        #expect((counts["429"] ?? 0) > 2000 && (counts["200"] ?? 0) == 0, "\(counts)")
        // Not queued behind the flood (compared, not held to a clock: both slow down alike on a
        // busy machine; the latency itself is in make bench).
        #expect(took * 2 < drained, "alice's approve took \(took) while the flood's first 3,200 requests took \(drained)")
        #expect(await world.waitState(context, "production", "finished"))
        pings.stop()
        let gap = pings.longestGap
        print("watchdog: longest gap between pings \(gap) s during the flood")
        #expect(gap <= 6.0, "the watchdog ping was \(gap) s apart (interval 3 s)")
        let log = world.daemon.log
        #expect(log.contains("further refusals of uid \(users.uid(users.mallory))'s requests this minute are counted, not logged one by one"))
        #expect(log.components(separatedBy: "(uid \(users.uid(users.mallory)))").count < 40, "\(log.suffix(3000))")
    }

    func approvalIDs(_ world: World) throws -> [String] {
        let out = try world.daemon.ctl(["approvals", "--output", "json"])
        let list = try JSONSerialization.jsonObject(with: Data(out.stdout.utf8)) as? [[String: Any]] ?? []
        return list.compactMap { $0["id"] as? String }
    }
}
