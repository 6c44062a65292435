import Foundation
import ShipyardCore
import ShipyardDaemon
import ShipyardTestKit
import Testing

/// The tutorial's step 3 end to end: `je-test`, then a built-in `evaluation` scored against the
/// SLO in Git with values from (a) a local SLI program and (b) a real Prometheus scraping a small
/// exporter, then production's approval with `pass: automatic, warning: manual`.
@Suite(.serialized) struct QualityGateTests {
    static func example(_ path: String) -> String {
        try! String(contentsOf: Repository.root.appendingPathComponent("examples/demo/" + path), encoding: .utf8)
    }

    static let shipyard = example("shipyard-with-quality-gate.yaml")
    static let slo = example("qa/helloservice/slo.yaml")
    static let prometheusSLI = example("prometheus/sli.yaml")

    /// The upstream with the step-3 shipyard and the SLO, a daemon whose tasks record their runs.
    struct World {
        let dir: TemporaryDirectory
        let upstream: UpstreamRepository
        let daemon: RunningDaemon
        let commit: String
        var record: String { dir.path + "/runs.txt" }

        init(provider: (String) throws -> String, files: [String: String] = [:], projectExtra: String = "") throws {
            dir = try TemporaryDirectory()
            upstream = try UpstreamRepository(in: dir.path)
            var content = ["shipyard.yaml": QualityGateTests.shipyard, "qa/helloservice/slo.yaml": QualityGateTests.slo]
            content.merge(files) { _, new in new }
            commit = try upstream.commit(content)
            let task = try dir.write("tasks/task", """
                #!/bin/sh
                echo "$SHIPYARD_CONTEXT $SHIPYARD_STAGE $SHIPYARD_TASK" >> \(dir.path)/runs.txt

                """, mode: 0o755)
            daemon = try RunningDaemon(directory: dir.path, config: """
                projects:
                  - name: fulltour
                    upstream: \(upstream.fileURL)
                    pollInterval: 1s
                \(try provider(dir.path))
                \(projectExtra)
                tasks:
                  je-deployment:
                    command: ["\(task)"]
                  je-test:
                    command: ["\(task)"]
                """)
        }

        func ready() async -> Bool {
            await daemon.waitFor("fulltour") { $0.shipyardCommit == commit } != nil
        }

        var runs: [String] {
            ((try? String(contentsOfFile: record, encoding: .utf8)) ?? "").split(separator: "\n").map(String.init)
        }

        func deployed(_ context: String, in stage: String) -> Bool {
            runs.contains("\(context) \(stage) je-deployment")
        }

        func trigger(_ arguments: [String]) throws -> String {
            let out = try daemon.ctl(["trigger"] + arguments + ["--project", "fulltour", "--output", "json"])
            #expect(out.status == 0, "\(out.stderr)")
            let json = try JSONSerialization.jsonObject(with: Data(out.stdout.utf8)) as? [String: String]
            return json?["context"] ?? ""
        }

        func delivery(_ image: String = "ghcr.io/podtato-head/podtatoserver:v0.2.0") throws -> String {
            try trigger(["delivery", "--service", "helloservice", "--image", image])
        }

        func state(_ context: String, _ stage: String) -> String? {
            let out = try? daemon.ctl(["sequence", context, "--output", "json"])
            guard let data = out?.stdout.data(using: .utf8), let json = try? JSONSerialization.jsonObject(with: data) as? [String: Any],
                let stages = json["stages"] as? [[String: Any]]
            else { return nil }
            return stages.last { $0["stage"] as? String == stage }?["state"] as? String
        }

        func waitState(_ context: String, _ stage: String, _ state: String, timeout: Duration = .seconds(60)) async -> Bool {
            await eventually(timeout: timeout, every: .milliseconds(100)) { self.state(context, stage) == state }
        }

        func events(_ context: String) -> [[String: Any]] {
            let text = (try? daemon.ctl(["events", "--context", context]).stdout) ?? ""
            return text.split(separator: "\n").compactMap { try? JSONSerialization.jsonObject(with: Data($0.utf8)) as? [String: Any] }
        }

