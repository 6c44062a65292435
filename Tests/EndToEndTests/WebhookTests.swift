import Foundation
import ShipyardCore
import ShipyardDaemon
import ShipyardTestKit
import Testing

/// Keptn's webhooks on the real daemon, calling real HTTP servers on loopback: one over TLS with a
/// certificate from a CA made for the test, and the plain one's paths that fail, flake, hang and
/// redirect. The host config subscribes; Git says what the requests look like.
@Suite struct WebhookTests {
    static let shipyard = """
        apiVersion: spec.keptn.sh/0.2.2
        kind: Shipyard
        metadata:
          name: shipyard-hooks
        spec:
          stages:
            - name: qa
              sequences:
                - name: delivery
                  tasks:
                    - name: deployment
                    - name: test
            - name: production
              sequences:
                - name: delivery
                  triggeredOn:
                    - event: qa.delivery.finished
                  tasks:
                    - name: approval
                      properties: {pass: manual, warning: manual}
                    - name: deployment

        """

    /// The project's webhooks: Slack on approvals (its path a secret), CI performing deployment.
    static func projectHooks(tls: HookServer, plain: HookServer) -> String {
        """
        apiVersion: webhookconfig.keptn.sh/v1beta1
        kind: WebhookConfig
        metadata:
          name: webhook-configuration
        spec:
          webhooks:
            - type: sh.keptn.event.approval.triggered
              subscriptionID: slack
              envFrom:
                - name: hook
                  secretRef: {name: slack, key: path}
              requests:
                - url: "\(tls.url("/services"))/{{.env.hook}}"
                  method: POST
                  headers:
                    - key: Content-Type
                      value: application/json
                  payload: '{"text": {{json (print "Approve " .data.service " in " .data.stage ": " .shipyard.approvalsURL)}}}'
            - type: sh.keptn.event.deployment.triggered
              subscriptionID: ci
              sendFinished: true
              requests:
                - url: "\(plain.url("/ok/deploy"))?stage={{.data.stage}}&context={{.shkeptncontext}}"
                  method: POST
                  payload: '{"service": "{{.data.service}}", "image": "{{.data.configurationChange.values.image}}"}'
            - type: sh.keptn.event.test.finished
              subscriptionID: flaky
              requests:
                - url: "\(plain.url("/flaky/{{.shkeptncontext}}"))"
                  method: PUT

        """
    }

    struct World {
        let dir: TemporaryDirectory
        let upstream: UpstreamRepository
        let daemon: RunningDaemon
        let tls: HookServer
        let plain: HookServer
        let secret = "T0SECRET/B0SECRET/\(UUID().uuidString.prefix(8))"

        init(
            files: (HookServer, HookServer) -> [String: String], subscriptions: String, settings: String? = nil, shipyard: String = WebhookTests.shipyard,
            extraConfig: String = ""
        ) async throws {
            dir = try TemporaryDirectory()
            let ca = try LocalCA(in: dir.path)
            tls = try HookServer(scratch: dir.path, name: "tls", certificate: (ca.cert, ca.key))
            plain = try HookServer(scratch: dir.path, name: "plain")
            upstream = try UpstreamRepository(in: dir.path)
            var content = files(tls, plain)
            content["shipyard.yaml"] = shipyard
            _ = try upstream.commit(content)
            try FileManager.default.createDirectory(atPath: dir.path + "/secrets/slack", withIntermediateDirectories: true, attributes: [.posixPermissions: 0o700])
            try dir.write("secrets/slack/path", secret + "\n", mode: 0o600)
            let test = try dir.write("tasks/test", "#!/bin/sh\necho tested\n", mode: 0o755)
            daemon = try RunningDaemon(directory: dir.path, config: """
                projects:
                  - name: hooks
                    upstream: \(upstream.fileURL)
                    pollInterval: 1s
                    webhooks:
                \(subscriptions)
                    secrets:
                      slack: \(dir.path)/secrets/slack
                tasks:
                  test:
                    command: ["\(test)"]
                http:
                  listen: 127.0.0.1:0
                  publicURL: https://shipyard.example.com/
                webhooks:
                \(settings ?? "  allow: [127.0.0.1/32]\n  caFile: \(ca.caFile)\n  timeout: 3s")
                \(extraConfig)
                """)
            let started = daemon
            _ = await eventually(timeout: .seconds(30)) { started.project("hooks")?.commit != nil }
        }

