import Foundation
import ShipyardTestKit
import Testing

@testable import ShipyardDaemon

/// Files and programs as the daemon's user finds them, when root runs the check.
@Suite struct HostAccessTests {
    @Test func theDaemonsUserIsJudgedByTheModeBitsAndEveryFolderOnTheWay() throws {
        let dir = try TemporaryDirectory()
        chmod(dir.path, 0o755)
        let other = HostAccess(account: (uid: 64_000, gids: [64_000], name: "someone"))
        let secret = try dir.write("secret", "x", mode: 0o600)
        chown(secret, 0, 0)
        #expect(other.problem(secret, need: .read)?.hasPrefix("is not readable by the daemon's user someone") == true)
        let shared = try dir.write("shared", "x", mode: 0o640)
        chown(shared, 0, 64_000)
        #expect(other.problem(shared, need: .read) == nil)
        #expect(other.problem(shared, need: .execute)?.hasPrefix("is not executable by the daemon's user someone") == true)
        let owned = try dir.write("owned", "x", mode: 0o400)
        chown(owned, 64_000, 0)
        #expect(other.problem(owned, need: .read) == nil)
        try FileManager.default.createDirectory(atPath: dir.path + "/closed", withIntermediateDirectories: false)
        let inside = try dir.write("closed/program", "#!/bin/sh\n", mode: 0o755)
        chmod(dir.path + "/closed", 0o700)
        chown(dir.path + "/closed", 0, 0)
        #expect(other.problem(inside, need: .execute) == "cannot be reached by the daemon's user someone: \(dir.path)/closed is closed to it")
        #expect(other.problem(dir.path + "/nothing", need: .read) == "does not exist")
    }
}

/// The web view's controls (pause, resume, abort, deliver): closed unless a list names who may.
@Suite struct WebControlTests {
    @Test func theWebControlsNothingWithoutAListAndWhatTheListSaysWithOne() {
        var config = DaemonConfig(stateDirectory: "/nonexistent", projects: [], tasks: [:], approvers: nil, notify: nil)
        let web = Caller(uid: nil, user: "webonly-4711", groups: [], via: .web)
        #expect(Authorization(config: config).webControl(web, verb: "abort")?.hasPrefix("abort is closed in the web view on this host") == true)
        #expect(!Authorization(config: config).mayControl(user: "webonly-4711", groups: []))
        config.approvers = DaemonConfig.Approvers(users: ["webonly-4711"], groups: [])
        #expect(Authorization(config: config).webControl(web, verb: "abort") == nil)
        #expect(Authorization(config: config).mayControl(user: "webonly-4711", groups: []))
        config.sequenceControl = DaemonConfig.Approvers(users: ["someone-else"], groups: [])
        #expect(Authorization(config: config).webControl(web, verb: "trigger")?.contains("webonly-4711 may not trigger sequences") == true)
        #expect(!Authorization(config: config).mayControl(user: "webonly-4711", groups: []))
    }
}

/// A request a standby forwarded: its caller is an administrator only if that host said so. The
/// same uid may be root or the daemon's user here and somebody else there.
@Suite struct ForwardedCallerTests {
    @Test func aForwardedUidIsNeverJudgedByThisHostsAccounts() {
        // No eventSenders: only administrators may send events.
        let config = DaemonConfig(stateDirectory: "/nonexistent", projects: [], tasks: [:], approvers: nil, notify: nil)
        var here = Caller(uid: 0, user: "root", groups: [], via: .cli)
        #expect(here.isAdministrator)
        #expect(Authorization(config: config).sendEvents(here) == nil)
        // uid 0 there, an ordinary account on the standby's own say.
        var forwarded = Caller(uid: 0, user: "bob", groups: [], via: .cli)
        forwarded.host = "host-b"
        forwarded.forwardedAdministrator = false
        #expect(!forwarded.isAdministrator)
        #expect(Authorization(config: config).sendEvents(forwarded) != nil)
        forwarded.uid = geteuid()
        #expect(!forwarded.isAdministrator)
        // Root on the standby is root of the shared record (it can reach the database).
        here.host = "host-b"
        here.forwardedAdministrator = true
        #expect(here.isAdministrator)
    }
}

@Suite struct ScriptAccessTests {
    @Test func aScriptMustBeReadableTooAndALinkIsJudgedWhereItLeads() throws {
        let dir = try TemporaryDirectory()
        chmod(dir.path, 0o755)
        let other = HostAccess(account: (uid: 64_000, gids: [64_000], name: "someone"))
        let script = try dir.write("script", "#!/bin/sh\n", mode: 0o711)
        chown(script, 0, 0)
        #expect(other.problem(script, need: .execute)?.hasPrefix("is a script not readable by the daemon's user someone") == true)
        try FileManager.default.createDirectory(atPath: dir.path + "/closed", withIntermediateDirectories: false)
        let hidden = try dir.write("closed/secret", "x", mode: 0o644)
        chmod(dir.path + "/closed", 0o700)
        chown(dir.path + "/closed", 0, 0)
        symlink(hidden, dir.path + "/link")
        #expect(other.problem(dir.path + "/link", need: .read) == "cannot be reached by the daemon's user someone: \(dir.path)/closed is closed to it")
    }
}
