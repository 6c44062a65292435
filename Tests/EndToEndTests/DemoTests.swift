import Foundation
import ShipyardTestKit
import Testing

/// `make run`'s script as README tells people to use it: the demo upstream, the daemon with its
/// web view, a sign-in with the demo's password, and the tutorial's delivery.
@Suite(.serialized) struct DemoTests {
    @Test func theDemoRunsTheTutorialWithItsWebView() async throws {
        let dir = try TemporaryDirectory()
        let port = freePort()
        let log = open(dir.path + "/demo.log", O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0o644)
        defer { close(log) }
        var environment = ProcessInfo.processInfo.environment
        environment["SHIPYARD_DEMO_DIR"] = dir.path + "/demo"
        environment["SHIPYARD_DEMO_PORT"] = "\(port)"
        let demo = try Subprocess("/bin/bash", [Repository.root.appendingPathComponent("scripts/demo").path], environment: environment, stdout: log, stderr: log)
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
}
