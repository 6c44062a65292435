import Foundation
import ShipyardDaemon
import ShipyardTestKit
import Testing

/// The daemon watching real upstreams on loopback, as an operator would run it.
@Suite(.serialized) struct GitWatchingTests {
    static let tutorial = try! String(contentsOf: Repository.root.appendingPathComponent("examples/demo/shipyard.yaml"), encoding: .utf8)
    static let tutorialWithApproval = try! String(
        contentsOf: Repository.root.appendingPathComponent("examples/demo/shipyard-with-approval.yaml"), encoding: .utf8)

    func project(_ name: String = "demo", upstream: String, extra: String = "", interval: String = "1s") -> String {
        """
        projects:
          - name: \(name)
            upstream: \(upstream)
            pollInterval: \(interval)
        \(extra)
        """
    }

    func count(_ needle: String, in text: String) -> Int {
        text.components(separatedBy: needle).count - 1
    }

    @Test func followsCommitsReloadsOnlyChangedShipyardsAndKeepsTheLastGoodOne() async throws {
        let dir = try TemporaryDirectory()
        let upstream = try UpstreamRepository(in: dir.path)
        let first = try upstream.commit(["shipyard.yaml": Self.tutorial, "README": "one\n"])
        let server = try GitDaemonServer(root: dir.path)
        let daemon = try RunningDaemon(directory: dir.path, config: project(upstream: server.url("upstream.git")))

        var status = await daemon.waitFor("demo") { $0.shipyardCommit == first }
        #expect(status?.commit == first)
        #expect(status?.stages == ["qa", "production"])
        #expect(status?.error == nil)
        #expect(status?.upstream == server.url("upstream.git"))

        // A commit that does not touch the shipyard: the commit moves, nothing is reloaded.
        let second = try upstream.commit(["README": "two\n"])
        status = await daemon.waitFor("demo") { $0.commit == second }
        #expect(status?.shipyardCommit == second)
        #expect(count("loaded shipyard.yaml", in: daemon.log) == 1)

        // The tutorial's edit: the approval task before production's je-deployment.
        let third = try upstream.commit(["shipyard.yaml": Self.tutorialWithApproval])
        status = await daemon.waitFor("demo") { $0.shipyardCommit == third }
        #expect(count("loaded shipyard.yaml", in: daemon.log) == 2)

        // An invalid shipyard: the last good one stays, the error names commit, line and column.
        let broken = Self.tutorialWithApproval.replacingOccurrences(of: "triggeredOn", with: "triggerdOn")
        let fourth = try upstream.commit(["shipyard.yaml": broken])
        status = await daemon.waitFor("demo") { $0.commit == fourth && $0.error != nil }
        #expect(status?.shipyardCommit == third)
        #expect(status?.error?.kind == "shipyard")
        #expect(status?.error?.commit == fourth)
        #expect(status?.error?.line == 17)
        #expect(status?.error?.column == 11)
        #expect(status?.error?.message.contains("unknown key \"triggerdOn\"") == true)
        #expect(daemon.log.contains("shipyard.yaml:17:11: error: unknown key \"triggerdOn\""))

        // A force-push that replaces the broken commit recovers.
        let fifth = try upstream.forcePush(["shipyard.yaml": Self.tutorial])
        status = await daemon.waitFor("demo") { $0.commit == fifth && $0.error == nil }
        #expect(status?.shipyardCommit == fifth)
        #expect(status?.stages == ["qa", "production"])

        #expect(await daemon.stop() == 0)
    }

