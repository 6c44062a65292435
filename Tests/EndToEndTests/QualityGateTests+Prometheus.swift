import Foundation
import ShipyardCore
import ShipyardDaemon
import ShipyardTestKit
import Synchronization
import Testing

extension QualityGateTests {
    @Test(.enabled(if: PrometheusServer.isInstalled, "Debian's prometheus package is not installed (make test installs it)"))
    func aRealPrometheusDecidesTheGateAndItsAbsenceFailsTheEvaluation() async throws {
        let scratch = try TemporaryDirectory()
        func metrics(_ responseTime: Double, _ errors: Double) -> String {
            """
            # TYPE app_response_time_p95_ms gauge
            app_response_time_p95_ms{service="helloservice",stage="qa"} \(responseTime)
            # TYPE app_error_rate_percent gauge
            app_error_rate_percent{service="helloservice",stage="qa"} \(errors)

            """
        }
        let exporter = try MetricsExporter(scratch: scratch.path, metrics: metrics(300, 0))
        let prometheus = try PrometheusServer(scratch: scratch.path, job: "helloservice", targets: ["127.0.0.1:\(exporter.port)"])
        let latest = #"app_response_time_p95_ms{service="helloservice",stage="qa"}"#
        #expect(await eventually(timeout: .seconds(60), every: .milliseconds(200)) { prometheus.query(latest) == 300 })

        let world = try World(
            provider: { _ in
                """
                    sliProvider:
                      prometheus:
                        url: \(prometheus.url)
                        timeout: 5s
                """
            },
            files: ["prometheus/sli.yaml": Self.prometheusSLI])
        #expect(await world.ready())

        let good = try world.delivery()
        #expect(await world.waitState(good, "production", "finished"))
        #expect(world.deployed(good, in: "production"))
        #expect(world.evaluation(good)?["result"] as? String == "pass")
        let value = (indicator(world.evaluation(good), "response_time_p95")?["value"] as? [String: Any])?["value"] as? Double
        #expect(value == 300)
        let firstID = try #require(world.evaluationEventID(good))

        // Slower (the window's maximum is what the SLI asks for): a warning, production waits.
        try exporter.set(metrics(500, 0))
        #expect(await eventually(timeout: .seconds(60), every: .milliseconds(200)) { prometheus.query(latest) == 500 })
        let slower = try world.delivery("ghcr.io/podtato-head/podtatoserver:v0.2.1")
        #expect(await world.waitState(slower, "production", "waitingForApproval"))
        #expect(world.evaluation(slower)?["result"] as? String == "warning")
        #expect(compared(world.evaluation(slower)) == [firstID])
        #expect(!world.deployed(slower, in: "production"))

        // Broken: errors over the key SLI's limit; nothing is deployed in production.
        try exporter.set(metrics(2500, 20))
        #expect(await eventually(timeout: .seconds(60), every: .milliseconds(200)) { prometheus.query(latest) == 2500 })
        let broken = try world.delivery("ghcr.io/podtato-head/podtatoserver:v0.2.2")
        #expect(await world.waitState(broken, "qa", "finished"))
        #expect(world.evaluation(broken)?["result"] as? String == "fail")
        #expect(world.state(broken, "production") == nil)

        // A triggerer's label cannot rewrite the query: a series that does not exist (a fail)
        // stays a fail, whatever the label says ("or vector(0)" made it a pass with score 100).
        let teamSLI = Self.prometheusSLI.replacingOccurrences(of: #"stage=\"$STAGE\"}"#, with: #"stage=\"$STAGE\",team=\"$LABEL.team\"}"#)
        #expect(teamSLI != Self.prometheusSLI)
        let labelled = try world.upstream.commit(["prometheus/sli.yaml": teamSLI])
        #expect(await world.daemon.waitFor("fulltour") { $0.commit == labelled } != nil)
        try exporter.set(metrics(300, 0))
        #expect(await eventually(timeout: .seconds(60), every: .milliseconds(200)) { prometheus.query(latest) == 300 })
        for label in [#"team=x"}[1m]) or vector(0) #"#, "team=x\"} or vector(0) or app_error_rate_percent{team=\"x"] {
            let injected = try world.trigger(["evaluation", "--stage", "qa", "--service", "helloservice", "--timeframe", "5m", "--label", label])
            #expect(await world.waitState(injected, "qa", "finished"))
            #expect(world.evaluation(injected)?["result"] as? String == "fail", "\(label): \(world.sequenceText(injected))")
        }

        // Prometheus goes away: the evaluation fails and says so; the daemon carries on.
        prometheus.stop()
        let gone = try world.trigger(["evaluation", "--stage", "qa", "--service", "helloservice", "--timeframe", "5m"])
        #expect(await world.waitState(gone, "qa", "finished"))
        let message = world.evaluation(gone)?["message"] as? String ?? ""
        #expect(world.evaluation(gone)?["result"] as? String == "fail")
        #expect(message.contains("Prometheus at \(prometheus.url)"), "\(message)")
        #expect(world.daemon.isRunning)
        #expect(try world.daemon.ctl(["status"]).status == 0)
    }

    /// OpenBSD's bcrypt test vector: "U*U" with the salt "CCCC…"; Prometheus's web config takes it.
    static let prometheusUser = (user: "shipyard", password: "U*U", bcrypt: "$2a$05$CCCCCCCCCCCCCCCCCCCCC.E5YPO9kmyuRGyh0XouQYb4YMJKvyOeW")

    @Test(.enabled(if: PrometheusServer.isInstalled, "Debian's prometheus package is not installed (make test installs it)"))
    func prometheusCredentialsComeFromAFileAndNeverShow() async throws {
        let scratch = try TemporaryDirectory()
        let exporter = try MetricsExporter(scratch: scratch.path, metrics: """
            app_response_time_p95_ms{service="helloservice",stage="qa"} 300
            app_error_rate_percent{service="helloservice",stage="qa"} 0

            """)
        let prometheus = try PrometheusServer(scratch: scratch.path, job: "helloservice", targets: ["127.0.0.1:\(exporter.port)"], basicAuth: Self.prometheusUser)
        #expect(await eventually(timeout: .seconds(60), every: .milliseconds(200)) {
            prometheus.query(#"app_response_time_p95_ms{service="helloservice",stage="qa"}"#) == 300
        })
        let passwordFile = try scratch.write("prometheus-password", "\(Self.prometheusUser.password)\n", mode: 0o600)
        let world = try World(
            provider: { _ in
                """
                    sliProvider:
                      prometheus:
                        url: \(prometheus.url)
                        username: shipyard
                        passwordFile: \(passwordFile)
                """
            },
            files: ["prometheus/sli.yaml": Self.prometheusSLI])
        #expect(await world.ready())
        let good = try world.delivery()
        #expect(await world.waitState(good, "production", "finished"))
        #expect(world.evaluation(good)?["result"] as? String == "pass")

        // A wrong password (read at each evaluation: no reload needed) is refused, and said so.
        try writeFile(passwordFile, Data("not-it\n".utf8))
        let refused = try world.trigger(["evaluation", "--stage", "qa", "--service", "helloservice", "--timeframe", "5m"])
        #expect(await world.waitState(refused, "qa", "finished"))
        let message = world.evaluation(refused)?["message"] as? String ?? ""
        #expect(world.evaluation(refused)?["result"] as? String == "fail")
        #expect(message.contains("refused the credentials (HTTP 401)"), "\(message)")

        // Neither password is anywhere in the record or the log.
        let record = try world.daemon.ctl(["events"]).stdout
        #expect(!record.isEmpty)
        for secret in [Self.prometheusUser.password, "not-it", "c2hpcHlhcmQ6VSpV"] {
            #expect(!record.contains(secret))
            #expect(!world.daemon.log.contains(secret))
        }
    }
}
