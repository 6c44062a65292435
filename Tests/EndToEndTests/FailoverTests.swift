import Foundation
import ShipyardCore
import ShipyardStore
import ShipyardTestKit
import Testing

/// Three `shipyardd` sharing one PostgreSQL record (Debian's server, a cluster of the test's
/// own), each on a host of its own where the machine allows (a network namespace joined to the
/// database by a veth pair; loopback otherwise): one leads, deliveries are triggered every 200 ms
/// on the leader, and the leader is killed, frozen, frozen inside its append transaction, cut off,
/// slowed, or its sessions or the server are killed. Each time a standby takes over within 10 s,
/// and the SQL checker finds no gap in the record's positions, no epoch going back and no write of
/// an old epoch after the new one began; no task is finished twice and every delivery that was
/// accepted finishes. A control run without the fence must make the checker see violations.
/// `SHIPYARD_CHAOS_ROUNDS` sets the rounds per fault (`make chaos`: 50).
@Suite(.serialized, .enabled(if: PostgresServer.isInstalled, "PostgreSQL is not installed (make test-deps installs it)"))
struct FailoverTests {
    static let rounds = ProcessInfo.processInfo.environment["SHIPYARD_CHAOS_ROUNDS"].flatMap(Int.init) ?? 2

    /// libfaketime (Debian's faketime), preloaded into a daemon whose clock is off.
    static let libfaketime: String = {
        let lib = "/usr/lib"
        let arch = ((try? FileManager.default.contentsOfDirectory(atPath: lib)) ?? []).first {
            FileManager.default.fileExists(atPath: "\(lib)/\($0)/faketime/libfaketimeMT.so.1")
        }
        return arch.map { "\(lib)/\($0)/faketime/libfaketimeMT.so.1" } ?? "libfaketimeMT.so.1"
    }()

    /// The project `shop` on `upstream`, its tasks run by `program`; a store may follow.
    static func config(upstream: UpstreamRepository, program: String) -> String {
        """
        projects:
          - name: shop
            upstream: \(upstream.fileURL)
            pollInterval: 1s
        tasks:
          deploy: {command: ["\(program)"]}
          test: {command: ["\(program)"]}

        """
    }

    static let shipyard = """
        apiVersion: spec.keptn.sh/0.2.4
        kind: Shipyard
        metadata: {name: shipyard-failover}
        spec:
          stages:
            - name: qa
              sequences:
                - name: delivery
                  tasks: [{name: deploy}, {name: test}]

        """

    final class Cluster: @unchecked Sendable {
        let server: PostgresServer
        let database: String
        let dir: TemporaryDirectory
        let upstream: UpstreamRepository
        var daemons: [String: RunningDaemon] = [:]
        let names = ["host-a", "host-b", "host-c"]
        /// Each daemon's host, when they run in network namespaces of their own.
        var hosts: [String: NetworkNamespace] = [:]

        /// `namespaces`: each daemon on a host of its own (a network namespace, where the machine
        /// allows), reaching a PostgreSQL of the test's own over its link. Otherwise on loopback,
        /// with a server of the test's own when `ownServer` (a fault other tests must not feel).
        /// `clocks`: FAKETIME offsets (libfaketime) by daemon.
        init(
            environment: [String: String] = [:], taskSeconds: String = "0.3", ownServer: Bool = false,
            namespaces: Bool = NetworkNamespace.isAvailable, clocks: [String: String] = [:], shipyard: String = FailoverTests.shipyard
        ) throws {
            dir = try TemporaryDirectory()
            if namespaces {
                var made: [String: NetworkNamespace] = [:]
                for name in names { made[name] = try NetworkNamespace(scratch: dir.path) }
                hosts = made
                server = try PostgresServer(listen: made.values.map(\.hostAddress))
            } else {
                server = try ownServer ? PostgresServer() : PostgresServer.shared.get()
            }
            database = try self.server.database()
            upstream = try UpstreamRepository(in: dir.path)
            _ = try upstream.commit(["shipyard.yaml": shipyard])
            let program = try dir.write("tasks/run", """
                #!/bin/sh
                echo "$SHIPYARD_TRIGGERED_ID $SHIPYARD_TASK attempt=$SHIPYARD_ATTEMPT host=$HOST_NAME" >> \(dir.path)/runs.txt
                sleep \(taskSeconds)

                """, mode: 0o755)
            let password = try dir.write("pgpassword", self.server.password + "\n", mode: 0o600)
            for name in names {
                let home = dir.path + "/" + name
                try FileManager.default.createDirectory(atPath: home, withIntermediateDirectories: true)
                var environment = environment.merging(["HOST_NAME": name]) { a, _ in a }
                if let offset = clocks[name] {
                    environment["LD_PRELOAD"] = FailoverTests.libfaketime
                    environment["FAKETIME"] = offset
                }
                let url = self.server.url(database: database, host: hosts[name]?.hostAddress ?? "127.0.0.1")
                daemons[name] = try RunningDaemon(directory: home, config: FailoverTests.config(upstream: upstream, program: program) + """
                    store:
                      postgres:
                        url: \(url)
                        passwordFile: \(password)
                        name: \(name)
                    """, environment: environment, prefix: hosts[name]?.prefix ?? [])
            }
        }

