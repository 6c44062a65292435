import Foundation
import ShipyardCore
import ShipyardDaemon
import ShipyardStore
import ShipyardTestKit

/// Webhooks: the daemon's CPU per notification, as the number of deliveries grows, beside what a
/// Keptn user does without webhooks (a task program that runs curl); and a receiver that hangs,
/// which must delay no other delivery.
enum WebhookBench {
    static let shipyard = """
        apiVersion: spec.keptn.sh/0.2.4
        kind: Shipyard
        spec:
          stages:
            - name: bench
              sequences:
                - name: run
                  tasks:
                    - name: noop
                - name: deliver
                  tasks:
                    - name: deploy

        """

    static func hooks(_ server: HookServer) -> String {
        """
        apiVersion: webhookconfig.keptn.sh/v1beta1
        kind: WebhookConfig
        spec:
          webhooks:
            - type: sh.keptn.event.noop.started
              subscriptionID: started
              requests:
                - url: "\(server.url("/ok/started"))?context={{.shkeptncontext}}"
                  method: POST
                  headers: [{key: Content-Type, value: application/json}]
                  payload: '{"text": {{json (print .data.service " started in " .data.stage)}}}'
            - type: sh.keptn.event.noop.finished
              subscriptionID: finished
              requests:
                - url: "\(server.url("/ok/finished"))?context={{.shkeptncontext}}"
                  method: POST
                  headers: [{key: Content-Type, value: application/json}]
                  payload: '{"text": {{json (print .data.service " " .data.result)}}}'
            - type: sh.keptn.event.deploy.triggered
              subscriptionID: ci
              sendFinished: true
              requests:
                - url: "\(server.url("/ok/ci"))?service={{.data.service}}"
                  method: POST
            - type: sh.keptn.event.deploy.triggered
              subscriptionID: stuck
              sendFinished: true
              requests:
                - url: "\(server.url("/hang"))?service={{.data.service}}"
                  method: POST
                  options: "--max-time 60"

        """
    }

    struct Column {
        var sequences: Int
        var without = 0.0
        var with = 0.0
    }

    static func run(scratch: String, bin: String) throws {
        let dir = scratch + "/webhooks"
        try FileManager.default.createDirectory(atPath: dir, withIntermediateDirectories: true)
        let server = try HookServer(scratch: dir, name: "bench")
        let repository = dir + "/upstream.git"
        try Run.checked("/usr/bin/git", ["init", "-q", "--bare", "-b", "main", repository])
        try Run.checked("/usr/bin/git", ["clone", "-q", repository, dir + "/work"])
        try FileManager.default.createDirectory(atPath: dir + "/work/webhook", withIntermediateDirectories: true)
        try shipyard.write(toFile: dir + "/work/shipyard.yaml", atomically: true, encoding: .utf8)
        try hooks(server).write(toFile: dir + "/work/webhook/webhook.yaml", atomically: true, encoding: .utf8)
        try Run.checked("/usr/bin/git", ["-C", dir + "/work", "add", "."])
        try Run.checked("/usr/bin/git", ["-C", dir + "/work", "-c", "user.name=b", "-c", "user.email=b@b", "commit", "-qm", "bench"])
        try Run.checked("/usr/bin/git", ["-C", dir + "/work", "push", "-q", "origin", "HEAD:main"])

        var columns: [Column] = []
        for size in Bench.sizes("BENCH_WEBHOOK_SEQUENCES", "100,400") {
            var column = Column(sequences: size)
            column.without = try cpuPerSequence(size, notify: false, dir: dir, repository: repository, server: server, bin: bin)
            column.with = try cpuPerSequence(size, notify: true, dir: dir, repository: repository, server: server, bin: bin)
            columns.append(column)
        }
        print("")
        print("Webhooks: one-task deliveries (task /bin/true) with and without a notification on the task's .started and .finished (loopback receiver):")
        func row(_ label: String, _ value: (Column) -> String) { Bench.row(label, columns, width: 52, value) }
        row("deliveries") { "\($0.sequences)" }
        row("daemon CPU per delivery, no webhooks") { String(format: "%.2f ms", $0.without * 1000) }
        row("daemon CPU per delivery, 2 notifications") { String(format: "%.2f ms", $0.with * 1000) }
        row("CPU per notification (render, send, record)") { String(format: "%.2f ms", max(0, $0.with - $0.without) / 2 * 1000) }
        if FileManager.default.isExecutableFile(atPath: "/usr/bin/curl") {
            let payload = #"{"text": "carts started in bench"}"#
            let curl = Bench.measure(50, child: true) {
                try? Bench.run("/usr/bin/curl", ["-s", "-o", "/dev/null", "-X", "POST", "-H", "Content-Type: application/json", "--data", payload, server.url("/ok/curl")])
            }
            print(String(format: "  without webhooks, a task program running curl per notification: %.2f ms CPU (curl alone; fork, exec and the task's own record not counted)", curl.cpu * 1000))
        }
        try hangingReceiver(dir: dir, repository: repository, server: server, bin: bin)
    }

    static func config(_ dir: String, state: String, repository: String, subscriptions: String, extra: String = "") -> String {
        """
        stateDirectory: \(state)
        projects:
          - name: bench
            upstream: file://\(repository)
            pollInterval: 1h
            webhooks:
        \(subscriptions)
        tasks:
          noop:
            command: ["/bin/true"]
        webhooks:
          allow: [127.0.0.1/32]
          timeout: 60s
        stopGracePeriod: 0s
        \(extra)
        """
    }

