import Foundation
import HummingbirdBcrypt
import ShipyardCore
import ShipyardDaemon
import ShipyardTestKit
import Testing

extension WebTests {
    @Test func metricsParseAndMoveWithRealDeliveries() async throws {
        let world = try World(shipyard: Self.shipyard, extraConfig: "http:\n  listen: 127.0.0.1:0")
        #expect(await world.ready())
        let web = try await web(world)
        let script = """
            import sys, json
            from prometheus_client.parser import text_string_to_metric_families
            out = {}
            for family in text_string_to_metric_families(sys.stdin.read()):
                for sample in family.samples:
                    key = sample.name + "{" + ",".join("%s=%s" % kv for kv in sorted(sample.labels.items())) + "}"
                    out[key] = sample.value
            print(json.dumps(out))
            """
        func metrics() throws -> [String: Double] {
            let text = try web.get("/metrics").body
            let parsed = try Run.capture("/usr/bin/python3", ["-c", script], stdin: Data(text.utf8))
            #expect(parsed.status == 0, "the Prometheus parser refused /metrics: \(parsed.stderr)\n\(text)")
            return (try JSONSerialization.jsonObject(with: Data(parsed.stdout.utf8)) as? [String: Double]) ?? [:]
        }
        let before = try metrics()
        #expect(before["shipyard_up{}"] == 1)
        #expect((before["shipyard_polls_total{outcome=fetched,project=fulltour}"] ?? 0) >= 1)
        let (context, id) = try await waitingApproval(world)
        let waiting = try metrics()
        #expect(waiting["shipyard_approvals_pending{}"] == 1)
        #expect(waiting["shipyard_sequences_active{state=waitingForApproval}"] == 1)
        #expect(waiting["shipyard_task_runs_total{result=pass,task=je-deployment}"] == 1)
        #expect(waiting["shipyard_task_runs_total{result=pass,task=je-test}"] == 1)
        #expect((waiting["shipyard_requests_total{kind=trigger,outcome=accepted}"] ?? 0) >= 1)
        #expect(try world.daemon.ctl(["approve", id]).status == 0)
        #expect(await world.waitState(context, "production", "finished"))
        let after = try metrics()
        #expect(after["shipyard_approvals_pending{}"] == 0)
        #expect(after["shipyard_task_runs_total{result=pass,task=je-deployment}"] == 2)
        #expect(after["shipyard_task_runs_total{result=pass,task=approval}"] == 1)
        #expect(after["shipyard_sequences_ended_total{result=pass,state=finished}"] == 2)
        #expect((after["shipyard_task_duration_seconds_count{task=je-test}"] ?? 0) == 1)
    }

    @Test func aPageNeverBreaksOnMarkupInAMessage() async throws {
        let hostile = #"<script>alert("x")</script> and 'quotes' & <b>bold</b> and "# + "gnp.\u{202E}exe and a\u{200B}b"
        let world = try World(shipyard: Self.shipyard, testCommand: { dir in
            let path = dir + "/tasks/hostile-test"
            try writeFile(path, Data("""
                #!/bin/sh
                cat > "$SHIPYARD_RESULT" <<'JSON'
                {"result": "fail", "message": \(try String(decoding: JSONEncoder().encode(hostile), as: UTF8.self))}
                JSON

                """.utf8), mode: 0o755)
            return path
        }, extraConfig: "http:\n  listen: 127.0.0.1:0")
        #expect(await world.ready())
        let web = try await web(world)
        let context = try world.trigger()
        #expect(await world.waitState(context, "qa", "finished"))
        for path in ["/deliveries/\(context)", "/deliveries", "/deliveries?service=%3Cscript%3E"] {
            let page = try web.get(path)
            #expect(page.status == 200)
            #expect(!page.body.contains("<script>alert"), "\(path)")
            #expect(!page.body.contains("<b>bold"), "\(path)")
        }
        let page = try web.get("/deliveries/\(context)")
        #expect(page.body.contains("&lt;script&gt;alert(&quot;x&quot;)&lt;/script&gt; and &#39;quotes&#39; &amp; &lt;b&gt;bold&lt;/b&gt;"))
        #expect(page.body.contains("Why: "))
        // A right-to-left override and a zero-width space are shown, not obeyed.
        #expect(page.body.contains(#"gnp.\u{202e}exe and a\u{200b}b"#), "\(page.body)")
        #expect(!page.body.unicodeScalars.contains { $0.value == 0x202E || $0.value == 0x200B })
    }
}