        func sql(_ query: String) throws -> String { try server.psql(query, database: database) }

        /// The network namespace `daemon` runs in.
        func host(of daemon: RunningDaemon) throws -> NetworkNamespace {
            try #require(daemons.first { $0.value === daemon }.flatMap { hosts[$0.key] })
        }

        /// The lease's holder and epoch, when one is live.
        func leader() -> (name: String, epoch: Int)? {
            guard let row = try? sql("SELECT holder, epoch FROM leader_lease WHERE expires_at > clock_timestamp()"), !row.isEmpty else { return nil }
            let parts = row.split(separator: "|")
            guard parts.count == 2, let epoch = Int(parts[1]) else { return nil }
            return (String(parts[0]), epoch)
        }

        /// Waits until a leader with an epoch above `after` serves its local API.
        func awaitLeader(after epoch: Int, timeout: Duration = .seconds(30)) async -> (name: String, epoch: Int)? {
            var found: (name: String, epoch: Int)?
            _ = await eventually(timeout: timeout, every: .milliseconds(50)) {
                guard let now = leader(), now.epoch > epoch else { return false }
                found = now
                return true
            }
            return found
        }

        /// When epoch `epoch` was taken, on the database's clock (the same host's).
        func takenAt(_ epoch: Int) throws -> Double? {
            Double(try sql("SELECT extract(epoch FROM taken_at) FROM lease_history WHERE epoch = \(epoch)"))
        }

        /// Triggers a delivery on the current leader; its context when accepted.
        func trigger(_ index: Int) -> String? {
            guard let leader = leader(), let daemon = daemons[leader.name],
                let out = try? daemon.ctl(["trigger", "delivery", "--project", "shop", "--service", "svc-\(index % 5)", "--output", "json"]),
                out.status == 0
            else { return nil }
            return ((try? JSONSerialization.jsonObject(with: Data(out.stdout.utf8))) as? [String: String])?["context"]
        }

        /// `gaps|epochs going back|late writes`.
        func violations() throws -> String { try sql(PostgresChecker.violations) }

        func finishedTwice() throws -> String {
            try sql("SELECT count(*) FROM (SELECT triggeredid FROM events WHERE type LIKE '%.finished' AND triggeredid IS NOT NULL GROUP BY triggeredid HAVING count(*) > 1) AS t")
        }

        func logs() -> String {
            names.map { "== \($0)\n" + String((daemons[$0]?.log ?? "").suffix(3000)) }.joined(separator: "\n")
        }
    }

    /// Load: a trigger every 200 ms on whoever leads, until stopped. Returns the contexts accepted.
    final class Load: @unchecked Sendable {
        private let lock = NSLock()
        private var accepted: [String] = []
        private var running = true

        init(_ cluster: Cluster) {
            // Not kept: the thread ends at stop() and lets go of the cluster (and its daemons).
            let thread = Thread { [self] in
                var index = 0
                while lock.withLock({ running }) {
                    if let context = cluster.trigger(index) { lock.withLock { accepted.append(context) } }
                    index += 1
                    Thread.sleep(forTimeInterval: 0.2)
                }
            }
            thread.start()
        }

        func stop() -> [String] {
            lock.withLock { running = false }
            Thread.sleep(forTimeInterval: 0.5)
            return lock.withLock { accepted }
        }
    }

