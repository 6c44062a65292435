import Foundation
import ShipyardCore
import ShipyardDaemon
import ShipyardTestKit

/// What a year of history costs: a journal of an earlier release with N two-stage deliveries
/// (and 20 waiting for approval) is imported at the first start; then the daemon's ready time
/// and memory at the next start, and the CLI's reads, side by side for each N.
enum HistoryBench {
    struct Column {
        var deliveries: Int
        var journalMB = 0.0
        var importSeconds = 0.0
        var ready = 0.0
        var residentMB = 0.0
        var sequences = 0.0
        var sequence = 0.0
        var events = 0.0
        var databaseMB = 0.0
    }

    static func run(scratch: String, repository: String, bin: String) throws {
        let sizes = Bench.sizes("BENCH_HISTORY", "0,1000,40000")
        let commit = try Run.checked("/usr/bin/git", ["--git-dir", repository, "rev-parse", "main"]).trimmingCharacters(in: .whitespacesAndNewlines)
        var columns: [Column] = []
        for size in sizes {
            columns.append(try measure(deliveries: size, scratch: scratch, repository: repository, commit: commit, bin: bin))
        }
        print("")
        print("History: two-stage deliveries over one year (16 events each) and 20 waiting for approval, imported from an earlier release's journal:")
        func row(_ label: String, _ value: (Column) -> String) { Bench.row(label, columns, width: 46, value) }
        row("deliveries in the history") { $0.deliveries == 0 ? "none" : "\($0.deliveries)" }
        row("old journal") { String(format: "%.1f MB", $0.journalMB) }
        row("import at the first start") { String(format: "%.1f s", $0.importSeconds) }
        row("record (SQLite) after the import") { String(format: "%.1f MB", $0.databaseMB) }
        row("ready, next start (target < 1 s)") { String(format: "%.2f s", $0.ready) }
        row("resident memory (target < 60 MB)") { String(format: "%.1f MB", $0.residentMB) }
        row("shipyardctl sequences (< 100 ms)") { String(format: "%.0f ms", $0.sequences * 1000) }
        row("shipyardctl sequence CONTEXT (< 100 ms)") { String(format: "%.0f ms", $0.sequence * 1000) }
        row("shipyardctl events --context C (< 100 ms)") { String(format: "%.0f ms", $0.events * 1000) }
        print("  (medians of 5; before the store, 40,000 deliveries took 36 s to start, 762 MB, and 40 s per shipyardctl sequences)")
    }

    static func measure(deliveries: Int, scratch: String, repository: String, commit: String, bin: String) throws -> Column {
        var column = Column(deliveries: deliveries)
        let state = scratch + "/history-\(deliveries)"
        try? FileManager.default.removeItem(atPath: state)
        let journal = state + "/journal/events.jsonl"
        let summary = try HistoryJournal.write(
            to: journal, project: "shop", deliveries: deliveries, start: Date().addingTimeInterval(-365 * 86400),
            spacing: 365 * 86400 / Double(max(deliveries, 1)), waiting: 20, commit: commit)
        column.journalMB = Double(summary.bytes) / 1_048_576
        let config = scratch + "/history-config.yaml"
        try """
            stateDirectory: \(state)
            projects:
              - name: shop
                upstream: file://\(repository)
                pollInterval: 1h

            """.write(toFile: config, atomically: true, encoding: .utf8)

        // First start: the import.
        var daemon = try SequenceBench.start(bin: bin, config: config, scratch: scratch)
        try SequenceBench.waitUntil(timeout: 1200) { SequenceBench.readyLogged(scratch) }
        let log = (try? String(contentsOfFile: scratch + "/seq-daemon.log", encoding: .utf8)) ?? ""
        if let range = log.range(of: #"sequences in [0-9.]+s"#, options: .regularExpression) {
            column.importSeconds = Double(log[range].dropFirst("sequences in ".count).dropLast()) ?? 0
        }
        daemon.signal(SIGTERM)
        daemon.wait()
        column.databaseMB = Double(((try? FileManager.default.attributesOfItem(atPath: StateDirectory(state).storeFile))?[.size] as? Int) ?? 0) / 1_048_576

        // Next start: what every restart costs from then on.
        let t0 = Date()
        daemon = try SequenceBench.start(bin: bin, config: config, scratch: scratch)
        try SequenceBench.waitUntil(timeout: 120) { SequenceBench.readyLogged(scratch) }
        column.ready = Date().timeIntervalSince(t0)
        usleep(500_000)
        column.residentMB = Double(SequenceBench.residentKB(daemon.pid)) / 1024

        let middle = summary.finished.isEmpty ? (summary.waiting.first ?? "none") : summary.finished[summary.finished.count / 2]
        func median(_ arguments: [String]) throws -> Double {
            var times: [Double] = []
            for _ in 0..<5 {
                let t = Date()
                _ = try Run.checked(bin + "/shipyardctl", arguments + ["--state-dir", state])
                times.append(Date().timeIntervalSince(t))
            }
            return times.sorted()[2]
        }
        column.sequences = try median(["sequences"])
        column.sequence = try median(["sequence", middle])
        column.events = try median(["events", "--context", middle])
        daemon.signal(SIGTERM)
        daemon.wait()
        if ProcessInfo.processInfo.environment["BENCH_KEEP"] != nil {
            print(state)
            print((try? String(contentsOfFile: scratch + "/seq-daemon.log", encoding: .utf8)) ?? "")
            return column
        }
        try? FileManager.default.removeItem(atPath: state)
        return column
    }
}