        /// The data of the context's (last) `evaluation.finished`.
        func evaluation(_ context: String) -> [String: Any]? {
            let finished = events(context).last { $0["type"] as? String == "sh.keptn.event.evaluation.finished" }
            return finished?["data"] as? [String: Any]
        }

        func evaluationEventID(_ context: String) -> String? {
            events(context).last { $0["type"] as? String == "sh.keptn.event.evaluation.finished" }?["id"] as? String
        }

        func sequenceText(_ context: String) -> String {
            (try? daemon.ctl(["sequence", context]).stdout) ?? ""
        }
    }

    /// The SLI program: writes its input where the test reads it, then prints the values file,
    /// or fails (exit 3) or hangs when the test says so.
    static func program(_ dir: String) throws -> String {
        let path = dir + "/sli-provider"
        try writeFile(path, Data("""
            #!/bin/sh
            cat > \(dir)/sli-input.json
            if [ -e \(dir)/sli-fail ]; then echo "monitoring is down" >&2; exit 3; fi
            if [ -e \(dir)/sli-hang ]; then sleep 60; fi
            if [ -e \(dir)/sli-reported ]; then cat \(dir)/sli-reported; exit 0; fi
            cat \(dir)/sli-values.json

            """.utf8))
        chmod(path, 0o755)
        try setValues(dir, responseTime: 300, errorRate: 0)
        return """
                sliProvider:
                  command: ["\(path)"]
                  timeout: 3s
            """
    }

    static func setValues(_ dir: String, responseTime: Double, errorRate: Double) throws {
        try writeFile(dir + "/sli-values.json", Data("""
            {"indicatorValues":[{"metric":"response_time_p95","value":\(responseTime),"success":true},{"metric":"error_rate","value":\(errorRate),"success":true}]}
            """.utf8))
    }

    func indicator(_ evaluation: [String: Any]?, _ metric: String) -> [String: Any]? {
        let results = (evaluation?["evaluation"] as? [String: Any])?["indicatorResults"] as? [[String: Any]]
        return results?.first { ($0["value"] as? [String: Any])?["metric"] as? String == metric }
    }

    func score(_ evaluation: [String: Any]?) -> Double? {
        (evaluation?["evaluation"] as? [String: Any])?["score"] as? Double
    }

    func compared(_ evaluation: [String: Any]?) -> [String] {
        ((evaluation?["evaluation"] as? [String: Any])?["comparedEvents"] as? [String]) ?? []
    }