    /// Every accepted delivery finished, each task once, and the checker found nothing.
    func settle(_ cluster: Cluster, _ accepted: [String]) async throws {
        #expect(!accepted.isEmpty)
        let list = accepted.map { "'\($0)'" }.joined(separator: ",")
        let done = await eventually(timeout: .seconds(120), every: .milliseconds(500)) {
            (try? cluster.sql("SELECT count(*) FROM sequences WHERE context IN (\(list)) AND state = 'finished'")) == "\(accepted.count)"
        }
        #expect(done, "finished: \((try? cluster.sql("SELECT state, count(*) FROM sequences GROUP BY state")) ?? "?")\n\(cluster.logs())")
        #expect(try cluster.violations() == "0|0|0")
        #expect(try cluster.finishedTwice() == "0")
    }

    /// A fault on the leader, `rounds` times; the takeovers' durations. `fault` returns the
    /// leader it struck when that is not the one it was given (it found out who leads then).
    func rounds(
        _ cluster: Cluster, fault: (RunningDaemon, Cluster) async throws -> (name: String, epoch: Int)?, recover: (RunningDaemon) async throws -> Void
    ) async throws -> [Double] {
        var takeovers: [Double] = []
        for _ in 0..<Self.rounds {
            var leader = try #require(await cluster.awaitLeader(after: 0), "\(cluster.logs())")
            // Somewhere in the work: 0–3 s into it.
            try await Task.sleep(for: .milliseconds(Int.random(in: 0...3000)))
            // Whoever leads now: a leader on this loaded machine may have stepped down meanwhile.
            leader = try #require(await cluster.awaitLeader(after: 0), "\(cluster.logs())")
            var daemon = try #require(cluster.daemons[leader.name])
            let at = Date().timeIntervalSince1970
            if let struck = try await fault(daemon, cluster) {
                leader = struck
                daemon = try #require(cluster.daemons[struck.name])
            }
            let next = try #require(await cluster.awaitLeader(after: leader.epoch), "\(cluster.logs())")
            let taken = try #require(try cluster.takenAt(next.epoch))
            takeovers.append(taken - at)
            try await recover(daemon)
        }
        return takeovers
    }

    func report(_ fault: String, _ takeovers: [Double]) {
        let longest = takeovers.max() ?? 0
        print("failover \(fault): \(takeovers.count) rounds, takeover max \(String(format: "%.2f", longest)) s, mean \(String(format: "%.2f", takeovers.reduce(0, +) / Double(max(1, takeovers.count)))) s")
        #expect(longest < 10, "takeovers: \(takeovers)")
    }

    @Test func aKilledLeaderIsReplacedWithinTenSecondsAndNothingIsLostOrDoneTwice() async throws {
        let cluster = try Cluster()
        #expect(await cluster.awaitLeader(after: 0) != nil, "\(cluster.logs())")
        try await killLeaders(cluster, "SIGKILL")
    }

    /// Under load, the leader SIGKILLed and started again (as systemd would: it comes back as a
    /// standby), `rounds` times; every accepted delivery finishes.
    func killLeaders(_ cluster: Cluster, _ fault: String) async throws {
        let load = Load(cluster)
        let takeovers = try await rounds(cluster) { daemon, _ in
            daemon.signal(SIGKILL)
            _ = await eventually(timeout: .seconds(5)) { !daemon.isRunning }
            return nil
        } recover: { daemon in
            try daemon.start()
        }
        let accepted = load.stop()
        report(fault, takeovers)
        try await settle(cluster, accepted)
    }

