import Foundation
import ShipyardCore
import ShipyardDaemon
import ShipyardTestKit
import Testing

/// Keptn's API on the real daemon, as Keptn's own clients call it: the requests below are the
/// ones the `keptn` CLI (keptn/keptn cli/cmd/*.go, go-utils v0.20.4) and the go-sdk of
/// job-executor-service (go-utils pkg/sdk, connector/*) send, byte for byte where they are fixed,
/// and the replies are checked where those clients parse them.
@Suite struct KeptnAPITests {
    /// qa: deployment by an integration, test by a local program; production: an approval, then
    /// deployment by an integration.
    static let shipyard = """
        apiVersion: spec.keptn.sh/0.2.2
        kind: Shipyard
        metadata:
          name: shipyard-keptn-api
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

    struct World {
        let dir: TemporaryDirectory
        let upstream: UpstreamRepository
        let daemon: RunningDaemon
        let commit: String
        let api: HTTPClient
        /// Tokens: `ci` (role ci), `jes` (role job-executor), `alice` (an approver), `bob` (not one).
        let tokens: [String: String]
        var tokenFile: String { dir.path + "/api-tokens" }

        init(
            localTest: Bool = true, shipyard: String = KeptnAPITests.shipyard, approvers: String = "approvers:\n  users: [alice]",
            control: String = "sequenceControl:\n  users: [alice]\n  roles: [ci]"
        ) async throws {
            dir = try TemporaryDirectory()
            upstream = try UpstreamRepository(in: dir.path)
            commit = try upstream.commit([
                "shipyard.yaml": shipyard,
                "qa/helloservice/job/config.yaml": "apiVersion: v2\nactions: [{name: qa-service}]\n",
                "job/config.yaml": "apiVersion: v2\nactions: [{name: project-level}]\n",
            ])
            var tokens: [String: String] = [:]
            var lines = "# Keptn API tokens (test)\n"
            for (name, principal) in [("ci", APITokens.Principal.role("ci")), ("jes", .role("job-executor")), ("alice", .user("alice")), ("bob", .user("bob"))] {
                let (token, line) = APITokens.make(for: principal)
                tokens[name] = token
                lines += line + "\n"
            }
            self.tokens = tokens
            try dir.write("api-tokens", lines, mode: 0o600)
            // The local test waits for the test to open its gate (at most a minute), so that it is
            // seen running while an integration polls.
            let test = try dir.write(
                "tasks/test", "#!/bin/sh\ni=0; while [ ! -e \(dir.path)/go ] && [ $i -lt 600 ]; do sleep 0.1; i=$((i+1)); done\necho tested\n", mode: 0o755)
            daemon = try RunningDaemon(directory: dir.path, config: """
                projects:
                  - name: podtato
                    upstream: \(upstream.fileURL)
                    pollInterval: 1s
                \(localTest ? "tasks:\n  test:\n    command: [\"\(test)\"]" : "")
                http:
                  listen: 127.0.0.1:0
                  apiTokens: \(dir.path)/api-tokens
                eventSenders:
                  roles: [job-executor]
                \(approvers)
                \(control)
                """)
            var address: String?
            let started = daemon
            _ = await eventually(timeout: .seconds(30)) {
                address = started.status()?.web
                return address != nil && started.project("podtato")?.commit != nil
            }
            api = HTTPClient(base: try #require(address, "the web view never listened: \(daemon.log)"))
        }

        func call(_ method: String, _ path: String, token: String? = "ci", json: String? = nil) throws -> HTTPClient.Reply {
            var headers = ["Content-Type": "application/json"]
            if let token { headers["x-token"] = tokens[token] ?? token }
            return try api.request(method, "/api" + path, headers: headers, body: json.map { Data($0.utf8) })
        }

        /// The open `.triggered` events of a type, as an integration polls them.
        func open(_ type: String, token: String = "jes", query: String = "?project=podtato") throws -> [[String: Any]] {
            let reply = try call("GET", "/controlPlane/v1/event/triggered/sh.keptn.event.\(type).triggered\(query)", token: token)
            #expect(reply.status == 200, "\(reply.body)")
            return (reply.json as? [String: Any])?["events"] as? [[String: Any]] ?? []
        }

        func waitOpen(_ type: String, context: String, token: String = "jes") async throws -> [String: Any]? {
            var found: [String: Any]?
            _ = try await eventually(timeout: .seconds(30)) {
                found = try open(type, token: token).first { $0["shkeptncontext"] as? String == context }
                return found != nil
            }
            return found
        }

        /// What the go-sdk sends for a task (pkg/sdk/events.go createEvent).
        func answer(_ triggered: [String: Any], phase: String, id: String = UUID().uuidString.lowercased(), result: String = "pass") throws -> HTTPClient.Reply {
            let type = (triggered["type"] as? String ?? "").replacingOccurrences(of: ".triggered", with: ".\(phase)")
            let data = triggered["data"] as? [String: Any] ?? [:]
            var body: [String: Any] = [
                "id": id, "triggeredid": triggered["id"] ?? "", "shkeptncontext": triggered["shkeptncontext"] ?? "",
                "contenttype": "application/json", "source": "job-executor-service", "shkeptnspecversion": "0.2.4", "specversion": "1.0",
                "time": "2026-12-03T10:00:00.000Z", "type": type,
                "data": ["project": data["project"] ?? "", "stage": data["stage"] ?? "", "service": data["service"] ?? ""],
            ]
            if phase == "finished" {
                body["data"] = ["project": data["project"] ?? "", "stage": data["stage"] ?? "", "service": data["service"] ?? "", "status": "succeeded", "result": result]
            }
            return try call("POST", "/v1/event", token: "jes", json: String(decoding: try JSONSerialization.data(withJSONObject: body), as: UTF8.self))
        }

        func sequenceState(_ context: String, _ stage: String) throws -> String? {
            let out = try daemon.ctl(["sequence", context, "--output", "json"])
            let view = try JSONSerialization.jsonObject(with: Data(out.stdout.utf8)) as? [String: Any]
            let stages = view?["stages"] as? [[String: Any]] ?? []
            return stages.first { $0["stage"] as? String == stage }?["state"] as? String
        }

        func taskState(_ context: String, _ stage: String, _ task: String) throws -> String? {
            let out = try daemon.ctl(["sequence", context, "--output", "json"])
            let view = try JSONSerialization.jsonObject(with: Data(out.stdout.utf8)) as? [String: Any]
            let stages = view?["stages"] as? [[String: Any]] ?? []
            let tasks = stages.first { $0["stage"] as? String == stage }?["tasks"] as? [[String: Any]] ?? []
            return tasks.first { $0["name"] as? String == task }?["state"] as? String
        }

        func waitState(_ context: String, _ stage: String, _ state: String) async -> Bool {
            await eventually(timeout: .seconds(30)) { (try? sequenceState(context, stage)) == state }
        }
    }

    /// `keptn trigger delivery --project podtato --service helloservice --image …` (cli/cmd/trigger_delivery.go).
    static func cliTrigger(id: String = UUID().uuidString.lowercased(), stage: String = "qa", service: String = "helloservice") -> String {
        """
        {"data":{"project":"podtato","stage":"\(stage)","service":"\(service)","configurationChange":{"values":{"image":"ghcr.io/podtato-head/podtatoserver:v0.1.1"}},"deployment":{"deploymentURIsLocal":null,"deploymentstrategy":""}},"id":"\(id)","source":"https://github.com/keptn/keptn/cli#configuration-change","specversion":"1.0","time":"0001-01-01T00:00:00Z","type":"sh.keptn.event.\(stage).delivery.triggered"}
        """
    }

    static func keys(_ reply: HTTPClient.Reply) -> [String] {
        ((reply.json as? [String: Any])?.keys).map { Array($0).sorted() } ?? []
    }

    @Test func theKeptnCLIsRequestsGetWhatTheCLIReads() async throws {
        let world = try await World()
        // keptn auth (cli/cmd/auth.go): POST, no body; any 2xx with an empty body is success.
        let auth = try world.call("POST", "/v1/auth", token: "alice")
        #expect(auth.status == 200 && auth.body.isEmpty, "\(auth.status) \(auth.body)")
        for (token, message) in [("not-a-token", "incorrect api key auth"), (nil, "unauthenticated for invalid credentials")] as [(String?, String)] {
            let refused = try world.call("POST", "/v1/auth", token: token)
            #expect(refused.status == 401 && Self.keys(refused) == ["code", "message"], "\(refused.body)")
            #expect((refused.json as? [String: Any])?["code"] as? Int == 401 && refused.body.contains(message), "\(refused.body)")
        }
        // The version check every command makes (cli/cmd/version.go); create project reads automaticprovisioning.
        let metadata = try world.call("GET", "/v1/metadata")
        #expect(Self.keys(metadata) == ["automaticprovisioning", "bridgeversion", "keptnlabel", "keptnversion", "namespace", "shipyardversion"], "\(metadata.body)")
        #expect((metadata.json as? [String: Any])?["automaticprovisioning"] as? Bool == false)

        // trigger delivery: the project (first stage), the stage's services, then the event.
        let project = try world.call("GET", "/controlPlane/v1/project/podtato")
        let stages = (project.json as? [String: Any])?["stages"] as? [[String: Any]] ?? []
        #expect(stages.map { $0["stageName"] as? String } == ["qa", "production"], "\(project.body)")
        #expect((project.json as? [String: Any])?["projectName"] as? String == "podtato")
        let services = try world.call("GET", "/controlPlane/v1/project/podtato/stage/qa/service")
        let names = ((services.json as? [String: Any])?["services"] as? [[String: Any]])?.compactMap { $0["serviceName"] as? String }
        #expect(names == ["helloservice"], "a folder qa/helloservice/ in Git is a service: \(services.body)")
        #expect((services.json as? [String: Any])?["nextPageKey"] as? String == "0")
        let missing = try world.call("GET", "/controlPlane/v1/project/nope")
        #expect(missing.status == 404 && Self.keys(missing) == ["code", "message"])

        let id = UUID().uuidString.lowercased()
        let triggered = try world.call("POST", "/v1/event", json: Self.cliTrigger(id: id))
        #expect(triggered.status == 200 && Self.keys(triggered) == ["keptnContext"], "\(triggered.body)")
        let context = try #require((triggered.json as? [String: Any])?["keptnContext"] as? String)
        #expect(UUID(uuidString: context) != nil)
        // The same event sent again (a client's retry) is the same delivery.
        let again = try world.call("POST", "/v1/event", json: Self.cliTrigger(id: id))
        #expect((again.json as? [String: Any])?["keptnContext"] as? String == context, "\(again.body)")
        let deployment = try #require(try await world.waitOpen("deployment", context: context))
        #expect(deployment["gitcommitid"] as? String == world.commit)
        // It is recorded as the token's caller, not as whatever the event says.
        let events = try world.daemon.ctl(["events", "--context", context, "--type", "qa.delivery.triggered"]).stdout
        #expect(events.contains("\"source\":\"api/role:ci\""), "\(events)")

        // keptn get event (go-utils v2/eventUtils.go): newest first, with its page keys.
        let got = try world.call("GET", "/mongodb-datastore/event?project=podtato&keptnContext=\(context)&pageSize=1")
        #expect(Self.keys(got) == ["events", "nextPageKey", "pageSize", "totalCount"], "\(got.body)")
        let page = got.json as? [String: Any] ?? [:]
        let listed = page["events"] as? [[String: Any]] ?? []
        #expect(listed.first?["type"] as? String == "sh.keptn.event.deployment.triggered" && listed.count == 1, "\(got.body)")
        let next = try #require(page["nextPageKey"] as? String)
        #expect(next != "0" && (page["totalCount"] as? Int ?? 0) >= 2 && page["pageSize"] as? Int == 1, "\(got.body)")
        let rest = try world.call("GET", "/mongodb-datastore/event?project=podtato&keptnContext=\(context)&pageSize=50&nextPageKey=\(next)")
        let older = ((rest.json as? [String: Any])?["events"] as? [[String: Any]])?.compactMap { $0["type"] as? String } ?? []
        #expect(older.last == "sh.keptn.event.qa.delivery.triggered" && (rest.json as? [String: Any])?["nextPageKey"] as? String == "0", "\(older)")

        // Keptn's validation of /v1/event (api/handlers/eventvalidation.go), each answered {"code","message"}.
        let refusals: [(String, String)] = [
            (#"{"source":"x","data":{}}"#, "type is required"),
            (#"{"type":"sh.keptn.event.qa.delivery.triggered","data":{}}"#, "source is required"),
            (#"{"type":"sh.keptn.event.qa.delivery.triggered","source":"x","data":{"project":"podtato","stage":"qa"}}"#, "data.service is required"),
            (#"{"type":"sh.keptn.event.qa.delivery.triggered","source":"x","data":{"project":"podtato","stage":"production","service":"s"}}"#, "is not the stage of"),
            (#"{"type":"sh.keptn.event.deployment.triggered","source":"x","data":{"project":"podtato","stage":"qa","service":"s"}}"#, "comes from the shipyard"),
            (#"{"type":"sh.keptn.event.deployment.started","source":"x","data":{"project":"podtato"}}"#, "triggeredid is required"),
            (#"{"type":"sh.keptn.event.deployment.finished","source":"x","triggeredid":"t","data":{"result":"pass"}}"#, "data.status is required"),
            (#"{"type":"my.event","source":"x","data":{}}"#, "is not a Keptn event type"),
        ]
        for (body, message) in refusals {
            let reply = try world.call("POST", "/v1/event", json: body)
            #expect(reply.status == 400 && Self.keys(reply) == ["code", "message"] && reply.body.contains(message), "\(body) → \(reply.status) \(reply.body)")
        }

        // keptn abort sequence (go-utils v2/sequenceUtils.go): sequenceControl decides that, as for
        // the web view; the job-executor role is not in it.
        let abort = try world.call("POST", "/controlPlane/v1/sequence/podtato/\(context)/control", token: "jes", json: #"{"state":"abort","stage":""}"#)
        #expect(abort.status == 403 && abort.body.contains("role:job-executor may not abort"), "\(abort.body)")
        let aborted = try world.call("POST", "/controlPlane/v1/sequence/podtato/\(context)/control", token: "alice", json: #"{"state":"abort","stage":""}"#)
        #expect(aborted.status == 200, "\(aborted.body)")
        #expect(await world.waitState(context, "qa", "aborted"))
        #expect(try world.open("deployment").isEmpty, "an aborted sequence's tasks are no longer open")
    }

    /// job-executor-service in remote mode (go-utils pkg/sdk): register, ping, poll, read
    /// job/config.yaml, answer; an approver approves with `keptn send event approval.finished`.
    @Test func anIntegrationRunsTheTasksNoLocalProgramRuns() async throws {
        let world = try await World()
        let registration = """
            {"id":"","name":"job-executor-service","metadata":{"hostname":"node-1","integrationversion":"0.3.0","distributorversion":"0.15.0","location":"control-plane","kubernetesmetadata":{"namespace":"keptn-jes","podname":"job-executor-service-7d9c","deploymentname":"job-executor-service"}},"subscriptions":[{"id":"","event":"sh.keptn.event.deployment.triggered","filter":{"projects":null,"stages":null,"services":null}},{"id":"","event":"sh.keptn.event.test.triggered","filter":{"projects":null,"stages":null,"services":null}}]}
            """
        let registered = try world.call("POST", "/controlPlane/v1/uniform/registration", token: "jes", json: registration)
        #expect(registered.status == 201 && Self.keys(registered) == ["id"], "\(registered.body)")
        let id = try #require((registered.json as? [String: Any])?["id"] as? String)
        let ping = try world.call("PUT", "/controlPlane/v1/uniform/registration/\(id)/ping", token: "jes")
        let subscriptions = (ping.json as? [String: Any])?["subscriptions"] as? [[String: Any]] ?? []
        #expect(ping.status == 200 && subscriptions.count == 2 && subscriptions.allSatisfy { ($0["id"] as? String)?.isEmpty == false }, "\(ping.body)")
        // A restarted integration registers again: the same id and the same subscription ids.
        let again = try world.call("POST", "/controlPlane/v1/uniform/registration", token: "jes", json: registration)
        #expect(again.status == 200 && (again.json as? [String: Any])?["id"] as? String == id)
        let pingAgain = try world.call("PUT", "/controlPlane/v1/uniform/registration/\(id)/ping", token: "jes")
        #expect(((pingAgain.json as? [String: Any])?["subscriptions"] as? [[String: Any]])?.compactMap { $0["id"] as? String } == subscriptions.compactMap { $0["id"] as? String })
        #expect(try world.call("PUT", "/controlPlane/v1/uniform/registration/nope/ping", token: "jes").status == 404)

        let context = try #require((try world.call("POST", "/v1/event", json: Self.cliTrigger()).json as? [String: Any])?["keptnContext"] as? String)
        let deployment = try #require(try await world.waitOpen("deployment", context: context))
        // job/config.yaml at the event's commit, escaped twice as JES and go-utils escape it.
        let resource = try world.call("GET", "/resource-service/v1/project/podtato/stage/qa/service/helloservice/resource/job%252Fconfig.yaml?gitCommitID=\(world.commit)", token: "jes")
        let content = (resource.json as? [String: Any])?["resourceContent"] as? String
        #expect(content.flatMap { Data(base64Encoded: $0) }.map { String(decoding: $0, as: UTF8.self) } == "apiVersion: v2\nactions: [{name: qa-service}]\n", "\(resource.body)")
        #expect(Self.keys(resource) == ["metadata", "resourceContent", "resourceURI"])
        let stageLevel = try world.call("GET", "/resource-service/v1/project/podtato/stage/qa/resource/job%252Fconfig.yaml?gitCommitID=\(world.commit)", token: "jes")
        #expect(stageLevel.status == 404 && Self.keys(stageLevel) == ["code", "message"], "JES then asks the stage, then the project: \(stageLevel.body)")
        #expect(try world.call("GET", "/resource-service/v1/project/podtato/resource/job%252Fconfig.yaml?", token: "jes").status == 200)

        let started = try world.answer(deployment, phase: "started")
        #expect(started.status == 200 && (started.json as? [String: Any])?["keptnContext"] as? String == context, "\(started.body)")
        let finishedID = UUID().uuidString.lowercased()
        #expect(try world.answer(deployment, phase: "finished", id: finishedID).status == 200)
        // The go-sdk retries a send it saw fail: the same event again changes nothing.
        #expect(try world.answer(deployment, phase: "finished", id: finishedID).status == 200)
        // A task a local program runs is never offered to an integration, even while it runs.
        #expect(await eventually(timeout: .seconds(30)) { (try? world.taskState(context, "qa", "test")) == "started" })
        #expect(try world.open("test").isEmpty)
        try world.dir.write("go", "")
        #expect(await world.waitState(context, "production", "waitingForApproval"))
        let finishes = try world.daemon.ctl(["events", "--context", context, "--type", "deployment.finished"]).stdout.split(separator: "\n")
        #expect(finishes.count == 1, "\(finishes)")
        #expect(finishes.first?.contains("\"source\":\"api/role:job-executor/job-executor-service\"") == true, "\(finishes)")

        // keptn get event approval.triggered / send event approval.finished (cli/cmd/*approval*.go).
        let approval = try #require(try await world.waitOpen("approval", context: context, token: "bob"))
        let decision = { (result: String) in
            """
            {"shkeptncontext":"\(context)","triggeredid":"\(approval["id"] as? String ?? "")","source":"https://github.com/keptn/keptn/cli#approval","specversion":"1.0","type":"sh.keptn.event.approval.finished","data":{"project":"podtato","stage":"production","service":"helloservice","status":"succeeded","result":"\(result)"}}
            """
        }
        for token in ["bob", "jes", "ci"] {
            let refused = try world.call("POST", "/v1/event", token: token, json: decision("pass"))
            #expect(refused.status == 403 && refused.body.contains("may not"), "\(token): \(refused.body)")
        }
        #expect(try world.sequenceState(context, "production") == "waitingForApproval")
        let approved = try world.call("POST", "/v1/event", token: "alice", json: decision("pass"))
        #expect(approved.status == 200 && (approved.json as? [String: Any])?["keptnContext"] as? String == context, "\(approved.body)")
        let production = try #require(try await world.waitOpen("deployment", context: context))
        #expect(production["id"] as? String != deployment["id"] as? String)
        #expect(try world.answer(production, phase: "started").status == 200)
        #expect(try world.answer(production, phase: "finished").status == 200)
        #expect(await world.waitState(context, "production", "finished"))
        let votes = try world.daemon.ctl(["events", "--context", context, "--type", "approval.finished"]).stdout
        #expect(votes.contains("\"source\":\"api/alice\""), "\(votes)")

        // An errored run's log (go-utils connector/logforwarder), and status lists the integration.
        let log = try world.call("POST", "/controlPlane/v1/log", token: "jes", json: """
            {"logs":[{"integrationid":"\(id)","message":"job failed: exit 3","time":"2026-12-03T10:00:00Z","shkeptncontext":"\(context)","task":"deployment","triggeredid":"t"}]}
            """)
        #expect(log.status == 200)
        #expect(await eventually { world.daemon.log.contains("integration job-executor-service: job failed: exit 3") })
        let status = try world.daemon.ctl(["status"]).stdout
        #expect(status.contains("job-executor-service") && status.contains("node-1") && status.contains("deployment.triggered, test.triggered"), "\(status)")
        let list = try world.call("GET", "/controlPlane/v1/uniform/registration", token: "jes")
        #expect((list.json as? [[String: Any]])?.first?["name"] as? String == "job-executor-service", "\(list.body)")
    }

    /// A user token is that person everywhere: a delivery alice triggered through the API is
    /// hers, so under a policy without self-approval she cannot approve it there either.
    @Test func aUsersTokenIsThatPersonForTheApprovalRules() async throws {
        let world = try await World(localTest: false, approvers: """
            approvalPolicies:
              - stage: production
                approvers: {users: [alice, bob]}
            """)
        let context = try #require((try world.call("POST", "/v1/event", token: "alice", json: Self.cliTrigger()).json as? [String: Any])?["keptnContext"] as? String)
        for task in ["deployment", "test"] {
            let triggered = try #require(try await world.waitOpen(task, context: context))
            #expect(try world.answer(triggered, phase: "finished").status == 200)
        }
        let approval = try #require(try await world.waitOpen("approval", context: context, token: "bob"))
        let decision = """
            {"shkeptncontext":"\(context)","triggeredid":"\(approval["id"] as? String ?? "")","source":"https://github.com/keptn/keptn/cli#approval","specversion":"1.0","type":"sh.keptn.event.approval.finished","data":{"project":"podtato","stage":"production","service":"helloservice","status":"succeeded","result":"pass"}}
            """
        let own = try world.call("POST", "/v1/event", token: "alice", json: decision)
        #expect(own.status == 403 && own.body.contains("alice cannot approve their own delivery"), "\(own.body)")
        let other = try world.call("POST", "/v1/event", token: "bob", json: decision)
        #expect(other.status == 200, "\(other.body)")
        #expect(try await world.waitOpen("deployment", context: context) != nil)
    }

    /// Without sequenceControl or approvers, no token triggers or controls anything (as in the web
    /// view: a token holder is no member of the socket's group); a token not among eventSenders
    /// registers no integration; a client's event id already in the record is refused as a
    /// duplicate, never reaching the record's unique index; removing the token file revokes all.
    @Test func tokensDoOnlyWhatTheConfigNames() async throws {
        let world = try await World(approvers: "", control: "")
        let closed = try world.call("POST", "/v1/event", json: Self.cliTrigger())
        #expect(closed.status == 403 && closed.body.contains("trigger is closed to API tokens"), "\(closed.body)")
        let registration = #"{"name":"intruder","metadata":{"hostname":"x"},"subscriptions":[]}"#
        let refused = try world.call("POST", "/controlPlane/v1/uniform/registration", token: "bob", json: registration)
        #expect(refused.status == 403 && refused.body.contains("bob may not send events"), "\(refused.body)")
        let registered = try world.call("POST", "/controlPlane/v1/uniform/registration", token: "jes", json: registration)
        let id = try #require((registered.json as? [String: Any])?["id"] as? String)
        #expect(try world.call("DELETE", "/controlPlane/v1/uniform/registration/\(id)", token: "ci").status == 403)
        #expect(try world.call("PUT", "/controlPlane/v1/uniform/registration/\(id)/ping", token: "jes").status == 200)

        // A delivery started over the socket; an integration answers with an id the record holds.
        let out = try world.daemon.ctl(["trigger", "delivery", "--project", "podtato", "--service", "helloservice", "--output", "json"])
        let context = try #require((try JSONSerialization.jsonObject(with: Data(out.stdout.utf8)) as? [String: Any])?["context"] as? String, "\(out.stdout)\(out.stderr)")
        let deployment = try #require(try await world.waitOpen("deployment", context: context))
        let reused = try world.answer(deployment, phase: "started", id: deployment["id"] as? String ?? "")
        #expect(reused.status == 200 && !world.daemon.log.contains("free space"), "\(reused.body)")
        #expect(try world.answer(deployment, phase: "finished").status == 200)
        #expect(await eventually(timeout: .seconds(30)) { (try? world.taskState(context, "qa", "deployment")) == "finished" })

        try FileManager.default.removeItem(atPath: world.tokenFile)
        #expect(await eventually(timeout: .seconds(10)) { (try? world.call("POST", "/v1/auth", token: "alice").status) == 401 })
    }

    /// What a token-holder or a push could try: every route without a token, paths out of the
    /// repository, symbolic links, another project's sequence; tokens added without a reload.
    @Test func tokensAndResourcePathsRefuseWhatTheyShould() async throws {
        let world = try await World()
        _ = try world.upstream.commit(["qa/helloservice/big.txt": String(repeating: "x", count: 1_100_000)])
        try Run.checked("/bin/sh", ["-c", #"cd "$1" && ln -s /etc/passwd qa/helloservice/leak.yaml && ln -s ../.. qa/up && git add -A && git commit -qm links && git push -q origin HEAD:main"#, "sh", world.upstream.work])
        let head = try world.upstream.head()
        _ = await world.daemon.waitFor("podtato") { $0.commit == head }
        let routes: [(String, String)] = [
            ("POST", "/v1/auth"), ("GET", "/v1/metadata"), ("POST", "/v1/event"), ("GET", "/controlPlane/v1/project"),
            ("GET", "/controlPlane/v1/project/podtato"), ("GET", "/controlPlane/v1/project/podtato/stage/qa/service"),
            ("POST", "/controlPlane/v1/sequence/podtato/x/control"), ("GET", "/controlPlane/v1/sequence/podtato"),
            ("GET", "/mongodb-datastore/event"), ("POST", "/controlPlane/v1/uniform/registration"), ("GET", "/controlPlane/v1/uniform/registration"),
            ("PUT", "/controlPlane/v1/uniform/registration/x/ping"), ("GET", "/controlPlane/v1/event/triggered/sh.keptn.event.deployment.triggered"),
            ("POST", "/controlPlane/v1/log"), ("GET", "/resource-service/v1/project/podtato/resource/shipyard.yaml"),
            ("GET", "/resource-service/v1/project/podtato/stage/qa/service/helloservice/resource"),
        ]
        // A real token with its last digit changed (to another digit: never the same token).
        let ci = world.tokens["ci"]!
        let nearMiss = String(ci.dropLast()) + (ci.hasSuffix("0") ? "1" : "0")
        for (method, path) in routes {
            for token in [nil, "wrong", nearMiss] as [String?] {
                let reply = try world.call(method, path, token: token, json: method == "POST" ? "{}" : nil)
                #expect(reply.status == 401 && Self.keys(reply) == ["code", "message"], "\(method) \(path) with \(token ?? "no token"): \(reply.status) \(reply.body)")
            }
        }
        let base = "/resource-service/v1/project/podtato/stage/qa/service/helloservice/resource/"
        for (uri, status, message) in [
            ("leak.yaml", 404, "is a symbolic link"), ("..%252F..%252Fshipyard.yaml", 400, "is not a resource path"), ("%2e%2e%252Fshipyard.yaml", 400, "is not a resource path"),
            ("big.txt", 413, "at most 1048576"), ("job%2F..%2F..%2F..%2Fshipyard.yaml", 400, "is not a resource path"),
        ] {
            let reply = try world.call("GET", base + uri, token: "jes")
            #expect(reply.status == status && reply.body.contains(message), "\(uri): \(reply.status) \(reply.body)")
        }
        let through = try world.call("GET", "/resource-service/v1/project/podtato/stage/qa/resource/up%252Fshipyard.yaml", token: "jes")
        #expect(through.status == 404 && through.body.contains("symbolic link"), "a linked folder is no way out: \(through.body)")
        let listing = try world.call("GET", String(base.dropLast()), token: "jes").body
        #expect(listing.contains("/job/config.yaml") && !listing.contains("leak.yaml"), "\(listing)")
        #expect(try world.call("GET", base + "job%252Fconfig.yaml?gitCommitID=zz", token: "jes").status == 400)
        #expect(try world.call("GET", base + "job%252Fconfig.yaml?gitCommitID=" + String(repeating: "a", count: 40), token: "jes").status == 404)

        // A token added to the file counts at once, no reload; one removed stops at once.
        let (token, line) = APITokens.make(for: .role("late"))
        #expect(try world.call("POST", "/v1/auth", token: token).status == 401)
        var text = try String(contentsOfFile: world.tokenFile, encoding: .utf8)
        try writeFile(world.tokenFile, Data((text + line + "\n").utf8), mode: 0o600)
        #expect(await eventually(timeout: .seconds(10)) { (try? world.call("POST", "/v1/auth", token: token).status) == 200 })
        text = text.replacingOccurrences(of: APITokens.line(token: world.tokens["bob"]!, principal: .user("bob")) + "\n", with: "")
        try writeFile(world.tokenFile, Data((text + line + "\n").utf8), mode: 0o600)
        #expect(await eventually(timeout: .seconds(10)) { (try? world.call("POST", "/v1/auth", token: "bob").status) == 401 })
        #expect(try world.call("POST", "/v1/auth", token: "alice").status == 200)
    }

    /// `shipyardd --check-config` on the token file: every bad line with its place; a file the
    /// group may write is refused; roles under approvers are refused.
    @Test func checkConfigReadsTheTokenFile() async throws {
        let dir = try TemporaryDirectory()
        let (_, good) = APITokens.make(for: .user("alice"))
        let tokens = try dir.write("tokens", "# ok\n\(good)\nsha256:abc user:bob\n\(good.replacingOccurrences(of: "user:alice", with: "role:x"))\nsha256:\(String(repeating: "0", count: 64)) someone\n", mode: 0o664)
        let config = try dir.write("config.yaml", """
            stateDirectory: \(dir.path)/state
            projects: []
            http:
              listen: 127.0.0.1:0
              apiTokens: \(tokens)
            approvers:
              users: [alice]
              roles: [ci]
            """)
        let run = try Command.run("shipyardd", ["--check-config", config])
        #expect(run.status != 0)
        let output = run.stdout + run.stderr
        for expected in [
            "\(tokens):3: \"sha256:abc\" is not sha256: and 64 hex digits", "\(tokens):4: the same token as line 2",
            "\(tokens):5: \"someone\" names no one", "is writable by more than its owner", "approvers takes users and groups, not roles",
        ] {
            #expect(output.contains(expected), "missing \(expected) in \(output)")
        }
    }

    /// The done-when's end to end: a Python client written from Keptn's API (no Shipyard code)
    /// triggers as the CLI, runs every task as an integration that polls, reads its job config,
    /// starts and finishes them, approves as a person, and reads the end from the datastore.
    @Test func aKeptnClientInPythonDrivesADeliveryEndToEnd() async throws {
        let world = try await World(localTest: false)
        let run = try Run.capture(
            "/usr/bin/python3", [Repository.root.path + "/Tests/keptn/keptn_client.py"],
            environment: [
                "KEPTN_API_ENDPOINT": world.api.base + "/api", "CLI_TOKEN": world.tokens["ci"]!, "INTEGRATION_TOKEN": world.tokens["jes"]!,
                "APPROVER_TOKEN": world.tokens["alice"]!, "TIMEOUT": "90", "PATH": "/usr/bin:/bin",
            ])
        #expect(run.status == 0, "\(run.stdout)\(run.stderr)\n\(world.daemon.log.suffix(3000))")
        #expect(run.stdout.contains("sh.keptn.event.test.triggered in qa: started and finished"))
        #expect(run.stdout.contains("sh.keptn.event.deployment.triggered in production: started and finished"))
        #expect(run.stdout.hasSuffix("production.delivery.finished: pass\n"), "\(run.stdout)")
    }
}
