import Foundation
import ShipyardTestKit
import Testing

/// `shipyardctl lint` as scripts and editors see it: exact output, exit codes, JSON.
@Suite struct LintCommandTests {
    let demo = Repository.root.appendingPathComponent("examples/demo")

    @Test func cleanFilesExitZero() throws {
        let files = ["shipyard.yaml", "shipyard-with-approval.yaml"].map { demo.appendingPathComponent($0).path }
        let result = try Command.run("shipyardctl", ["lint"] + files)
        #expect(result.status == 0)
        #expect(result.stdout == files.map { "\($0): ok\n" }.joined())
        #expect(result.stderr.isEmpty)

        let quiet = try Command.run("shipyardctl", ["lint", "--quiet"] + files)
        #expect(quiet.status == 0)
        #expect(quiet.stdout.isEmpty)
    }

    @Test func errorsExitOneAndPointAtTheLine() throws {
        let dir = try TemporaryDirectory()
        let bad = try dir.write("shipyard.yaml", """
            apiVersion: spec.keptn.sh/0.2.2
            kind: Shipyard
            spec:
              stages:
                - name: qa
                  sequences:
                    - name: delivery
                      triggerdOn:
                        - event: qa.delivery.finished
                      tasks:
                        - name: deploy
                          triggeredAfter: 10

            """)
        let result = try Command.run("shipyardctl", ["lint", bad])
        #expect(result.status == 1)
        #expect(result.stdout == """
            \(bad):8:11: error: unknown key "triggerdOn" in a sequence; did you mean "triggeredOn"?
            \(bad):12:31: error: triggeredAfter must be a duration like "90s", "15m" or "1h30m", not the number 10; write it with a unit, e.g. "10s"

            """)
    }

    @Test func warningsAloneExitZero() throws {
        let dir = try TemporaryDirectory()
        let file = try dir.write("s.yaml", """
            apiVersion: spec.keptn.sh/0.2.2
            kind: Shipyard
            spec:
              stages:
                - name: qa
                  sequences:
                    - name: rollback
                      triggeredOn:
                        - event: qa.delivery.finished
                          selector: {match: {result: failed}}
                      tasks: [{name: rollback}]
                    - name: delivery
                      tasks: [{name: deploy}]

            """)
        let result = try Command.run("shipyardctl", ["lint", file])
        #expect(result.status == 0)
        #expect(result.stdout.hasPrefix("\(file):10:42: warning: Keptn compares results with \"fail\""))
    }

    @Test func jsonOutputForTools() throws {
        let dir = try TemporaryDirectory()
        let bad = try dir.write("bad.yaml", "kind: Shipyard\n")
        let good = demo.appendingPathComponent("shipyard.yaml")
        let result = try Command.run("shipyardctl", ["lint", "--output", "json", bad, good.path])
        #expect(result.status == 1)
        let json = try #require(try JSONSerialization.jsonObject(with: Data(result.stdout.utf8)) as? [String: Any])
        #expect(json["errors"] as? Int == 2)
        #expect(json["warnings"] as? Int == 0)
        let files = try #require(json["files"] as? [[String: Any]])
        #expect(files.map { $0["valid"] as? Bool } == [false, true])
        let diagnostics = try #require(json["diagnostics"] as? [[String: Any]])
        #expect(diagnostics.count == 2)
        #expect(diagnostics.first?["file"] as? String == bad)
        #expect(diagnostics.first?["line"] as? Int == 1)
        #expect(diagnostics.first?["column"] as? Int == 1)
        #expect(diagnostics.first?["severity"] as? String == "error")
        #expect(diagnostics.first?["message"] as? String == "apiVersion is missing; add 'apiVersion: spec.keptn.sh/0.2.4'")
    }

    @Test func readsStandardInput() throws {
        let text = try Data(contentsOf: demo.appendingPathComponent("shipyard.yaml"))
        let ok = try Command.run("shipyardctl", ["lint", "-"], stdin: text)
        #expect(ok.status == 0)
        #expect(ok.stdout == "<stdin>: ok\n")
        let bad = try Command.run("shipyardctl", ["lint", "-"], stdin: Data([0xFF, 0xFE, 0x00]))
        #expect(bad.status == 1)
        #expect(bad.stdout.hasPrefix("<stdin>:1:1: error: the file is UTF-16"))
    }

    @Test func unreadableFilesAreErrorsNotCrashes() throws {
        let dir = try TemporaryDirectory()
        let result = try Command.run("shipyardctl", ["lint", dir.path + "/missing.yaml", dir.path])
        #expect(result.status == 1)
        #expect(result.stdout == """
            \(dir.path)/missing.yaml:1:1: error: cannot read: no such file
            \(dir.path):1:1: error: cannot read: it is a directory; name the shipyard file inside it

            """)
    }

    @Test func usageErrorsExitTwo() throws {
        let none = try Command.run("shipyardctl", ["lint"])
        #expect(none.status == 2)
        #expect(none.stderr.contains("Usage: shipyardctl lint"))
        let badFlag = try Command.run("shipyardctl", ["lint", "--output", "xml", "x.yaml"])
        #expect(badFlag.status == 2)
        #expect(badFlag.stderr.contains("xml"))
        let unknown = try Command.run("shipyardctl", ["frobnicate"])
        #expect(unknown.status == 2)
    }

    @Test func hostileFilesFailFastWithAMessage() throws {
        let dir = try TemporaryDirectory()
        var bomb = "a: &a [x, x, x, x, x, x, x, x, x]\n"
        var previous = "a"
        for level in 1...20 {
            bomb += "n\(level): &n\(level) [" + Array(repeating: "*\(previous)", count: 9).joined(separator: ", ") + "]\n"
            previous = "n\(level)"
        }
        let files = [
            try dir.write("bomb.yaml", bomb),
            try dir.write("deep.yaml", String(repeating: "[", count: 100_000) + String(repeating: "]", count: 100_000)),
            try dir.write("empty.yaml", ""),
        ]
        let junk = dir.path + "/junk.yaml"
        try Data((0..<4096).map { UInt8(truncatingIfNeeded: $0 &* 7919 &+ 13) }).write(to: URL(fileURLWithPath: junk))
        let result = try Command.run("shipyardctl", ["lint"] + files + [junk])
        #expect(result.status == 1)
        let lines = result.stdout.split(separator: "\n")
        #expect(lines.count == 4)
        #expect(lines[0].contains("bomb.yaml:6:10: error: the document expands to more than 100000 nodes"))
        #expect(lines[1].contains("deep.yaml:1:65: error: lists and mappings are nested more than 64 levels deep"))
        #expect(lines[2].contains("empty.yaml:1:1: error: the file is empty"))
        #expect(lines[3].contains("junk.yaml:2:1: error") && lines[3].contains("not valid UTF-8"))
    }
}

/// A push of few bytes that stands for many once its aliases are expanded: lint refuses it with
/// the place, as the daemon does, instead of the daemon copying it into every event and query.
@Suite struct ExpansionBudgetLintTests {
    @Test func aliasedPropertiesAndFiltersOverTheirBudgetAreErrors() throws {
        let dir = try TemporaryDirectory()
        let blob = String(repeating: "x", count: 20_000)
        let shipyard = try dir.write("shipyard.yaml", """
            apiVersion: spec.keptn.sh/0.2.4
            kind: Shipyard
            metadata:
              name: bomb
            spec:
              stages:
                - name: qa
                  sequences:
                    - name: delivery
                      tasks:
                        - name: deploy
                          properties:
                            blob: &b "\(blob)"
                            copies: [*b, *b, *b, *b]

            """)
        let slo = try dir.write("slo.yaml", """
            spec_version: "1.0"
            filter:
              a: &b "\(blob)"
              c: *b
            objectives:
              - sli: response_time_p95
                pass:
                  - criteria: ["<600"]
            total_score:
              pass: "90%"

            """)
        let result = try Command.run("shipyardctl", ["lint", shipyard, slo])
        #expect(result.status == 1, "\(result.stdout)")
        #expect(result.stdout.split(separator: "\n").count == 2, "\(result.stdout)")
        #expect(result.stdout.contains("shipyard.yaml:13:17: error: the properties of this task are 97.6 KiB of text once aliases are expanded; the limit is 64 KiB"), "\(result.stdout)")
        #expect(result.stdout.contains("slo.yaml:3:3: error: filter is 39 KiB of text once aliases are expanded; the limit is 16 KiB"), "\(result.stdout)")
    }
}

/// `shipyardctl lint` on Keptn's slo.yaml and sli.yaml, recognised by their content.
@Suite struct QualityGateLintTests {
    let demo = Repository.root.appendingPathComponent("examples/demo")

    @Test func theDemoSLOAndSLIFilesAreClean() throws {
        let files = ["qa/helloservice/slo.yaml", "prometheus/sli.yaml", "shipyard-with-quality-gate.yaml"].map { demo.appendingPathComponent($0).path }
        let result = try Command.run("shipyardctl", ["lint"] + files)
        #expect(result.status == 0, "\(result.stdout)\(result.stderr)")
        #expect(result.stdout == files.map { "\($0): ok\n" }.joined())
    }

    @Test func everyMistakeOfAnSLOAtItsLineAndColumn() throws {
        let dir = try TemporaryDirectory()
        let slo = try dir.write("slo.yaml", """
            spec_version: "1.0"
            comparison:
              compare_with: "several_results"
              aggregate_function: "avg"
            objectives:
              - sli: "response_time_p95"
                pass:
                  - criteria:
                      - "<=+10%"
                      - "<6oo"
                weight: "heavy"
              - sli: "error_rate"
                key_slo: true
                pass:
                  - criteria:
                      - "<=1"
              - sli: "throughput"
            total_score:
              pass: "ninety"
              warning: "75%"

            """)
        let sli = try dir.write("sli.yaml", """
            spec_version: "1.0"
            indicators:
              response_time_p95: "histogram_quantile(0.95, rate(http_seconds_bucket[$DURATION_SECONDS]))"
              throughput: "sum(rate(http_requests_total[$DURATION_SECONDS]))"

            """)
        let result = try Command.run("shipyardctl", ["lint", slo, sli])
        #expect(result.status == 1)
        let lines = result.stdout.split(separator: "\n").map(String.init)
        // Each finding where an editor should jump.
        #expect(lines.contains { $0.hasPrefix("\(slo):10:13: error:") && $0.contains("<6oo") }, "\(result.stdout)")
        #expect(lines.contains { $0.hasPrefix("\(slo):11:13: error:") && $0.contains("weight") }, "\(result.stdout)")
        #expect(lines.contains { $0.hasPrefix("\(slo):12:5: error:") && $0.contains("error_rate") && $0.contains("SLI files") }, "\(result.stdout)")
        #expect(lines.contains { $0.hasPrefix("\(slo):13:5: error:") && $0.contains("key_slo") && $0.contains("key_sli") }, "\(result.stdout)")
        #expect(lines.contains { $0.hasPrefix("\(slo):19:9: error:") && $0.contains("ninety") }, "\(result.stdout)")
        #expect(lines.contains("\(sli): ok"))

        // Without the SLI file, the objectives are not checked against it.
        let alone = try Command.run("shipyardctl", ["lint", slo])
        #expect(!alone.stdout.contains("SLI files"))
    }

    @Test func anSLIFileWithAQueryThatIsNotAString() throws {
        let dir = try TemporaryDirectory()
        let sli = try dir.write("sli.yaml", """
            indicators:
              response_time_p95:
                query: "up"

            """)
        let result = try Command.run("shipyardctl", ["lint", sli])
        #expect(result.status == 1)
        #expect(result.stdout == "\(sli):3:5: error: the query for \"response_time_p95\" must be a string, not a mapping\n")
    }

    @Test func aWebhookFileIsCheckedAsTheDaemonReadsIt() throws {
        let dir = try TemporaryDirectory()
        let good = try dir.write("webhook.yaml", """
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
                      secretRef: {name: slack, key: url-path}
                  requests:
                    - url: https://hooks.slack.com/services/{{.env.hook}}
                      method: POST
                      payload: '{"text": {{json .data.service}}}'

            """)
        let bad = try dir.write("bad-webhook.yaml", """
            apiVersion: webhookconfig.keptn.sh/v1alpha1
            kind: WebhookConfig
            spec:
              webhooks:
                - type: sh.keptn.event.test.triggered
                  subscriptionID: ci
                  sendFinished: true
                  requests:
                    - curl -X POST https://ci.example/{{.env.token}} --output /tmp/x

            """)
        let result = try Command.run("shipyardctl", ["lint", good, bad])
        #expect(result.status == 1)
        #expect(result.stdout == """
            \(good): ok
            \(bad):9:11: error: --output writes a file; Keptn's webhooks refuse it and Shipyard does too

            """, "\(result.stdout)")
        let json = try Command.run("shipyardctl", ["lint", "--output", "json", good])
        #expect(json.status == 0)
        #expect(json.stdout.contains(#""kind":"webhook""#), "\(json.stdout)")
    }
}