    /// No git config steers the daemon: not the user's ~/.gitconfig or XDG config (here one that
    /// redirects the upstream to another repository with url.insteadOf), nor a folder someone
    /// made under the name earlier releases used in its temporary folder (a TMPDIR of the test's
    /// own here; UnprivilegedTests has another user make it).
    @Test func noGitConfigSteersTheDaemon() async throws {
        let dir = try TemporaryDirectory()
        let upstream = try UpstreamRepository(in: dir.path)
        let real = try upstream.commit(["shipyard.yaml": Self.tutorial])
        let other = try UpstreamRepository(in: dir.path, name: "other")
        _ = try other.commit(["shipyard.yaml": Self.tutorial + "# elsewhere\n"])
        let redirect = "[url \"\(other.fileURL)\"]\n\tinsteadOf = \(upstream.fileURL)\n"
        _ = try dir.write("home/.gitconfig", redirect)
        _ = try dir.write("xdg/git/config", redirect)
        _ = try dir.write("tmp/shipyard-empty-gitconfig/.gitconfig", redirect)
        let daemon = try RunningDaemon(
            directory: dir.path, config: "projects:\n  - name: real\n    upstream: \(upstream.fileURL)\n    pollInterval: 1h\n",
            environment: ["HOME": dir.path + "/home", "XDG_CONFIG_HOME": dir.path + "/xdg", "TMPDIR": dir.path + "/tmp"])
        #expect(await daemon.waitFor("real") { $0.shipyardCommit == real } != nil, "\(daemon.log)")
    }

    @Test func branchDeletedAndRestoredAndAMissingFile() async throws {
        let dir = try TemporaryDirectory()
        let upstream = try UpstreamRepository(in: dir.path)
        let good = try upstream.commit(["shipyard.yaml": Self.tutorial])
        let daemon = try RunningDaemon(directory: dir.path, config: project(upstream: upstream.fileURL))
        _ = await daemon.waitFor("demo") { $0.shipyardCommit == good }

        try upstream.deleteBranch()
        var status = await daemon.waitFor("demo") { $0.error != nil }
        #expect(status?.error?.kind == "upstream")
        #expect(status?.error?.message == "the upstream repository is empty; push a commit with shipyard.yaml to main")
        #expect(status?.shipyardCommit == good)

        try upstream.restoreBranch(to: good)
        status = await daemon.waitFor("demo") { $0.error == nil }
        #expect(status?.commit == good)
        #expect(daemon.log.contains("upstream reachable again"))

        try upstream.git("rm", "-q", "shipyard.yaml")
        let gone = try upstream.commit([:])
        status = await daemon.waitFor("demo") { $0.commit == gone && $0.error != nil }
        #expect(status?.error?.message.hasPrefix("shipyard.yaml does not exist at \(gone.prefix(12)) on main") == true)
        #expect(status?.shipyardCommit == good)
    }

    @Test func aMissingBranchNamesTheBranchesThatExist() async throws {
        let dir = try TemporaryDirectory()
        let upstream = try UpstreamRepository(in: dir.path)
        try upstream.commit(["shipyard.yaml": Self.tutorial], branch: "develop")
        let daemon = try RunningDaemon(directory: dir.path, config: project(upstream: upstream.fileURL))
        let status = await daemon.waitFor("demo") { $0.error != nil }
        #expect(status?.error?.message == "branch main does not exist upstream (it has develop)")
    }

    @Test func serverDownAndBackWithBackoff() async throws {
        let dir = try TemporaryDirectory()
        let upstream = try UpstreamRepository(in: dir.path)
        let good = try upstream.commit(["shipyard.yaml": Self.tutorial])
        // The port stays ours while the server is down: it refuses connections, and the server
        // comes back on it.
        let reserved = try RefusingPort()
        let port = reserved.port
        var server = try GitDaemonServer(root: dir.path, port: reserved)
        let daemon = try RunningDaemon(directory: dir.path, config: project(upstream: server.url("upstream.git")))
        _ = await daemon.waitFor("demo") { $0.shipyardCommit == good }

        server.stop()
        var status = await daemon.waitFor("demo") { $0.consecutiveFailures >= 2 }
        #expect(status?.error?.kind == "upstream")
        #expect(status?.error?.message.hasPrefix("cannot reach git://127.0.0.1:\(port)/upstream.git") == true)
        #expect(status?.shipyardCommit == good)
        #expect(count("upstream poll failed", in: daemon.log) == 1)

        server = try GitDaemonServer(root: dir.path, port: reserved)
        let next = try upstream.commit(["README": "back\n"])
        status = await daemon.waitFor("demo") { $0.commit == next }
        #expect(status?.error == nil)
        #expect(status?.consecutiveFailures == 0)
        _ = server
    }