    /// The daemon's CPU per delivery over `count` deliveries triggered by 16 clients at once.
    static func cpuPerSequence(_ count: Int, notify: Bool, dir: String, repository: String, server: HookServer, bin: String) throws -> Double {
        let state = dir + "/state-\(count)-\(notify)"
        let path = dir + "/config.yaml"
        let subscriptions = notify ? "          - on: noop.started\n            subscriptionID: started\n          - on: noop.finished\n            subscriptionID: finished" : "          []"
        try config(dir, state: state, repository: repository, subscriptions: subscriptions).write(toFile: path, atomically: true, encoding: .utf8)
        let daemon = try SequenceBench.start(bin: bin, config: path, scratch: dir)
        defer {
            daemon.signal(SIGTERM)
            daemon.wait()
        }
        try SequenceBench.waitUntil(timeout: 60) { SequenceBench.loadedShipyard(state) }
        let received = server.requests.count
        let api = LocalAPIClient(path: StateDirectory(state).socket)
        let cpu0 = ProjectsBench.cpuSeconds(daemon.pid)
        DispatchQueue.concurrentPerform(iterations: 16) { client in
            for i in stride(from: client, to: count, by: 16) {
                _ = try? api.post("/api/v1/sequences", json: TriggerBody(project: "bench", service: "svc-\(i % 20)", sequence: "run"), timeout: .seconds(60))
            }
        }
        try SequenceBench.waitUntil(timeout: 600) { SequenceBench.finishedCount(state) >= count }
        if notify { try SequenceBench.waitUntil(timeout: 600) { server.requests.count >= received + 2 * count } }
        return (ProjectsBench.cpuSeconds(daemon.pid) - cpu0) / Double(count)
    }

    /// Deliveries whose task a webhook performs: their latency alone, then with 20 deliveries
    /// stuck on a receiver that never answers (each request held until its 60 s timeout).
    static func hangingReceiver(dir: String, repository: String, server: HookServer, bin: String) throws {
        let state = dir + "/state-hang"
        let path = dir + "/config.yaml"
        let fast = (0..<40).map { "fast-\($0)" }
        let stuck = (0..<20).map { "stuck-\($0)" }
        let subscriptions = """
                      - on: deploy.triggered
                        subscriptionID: ci
                        services: [\(fast.joined(separator: ", "))]
                      - on: deploy.triggered
                        subscriptionID: stuck
                        services: [\(stuck.joined(separator: ", "))]
            """
        try config(dir, state: state, repository: repository, subscriptions: subscriptions).write(toFile: path, atomically: true, encoding: .utf8)
        let daemon = try SequenceBench.start(bin: bin, config: path, scratch: dir)
        defer {
            daemon.signal(SIGKILL)
            daemon.wait()
        }
        try SequenceBench.waitUntil(timeout: 60) { SequenceBench.loadedShipyard(state) }
        let api = LocalAPIClient(path: StateDirectory(state).socket)
        func deliver(_ services: ArraySlice<String>) {
            DispatchQueue.concurrentPerform(iterations: services.count) { i in
                _ = try? api.post("/api/v1/sequences", json: TriggerBody(project: "bench", service: services[services.startIndex + i], sequence: "deliver"), timeout: .seconds(60))
            }
        }
        func latencies(_ services: ArraySlice<String>) throws -> [Double] {
            try SequenceBench.waitUntil(timeout: 120) {
                let done = (try? SQLiteStore(readingAt: StateDirectory(state).storeFile).sequences(SequenceQuery(state: .finished)).sequences) ?? []
                return Set(done.map(\.service)).isSuperset(of: services)
            }
            let store = try SQLiteStore(readingAt: StateDirectory(state).storeFile)
            let done = try store.sequences(SequenceQuery(state: .finished)).sequences.filter { services.contains($0.service) }
            return done.compactMap { s in s.finishedAt.map { $0.timeIntervalSince(s.triggeredAt) * 1000 } }.sorted()
        }
        deliver(fast[0..<20])
        let alone = try latencies(fast[0..<20])
        let hanging = server.requests.filter { ($0["path"] as? String ?? "").hasPrefix("/hang") }.count
        deliver(stuck[0...])
        try SequenceBench.waitUntil(timeout: 60) {
            server.requests.filter { ($0["path"] as? String ?? "").hasPrefix("/hang") }.count >= hanging + 8
        }
        deliver(fast[20...])
        let beside = try latencies(fast[20...])
        let stillStuck = ((try? SQLiteStore(readingAt: StateDirectory(state).storeFile).sequences(SequenceQuery(state: .started)).sequences) ?? []).count
        print("")
        print("A receiver that hangs: 20 deliveries whose task a webhook performs (2xx at once), trigger to finish:")
        print(String(format: "  alone:                                             median %.0f ms, max %.0f ms", alone[alone.count / 2], alone.last ?? 0))
        print(String(format: "  beside 20 deliveries stuck on a hanging receiver:  median %.0f ms, max %.0f ms (%d still waiting on it)", beside[beside.count / 2], beside.last ?? 0, stillStuck))
        print("  (requests are bounded per subscription, webhooks.concurrency each: the hanging receiver's requests wait for its own slots only)")
    }
}
