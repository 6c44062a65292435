import Foundation
import ShipyardCore
import ShipyardDaemon
import ShipyardTestKit
import Testing

/// The daemon as the unit runs it, an unprivileged user of its own, used by operators who are
/// members of its group, and refused to one who is not: the twins of tests that run the daemon
/// as root, where a permission problem would hide.
@Suite(.serialized, .enabled(if: LocalUsers.canCreate, "needs root to create users (useradd) and switch to them (setpriv)"))
struct UnprivilegedTests {
    typealias World = SequenceTests.World

    /// Every entry under `root` whose mode gives others any access, as "path mode".
    func openToOthers(_ root: String) -> [String] {
        var found: [String] = []
        let enumerator = FileManager.default.enumerator(atPath: root)
        while let name = enumerator?.nextObject() as? String {
            var info = stat()
            guard lstat(root + "/" + name, &info) == 0, info.st_mode & S_IFMT != S_IFLNK else { continue }
            if info.st_mode & 0o007 != 0 { found.append("\(name) \(String(info.st_mode & 0o7777, radix: 8))") }
        }
        return found
    }

    func mode(_ path: String) -> mode_t {
        var info = stat()
        return stat(path, &info) == 0 ? info.st_mode & 0o7777 : 0
    }

    @Test func theSeedTutorialWithOperatorsInTheGroup() async throws {
        let users = try LocalUsers()
        // The upstream is a file:// repository owned by root, not by the daemon's user.
        let world = try World(
            shipyard: GitWatchingTests.tutorialWithApproval, extraConfig: "approvers:\n  users: [\(users.alice)]\n", users: users)
        #expect(await world.ready(), "\(world.daemon.log)")
        let state = world.daemon.state

        // alice (a member) triggers, lists, and watches production wait.
        let context = try world.trigger()
        #expect(await world.waitState(context, "production", "waitingForApproval"))
        let listed = try world.daemon.ctl(["approvals", "--output", "json"])
        #expect(listed.status == 0, "\(listed.stderr)")
        let approvals = try #require(try JSONSerialization.jsonObject(with: Data(listed.stdout.utf8)) as? [[String: Any]])
        let id = try #require(approvals.first?["id"] as? String)
        #expect(approvals.first?["triggeredBy"] as? String == "shipyardctl/\(users.alice)")
        #expect(try world.daemon.ctl(["status"]).status == 0)

        // mallory is in the group but not an approver: refused, and the gate holds.
        let refused = try world.daemon.ctl(["approve", id], as: users.mallory)
        #expect(refused.status == 1)
        #expect(refused.stderr.contains("\(users.mallory) may not resolve approvals"), "\(refused.stderr)")

        // eve is outside the group: every command says so, and how to join.
        let join = "sudo usermod -aG \(users.group) \(users.eve)"
        for arguments in [["approvals"], ["sequences"], ["status"], ["approve", id], ["trigger", "delivery", "--project", "fulltour", "--service", "x"]] {
            let out = try world.daemon.ctl(arguments, as: users.eve)
            #expect(out.status == 1, "\(arguments): \(out.stdout)")
            #expect(out.stderr.contains("permission denied") && out.stderr.contains(join), "\(arguments): \(out.stderr)")
        }
        #expect(try world.state(context, "production") == "waitingForApproval")

        // alice approves; production deploys, run by the daemon's user.
        let approved = try world.daemon.ctl(["approve", id, "--reason", "checked"])
        #expect(approved.status == 0, "\(approved.stderr)")
        #expect(await world.waitState(context, "production", "finished"))
        #expect(world.runs.filter { $0.hasPrefix("\(context) production je-deployment") }.count == 1)
        let decision = world.events().last { $0["type"] as? String == "sh.keptn.event.approval.finished" }
        #expect(((decision?["data"] as? [String: Any])?["approval"] as? [String: Any])?["by"] as? String == users.alice)

        // Modes, whatever the umask: the group reads the state, writes nothing; the record is the
        // daemon's alone; the decision names alice's uid beside her name.
        #expect(mode(state) == 0o2750)
        #expect(!FileManager.default.fileExists(atPath: state + "/requests"))
        #expect(mode(state + "/home") == 0o700)
        for file in ["shipyard.db", "shipyard.db-wal", "shipyard.db-shm", "shipyardd.lock"] where FileManager.default.fileExists(atPath: state + "/" + file) {
            #expect(mode(state + "/" + file) == 0o600, "\(file)")
        }
        let by = ((decision?["data"] as? [String: Any])?["approval"] as? [String: Any])?["uid"] as? Int
        #expect(by.map(UInt32.init) == users.uid(users.alice))
        #expect(openToOthers(state).isEmpty, "\(openToOthers(state))")
        var info = stat()
        #expect(stat(state + "/status.json", &info) == 0 && info.st_uid == users.uid(users.daemon) && info.st_gid == users.gid(users.group))
    }

