import Foundation
import ShipyardTestKit
import Testing

/// `make run`'s script as README tells people to use it: the demo upstream, the daemon with its
/// web view, a sign-in with the demo's password, and the tutorial's delivery.
@Suite(.serialized) struct DemoTests {
    /// `make run`'s script, with its demo under `folder` and its web view on `port`.
    static func demo(in folder: String, port: Int, log: Int32) throws -> Subprocess {
        var environment = ProcessInfo.processInfo.environment
        environment["SHIPYARD_DEMO_DIR"] = folder
        environment["SHIPYARD_DEMO_PORT"] = "\(port)"
        return try Subprocess("/bin/bash", [Repository.root.path + "/scripts/demo"], environment: environment, stdout: log, stderr: log)
    }

    @Test func theDemoRunsTheTutorialWithItsWebView() async throws {
        let dir = try TemporaryDirectory()
        let port = freePort()
        let log = open(dir.path + "/demo.log", O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0o644)
        defer { close(log) }
        let demo = try Self.demo(in: dir.path + "/demo", port: port, log: log)
        defer {
            demo.signal(SIGTERM)
            _ = demo.wait()
        }
        let web = HTTPClient(base: "http://127.0.0.1:\(port)")
        let up = await eventually(timeout: .seconds(60), every: .milliseconds(200)) { (try? web.get("/readyz").status) == 200 }
        let printed = (try? String(contentsOfFile: dir.path + "/demo.log", encoding: .utf8)) ?? ""
        #expect(up, "\(printed)")
        #expect(printed.contains("web view             http://127.0.0.1:\(port)/"))

        // The demo's sign-in works.
        let form = try web.get("/login")
        let csrf = try #require(form.body.range(of: "name=\"csrf\" value=\"").map { String(form.body[$0.upperBound...].prefix { $0 != "\"" }) })
        let signedIn = try web.post("/login", form: ["csrf": csrf, "user": "demo", "password": "shipyard-demo"], headers: ["Cookie": try #require(form.cookie)])
        #expect(signedIn.status == 303, "\(signedIn.body)")

        // The tutorial's first delivery, as README shows it.
        let state = dir.path + "/demo/state"
        let trigger = try Command.run("shipyardctl", [
            "trigger", "delivery", "--project", "fulltour", "--service", "helloservice", "--image", "ghcr.io/podtato-head/podtatoserver:v0.1.1",
            "--output", "json", "--state-dir", state, "--timeout", "60",
        ])
        #expect(trigger.status == 0, "\(trigger.stderr)\n\(printed)")
        let context = ((try? JSONSerialization.jsonObject(with: Data(trigger.stdout.utf8))) as? [String: String])?["context"] ?? ""
        let done = await eventually(timeout: .seconds(90), every: .milliseconds(250)) {
            let view = (try? web.get("/api/v1/sequences/\(context)").json) as? [String: Any]
            let stages = view?["stages"] as? [[String: Any]] ?? []
            return stages.contains { $0["stage"] as? String == "production" && $0["state"] as? String == "finished" }
        }
        #expect(done)
    }

    /// README's demo, its three blocks run as they are written there (in a folder laid out as
    /// the checkout, so that its relative paths hold), each command's exit status as its comment
    /// says, and production deploying the quality gate's pass by itself.
    @Test func readmesThreeStepsRunAsWritten() async throws {
        let dir = try TemporaryDirectory()
        let repo = Repository.root.path
        try FileManager.default.createDirectory(atPath: dir.path + "/.build", withIntermediateDirectories: true)
        symlink(repo + "/examples", dir.path + "/examples")
        symlink(Command.binDirectory, dir.path + "/.build/debug")
        let port = freePort()
        let log = open(dir.path + "/demo.log", O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0o644)
        defer { close(log) }
        let demo = try Self.demo(in: dir.path + "/.build/demo", port: port, log: log)
        defer {
            demo.signal(SIGTERM)
            _ = demo.wait()
        }
        let web = HTTPClient(base: "http://127.0.0.1:\(port)")
        #expect(await eventually(timeout: .seconds(60), every: .milliseconds(200)) { (try? web.get("/readyz").status) == 200 })

        let readme = try String(contentsOfFile: repo + "/README.md", encoding: .utf8)
        let section = try #require(readme.range(of: "### The demo (`make run`)").flatMap { start in
            readme.range(of: "## Lint a shipyard", range: start.upperBound..<readme.endIndex).map { readme[start.upperBound..<$0.lowerBound] }
        })
        let blocks = section.components(separatedBy: "```sh\n").dropFirst().map { $0.components(separatedBy: "```")[0] }
        #expect(blocks.count == 3, "README's demo has its three steps")
        let shell = [
            "SHIPYARD_STATE_DIR": dir.path + "/.build/demo/state", "PATH": dir.path + "/.build/debug:" + (ProcessInfo.processInfo.environment["PATH"] ?? "/usr/bin:/bin"),
            "GIT_AUTHOR_NAME": "Reader", "GIT_AUTHOR_EMAIL": "reader@example.invalid",
            "GIT_COMMITTER_NAME": "Reader", "GIT_COMMITTER_EMAIL": "reader@example.invalid",
        ]
        var context = "", id = ""
        var commands = 0
        for block in blocks {
            for command in block.replacingOccurrences(of: "\\\n", with: " ").split(separator: "\n").map(String.init) where !command.isEmpty {
                let line = command.replacingOccurrences(of: #"\bCONTEXT\b"#, with: context, options: .regularExpression)
                    .replacingOccurrences(of: #"\bID\b"#, with: id, options: .regularExpression)
                let expected = line.firstMatch(of: /\(exit (\d)\)/).map { Int32($0.1)! } ?? 0
                let run = try Run.capture("/bin/bash", ["-c", line], environment: shell, directory: dir.path)
                commands += 1
                #expect(run.status == expected, "\(line)\n\(run.stdout)\(run.stderr)")
                if let match = run.stdout.firstMatch(of: /\(context ([0-9a-f-]{36})\)/) { context = String(match.1) }
                if let match = run.stdout.firstMatch(of: /waiting for approval ([0-9a-f]{8})/) { id = String(match.1) }
            }
        }
        #expect(commands >= 20)
        // v0.2.0 passed its gate, and production deployed it with nobody approving.
        let rows = try Command.run("shipyardctl", ["sequences", "--all", "--output", "json"], environment: shell)
        let sequences = (try JSONSerialization.jsonObject(with: Data(rows.stdout.utf8)) as? [[String: Any]]) ?? []
        let production = sequences.filter { $0["stage"] as? String == "production" && ($0["image"] as? String)?.hasSuffix(":v0.2.0") == true }
        #expect(production.count == 1 && production.first?["state"] as? String == "finished" && production.first?["result"] as? String == "pass", "\(sequences)")
        let approvals = try Command.run("shipyardctl", ["events", "--type", "approval.finished"], environment: shell).stdout
        let automatic = approvals.split(separator: "\n").filter { $0.contains(production.first?["context"] as? String ?? "-") }
        #expect(automatic.count == 1 && automatic[0].contains("\"automatic\""), "\(automatic)")

        // The web view's environment links the evaluations, drawn as Bridge draws them.
        let environmentPage = try web.get("/environment").body
        #expect(environmentPage.contains("/evaluations?project=fulltour&amp;stage=qa&amp;service=helloservice"), "\(environmentPage)")
        let evaluations = try web.get("/evaluations?project=fulltour&stage=qa&service=helloservice").body
        #expect(evaluations.contains("<table class=\"heatmap\">") && evaluations.contains("<figure class=\"chart\" data-sli=\"response_time_p95\">"))
        #expect(evaluations.components(separatedBy: "<circle class=\"point ").count - 1 >= 3 * 3, "three evaluations, score and two SLIs")
        if WebBrowserTests.available {
            let shots = ProcessInfo.processInfo.environment["SHIPYARD_SCREENSHOTS"] ?? dir.path
            let browser = try Run.capture(
                "/usr/bin/python3", [repo + "/Tests/browser/evaluations.py", web.base, shots], environment: ["HOME": dir.path, "PATH": "/usr/bin:/bin"])
            #expect(browser.status == 0 && browser.stdout.hasSuffix("done\n"), "\(browser.stdout)\(browser.stderr)")
        }
    }
}