        func trigger(service: String = "carts") throws -> String {
            let out = try daemon.ctl(["trigger", "delivery", "--project", "hooks", "--stage", "qa", "--service", service, "--image", "registry.example/\(service):1.2", "--output", "json"])
            let reply = try JSONSerialization.jsonObject(with: Data(out.stdout.utf8)) as? [String: Any]
            return try #require(reply?["context"] as? String, "\(out.stdout)\(out.stderr)")
        }

        func sequence(_ context: String) throws -> [String: Any] {
            let out = try daemon.ctl(["sequence", context, "--output", "json"])
            return try JSONSerialization.jsonObject(with: Data(out.stdout.utf8)) as? [String: Any] ?? [:]
        }

        func state(_ context: String, _ stage: String) throws -> String? {
            let stages = try sequence(context)["stages"] as? [[String: Any]] ?? []
            return stages.first { $0["stage"] as? String == stage }?["state"] as? String
        }

        func events(_ context: String) throws -> [[String: Any]] {
            let out = try daemon.ctl(["events", "--context", context])
            return out.stdout.split(separator: "\n").compactMap { try? JSONSerialization.jsonObject(with: Data($0.utf8)) as? [String: Any] }
        }

        func calls(_ context: String) throws -> [[String: Any]] {
            try events(context).filter { $0["type"] as? String == "sh.shipyard.webhook.called" }.compactMap { ($0["data"] as? [String: Any])?["webhook"] as? [String: Any] }
        }
    }

    static let subscriptions = """
              - on: approval.triggered
                subscriptionID: slack
                stages: [production]
              - on: deployment.triggered
                subscriptionID: ci
              - on: test.finished
                subscriptionID: flaky
        """