    @Test func aLocalSLIProgramDecidesWhetherProductionDeploysByItselfWaitsForAPersonOrNeverStarts() async throws {
        let world = try World(provider: Self.program)
        #expect(await world.ready())
        let dir = world.dir.path

        // A good release: pass, and production's `pass: automatic` deploys with no person involved.
        let good = try world.delivery()
        #expect(await world.waitState(good, "production", "finished"))
        #expect(world.deployed(good, in: "production"))
        let first = world.evaluation(good)
        #expect(first?["result"] as? String == "pass")
        #expect(score(first) == 100)
        #expect(compared(first).isEmpty)
        #expect(world.sequenceText(good).contains("evaluation       finished pass/succeeded"))
        // The provider was asked as Keptn's get-sli asks, for the tutorial's 2-minute timeframe.
        let input = try #require(try JSONSerialization.jsonObject(with: Data(contentsOf: URL(fileURLWithPath: dir + "/sli-input.json"))) as? [String: Any])
        #expect(input["project"] as? String == "fulltour")
        #expect(input["stage"] as? String == "qa")
        #expect(input["service"] as? String == "helloservice")
        #expect(input["indicators"] as? [String] == ["response_time_p95", "error_rate"])
        let start = try #require((input["start"] as? String).flatMap(Timestamps.parse))
        let end = try #require((input["end"] as? String).flatMap(Timestamps.parse))
        #expect(end.timeIntervalSince(start) == 120)
        // The record holds the get-sli exchange, as Keptn's would.
        let types = world.events(good).compactMap { $0["type"] as? String }
        #expect(types.contains("sh.keptn.event.get-sli.triggered"))
        #expect(types.contains("sh.keptn.event.get-sli.started"))
        #expect(types.contains("sh.keptn.event.get-sli.finished"))
        let firstID = try #require(world.evaluationEventID(good))

        // Slower: 500 ms is more than 10% above the previous passing 300 ms, so the pass criteria
        // fail and the warning criterion holds: a warning, and production waits for a person.
        try Self.setValues(dir, responseTime: 500, errorRate: 0)
        let slower = try world.delivery("ghcr.io/podtato-head/podtatoserver:v0.2.1")
        #expect(await world.waitState(slower, "production", "waitingForApproval"))
        #expect(!world.deployed(slower, in: "production"))
        let second = world.evaluation(slower)
        #expect(second?["result"] as? String == "warning")
        #expect(score(second) == 75)
        #expect(compared(second) == [firstID])
        let responseTime = indicator(second, "response_time_p95")
        #expect(responseTime?["status"] as? String == "warning")
        #expect((responseTime?["value"] as? [String: Any])?["comparedValue"] as? Double == 300)
        let targets = responseTime?["passTargets"] as? [[String: Any]] ?? []
        #expect(targets.contains { $0["criteria"] as? String == "<=+10%" && $0["targetValue"] as? Double == 330 && $0["violated"] as? Bool == true })
        #expect(targets.contains { $0["criteria"] as? String == "<600" && $0["violated"] as? Bool == false })
        let approvals = try world.daemon.ctl(["approvals", "--output", "json"]).stdout
        #expect(approvals.contains("\"previousResult\":\"warning\""))
        let approvalID = try #require(world.events(slower).first { $0["type"] as? String == "sh.keptn.event.approval.triggered" }?["id"] as? String)
        #expect(try world.daemon.ctl(["approve", approvalID, "--reason", "known slowdown"]).status == 0)
        #expect(await world.waitState(slower, "production", "finished"))

        // Broken: the key SLI fails, so the evaluation fails, qa fails and production never starts.
        try Self.setValues(dir, responseTime: 2500, errorRate: 20)
        let broken = try world.delivery("ghcr.io/podtato-head/podtatoserver:v0.2.2")
        #expect(await world.waitState(broken, "qa", "finished"))
        let third = world.evaluation(broken)
        #expect(third?["result"] as? String == "fail")
        #expect((third?["message"] as? String)?.contains("key_sli") == true)
        #expect(world.state(broken, "production") == nil)
        #expect(!world.deployed(broken, in: "production"))

        // Only passing evaluations are compared with (include_result_with_score: pass): the
        // warning and the failure are not, so 320 ms is within 10% of 300 again.
        try Self.setValues(dir, responseTime: 320, errorRate: 0)
        let again = try world.delivery("ghcr.io/podtato-head/podtatoserver:v0.2.3")
        #expect(await world.waitState(again, "production", "finished"))
        let fourth = world.evaluation(again)
        #expect(fourth?["result"] as? String == "pass")
        #expect(compared(fourth) == [firstID])
        #expect(world.deployed(again, in: "production"))

        // The history as a heatmap, oldest on the left.
        let table = try world.daemon.ctl(["evaluations", "--project", "fulltour", "--stage", "qa", "--service", "helloservice"])
        #expect(table.status == 0, "\(table.stderr)")
        let scoreRow = table.stdout.split(separator: "\n").first { $0.hasPrefix("SCORE") }.map(String.init) ?? ""
        #expect(scoreRow.components(separatedBy: .whitespaces).filter { !$0.isEmpty } == ["SCORE", "100", "P", "75", "W", "0", "F", "100", "P"])
        #expect(table.stdout.contains("response_time_p95"))
        let json = try world.daemon.ctl(["evaluations", "--project", "fulltour", "--stage", "qa", "--service", "helloservice", "--output", "json"])
        let rows = try #require(try JSONSerialization.jsonObject(with: Data(json.stdout.utf8)) as? [[String: Any]])
        #expect(rows.map { $0["result"] as? String } == ["pass", "warning", "fail", "pass"])

        // An invalidated evaluation is no longer compared with: a quality gate run on its own
        // (Keptn's implicit evaluation sequence) compares only with the remaining passing one.
        let firstTriggered = try #require(rows.first?["id"] as? String)
        let invalidated = try world.daemon.ctl(["evaluations", "invalidate", String(firstTriggered.prefix(8)), "--reason", "measured during an outage"])
        #expect(invalidated.status == 0, "\(invalidated.stderr)")
        #expect(invalidated.stdout.contains("invalidated"))
        // Without a window, the last 5 minutes (as keptn trigger evaluation).
        let alone = try world.trigger(["evaluation", "--stage", "qa", "--service", "helloservice"])
        #expect(await world.waitState(alone, "qa", "finished"))
        let fifth = world.evaluation(alone)
        #expect(compared(fifth) == [try #require(world.evaluationEventID(again))])
        let window = try #require(try JSONSerialization.jsonObject(with: Data(contentsOf: URL(fileURLWithPath: dir + "/sli-input.json"))) as? [String: Any])
        let windowStart = try #require((window["start"] as? String).flatMap(Timestamps.parse))
        let windowEnd = try #require((window["end"] as? String).flatMap(Timestamps.parse))
        #expect(windowEnd.timeIntervalSince(windowStart) == 300)
        let listed = try world.daemon.ctl(["evaluations", "--project", "fulltour", "--stage", "qa", "--service", "helloservice", "--output", "json"]).stdout
        #expect((try JSONSerialization.jsonObject(with: Data(listed.utf8)) as? [[String: Any]])?.count == 4)
    }