    @Test func tasksGetAHomeOfTheirOwn() async throws {
        let users = try LocalUsers()
        let world = try World(testCommand: { dir in
            try writeFile(dir + "/test", Data("#!/bin/sh\necho \"home=$HOME\" >> \(dir)/home.txt\ntouch \"$HOME/.written\"\n".utf8), mode: 0o755)
            return dir + "/test"
        }, users: users)
        #expect(await world.ready())
        let context = try world.trigger()
        #expect(await world.waitState(context, "qa", "finished"))
        #expect(try world.sequences().first { $0["stage"] as? String == "qa" }?["result"] as? String == "pass")
        #expect(try String(contentsOfFile: world.dir.path + "/home.txt", encoding: .utf8) == "home=\(world.daemon.state)/home\n")
        #expect(FileManager.default.fileExists(atPath: world.daemon.state + "/home/.written"))
    }

    /// Earlier releases isolated libgit2's config through `$TMPDIR/shipyard-empty-gitconfig`,
    /// made by whichever process came first. Here another local user made that name first in a
    /// shared folder (sticky and world-writable, as /tmp is): once unreadable (0700), once with a
    /// `.gitconfig` that redirects the upstream. The daemon, as its own user, polls the real
    /// upstream both times, and a sync (a second poll, in the fetch child) succeeds too.
    @Test func whatAnotherUserMadeInTheSharedTmpChangesNothing() async throws {
        let users = try LocalUsers()
        let dir = try TemporaryDirectory()
        let upstream = try UpstreamRepository(in: dir.path)
        let real = try upstream.commit(["shipyard.yaml": GitWatchingTests.tutorial])
        let other = try UpstreamRepository(in: dir.path, name: "other")
        _ = try other.commit(["shipyard.yaml": GitWatchingTests.tutorial + "# elsewhere\n"])
        let redirect = "[url \"\(other.fileURL)\"]\n\tinsteadOf = \(upstream.fileURL)\n"
        for planted in [false, true] {
            let shared = dir.path + (planted ? "/tmp-planted" : "/tmp-locked")
            #expect(mkdir(shared, 0o777) == 0 && chmod(shared, 0o1777) == 0)
            let folder = shared + "/shipyard-empty-gitconfig"
            let made = try users.run(as: users.eve, "/bin/sh", ["-c", planted
                ? "mkdir -m 0755 \"$1\" && printf '%s' \"$2\" > \"$1/.gitconfig\" && chmod 0644 \"$1/.gitconfig\""
                : "mkdir -m 0700 \"$1\"", "sh", folder, redirect])
            #expect(made.status == 0, "\(made.stderr)")
            var info = stat()
            #expect(lstat(folder, &info) == 0 && info.st_uid == users.uid(users.eve))
            let daemon = try RunningDaemon(
                directory: dir.path + (planted ? "/planted" : "/locked"), users: users,
                config: "projects:\n  - name: real\n    upstream: \(upstream.fileURL)\n    pollInterval: 1h\n",
                environment: ["TMPDIR": shared, "HOME": folder, "XDG_CONFIG_HOME": folder])
            let status = await daemon.waitFor("real") { $0.shipyardCommit == real && $0.error == nil }
            #expect(status != nil, "\(planted ? "planted" : "locked"): \(daemon.log)")
            let sync = try daemon.ctl(["sync", "--project", "real", "--timeout", "60"])
            #expect(sync.status == 0, "\(sync.stdout)\(sync.stderr)\n\(daemon.log)")
            #expect(daemon.project("real")?.shipyardCommit == real)
            #expect(!daemon.log.contains("gitconfig"), "\(daemon.log)")
            #expect(await daemon.stop() == 0)
        }
    }

    /// The unit's ExecReload: `shipyardd --reload $MAINPID`, as the daemon's user.
    @Test func reloadReportsWhetherTheConfigWasTaken() async throws {
        let users = try LocalUsers()
        let world = try World(users: users)
        #expect(await world.ready())
        func reload() throws -> ProcessOutput {
            try users.run(as: users.daemon, Command.path("shipyardd"), ["--config", world.daemon.configPath, "--reload", "\(world.daemon.pid)"])
        }
        let good = try reload()
        #expect(good.status == 0, "\(good.stderr)")
        #expect(good.stdout == "config reloaded\n")

        let config = try String(contentsOfFile: world.daemon.configPath, encoding: .utf8)
        try writeFile(world.daemon.configPath, Data((config + "pollIntervall: 5s\n").utf8))
        let bad = try reload()
        #expect(bad.status == 1)
        #expect(bad.stderr.contains("config refused, the running config stays"), "\(bad.stderr)")
        #expect(bad.stderr.contains("unknown key \"pollIntervall\""), "\(bad.stderr)")
        #expect(world.daemon.isRunning)
        // The daemon still works on the config it had.
        let context = try world.trigger()
        #expect(await world.waitState(context, "production", "finished"))
    }
}