    @Test func aDeliveryCallsSlackAndCIAndNoSecretIsEverShown() async throws {
        let world = try await World(
            files: { tls, plain in
                [
                    "webhook/webhook.yaml": WebhookTests.projectHooks(tls: tls, plain: plain),
                    // production's own file: its CI answers 500 (the stage's file wins for ci,
                    // and has no slack, which comes from the project's).
                    "production/webhook/webhook.yaml": """
                        apiVersion: webhookconfig.keptn.sh/v1alpha1
                        kind: WebhookConfig
                        spec:
                          webhooks:
                            - type: sh.keptn.event.deployment.triggered
                              subscriptionID: ci
                              sendFinished: true
                              requests:
                                - >-
                                  curl --request POST --header 'X-Stage: {{.data.stage}}'
                                  --data '{"ctx":"{{.shkeptncontext}}"}' \(plain.url("/fail/deploy"))

                        """,
                ]
            }, subscriptions: Self.subscriptions)
        let context = try world.trigger()
        // qa: CI deployed (a webhook performed the task), the local test ran.
        #expect(await eventually(timeout: .seconds(30)) { (try? world.state(context, "production")) == "waitingForApproval" }, "\(world.daemon.log)")
        let qaDeploy = try #require(world.plain.requests.first { ($0["path"] as? String ?? "").hasPrefix("/ok/deploy") })
        #expect(qaDeploy["path"] as? String == "/ok/deploy?stage=qa&context=\(context)")
        #expect(qaDeploy["body"] as? String == #"{"service": "carts", "image": "registry.example/carts:1.2"}"#)
        let events = try world.events(context)
        let finished = try #require(events.first { $0["type"] as? String == "sh.keptn.event.deployment.finished" })
        let data = finished["data"] as? [String: Any] ?? [:]
        #expect(data["result"] as? String == "pass" && data["status"] as? String == "succeeded", "\(data)")
        // Keptn's responses, parsed as JSON when they are an object.
        let responses = ((data["deployment"] as? [String: Any])?["responses"] as? [[String: Any]]) ?? []
        #expect(responses.first?["run"] as? Int == 42, "\(data)")
        #expect(events.contains { $0["type"] as? String == "sh.keptn.event.deployment.started" && $0["source"] as? String == "shipyardd/webhook" })

        // Slack, over TLS from the test's CA: the approval's link, the secret in the path.
        #expect(await eventually(timeout: .seconds(20)) { !world.tls.requests.isEmpty })
        let slack = try #require(world.tls.requests.first)
        #expect(slack["path"] as? String == "/services/\(world.secret)")
        #expect(slack["body"] as? String == #"{"text": "Approve carts in production: https://shipyard.example.com/approvals"}"#)
        #expect((slack["headers"] as? [String: Any])?["Content-Type"] as? String == "application/json")

        // The flaky receiver answered 500 first: a notification is retried and arrives.
        #expect(await eventually(timeout: .seconds(20)) { (try? world.calls(context).contains { $0["subscription"] as? String == "flaky" }) == true })
        let flaky = try #require(try world.calls(context).first { $0["subscription"] as? String == "flaky" })
        let attempts = (flaky["requests"] as? [[String: Any]])?.first?["attempts"] as? Int
        #expect(flaky["outcome"] as? String == "ok" && attempts == 2, "\(flaky)")
        #expect(world.plain.requests.filter { ($0["path"] as? String ?? "").hasPrefix("/flaky/") }.map { $0["method"] as? String } == ["PUT", "PUT"])

        // production: approved, then its CI answers 500 and the task fails with what it said.
        let approvals = try world.daemon.ctl(["approvals", "--output", "json"])
        let id = try #require((try JSONSerialization.jsonObject(with: Data(approvals.stdout.utf8)) as? [[String: Any]])?.first?["id"] as? String, "\(approvals.stdout)")
        let approved = try world.daemon.ctl(["approve", id])
        #expect(approved.status == 0, "\(approved.stderr)")
        #expect(await eventually(timeout: .seconds(30)) { (try? world.state(context, "production")) == "finished" }, "\(world.daemon.log)")
        let failed = try #require(try world.events(context).last { $0["type"] as? String == "sh.keptn.event.deployment.finished" })
        let failedData = failed["data"] as? [String: Any] ?? [:]
        #expect(failedData["result"] as? String == "fail", "\(failedData)")
        let message = failedData["message"] as? String ?? ""
        #expect(message.contains("answered 500: build broke: no runner available") && message.contains("/fail/deploy"), "\(message)")
        let prodDeploy = try #require(world.plain.requests.first { ($0["path"] as? String ?? "").hasPrefix("/fail/deploy") })
        #expect((prodDeploy["headers"] as? [String: Any])?["X-Stage"] as? String == "production")
        #expect(prodDeploy["body"] as? String == #"{"ctx":"\#(context)"}"#)

        // The secret went to the server and nowhere else: record, log, API, pages, metrics.
        let slackCall = try #require(try world.calls(context).first { $0["subscription"] as? String == "slack" })
        #expect((slackCall["requests"] as? [[String: Any]])?.first?["url"] as? String == world.tls.url("/services/***"), "\(slackCall)")
        let everything = [
            try world.daemon.ctl(["events", "--context", context]).stdout,
            try world.daemon.ctl(["sequence", context]).stdout,
            try world.daemon.ctl(["sequence", context, "--output", "json"]).stdout,
            world.daemon.log,
        ] + ["", "-wal"].compactMap { try? String(contentsOfFile: world.daemon.state + "/shipyard.db" + $0, encoding: .isoLatin1) }
        let web = try #require(world.daemon.status()?.web)
        let client = HTTPClient(base: web)
        let pages = try ["/deliveries/\(context)", "/api/v1/events?context=\(context)", "/metrics", "/api/v1/sequences/\(context)"].map { try client.request("GET", $0).body }
        for (index, text) in (everything + pages).enumerated() {
            #expect(!text.contains(world.secret) && !text.contains("T0SECRET"), "source \(index) shows the secret")
        }
        #expect(pages[2].contains(#"shipyard_webhook_requests_total{project="hooks",webhook="slack",outcome="ok"} 1"#), "\(pages[2])")
        // Where people look: the sequence (text and JSON) and the delivery page list the calls.
        let table = try world.daemon.ctl(["sequence", context]).stdout
        #expect(table.contains("webhooks:\n"), "\(table)")
        #expect(table.contains("  production approval.triggered → slack: ok\n    POST \(world.tls.url("/services/***")) 200"), "\(table)")
        #expect(table.contains("  qa test.finished → flaky: ok\n    PUT \(world.plain.url("/flaky/\(context)")) 200 after 2 attempts"), "\(table)")
        #expect(table.contains("  production deployment.triggered → ci: failed\n    POST \(world.plain.url("/fail/deploy")) 500\n    → request 1 of 1"), "\(table)")
        let view = try world.sequence(context)
        let hooks = view["webhooks"] as? [[String: Any]] ?? []
        #expect(hooks.compactMap { $0["subscription"] as? String }.sorted() == ["ci", "ci", "flaky", "slack"], "\(hooks)")
        #expect(hooks.first?["stage"] as? String == "qa" && hooks.last?["stage"] as? String == "production", "\(hooks)")
        #expect(pages[0].contains("<h2>Webhooks</h2>") && pages[0].contains("/services/***"), "the delivery page lists the webhooks")
        #expect(pages[2].contains(#"shipyard_webhook_requests_total{project="hooks",webhook="ci",outcome="failed"} 1"#))
    }

