import Foundation
import ShipyardTestKit
import Testing

/// `shipyardd --check-config` as an administrator uses it before a reload: every mistake in one
/// pass, and what the config names on this host (files, programs, accounts) checked as well.
@Suite struct CheckConfigTests {
    @Test func everyMistakeIsReportedInOnePass() throws {
        let dir = try TemporaryDirectory()
        // Each of these used to hide the next: a bad command hid its timeout, a project without
        // a name hid its quality-gate settings.
        let config = try dir.write("config.yaml", """
            projects:
              - upstream: file:///srv/git/shop.git
                sliProvider:
                  command: ["relative/sli"]
                  timeout: soon
            tasks:
              deploy:
                command: ["bin/deploy"]
                timeout: 15 minutes

            """)
        let check = try Command.run("shipyardd", ["--check-config", config])
        #expect(check.status == 1)
        #expect(check.stdout.isEmpty)
        #expect(check.stderr.replacingOccurrences(of: config, with: "FILE") == """
            FILE:2:5: error: this project has no name; add 'name: ...'
            FILE:4:17: error: the program "relative/sli" must be an absolute path (no shell and no PATH lookup is used)
            FILE:5:16: error: timeout: "soon" is not a duration like "90s", "15m" or "1h30m"
            FILE:8:15: error: the program "bin/deploy" must be an absolute path (no shell and no PATH lookup is used)
            FILE:9:14: error: timeout: "15 minutes" is not a duration like "90s", "15m" or "1h30m"

            """)
    }

    @Test func filesProgramsAndAccountsTheConfigNamesMustExist() throws {
        let dir = try TemporaryDirectory()
        let program = try dir.write("deploy", "#!/bin/sh\n", mode: 0o755)
        let notExecutable = try dir.write("test", "#!/bin/sh\n", mode: 0o644)
        let token = try dir.write("token", "secret\n", mode: 0o600)
        let text = """
            projects:
              - name: shop
                upstream: https://git.example.com/shop.git
                credentials: {username: deploy, passwordFile: \(dir.path)/missing-token}
              - name: cart
                upstream: ssh://git@git.example.com/cart.git
                credentials: {sshKey: \(dir.path)/id_ed25519, knownHosts: \(dir.path)}
              - name: stock
                upstream: https://git.example.com/stock.git
                credentials: {username: deploy, passwordFile: \(token)}
            tasks:
              deploy: {command: ["\(program)"]}
              test: {command: ["\(notExecutable)"]}
              folder: {command: ["\(dir.path)"]}
            notify: {command: ["/nonexistent/notify"]}
            eventSenders: {users: [no-such-user-4711], groups: [no-such-group-4711]}
            http:
              listen: 127.0.0.1:8420
              auth: {htpasswd: \(dir.path)/htpasswd}

            """
        let config = try dir.write("config.yaml", text)
        let check = try Command.run("shipyardd", ["--check-config", config])
        #expect(check.status == 1)
        let lines = check.stderr.replacingOccurrences(of: config, with: "FILE").replacingOccurrences(of: dir.path, with: "DIR")
            .split(separator: "\n").map(String.init)
        // Line, and what is said there.
        let expected: [(Int, String)] = [
            (4, "error: passwordFile DIR/missing-token does not exist"),
            (7, "error: sshKey DIR/id_ed25519 does not exist"),
            (7, "error: knownHosts DIR is a folder, not a file"),
            (13, "error: task \"test\": the program DIR/test is not executable by "),
            (14, "error: task \"folder\": the program DIR is a folder, not a program"),
            (15, "error: notify: the program /nonexistent/notify does not exist"),
            (16, "warning: eventSenders: no user \"no-such-user-4711\" on this host (yet); fine for a web-only user"),
            (16, "warning: eventSenders: no group \"no-such-group-4711\" on this host (yet)"),
            (19, "error: http.auth.htpasswd DIR/htpasswd does not exist"),
        ]
        for (line, message) in expected {
            #expect(lines.contains { $0.hasPrefix("FILE:\(line):") && $0.contains(": " + message) }, "\(line): \(message)\n\(lines.joined(separator: "\n"))")
        }
        #expect(lines.count == expected.count, "\(lines.joined(separator: "\n"))")
        #expect(!check.stderr.contains("deploy: the program"), "an executable program is fine")

        // The daemon reading the same config only warns: a program may come after the config.
        let lint = try Command.run("shipyardctl", ["lint", config])
        #expect(lint.status == 0, "\(lint.stdout)")
        #expect(lint.stdout.hasPrefix("\(config): a shipyardd config, not a shipyard; before a reload, check it as the daemon's user: sudo -u shipyard shipyardd --check-config \(config)\n"))
        #expect(lint.stdout.contains(": warning: notify: the program /nonexistent/notify does not exist"))
        #expect(!lint.stdout.contains(": error: "))
    }

    @Test func webhookSecretsMustBeTheDaemonsAlone() throws {
        let dir = try TemporaryDirectory()
        for (name, mode) in [("good", 0o700), ("shared", 0o750), ("open", 0o755)] {
            try FileManager.default.createDirectory(atPath: dir.path + "/" + name, withIntermediateDirectories: false)
            chmod(dir.path + "/" + name, mode_t(mode))
        }
        let config = try dir.write("config.yaml", """
            projects:
              - name: shop
                upstream: https://git.example.com/shop.git
                secrets:
                  good: \(dir.path)/good
                  shared: \(dir.path)/shared
                  open: \(dir.path)/open
                  gone: \(dir.path)/gone
            webhooks:
              caFile: \(dir.path)/no-ca.pem

            """)
        let check = try Command.run("shipyardd", ["--check-config", config])
        #expect(check.status == 1)
        let lines = check.stderr.replacingOccurrences(of: config, with: "FILE").replacingOccurrences(of: dir.path, with: "DIR").split(separator: "\n").map(String.init)
        #expect(lines.contains("FILE:6:15: error: secrets.shared: DIR/shared is open to its group or others (mode 750); chmod go= DIR/shared: only the daemon may read secrets"), "\(lines)")
        #expect(lines.contains { $0.hasPrefix("FILE:7:13: error: secrets.open: DIR/open is open to its group or others (mode 755)") }, "\(lines)")
        #expect(lines.contains { $0.hasPrefix("FILE:8:13: error: secrets.gone: DIR/gone does not exist") }, "\(lines)")
        #expect(lines.contains { $0.hasPrefix("FILE:10:11: error: webhooks.caFile DIR/no-ca.pem does not exist") }, "\(lines)")
        #expect(!lines.contains { $0.contains("secrets.good") }, "\(lines)")
    }

    @Test func lintKnowsADaemonConfigFromAShipyard() throws {
        let dir = try TemporaryDirectory()
        let config = try dir.write("config.yaml", "projects:\n  - name: shop\n    upstream: file:///srv/git/shop.git\n")
        let lint = try Command.run("shipyardctl", ["lint", "-o", "json", config])
        #expect(lint.status == 0)
        let report = try JSONSerialization.jsonObject(with: Data(lint.stdout.utf8)) as? [String: Any]
        #expect((report?["files"] as? [[String: Any]])?.first?["kind"] as? String == "config")
        #expect(report?["errors"] as? Int == 0)
        let wrong = try dir.write("wrong.yaml", "projects:\n  - name: shop\n    upstreem: file:///srv/git/shop.git\n")
        let typo = try Command.run("shipyardctl", ["lint", wrong])
        #expect(typo.status == 1)
        #expect(typo.stdout.contains("\(wrong):3:5: error: unknown key \"upstreem\" in a project; did you mean \"upstream\"?"), "\(typo.stdout)")
        #expect(!typo.stdout.contains("apiVersion"), "not judged as a shipyard: \(typo.stdout)")
    }
}
