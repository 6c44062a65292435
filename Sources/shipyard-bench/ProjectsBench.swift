import Foundation
import ShipyardCore
import ShipyardDaemon
import ShipyardTestKit

/// Many projects on one host: the daemon idle between quiet polls of a loopback `git daemon`,
/// its CPU per second and per poll beside the libgit2 poll alone, memory, threads, ready time.
enum ProjectsBench {
    struct Column {
        var projects: Int
        var ready = 0.0
        var cpuPerSecond = 0.0
        var cpuPerPoll = 0.0
        var residentMB = 0.0
        var threads = 0
    }

    static let interval = 30.0

    static func run(scratch: String, port: Int, bin: String, libgit2PollCPU: Double) throws {
        let sizes = Bench.sizes("BENCH_PROJECTS", "100,1000")
        let window = Double(ProcessInfo.processInfo.environment["BENCH_PROJECTS_WINDOW"] ?? "") ?? 60
        var columns: [Column] = []
        for size in sizes {
            columns.append(try measure(projects: size, scratch: scratch, port: port, bin: bin, window: window))
        }
        print("")
        print("Projects: N projects on one loopback git daemon, polled every \(Int(interval))s, nothing changing upstream (CPU over \(Int(window))s once all were polled):")
        func row(_ label: String, _ value: (Column) -> String) { Bench.row(label, columns, width: 48, value) }
        row("projects") { "\($0.projects)" }
        row("ready (target < 2 s at 1,000)") { String(format: "%.2f s", $0.ready) }
        row("CPU, % of one core (< 3% at 1,000)") { String(format: "%.2f %%", $0.cpuPerSecond * 100) }
        row("CPU per quiet poll (< 3x libgit2's)") { String(format: "%.3f ms", $0.cpuPerPoll * 1000) }
        row("  the libgit2 poll alone") { _ in String(format: "%.3f ms", libgit2PollCPU * 1000) }
        row("resident memory (< 80 MB at 1,000)") { String(format: "%.1f MB", $0.residentMB) }
        row("threads (poll pool: \(DaemonConfig.defaultPollThreads))") { "\($0.threads)" }
        print("  (before the poll pool and per-project status: 1,000 projects used 91% of a core, 430 MB and 216 threads)")
    }

    static func measure(projects: Int, scratch: String, port: Int, bin: String, window: Double) throws -> Column {
        var column = Column(projects: projects)
        let state = scratch + "/projects-\(projects)"
        try? FileManager.default.removeItem(atPath: state)
        var config = "stateDirectory: \(state)\nprojects:\n"
        for i in 0..<projects {
            config += "  - name: p-\(i)\n    upstream: git://127.0.0.1:\(port)/upstream.git\n    pollInterval: \(Int(interval))s\n"
        }
        let path = scratch + "/projects-config.yaml"
        try config.write(toFile: path, atomically: true, encoding: .utf8)
        let t0 = Date()
        let daemon = try SequenceBench.start(bin: bin, config: path, scratch: scratch)
        try SequenceBench.waitUntil(timeout: 120) { SequenceBench.readyLogged(scratch) }
        column.ready = Date().timeIntervalSince(t0)
        // Every project polled once (its first poll makes its mirror), then quiet.
        try SequenceBench.waitUntil(timeout: 600) {
            guard let data = FileManager.default.contents(atPath: state + "/status.json"),
                let status = try? JSON.decode(DaemonStatus.self, from: data)
            else { return false }
            return status.projects.count == projects && status.projects.allSatisfy { $0.lastSuccessAt != nil }
        }
        sleep(5)
        let cpu0 = cpuSeconds(daemon.pid)
        let start = Date()
        Thread.sleep(forTimeInterval: window)
        let elapsed = Date().timeIntervalSince(start)
        let cpu = cpuSeconds(daemon.pid) - cpu0
        column.cpuPerSecond = cpu / elapsed
        column.cpuPerPoll = cpu / (Double(projects) * elapsed / interval)
        column.residentMB = Double(SequenceBench.residentKB(daemon.pid)) / 1024
        column.threads = threads(daemon.pid)
        daemon.signal(SIGTERM)
        daemon.wait()
        try? FileManager.default.removeItem(atPath: state)
        return column
    }

    /// utime + stime of a process, in seconds.
    static func cpuSeconds(_ pid: pid_t) -> Double {
        let stat = (try? String(contentsOfFile: "/proc/\(pid)/stat", encoding: .utf8)) ?? ""
        // Fields after the command name, which ends with the last ')'.
        guard let close = stat.lastIndex(of: ")") else { return 0 }
        let fields = stat[stat.index(after: close)...].split(separator: " ")
        guard fields.count > 13, let user = Double(fields[11]), let system = Double(fields[12]) else { return 0 }
        return (user + system) / Double(sysconf(Int32(_SC_CLK_TCK)))
    }

    static func threads(_ pid: pid_t) -> Int {
        ((try? FileManager.default.contentsOfDirectory(atPath: "/proc/\(pid)/task")) ?? []).count
    }
}