    /// One service per way a request goes wrong, each with its own service-level webhook.yaml.
    static func serviceHook(_ url: String, options: String? = nil) -> String {
        """
        apiVersion: webhookconfig.keptn.sh/v1beta1
        kind: WebhookConfig
        spec:
          webhooks:
            - type: sh.keptn.event.deployment.triggered
              sendFinished: true
              requests:
                - url: "\(url)"
                  method: POST
                  payload: "{}"
        \(options.map { "          options: \"\($0)\"" } ?? "")

        """
    }

    @Test func refusedHangingAndRedirectedRequestsFailTheirTaskAndHoldUpNothingElse() async throws {
        let shipyard = """
            apiVersion: spec.keptn.sh/0.2.2
            kind: Shipyard
            metadata:
              name: one-stage
            spec:
              stages:
                - name: qa
                  sequences:
                    - name: delivery
                      tasks:
                        - name: deployment

            """
        let world = try await World(
            files: { _, plain in
                [
                    "qa/metadata/webhook/webhook.yaml": WebhookTests.serviceHook("http://169.254.169.254/latest/meta-data/"),
                    "qa/loop/webhook/webhook.yaml": WebhookTests.serviceHook("http://127.0.0.2:\(plain.port)/ok"),
                    "qa/hang/webhook/webhook.yaml": WebhookTests.serviceHook(plain.url("/hang"), options: "--max-time 8"),
                    "qa/redirect/webhook/webhook.yaml": WebhookTests.serviceHook(plain.url("/redirect"), options: "--location"),
                    "qa/big/webhook/webhook.yaml": WebhookTests.serviceHook(plain.url("/big")),
                    "qa/fast/webhook/webhook.yaml": WebhookTests.serviceHook(plain.url("/ok/fast")),
                    "qa/ftp/webhook/webhook.yaml": WebhookTests.serviceHook("ftp://127.0.0.1/x"),
                ]
            },
            // One request at a time per subscription: the hanging receiver's holds up only its own.
            subscriptions: "          - on: deployment.triggered\n            services: [hang]\n          - on: deployment.triggered\n            services: [fast, metadata, loop, redirect, big, ftp]",
            settings: "  allow: [127.0.0.1/32]\n  timeout: 30s\n  maxResponseBytes: 1048576\n  concurrency: 1",
            shipyard: shipyard)
        // The hanging one first: the fast one after it must not wait for it.
        let hang = try world.trigger(service: "hang")
        let fast = try world.trigger(service: "fast")
        var others: [String: String] = [:]
        for service in ["metadata", "loop", "redirect", "big", "ftp"] { others[service] = try world.trigger(service: service) }
        #expect(await eventually(timeout: .seconds(20)) { (try? world.state(fast, "qa")) == "finished" }, "\(world.daemon.log)")
        #expect(try world.state(hang, "qa") == "started", "the fast delivery waited for the hanging server")
        #expect(await eventually(timeout: .seconds(30)) { (try? world.state(hang, "qa")) == "finished" })

        func finished(_ context: String) throws -> [String: Any] {
            let event = try world.events(context).last { $0["type"] as? String == "sh.keptn.event.deployment.finished" }
            return event?["data"] as? [String: Any] ?? [:]
        }
        for (service, context) in others {
            #expect(await eventually(timeout: .seconds(20)) { (try? world.state(context, "qa")) == "finished" }, "\(service)")
        }
        #expect(try finished(fast)["result"] as? String == "pass")
        let expectations: [(String, String, String)] = [
            (hang, "fail", "timed out after 8s"),
            (others["metadata"]!, "fail", "169.254.169.254 resolves to 169.254.169.254, a link-local address (cloud metadata lives there); webhooks may not call it unless webhooks.allow in the host config lists it"),
            (others["loop"]!, "fail", "127.0.0.2 resolves to 127.0.0.2, a loopback address"),
            (others["redirect"]!, "fail", "a redirect to /ok, not followed: the file's --location and webhooks.followRedirects in the host config must both allow it"),
            (others["big"]!, "pass", "/big: 200"),
            (others["ftp"]!, "fail", "only http and https URLs are called, not ftp:"),
        ]
        for (context, result, message) in expectations {
            let data = try finished(context)
            #expect(data["result"] as? String == result, "\(data)")
            #expect((data["message"] as? String ?? "").contains(message), "\(data)")
        }
        // Refused requests never reached a server; the redirect was not followed.
        let paths = world.plain.requests.compactMap { $0["path"] as? String }
        #expect(paths.sorted() == ["/big", "/hang", "/ok/fast", "/redirect"], "\(paths)")
        let calls = try world.calls(others["metadata"]!)
        #expect(calls.first?["outcome"] as? String == "refused", "\(calls)")
        let big = try world.calls(others["big"]!).first?["requests"] as? [[String: Any]]
        #expect((big?.first?["message"] as? String)?.contains("longer than 1 MiB") == true, "\(big ?? [])")
        #expect(((big?.first?["body"] as? String)?.count ?? 0) <= 2048)
    }