    /// The database's side of faults: every session of the daemons killed (`pg_terminate_backend`,
    /// as an administrator or a pooler might), and PostgreSQL restarted. Work goes on with a
    /// leader within 10 s of each, and nothing is lost, done twice or written out of turn.
    @Test func killedSessionsAndARestartedPostgreSQLLoseNothing() async throws {
        let cluster = try Cluster(ownServer: true)
        #expect(await cluster.awaitLeader(after: 0) != nil, "\(cluster.logs())")
        let load = Load(cluster)
        var gaps: [Double] = []
        for round in 0..<(2 * Self.rounds) {
            try await Task.sleep(for: .milliseconds(Int.random(in: 500...3000)))
            let at = Date()
            if round % 2 == 0 {
                try cluster.sql("SELECT count(pg_terminate_backend(pid)) FROM pg_stat_activity WHERE application_name LIKE 'shipyardd%'")
            } else {
                try cluster.server.restart(pause: 1)
            }
            // Leading again (the same host or another), and answering: a delivery is accepted.
            var accepted = false
            _ = await eventually(timeout: .seconds(20), every: .milliseconds(100)) {
                accepted = cluster.leader() != nil && cluster.trigger(round) != nil
                return accepted
            }
            #expect(accepted, "\(cluster.logs())")
            gaps.append(Date().timeIntervalSince(at))
            // Daemons that stopped themselves come back, as systemd would start them.
            for daemon in cluster.daemons.values where !daemon.isRunning { try daemon.start() }
        }
        let accepted = load.stop()
        print("failover, database faults: \(gaps.count) rounds, longest until a delivery was accepted again \(String(format: "%.2f", gaps.max() ?? 0)) s")
        #expect((gaps.max() ?? 0) < 10, "\(gaps)")
        try await settle(cluster, accepted)
    }

    /// A host moving to a shared record keeps its history: `shipyardd --import-record` copies
    /// its SQLite record into the empty PostgreSQL one, and the daemon on PostgreSQL lists the
    /// same sequences and events, and carries on from there. A second import is refused.
    @Test func aHostsSQLiteHistoryIsCopiedIntoTheSharedRecord() async throws {
        let dir = try TemporaryDirectory()
        let upstream = try UpstreamRepository(in: dir.path)
        _ = try upstream.commit(["shipyard.yaml": Self.shipyard])
        let program = try dir.write("tasks/run", "#!/bin/sh\nexit 0\n", mode: 0o755)
        let local = Self.config(upstream: upstream, program: program)
        let daemon = try RunningDaemon(directory: dir.path, config: local)
        func trigger() throws -> String {
            let out = try daemon.ctl(["trigger", "delivery", "--project", "shop", "--service", "svc-1", "--output", "json"])
            return ((try? JSONSerialization.jsonObject(with: Data(out.stdout.utf8))) as? [String: Any])?["context"] as? String ?? "refused: \(out.stderr)"
        }
        func sequences() -> NSArray {
            ((try? daemon.ctl(["sequences", "--output", "json"])).flatMap { try? JSONSerialization.jsonObject(with: Data($0.stdout.utf8)) } as? NSArray) ?? []
        }
        func finished(_ count: Int) async -> Bool {
            await eventually(timeout: .seconds(30)) {
                let all = sequences().compactMap { ($0 as? [String: Any])?["state"] as? String }
                return all.count == count && all.allSatisfy { $0 == "finished" }
            }
        }
        #expect(await eventually(timeout: .seconds(30)) { daemon.project("shop")?.shipyardCommit != nil })
        for _ in 0..<3 { _ = try trigger() }
        #expect(await finished(3), "\(daemon.log.suffix(3000))")
        let before = sequences()
        let events = try daemon.ctl(["events"]).stdout
        #expect(await daemon.stop() == 0)

        let server = try PostgresServer.shared.get()
        let database = try server.database()
        let password = try dir.write("pgpassword", server.password + "\n", mode: 0o600)
        try daemon.write(config: local + """
            store:
              postgres:
                url: \(server.url(database: database))
                passwordFile: \(password)
            """)
        let imported = try Command.run("shipyardd", ["--import-record", "--config", daemon.configPath])
        #expect(imported.status == 0, "\(imported.stderr)")
        #expect(imported.stdout.hasPrefix("copied \(events.split(separator: "\n").count) events, 3 sequences (6 tasks) and 0 evaluations from \(daemon.state)/shipyard.db"), "\(imported.stdout)")
        try daemon.start()
        #expect(await eventually(timeout: .seconds(30)) { daemon.status()?.cluster?.role == "leader" }, "\(daemon.log.suffix(3000))")
        #expect(sequences() == before)
        #expect(try daemon.ctl(["events"]).stdout == events)
        // It carries on: the next delivery, and a record the checker finds in order.
        _ = try trigger()
        #expect(await finished(4), "\(daemon.log.suffix(3000))")
        #expect(try server.psql(PostgresChecker.violations, database: database) == "0|0|0")
        #expect(await daemon.stop() == 0)
        let again = try Command.run("shipyardd", ["--import-record", "--config", daemon.configPath])
        #expect(again.status == 1)
        #expect(again.stderr.contains("already holds history: an import goes only into an empty one"), "\(again.stderr)")
    }

