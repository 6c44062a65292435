import ArgumentParser
import Foundation
import ShipyardCore
import ShipyardDaemon

struct Status: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Show the daemon's state and, per project, what it last saw upstream.")

    @OptionGroup var options: StateOptions

    @Option(name: .shortAndLong, help: OutputFormat.help)
    var output: OutputFormat = .table

    func run() async throws {
        try await Self.failing {
            let data: Data
            var running: Bool?
            if let response = try options.get("/api/v1/status") {
                data = response.body
                running = true
            } else {
                // Stopped: what it last wrote, which its group may read.
                let path = try options.readable().statusFile
                guard let file = FileManager.default.contents(atPath: path) else {
                    throw CLIError("no status at \(path): shipyardd has not run with this state directory (--state-dir or SHIPYARD_STATE_DIR)")
                }
                data = file
                running = false
            }
            let path = options.state.statusFile
            let status: DaemonStatus
            do {
                status = try JSON.decode(DaemonStatus.self, from: data)
            } catch {
                throw CLIError("\(path) is not a status file shipyardctl can read: \(error)")
            }
            switch output {
            case .json:
                print(String(decoding: try JSON.encode(status), as: UTF8.self))
            case .table:
                print(Self.table(status, running: running), terminator: "")
            }
        }
    }

    static func table(_ status: DaemonStatus, running answered: Bool? = nil) -> String {
        let running = answered ?? (kill(status.pid, 0) == 0 || errno == EPERM)
        var out = running
            ? "shipyardd \(status.version) running (pid \(status.pid)) since \(status.startedAt)\n"
            : "shipyardd is not running (pid \(status.pid) is gone); the status below is from its last run\n"
        if let web = status.web { out += "web view: \(web)\n" }
        if let cluster = status.cluster {
            let leader = cluster.leader.map { "\($0) leads (epoch \(cluster.epoch ?? 0)) since \(cluster.leaderSince ?? "?")" } ?? "nobody leads at the moment"
            out += "shared record (PostgreSQL): \(leader); this host (\(cluster.name)) is \(cluster.role == "leader" ? "the leader" : "a standby")\n"
            let read = Timestamps.parse(cluster.readAt) ?? Date()
            let rows = [["HOST", "NAME", "PID", "VERSION", "LAST HEARTBEAT"]] + cluster.hosts.map { host in
                let age = Timestamps.parse(host.lastHeartbeat).map { String(format: "%.1fs before %@", read.timeIntervalSince($0), cluster.readAt) } ?? host.lastHeartbeat
                return [host.host, host.name + (host.name == cluster.leader ? " (leader)" : ""), "\(host.pid)", host.version, age]
            }
            out += Table.render(rows)
        }
        if let integrations = status.integrations, !integrations.isEmpty {
            out += "Keptn integrations (registered through the API):\n"
            let rows = [["NAME", "HOST", "VERSION", "LAST SEEN", "SUBSCRIPTIONS"]] + integrations.map { integration in
                [integration.name, integration.hostname ?? "-", integration.metadata["integrationversion"]?.string ?? "-", integration.lastSeen ?? "never",
                 integration.subscriptions.map { String($0.event.dropFirst(KeptnEvent.prefix.count)) }.joined(separator: ", ")]
            }
            out += Table.render(rows)
        }
        if status.projects.isEmpty { return out + "no projects are configured\n" }
        let rows = [["PROJECT", "BRANCH", "COMMIT", "SHIPYARD", "LAST POLL", "STATE"]] + status.projects.map { p in
            [p.name, p.branch, p.commit.map { String($0.prefix(12)) } ?? "-", p.shipyardCommit.map { String($0.prefix(12)) } ?? "-",
             p.lastPollAt ?? "never", p.error == nil ? "ok" : "error"]
        }
        out += Table.render(rows)
        for p in status.projects {
            guard let error = p.error else { continue }
            var line = "\(p.name): \(error.message)"
            if let position = error.line.map({ "\(p.shipyardPath):\($0):\(error.column ?? 1)" }) { line += " (\(position))" }
            if p.consecutiveFailures > 0 { line += " [\(p.consecutiveFailures) failed polls; next at \(p.nextPollAt ?? "?")]" }
            out += line + "\n"
        }
        for p in status.projects {
            guard let gate = p.qualityGate else { continue }
            out += "\(p.name): \(gate.passedWithoutSLO) evaluation(s) passed without an SLO file since shipyardd started; the last (\(gate.lastContext), \(gate.lastAt)): \(Untrusted.printable(gate.lastMessage, limit: 1000))\n"
        }
        return out
    }
}

enum Table {
    /// Left-aligned columns separated by two spaces. Cells are escaped: a value from a request or
    /// a repository cannot move the cursor, hide the rest of a row, or break it across lines.
    static func render(_ rows: [[String]]) -> String {
        let rows = rows.map { $0.map { Untrusted.printable($0, limit: 200) } }
        guard let width = rows.first?.count else { return "" }
        let widths = (0..<width).map { column in rows.map { $0[column].count }.max() ?? 0 }
        return rows.map { row in
            row.enumerated().map { index, cell in
                index == width - 1 ? cell : cell.padding(toLength: widths[index], withPad: " ", startingAt: 0)
            }.joined(separator: "  ")
        }.joined(separator: "\n") + "\n"
    }
}