    @Test func aProviderThatFailsOrHangsFailsTheEvaluationAndTheDaemonCarriesOn() async throws {
        let world = try World(provider: Self.program)
        #expect(await world.ready())
        let dir = world.dir.path

        try writeFile(dir + "/sli-fail", Data())
        let failing = try world.trigger(["evaluation", "--stage", "qa", "--service", "helloservice", "--timeframe", "5m"])
        #expect(await world.waitState(failing, "qa", "finished"))
        let failed = world.evaluation(failing)
        // No usable answer: Keptn's provider that ends errored. Nothing is scored, and the message
        // carries the provider's own last word and its log, once.
        #expect(failed?["result"] as? String == "fail")
        #expect(failed?["status"] as? String == "errored")
        #expect((failed?["evaluation"] as? [String: Any])?["result"] as? String == "fail")
        #expect((failed?["evaluation"] as? [String: Any])?["indicatorResults"] is NSNull)
        let message = failed?["message"] as? String ?? ""
        #expect(message.hasPrefix("evaluation performed by lighthouse received an unexpected error: the SLI provider "), "\(message)")
        #expect(message.contains("exited with status 3: monitoring is down (log: "), "\(message)")
        #expect(message.components(separatedBy: "qa-evaluation.log").count == 2, "\(message)")
        let log = try String(contentsOfFile: world.daemon.state + "/logs/\(failing)/qa-evaluation.log", encoding: .utf8)
        #expect(log.contains("monitoring is down"))
        unlink(dir + "/sli-fail")

        // A provider that reports fail with values (prometheus-service when some queries fail):
        // the values are scored and shown, as Keptn does; the result fails with its message, and
        // (unlike Keptn, keptn#6096) so does evaluation.result.
        try writeFile(dir + "/sli-reported", Data(#"""
            {"result": "fail", "message": "1 of 2 queries failed", "indicatorValues": [
              {"metric": "response_time_p95", "value": 310, "success": true},
              {"metric": "error_rate", "value": 0, "success": false, "message": "query timed out"}]}
            """#.utf8))
        let reported = try world.trigger(["evaluation", "--stage", "qa", "--service", "helloservice", "--timeframe", "5m"])
        #expect(await world.waitState(reported, "qa", "finished"))
        let scored = world.evaluation(reported)
        #expect(scored?["status"] as? String == "succeeded")
        #expect(scored?["result"] as? String == "fail")
        #expect((scored?["message"] as? String)?.contains("lighthouse failed because SLI failed with message 1 of 2 queries failed") == true, "\(scored ?? [:])")
        let indicators = ((scored?["evaluation"] as? [String: Any])?["indicatorResults"] as? [[String: Any]]) ?? []
        let p95 = indicators.first { (($0["value"] as? [String: Any])?["metric"] as? String) == "response_time_p95" }
        #expect(((p95?["value"] as? [String: Any])?["value"] as? Double) == 310, "\(indicators)")
        #expect((scored?["evaluation"] as? [String: Any])?["result"] as? String == "fail")
        let getSLI = world.events(reported).last { $0["type"] as? String == "sh.keptn.event.get-sli.finished" }?["data"] as? [String: Any]
        #expect(getSLI?["status"] as? String == "succeeded" && getSLI?["result"] as? String == "fail")
        unlink(dir + "/sli-reported")

        // An abort while the provider runs: the provider is stopped, and the evaluation is
        // answered as Keptn's lighthouse answers an aborted get-sli (errored, "was aborted").
        try writeFile(dir + "/sli-hang", Data())
        let aborting = try world.trigger(["evaluation", "--stage", "qa", "--service", "helloservice", "--timeframe", "5m"])
        #expect(await eventually { world.events(aborting).contains { $0["type"] as? String == "sh.keptn.event.get-sli.started" } })
        #expect(try world.daemon.ctl(["abort", aborting, "--reason", "wrong build"]).status == 0)
        #expect(await eventually { world.evaluation(aborting) != nil })
        let abortedEvaluation = world.evaluation(aborting)
        #expect(abortedEvaluation?["status"] as? String == "errored" && abortedEvaluation?["result"] as? String == "fail")
        #expect(abortedEvaluation?["message"] as? String == "evaluation performed by lighthouse was aborted")
        #expect((world.events(aborting).last { $0["type"] as? String == "sh.keptn.event.get-sli.finished" }?["data"] as? [String: Any])?["status"] as? String == "aborted")
        unlink(dir + "/sli-hang")

        // A provider that never answers is stopped at its timeout (KEP 56), not waited for forever.
        try writeFile(dir + "/sli-hang", Data())
        let hanging = try world.trigger(["evaluation", "--stage", "qa", "--service", "helloservice", "--timeframe", "5m"])
        #expect(await world.waitState(hanging, "qa", "finished"))
        #expect((world.evaluation(hanging)?["message"] as? String)?.contains("timed out after 3s") == true)
        unlink(dir + "/sli-hang")

        // A delivery whose evaluation fails never reaches production.
        try writeFile(dir + "/sli-fail", Data())
        let delivery = try world.delivery()
        #expect(await world.waitState(delivery, "qa", "finished"))
        #expect(world.state(delivery, "production") == nil)
        #expect(!world.deployed(delivery, in: "production"))
        unlink(dir + "/sli-fail")
        #expect(world.daemon.isRunning)

        // A service without an SLO passes, as in Keptn, and says why.
        let noSLO = try world.trigger(["evaluation", "--stage", "qa", "--service", "other", "--timeframe", "5m"])
        #expect(await world.waitState(noSLO, "qa", "finished"))
        #expect(world.evaluation(noSLO)?["result"] as? String == "pass")
        #expect(world.sequenceText(noSLO).contains("no evaluation performed by lighthouse because no SLO file configured for project fulltour (looked for qa/other/slo.yaml at commit"))
        // … and `status` says so, so that a gate that measures nothing does not go unnoticed.
        #expect(await eventually { world.daemon.project("fulltour")?.qualityGate?.passedWithoutSLO == 1 })
        #expect(world.daemon.project("fulltour")?.qualityGate?.lastContext == noSLO)
        #expect(try world.daemon.ctl(["status"]).stdout.contains("fulltour: 1 evaluation(s) passed without an SLO file since shipyardd started"))
        #expect(world.daemon.isRunning)

        // A submodule as the service's folder is not "no SLO": its files are in another repository.
        try world.upstream.git("update-index", "--add", "--cacheinfo", "160000,\(try world.upstream.head()),qa/vendored")
        let gitlink = try world.upstream.commit([:], message: "a submodule as a service folder")
        #expect(await world.daemon.waitFor("fulltour") { $0.commit == gitlink } != nil)
        let submodule = try world.trigger(["evaluation", "--stage", "qa", "--service", "vendored", "--timeframe", "5m"])
        #expect(await world.waitState(submodule, "qa", "finished"))
        #expect(world.evaluation(submodule)?["result"] as? String == "fail")
        #expect((world.evaluation(submodule)?["message"] as? String)?.contains("is under qa/vendored, which is a submodule") == true, "\(world.sequenceText(submodule))")
    }

    @Test func requireSLOFailsAnEvaluationWithoutAnSLOAndBadFilesFailWithTheirPlace() async throws {
        let slo = Self.slo.replacingOccurrences(of: "\"<=1\"", with: "\"<=!1\"")
        let world = try World(
            provider: Self.program,
            files: ["qa/broken/slo.yaml": slo],
            projectExtra: "    requireSLO: true")
        #expect(await world.ready())
        let missing = try world.trigger(["evaluation", "--stage", "qa", "--service", "other", "--timeframe", "5m"])
        #expect(await world.waitState(missing, "qa", "finished"))
        #expect(world.evaluation(missing)?["result"] as? String == "fail")
        #expect((world.evaluation(missing)?["message"] as? String)?.contains("requireSLO") == true)

        let bad = try world.trigger(["evaluation", "--stage", "qa", "--service", "broken", "--timeframe", "5m"])
        #expect(await world.waitState(bad, "qa", "finished"))
        let message = world.evaluation(bad)?["message"] as? String ?? ""
        #expect(world.evaluation(bad)?["result"] as? String == "fail")
        #expect(message.hasPrefix("could not parse SLO file qa/broken/slo.yaml:26:13: error: "), "\(message)")
        #expect(message.contains("<=!1"), "\(message)")

        // A window that cannot be scored is refused at once.
        let startOnly = try world.daemon.ctl(["trigger", "evaluation", "--project", "fulltour", "--stage", "qa", "--service", "x", "--start", "2026-11-27T10:00:00Z"])
        #expect(startOnly.status == 2)
        #expect(startOnly.stderr.contains("--start needs --end or --timeframe"))

        // A folder of the path that is a symbolic link is not "no SLO file".
        try FileManager.default.createSymbolicLink(atPath: world.upstream.work + "/qa/linked", withDestinationPath: "helloservice")
        try world.upstream.git("add", "qa/linked")
        let folder = try world.upstream.commit([:], message: "a linked folder")
        #expect(await world.daemon.waitFor("fulltour") { $0.commit == folder } != nil)
        let linkedFolder = try world.trigger(["evaluation", "--stage", "qa", "--service", "linked", "--timeframe", "5m"])
        #expect(await world.waitState(linkedFolder, "qa", "finished"))
        #expect((world.evaluation(linkedFolder)?["message"] as? String)?.contains("is under qa/linked, which is a symbolic link") == true)

        // A symbolic link in place of the SLO is never followed.
        try world.upstream.git("rm", "-q", "qa/helloservice/slo.yaml")
        try FileManager.default.createDirectory(atPath: world.upstream.work + "/qa/helloservice", withIntermediateDirectories: true)
        try FileManager.default.createSymbolicLink(atPath: world.upstream.work + "/qa/helloservice/slo.yaml", withDestinationPath: "/etc/passwd")
        try world.upstream.git("add", "qa/helloservice/slo.yaml")
        let linked = try world.upstream.commit([:], message: "a link out of the tree")
        #expect(await world.daemon.waitFor("fulltour") { $0.commit == linked } != nil)
        let link = try world.delivery()
        #expect(await world.waitState(link, "qa", "finished"))
        #expect((world.evaluation(link)?["message"] as? String)?.contains("symbolic link") == true)
        #expect(!world.deployed(link, in: "production"))
    }

}
