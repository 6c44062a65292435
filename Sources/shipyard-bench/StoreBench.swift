import Foundation
import ShipyardCore
import ShipyardDaemon
import ShipyardStore
import ShipyardTestKit

/// The record's append cost on SQLite and on PostgreSQL (Debian's server on loopback, a cluster
/// of the bench's own), as the record grows: two events per durable transaction (a task's
/// `.finished` and the next `.triggered`), fenced by the lease on PostgreSQL; and the approval
/// latency of a daemon on each.
enum StoreBench {
    static func run(scratch: String) throws {
        guard PostgresServer.isInstalled else {
            print("\nStore appends: PostgreSQL is not installed (make test-deps installs it); skipped")
            return
        }
        // Durable like SQLite's FULL: fsync on (the tests' server runs without it).
        let server = try PostgresServer(extraSettings: ["fsync=on", "synchronous_commit=on"])
        let sqlite = try SQLiteStore(writingAt: scratch + "/store-bench.db")
        let settings = PostgresSettings(url: server.url(database: try server.database()), password: server.password, holder: "bench")
        let postgres = try PostgresStore(settings)
        postgres.fence = try PostgresLease(settings, duration: 3600).take()
        let steps = Int(ProcessInfo.processInfo.environment["BENCH_STORE_STEPS"] ?? "") ?? 2000
        print("")
        print("Store appends: two events per durable transaction (one delivery step), \(steps) transactions per size")
        print(pad("events in the record", 24) + pad("SQLite (WAL, FULL)", 24) + "PostgreSQL (loopback, fenced)")
        var written = 0
        for target in [0, 20_000, 100_000] {
            // Grow both records to the size, then measure.
            if target > written {
                try append(sqlite, postgres, steps: (target - written) / 2, measure: false)
                written = target
            }
            let (a, b) = try append(sqlite, postgres, steps: steps, measure: true)
            written += 2 * steps
            print(pad("\(target)", 24) + pad(String(format: "%.0f steps/s (%.2f ms)", Double(steps) / a, a * 1000 / Double(steps)), 24)
                + String(format: "%.0f steps/s (%.2f ms)", Double(steps) / b, b * 1000 / Double(steps)))
        }
        print("  (both durable at each commit: SQLite synchronous=FULL, PostgreSQL fsync=on and synchronous_commit=on, on this machine's disk)")
        try approvalLatency(server: server, scratch: scratch)
    }

    /// SequenceBench's approval latency with the daemon on PostgreSQL (the leader of one).
    static func approvalLatency(server: PostgresServer, scratch: String) throws {
        let bin = URL(fileURLWithPath: "/proc/self/exe").resolvingSymlinksInPath().deletingLastPathComponent().path
        let state = scratch + "/pg-state"
        let config = scratch + "/pg-config.yaml"
        try SequenceBench.writeConfig(config, state: state, repository: scratch + "/upstream.git", scratch: scratch, extra: """
            store:
              postgres:
                url: \(server.url(database: try server.database()))
                passwordFile: \(server.passwordFile)
            """)
        let daemon = try SequenceBench.start(bin: bin, config: config, scratch: scratch)
        defer {
            daemon.signal(SIGTERM)
            daemon.wait()
        }
        try SequenceBench.waitUntil(timeout: 30) {
            guard let data = FileManager.default.contents(atPath: state + "/status.json"),
                let status = try? JSON.decode(DaemonStatus.self, from: data)
            else { return false }
            return status.projects.first?.stages == ["bench"] && status.cluster?.role == "leader"
        }
        print("On PostgreSQL:")
        try SequenceBench.approvalLatency(bin: bin, state: state, scratch: scratch)
    }

    /// Appends `steps` steps to both stores; the seconds each took.
    @discardableResult
    static func append(_ sqlite: SQLiteStore, _ postgres: PostgresStore, steps: Int, measure: Bool) throws -> (Double, Double) {
        var times = (0.0, 0.0)
        for (index, store) in [sqlite as any Store, postgres].enumerated() {
            let start = Date()
            for step in 0..<steps {
                let context = UUID().uuidString.lowercased()
                let events = (0..<2).map { n in
                    KeptnEvent(
                        id: UUID().uuidString.lowercased(), source: "bench", type: "sh.keptn.event.qa.delivery.\(n == 0 ? "triggered" : "started")",
                        time: Timestamps.format(Date()), context: context,
                        data: .object(["project": .string("bench"), "stage": .string("qa"), "service": .string("svc-\(step % 20)")]))
                }
                try store.commit(events: events, changes: [])
            }
            let seconds = Date().timeIntervalSince(start)
            if index == 0 { times.0 = seconds } else { times.1 = seconds }
        }
        return times
    }

    static func pad(_ text: String, _ width: Int) -> String {
        text.count >= width ? text + " " : text + String(repeating: " ", count: width - text.count)
    }
}