    @Test func httpPasswordFileIsReadAtEveryPollAndNeverShown() async throws {
        let dir = try TemporaryDirectory()
        let upstream = try UpstreamRepository(in: dir.path)
        let good = try upstream.commit(["shipyard.yaml": Self.tutorial])
        let serverPassword = try dir.write("server-password", "right-horse-battery\n")
        let server = try HTTPGitServer(root: dir.path, user: "deploy", passwordFile: serverPassword, scratch: dir.path)
        let ours = try dir.write("token", "wrong-password\n", mode: 0o600)
        let daemon = try RunningDaemon(directory: dir.path, config: project(
            upstream: server.url("upstream.git"),
            extra: "    credentials:\n      username: deploy\n      passwordFile: \(ours)\n"))

        var status = await daemon.waitFor("demo") { $0.error != nil }
        #expect(status?.error?.message.contains("refused the username and password") == true)

        try dir.write("token", "right-horse-battery\n")
        status = await daemon.waitFor("demo") { $0.shipyardCommit == good }
        #expect(status?.error == nil)
        let everything = daemon.log + ((try? String(contentsOfFile: daemon.state + "/status.json", encoding: .utf8)) ?? "")
        #expect(!everything.contains("right-horse-battery"))
        #expect(!everything.contains("wrong-password"))
    }

    @Test(.enabled(if: SSHServer.isAvailable, "sshd is not installed (make test installs openssh-server)"))
    func sshRefusesAnUnknownHostKeyUntilItIsTrusted() async throws {
        let dir = try TemporaryDirectory()
        let upstream = try UpstreamRepository(in: dir.path)
        let good = try upstream.commit(["shipyard.yaml": Self.tutorial])
        let server = try SSHServer(scratch: dir.path)
        let knownHosts = try dir.write("known_hosts", "")
        let daemon = try RunningDaemon(directory: dir.path, config: project(
            upstream: server.url(upstream.bare),
            extra: "    credentials:\n      sshKey: \(server.clientKey)\n      knownHosts: \(knownHosts)\n"))

        var status = await daemon.waitFor("demo") { $0.error != nil }
        #expect(status?.error?.message.contains("unknown host key for 127.0.0.1") == true)
        #expect(status?.shipyardCommit == nil)

        try dir.write("known_hosts", server.knownHostsLine)
        status = await daemon.waitFor("demo") { $0.shipyardCommit == good }
        #expect(status?.error == nil)
    }

    /// Polls share a bounded pool of threads: a stuck remote among 200 projects holds up none
    /// of the others, and the daemon has no more poll threads than the pool's size.
    @Test func aStuckRemoteAmong200ProjectsHoldsUpNoneAndThePoolBoundsTheThreads() async throws {
        let dir = try TemporaryDirectory()
        let silent = try SilentServer()
        let upstream = try UpstreamRepository(in: dir.path)
        let good = try upstream.commit(["shipyard.yaml": Self.tutorial])
        let names = (1...199).map { "p-\($0)" }
        let config = """
            pollThreads: 4
            projects:
              - name: stuck
                upstream: git://127.0.0.1:\(silent.port)/x.git
                pollInterval: 1s
                pollTimeout: 3s
            \(names.map { "  - name: \($0)\n    upstream: \(upstream.fileURL)\n    pollInterval: 2s" }.joined(separator: "\n"))
            """
        let daemon = try RunningDaemon(directory: dir.path, config: config)
        func all(_ condition: (ProjectStatus) -> Bool) -> Bool {
            guard let status = daemon.status(), status.pid == daemon.pid else { return false }
            let others = status.projects.filter { $0.name != "stuck" }
            return others.count == 199 && others.allSatisfy(condition)
        }
        #expect(await eventually(timeout: .seconds(60)) { all { $0.shipyardCommit == good } }, "\(daemon.log)")
        let stuck = await daemon.waitFor("stuck") { $0.error != nil }
        #expect(stuck?.error?.message == "the poll timed out after 3s: the upstream did not answer")

        // A push reaches all 199 by their next polls while "stuck" keeps timing out.
        let next = try upstream.commit(["README": "x\n"])
        #expect(await eventually(timeout: .seconds(30)) { all { $0.commit == next } }, "\(daemon.log)")
        #expect((daemon.project("stuck")?.consecutiveFailures ?? 0) >= 1)

        // Poll threads: at most the pool's 4, whatever the number of projects.
        let tasks = (try? FileManager.default.contentsOfDirectory(atPath: "/proc/\(daemon.pid)/task")) ?? []
        let threadNames = tasks.compactMap { try? String(contentsOfFile: "/proc/\(daemon.pid)/task/\($0)/comm", encoding: .utf8) }
        let pollThreads = threadNames.filter { $0.hasPrefix("poll-") && $0.dropFirst(5).first?.isNumber == true }
        #expect(!pollThreads.isEmpty && pollThreads.count <= 4, "\(threadNames)")
        #expect(tasks.count < 40, "\(threadNames)")
        #expect(await daemon.stop() == 0)
    }