    /// `--check-config` signs in to the database and says what is wrong, changing nothing.
    @Test func checkConfigReachesTheDatabaseAndSaysWhatIsWrong() throws {
        let server = try PostgresServer.shared.get()
        let database = try server.database()
        let dir = try TemporaryDirectory()
        let good = try dir.write("good", server.password + "\n", mode: 0o600)
        let bad = try dir.write("bad", "not-the-password\n", mode: 0o600)
        func check(_ store: String) throws -> ProcessOutput {
            let config = try dir.write("config.yaml", """
                projects:
                  - name: shop
                    upstream: file:///nonexistent.git
                \(store)
                """)
            return try Command.run("shipyardd", ["--check-config", config])
        }
        func postgres(_ url: String, _ password: String) -> String {
            "store:\n  postgres:\n    url: \(url)\n    passwordFile: \(password)\n"
        }
        let fresh = try check(postgres(server.url(database: database), good))
        #expect(fresh.status == 0, "\(fresh.stderr)")
        #expect(fresh.stdout.contains("reached; the record's tables are made at the first start"), "\(fresh.stdout)")
        #expect(try server.psql("SELECT count(*) FROM pg_tables WHERE schemaname = 'public'", database: database) == "0", "a check makes nothing")
        _ = try PostgresStore(PostgresSettings(url: server.url(database: database), password: server.password, holder: "test"))
        #expect(try check(postgres(server.url(database: database), good)).stdout.contains("reached; the record is there"))

        let refused = try check(postgres(server.url(database: database), bad))
        #expect(refused.status == 1)
        #expect(refused.stderr.contains("store.postgres: cannot connect to PostgreSQL at \(server.url(database: database))") && refused.stderr.contains("password authentication failed"), "\(refused.stderr)")
        let inline = try check(postgres("postgresql://shipyard:secret@127.0.0.1:\(server.port)/x", good))
        #expect(inline.status == 1)
        #expect(inline.stderr.contains("config.yaml:6:10: error: store.postgres.url holds a password; put it in a file"), "\(inline.stderr)")
        #expect(!inline.stderr.contains("secret"))
    }