    static let oneStage = """
        apiVersion: spec.keptn.sh/0.2.2
        kind: Shipyard
        metadata:
          name: one-stage
        spec:
          stages:
            - name: qa
              sequences:
                - name: delivery
                  tasks:
                    - name: deployment

        """

    @Test func aWebhookTaskTheDaemonDiedBeforeCallingIsCalledOnceAtTheNextStart() async throws {
        let world = try await World(
            files: { _, plain in ["qa/fast/webhook/webhook.yaml": WebhookTests.serviceHook(plain.url("/ok/fast"))] },
            subscriptions: "          - on: deployment.triggered", shipyard: WebhookTests.oneStage)
        #expect(await world.daemon.stop() == 0)
        // Killed right after the trigger's append: deployment.triggered is recorded, nothing acted on it.
        world.daemon.environment = ["SHIPYARD_FAULT_KILL_AFTER_APPENDS": "1"]
        try world.daemon.start()
        #expect(await eventually(timeout: .seconds(30)) { world.daemon.status()?.pid == world.daemon.pid })
        _ = try world.daemon.ctl(["trigger", "delivery", "--project", "hooks", "--stage", "qa", "--service", "fast", "--timeout", "2"])
        #expect(await eventually(timeout: .seconds(20)) { !world.daemon.isRunning }, "\(world.daemon.log.suffix(2000))")
        #expect(world.plain.requests.isEmpty)
        _ = await world.daemon.stop()
        world.daemon.environment = [:]
        try world.daemon.start()
        #expect(await eventually(timeout: .seconds(30)) {
            let out = (try? world.daemon.ctl(["sequences", "--output", "json"]))?.stdout ?? ""
            return out.contains(#""state":"finished""#) && out.contains(#""result":"pass""#)
        }, "\(world.daemon.log.suffix(3000))")
        #expect(world.plain.requests.compactMap { $0["path"] as? String } == ["/ok/fast"])
        #expect(world.daemon.log.contains("calling its webhook now"))
    }

    @Test func aStopMidRequestCallsAgainOnlyTheWebhooksThatFinishTheirTask() async throws {
        let externalHook = """
            apiVersion: webhookconfig.keptn.sh/v1beta1
            kind: WebhookConfig
            spec:
              webhooks:
                - type: sh.keptn.event.deployment.triggered
                  sendFinished: false
                  requests:
                    - url: "URL"
                      method: POST

            """
        let world = try await World(
            files: { _, plain in
                [
                    "qa/own/webhook/webhook.yaml": WebhookTests.serviceHook(plain.url("/hangonce/own"), options: "--max-time 60"),
                    "qa/external/webhook/webhook.yaml": externalHook.replacingOccurrences(of: "URL", with: plain.url("/ok/external")),
                ]
            },
            subscriptions: "          - on: deployment.triggered", settings: "  allow: [127.0.0.1/32]\n  timeout: 60s",
            shipyard: WebhookTests.oneStage, extraConfig: "stopGracePeriod: 1s")
        let own = try world.trigger(service: "own")
        let external = try world.trigger(service: "external")
        #expect(await eventually(timeout: .seconds(20)) { world.plain.requests.count == 2 }, "\(world.daemon.log)")
        // Stopped while the first request hangs: nothing is recorded for it.
        _ = await world.daemon.stop()
        try world.daemon.start()
        #expect(await eventually(timeout: .seconds(30)) { (try? world.state(own, "qa")) == "finished" }, "\(world.daemon.log)")
        let finished = try world.events(own).last { $0["type"] as? String == "sh.keptn.event.deployment.finished" }
        #expect((finished?["data"] as? [String: Any])?["result"] as? String == "pass", "\(finished ?? [:])")
        #expect(world.daemon.log.contains("the daemon stopped before its .finished; calling it again"))
        // The one whose receiver answers was called once, and still waits for that answer.
        try await Task.sleep(for: .milliseconds(500))
        let paths = world.plain.requests.compactMap { $0["path"] as? String }
        #expect(paths.filter { $0 == "/ok/external" }.count == 1, "\(paths)")
        #expect(paths.filter { $0 == "/hangonce/own" }.count == 2, "\(paths)")
        #expect(try world.state(external, "qa") == "started")
    }
}