    @Test func aSilentRemoteTimesOutWithoutBlockingOtherProjectsOrTheCLI() async throws {
        let dir = try TemporaryDirectory()
        let silent = try SilentServer()
        let upstream = try UpstreamRepository(in: dir.path)
        let good = try upstream.commit(["shipyard.yaml": Self.tutorial])
        let config = """
            projects:
              - name: stuck
                upstream: git://127.0.0.1:\(silent.port)/x.git
                pollInterval: 1s
                pollTimeout: 2s
              - name: fine
                upstream: \(upstream.fileURL)
                pollInterval: 1h
            """
        let daemon = try RunningDaemon(directory: dir.path, config: config)
        _ = await daemon.waitFor("fine") { $0.shipyardCommit == good }
        let stuck = await daemon.waitFor("stuck") { $0.error != nil }
        #expect(stuck?.error?.message == "the poll timed out after 2s: the upstream did not answer")

        // While "stuck" keeps timing out, the CLI and the other project are served at once.
        let next = try upstream.commit(["README": "x\n"])
        let sync = try daemon.ctl(["sync", "--project", "fine", "--timeout", "5"])
        #expect(sync.status == 0)
        #expect(sync.stdout.hasPrefix("fine: main is at \(next.prefix(12))"))
        #expect(daemon.project("fine")?.commit == next)
        #expect(await daemon.stop() == 0)
    }

    @Test func sighupAndSyncPollAtOnceAndReloadTheConfig() async throws {
        let dir = try TemporaryDirectory()
        let upstream = try UpstreamRepository(in: dir.path)
        let first = try upstream.commit(["shipyard.yaml": Self.tutorial])
        let daemon = try RunningDaemon(directory: dir.path, config: project(upstream: upstream.fileURL, interval: "1h"))
        _ = await daemon.waitFor("demo") { $0.shipyardCommit == first }

        let second = try upstream.commit(["shipyard.yaml": Self.tutorialWithApproval])
        let sync = try daemon.ctl(["sync"])
        #expect(sync.status == 0, "\(sync.stderr)")
        #expect(sync.stdout == "demo: main is at \(second.prefix(12)); shipyard from \(second.prefix(12)) (stages: qa, production)\n")

        let third = try upstream.commit(["README": "3\n"])
        daemon.signal(SIGHUP)
        #expect(await daemon.waitFor("demo", timeout: .seconds(10)) { $0.commit == third }?.commit == third)

        // A bad config on SIGHUP is refused; the running one stays.
        try Data("projects: [\n".utf8).write(to: URL(fileURLWithPath: daemon.configPath))
        daemon.signal(SIGHUP)
        #expect(await eventually { daemon.log.contains("config reload refused, keeping the running config") })
        #expect(daemon.status()?.projects.map(\.name) == ["demo"])

        // A good one adds a project.
        let other = try UpstreamRepository(in: dir.path, name: "other")
        let otherCommit = try other.commit(["shipyard.yaml": Self.tutorial])
        try daemon.write(config: project(upstream: upstream.fileURL, interval: "1h") + "  - name: other\n    upstream: \(other.fileURL)\n")
        daemon.signal(SIGHUP)
        #expect(await daemon.waitFor("other") { $0.shipyardCommit == otherCommit } != nil)

        let unknown = try daemon.ctl(["sync", "--project", "nope"])
        #expect(unknown.status == 1)
        #expect(unknown.stderr == "shipyardctl: no project \"nope\" (projects: demo, other)\n")

        let table = try daemon.ctl(["status"])
        #expect(table.status == 0)
        #expect(table.stdout.contains("shipyardd 0.1.0 running (pid \(daemon.pid))"))
        #expect(table.stdout.contains("PROJECT  BRANCH  COMMIT"))
        #expect(await daemon.stop() == 0)

        let late = try daemon.ctl(["sync", "--timeout", "1"])
        #expect(late.status == 1)
        #expect(late.stderr.contains("shipyardd is not running: nothing answers on \(daemon.state)/shipyardd.sock"), "\(late.stderr)")
        #expect(try daemon.ctl(["status"]).stdout.hasPrefix("shipyardd is not running"))
    }