    /// `shipyardctl` works on every host: a standby reads the record from PostgreSQL and hands
    /// commands to the leader, which applies them once, as the caller the standby's kernel named;
    /// `status` on every host names the leader and each host's last heartbeat.
    @Test func shipyardctlWorksOnEveryHostAndStatusShowsEveryHost() async throws {
        let cluster = try Cluster()
        let leader = try #require(await cluster.awaitLeader(after: 0), "\(cluster.logs())")
        let standby = try #require(cluster.names.first { $0 != leader.name })
        let daemon = try #require(cluster.daemons[standby])
        let trigger = ["trigger", "delivery", "--project", "shop", "--service", "svc-1", "--request-id", "deploy-42", "--output", "json"]
        let forwarded = try daemon.ctl(trigger)
        #expect(forwarded.status == 0, "\(forwarded.stderr)\n\(cluster.logs())")
        let context = try #require((try? JSONSerialization.jsonObject(with: Data(forwarded.stdout.utf8)) as? [String: Any])?["context"] as? String)
        #expect(cluster.daemons[leader.name]?.log.contains("request trigger forwarded by \(standby)") == true)
        // Sent again (a retry after a lost answer): the same delivery, nothing new.
        let again = try daemon.ctl(trigger)
        #expect((try? JSONSerialization.jsonObject(with: Data(again.stdout.utf8)) as? [String: Any])?["context"] as? String == context, "\(again.stdout)\(again.stderr)")
        #expect(try cluster.sql("SELECT count(*) FROM sequences WHERE request_id LIKE '%deploy-42'") == "1")
        // The standby reads what the leader ran.
        var detail = ""
        #expect(await eventually(timeout: .seconds(30)) {
            detail = (try? daemon.ctl(["sequence", String(context.prefix(8))]).stdout) ?? ""
            return detail.contains("qa.delivery: finished (pass)")
        }, "\(detail)")
        // Checked on the standby first, then by the leader: a refusal reads the same on any host.
        let unknown = try daemon.ctl(["abort", "no-such-context"])
        #expect(unknown.stderr == "shipyardctl: no sequence has a context starting with no-such-context (shipyardctl sequences lists them)\n", "\(unknown.stderr)")
        for name in cluster.names {
            let host = try #require(cluster.daemons[name])
            var table = ""
            #expect(await eventually(timeout: .seconds(20)) {
                table = (try? host.ctl(["status"]).stdout) ?? ""
                return table.contains("shared record (PostgreSQL): \(leader.name) leads (epoch \(leader.epoch))")
                    && cluster.names.allSatisfy { table.contains($0) }
            }, "\(name): \(table)")
            #expect(table.contains(name == leader.name ? "this host (\(name)) is the leader" : "this host (\(name)) is a standby"), "\(table)")
            let json = try JSONSerialization.jsonObject(with: Data(try host.ctl(["status", "--output", "json"]).stdout.utf8)) as? [String: Any]
            let status = try #require(json?["cluster"] as? [String: Any])
            #expect(status["role"] as? String == (name == leader.name ? "leader" : "standby"))
            #expect((status["hosts"] as? [[String: Any]])?.count == 3)
        }
    }

    /// A gate decided on a standby: the standby's `approvals/` holds the leader's request file,
    /// `approvals` lists it there, and `approve` there opens it (applied by the leader, as root).
    @Test func anApprovalWaitsInEveryHostsApprovalsAndIsDecidedOnAStandby() async throws {
        let cluster = try Cluster(shipyard: """
            apiVersion: spec.keptn.sh/0.2.4
            kind: Shipyard
            metadata: {name: shipyard-failover-approval}
            spec:
              stages:
                - name: qa
                  sequences:
                    - name: delivery
                      tasks:
                        - name: approval
                          properties: {pass: manual, warning: manual}
                        - name: deploy

            """)
        let leader = try #require(await cluster.awaitLeader(after: 0), "\(cluster.logs())")
        let standby = try #require(cluster.names.first { $0 != leader.name })
        let daemon = try #require(cluster.daemons[standby])
        let triggered = try daemon.ctl(["trigger", "delivery", "--project", "shop", "--service", "svc-1", "--output", "json"])
        let context = try #require((try? JSONSerialization.jsonObject(with: Data(triggered.stdout.utf8)) as? [String: Any])?["context"] as? String, "\(triggered.stderr)")
        let approvals = daemon.state + "/approvals"
        var files: [String] = []
        #expect(await eventually(timeout: .seconds(30)) {
            files = ((try? FileManager.default.contentsOfDirectory(atPath: approvals)) ?? []).filter { $0.hasSuffix(".json") }
            return files.count == 1
        }, "\(cluster.logs())")
        let id = String(try #require(files.first).dropLast(5))
        let request = try #require(FileManager.default.contents(atPath: approvals + "/\(id).json"))
        #expect(request == FileManager.default.contents(atPath: (cluster.daemons[leader.name]?.state ?? "") + "/approvals/\(id).json"), "the leader's file, as it is")
        #expect(try daemon.ctl(["approvals"]).stdout.contains(String(id.prefix(8))))
        let approved = try daemon.ctl(["approve", String(id.prefix(8)), "--reason", "checked on \(standby)"])
        #expect(approved.status == 0 && approved.stdout.hasPrefix("approved"), "\(approved.stdout)\(approved.stderr)")
        #expect(cluster.daemons[leader.name]?.log.contains("request approve forwarded by \(standby)") == true)
        #expect(await eventually(timeout: .seconds(30)) {
            (try? daemon.ctl(["sequence", String(context.prefix(8))]).stdout.contains("qa.delivery: finished (pass)")) == true
        })
        #expect(await eventually(timeout: .seconds(10)) { !FileManager.default.fileExists(atPath: approvals + "/\(id).json") }, "decided: the standby's file goes")
        #expect(try daemon.ctl(["approvals"]).stdout == "no approvals are waiting\n")
    }

    /// A leader frozen (SIGSTOP) for longer than its lease, then thawed: it stopped itself (exit
    /// 75) before writing anything, and a standby had taken over.
    @Test func aFrozenLeaderStopsItselfWhenThawedAndAStandbyCarriesOn() async throws {
        let cluster = try Cluster()
        #expect(await cluster.awaitLeader(after: 0) != nil, "\(cluster.logs())")
        let load = Load(cluster)
        let takeovers = try await rounds(cluster) { daemon, _ in
            daemon.signal(SIGSTOP)
            return nil
        } recover: { daemon in
            daemon.signal(SIGCONT)
            #expect(await eventually(timeout: .seconds(10)) { !daemon.isRunning }, "\(daemon.log.suffix(2000))")
            #expect(daemon.log.contains("lost the leadership of the shared record"))
            try daemon.start()
        }
        let accepted = load.stop()
        report("SIGSTOP", takeovers)
        try await settle(cluster, accepted)
    }

    /// Frozen inside the append transaction, holding the lease row FOR SHARE: the server ends
    /// the idle transaction after 2 s, the take goes through, and the thawed leader's COMMIT fails.
    @Test func aLeaderFrozenInsideItsAppendHoldsNoTakeoverUp() async throws {
        let cluster = try Cluster()
        let pauses = cluster.dir.path + "/pause"
        // Every daemon may be paused: the file is taken by whichever leads.
        for daemon in cluster.daemons.values {
            daemon.environment["SHIPYARD_FAULT_PAUSE_IN_APPEND"] = pauses
            _ = await daemon.stop()
            try daemon.start()
        }
        #expect(await cluster.awaitLeader(after: 0) != nil, "\(cluster.logs())")
        let load = Load(cluster)
        let takeovers = try await rounds(cluster) { _, cluster in
            try writeFile(pauses, Data())
            var inside = ""
            #expect(await eventually(timeout: .seconds(20)) {
                inside = (try? String(contentsOfFile: pauses + ".inside", encoding: .utf8)) ?? ""
                return !inside.isEmpty
            }, "\(cluster.logs())")
            unlink(pauses + ".inside")
            // The leader that paused inside its append (it wrote its name and epoch).
            let parts = inside.split(separator: " ")
            let name = String(try #require(parts.first)), epoch = try #require(parts.last.flatMap { Int($0) })
            try #require(cluster.daemons[name]).signal(SIGSTOP)
            return (name, epoch)
        } recover: { daemon in
            daemon.signal(SIGCONT)
            #expect(await eventually(timeout: .seconds(10)) { !daemon.isRunning }, "\(daemon.log.suffix(2000))")
            try daemon.start()
        }
        let accepted = load.stop()
        report("SIGSTOP inside the append", takeovers)
        try await settle(cluster, accepted)
    }

    /// What goes wrong between the leader's host and the database, made in its namespace.
    enum LinkFault: String, CaseIterable, Sendable, CustomTestStringConvertible {
        /// iptables DROP both ways: no reset, no unreachable; TCP sessions hang.
        case partition = "silent partition"
        /// Every packet to the database 2.5 s late (netem's delay; held by NFQUEUE here).
        case delay = "2.5 s delay"

        var testDescription: String { rawValue }

        func make(on host: NetworkNamespace) throws {
            switch self {
            case .partition: try host.partition()
            case .delay: try host.delay(seconds: 2.5)
            }
        }
    }

    /// Cut off from the database without a word, or on a link where every packet is 2.5 s late:
    /// the leader's renewals hang or reach the record too late to count, its trust window
    /// closes, it kills its programs and exits, and a renewal still on its way cannot keep the
    /// lease alive after it; a standby takes over once the lease ran out.
    @Test(.enabled(if: NetworkNamespace.isAvailable, "needs root, iproute2 and iptables (make test-deps)"), arguments: LinkFault.allCases)
    func aLeaderCutOffOrSlowedStopsItselfAndAStandbyTakesOver(fault: LinkFault) async throws {
        let cluster = try Cluster()
        #expect(await cluster.awaitLeader(after: 0) != nil, "\(cluster.logs())")
        let load = Load(cluster)
        let takeovers = try await rounds(cluster) { daemon, cluster in
            try fault.make(on: cluster.host(of: daemon))
            return nil
        } recover: { daemon in
            #expect(await eventually(timeout: .seconds(20)) { !daemon.isRunning }, "\(daemon.log.suffix(2000))")
            #expect(daemon.log.contains("lost the leadership of the shared record"))
            try cluster.host(of: daemon).heal()
            try daemon.start()
        }
        let accepted = load.stop()
        report(fault.rawValue, takeovers)
        try await settle(cluster, accepted)
    }

    /// One daemon's clock an hour ahead (libfaketime): leadership and the record go by the
    /// database's clock, so it leads, is killed and hands over like the others, and what it
    /// started finishes once, not as timed out.
    @Test(.enabled(if: FileManager.default.fileExists(atPath: FailoverTests.libfaketime), "needs libfaketime (make test-deps)"))
    func aDaemonWhoseClockIsAnHourOffLeadsAndHandsOverLikeTheOthers() async throws {
        let skew = ["LD_PRELOAD": Self.libfaketime, "FAKETIME": "+1h"]
        let shown = try #require(Double(try Run.checked("/bin/date", ["+%s"], environment: skew).trimmingCharacters(in: .whitespacesAndNewlines)))
        #expect(abs(shown - Date().timeIntervalSince1970 - 3600) < 60, "libfaketime is not in effect")
        let cluster = try Cluster(clocks: ["host-a": "+1h"])
        var first = try #require(await cluster.awaitLeader(after: 0), "\(cluster.logs())")
        // The skewed host leads first: the others stand down until it does.
        if first.name != "host-a" {
            for name in ["host-b", "host-c"] { _ = await cluster.daemons[name]?.stop() }
            first = try #require(await cluster.awaitLeader(after: first.epoch), "\(cluster.logs())")
            for name in ["host-b", "host-c"] { try cluster.daemons[name]?.start() }
        }
        #expect(first.name == "host-a")
        #expect(cluster.daemons["host-a"]?.log.contains("this host's clock is 3600 s ahead of the shared record's database") == true, "\(cluster.logs())")
        #expect(cluster.daemons["host-b"]?.log.contains("this host's clock") == false)
        try await killLeaders(cluster, "one clock an hour ahead")
        #expect(try cluster.sql("SELECT count(*) FROM sequences WHERE state <> 'finished' OR result <> 'pass'") == "0")
    }

    /// The control: leaders that believe they lead whatever happens (as Oban's did, #1488). With
    /// the fence, the thawed leader's appends are refused and the checker finds nothing; without
    /// it, the checker must find its late writes.
    @Test(arguments: [true, false])
    func withoutTheFenceTheCheckerSeesLateWrites(fenced: Bool) async throws {
        var environment = ["SHIPYARD_FAULT_BELIEVE_LEADING": "1"]
        if !fenced { environment["SHIPYARD_FAULT_NO_FENCE"] = "1" }
        // Tasks that outlast the freeze's start: the frozen leader has programs running.
        let cluster = try Cluster(environment: environment, taskSeconds: "2")
        let first = try #require(await cluster.awaitLeader(after: 0), "\(cluster.logs())")
        var accepted: [String] = []
        for index in 0..<3 { if let context = cluster.trigger(index) { accepted.append(context) } }
        try #require(accepted.count == 3, "\(cluster.logs())")
        try await Task.sleep(for: .milliseconds(500))
        let frozen = try #require(cluster.daemons[first.name])
        frozen.signal(SIGSTOP)
        let next = try #require(await cluster.awaitLeader(after: first.epoch), "\(cluster.logs())")
        // The new leader runs the tasks again; then the old one thaws with its own results.
        try await Task.sleep(for: .seconds(1))
        frozen.signal(SIGCONT)
        try await Task.sleep(for: .seconds(4))
        let found = try cluster.violations()
        if fenced {
            #expect(found == "0|0|0", "\(cluster.logs())")
            #expect(await eventually(timeout: .seconds(10)) { !frozen.isRunning }, "the refused append stops it: \(frozen.log.suffix(2000))")
            try await settle(cluster, accepted)
        } else {
            let parts = found.split(separator: "|").compactMap { Int($0) }
            #expect(parts.count == 3 && parts[1] + parts[2] > 0, "the checker must see the unfenced writes: \(found) (new epoch \(next.epoch))\n\(cluster.logs())")
        }
        for daemon in cluster.daemons.values { daemon.signal(SIGKILL) }
    }
}