    @Test func aRestartRestoresTheShipyardFromTheMirrorWhileTheUpstreamIsDown() async throws {
        let dir = try TemporaryDirectory()
        let upstream = try UpstreamRepository(in: dir.path)
        let good = try upstream.commit(["shipyard.yaml": Self.tutorial])
        var server: GitDaemonServer? = try GitDaemonServer(root: dir.path)
        let daemon = try RunningDaemon(directory: dir.path, config: project(upstream: server!.url("upstream.git")))
        _ = await daemon.waitFor("demo") { $0.shipyardCommit == good }
        #expect(await daemon.stop() == 0)

        server = nil
        try daemon.start()
        let status = await daemon.waitFor("demo") { $0.error != nil && $0.lastPollAt != nil }
        #expect(status?.shipyardCommit == good)
        #expect(status?.stages == ["qa", "production"])
        #expect(daemon.log.contains("restored the shipyard from the mirror"))
    }

    @Test func aCorruptMirrorIsRecreated() async throws {
        let dir = try TemporaryDirectory()
        let upstream = try UpstreamRepository(in: dir.path)
        let good = try upstream.commit(["shipyard.yaml": Self.tutorial])
        let daemon = try RunningDaemon(directory: dir.path, config: project(upstream: upstream.fileURL))
        _ = await daemon.waitFor("demo") { $0.shipyardCommit == good }
        #expect(await daemon.stop() == 0)

        let mirror = daemon.state + "/projects/demo/mirror.git"
        try Data("garbage".utf8).write(to: URL(fileURLWithPath: mirror + "/HEAD"))
        try FileManager.default.removeItem(atPath: mirror + "/objects")
        try daemon.start()
        let status = await daemon.waitFor("demo") { $0.lastPollAt != nil && $0.shipyardCommit == good }
        #expect(status?.error == nil)
        #expect(daemon.log.contains("the mirror was unreadable and has been re-created"))
    }

    @Test func badConfigsStopTheDaemonWithThePosition() throws {
        let dir = try TemporaryDirectory()
        let config = try dir.write("config.yaml", "projects:\n  - name: demo\n    upstream: github.com/acme/x\n")
        let check = try Command.run("shipyardd", ["--check-config", config])
        #expect(check.status == 1)
        #expect(check.stderr == "\(config):3:15: error: upstream \"github.com/acme/x\" must start with file://, git://, http://, https:// or ssh://\n")
        let run = try Command.run("shipyardd", ["--config", config])
        #expect(run.status == 1)
        #expect(run.stderr.contains("\(config):3:15: error:"))

        let good = try dir.write("good.yaml", "stateDirectory: \(dir.path)/state\nprojects:\n  - name: demo\n    upstream: file:///srv/demo.git\n")
        let ok = try Command.run("shipyardd", ["--check-config", good])
        #expect(ok.status == 0)
        #expect(ok.stdout == "\(good): ok (1 project, 0 task executors, state in \(dir.path)/state)\n")
        #expect(try Command.run("shipyardd", ["--config", dir.path + "/missing.yaml"]).stderr.contains("cannot read the config: no such file"))
    }
}
