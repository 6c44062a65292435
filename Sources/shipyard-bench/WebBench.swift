import Foundation
import ShipyardCore
import ShipyardDaemon
import ShipyardTestKit

/// The web view under a real record: N two-stage deliveries and M waiting for approval, then the
/// time to serve the deliveries and approvals pages (the daemon renders each from the store and
/// `approvals/`), beside `shipyardctl` listing the same, and the daemon's memory with the web on.
enum WebBench {
    struct Column {
        var label: String
        var deliveries = 0.0
        var approvals = 0.0
        var delivery = 0.0
        var api = 0.0
        var cliApprovals = 0.0
        var residentMB = 0.0
        var residentOffMB = 0.0
        var streams = 0
        var streamsAsked = 0
        var streamsResidentMB = 0.0
        var streamsCPU = 0.0
        var streamsHealthz = 0.0
    }

    static func run(scratch: String, repository: String, bin: String) throws {
        let commit = try Run.checked("/usr/bin/git", ["--git-dir", repository, "rev-parse", "main"]).trimmingCharacters(in: .whitespacesAndNewlines)
        var columns: [Column] = []
        for pair in (ProcessInfo.processInfo.environment["BENCH_WEB"] ?? "100:10,5000:1000").split(separator: ",") {
            let parts = pair.split(separator: ":").compactMap { Int($0) }
            guard parts.count == 2 else { continue }
            columns.append(try measure(deliveries: parts[0], waiting: parts[1], scratch: scratch, repository: repository, commit: commit, bin: bin))
        }
        print("")
        print("Web view: the pages served by the daemon from the record (median of 20 requests over loopback):")
        func row(_ label: String, _ value: (Column) -> String) { Bench.row(label, columns, width: 52, value) }
        row("sequences / pending approvals") { $0.label }
        row("GET /deliveries (newest 200; target < 50 ms)") { String(format: "%.1f ms", $0.deliveries * 1000) }
        row("GET /approvals (target < 50 ms)") { String(format: "%.1f ms", $0.approvals * 1000) }
        row("GET /deliveries/CONTEXT") { String(format: "%.1f ms", $0.delivery * 1000) }
        row("GET /api/v1/approvals") { String(format: "%.1f ms", $0.api * 1000) }
        row("  shipyardctl approvals (the same list)") { String(format: "%.1f ms", $0.cliApprovals * 1000) }
        row("resident memory, web view on") { String(format: "%.1f MB", $0.residentMB) }
        row("resident memory, web view off") { String(format: "%.1f MB", $0.residentOffMB) }
        row("live-update streams asked for / held (cap 1,024)") { "\($0.streamsAsked) / \($0.streams)" }
        row("  resident memory with them") { String(format: "%.1f MB", $0.streamsResidentMB) }
        row("  CPU over 20 s, a sync every 2 s") { String(format: "%.1f %%", $0.streamsCPU) }
        row("  GET /healthz meanwhile (target < 1 s)") { String(format: "%.1f ms", $0.streamsHealthz * 1000) }
    }

    /// CPU seconds the process has used (user + system), from /proc.
    static func cpuSeconds(_ pid: pid_t) -> Double {
        let stat = (try? String(contentsOfFile: "/proc/\(pid)/stat", encoding: .utf8)) ?? ""
        guard let close = stat.lastIndex(of: ")") else { return 0 }
        let fields = stat[stat.index(after: close)...].split(separator: " ")
        guard fields.count > 13, let user = Double(fields[11]), let system = Double(fields[12]) else { return 0 }
        return (user + system) / Double(sysconf(Int32(_SC_CLK_TCK)))
    }

    /// `count` Server-Sent-Events clients from 127.0.1.1…32 (64 an address, the daemon's limit),
    /// held open until `stop` exists; `ready` is written once all are answered.
    static let streamClients = #"""
        import os, resource, socket, sys, time
        soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
        resource.setrlimit(resource.RLIMIT_NOFILE, (min(hard, 16384), hard))
        port, count, ready, stop = int(sys.argv[1]), int(sys.argv[2]), sys.argv[3], sys.argv[4]
        clients = []
        for i in range(count):
            s = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
            s.bind(("127.0.1.%d" % (1 + i // 64), 0))
            s.connect(("127.0.0.1", port))
            s.sendall(b"GET /events/stream HTTP/1.1\r\nHost: 127.0.0.1:%d\r\n\r\n" % port)
            clients.append(s)
        answered = 0
        for s in clients:
            s.settimeout(30)
            if b"text/event-stream" in s.recv(4096):
                answered += 1
        open(ready, "w").write(str(answered))
        for s in clients:
            s.setblocking(False)
        deadline = time.time() + 300
        while not os.path.exists(stop) and time.time() < deadline:
            for s in clients:
                try:
                    s.recv(65536)
                except OSError:
                    pass
            time.sleep(0.5)
        """#

    static func measure(deliveries: Int, waiting: Int, scratch: String, repository: String, commit: String, bin: String) throws -> Column {
        var column = Column(label: "\(2 * (deliveries + waiting)) / \(waiting)")
        let state = scratch + "/web-\(deliveries)"
        try? FileManager.default.removeItem(atPath: state)
        let summary = try HistoryJournal.write(
            to: state + "/journal/events.jsonl", project: "shop", deliveries: deliveries, start: Date().addingTimeInterval(-30 * 86400),
            spacing: 30 * 86400 / Double(max(deliveries, 1)), waiting: waiting, commit: commit)
        let port = freePort()
        func config(web: Bool) throws -> String {
            let path = scratch + "/web-config.yaml"
            try """
                stateDirectory: \(state)
                projects:
                  - name: shop
                    upstream: file://\(repository)
                    pollInterval: 1h
                \(web ? "http:\n  listen: 127.0.0.1:\(port)" : "")

                """.write(toFile: path, atomically: true, encoding: .utf8)
            return path
        }
        // Without the web view first (the import happens here).
        var daemon = try SequenceBench.start(bin: bin, config: try config(web: false), scratch: scratch)
        try SequenceBench.waitUntil(timeout: 1200) { SequenceBench.readyLogged(scratch) }
        usleep(500_000)
        column.residentOffMB = Double(SequenceBench.residentKB(daemon.pid)) / 1024
        daemon.signal(SIGTERM)
        daemon.wait()

        daemon = try SequenceBench.start(bin: bin, config: try config(web: true), scratch: scratch)
        try SequenceBench.waitUntil(timeout: 120) { SequenceBench.readyLogged(scratch) }
        let client = HTTPClient(base: "http://127.0.0.1:\(port)")
        try SequenceBench.waitUntil(timeout: 30) { (try? client.get("/readyz").status) == 200 }
        func median(_ path: String) throws -> Double {
            _ = try client.get(path)
            var times: [Double] = []
            for _ in 0..<20 {
                let t = Date()
                let reply = try client.get(path)
                times.append(Date().timeIntervalSince(t))
                guard reply.status == 200 else { throw ProcessFailure(description: "GET \(path): \(reply.status)") }
            }
            return times.sorted()[10]
        }
        column.deliveries = try median("/deliveries")
        column.approvals = try median("/approvals")
        column.delivery = try median("/deliveries/\(summary.waiting.first ?? summary.finished.first ?? "")")
        column.api = try median("/api/v1/approvals")
        var times: [Double] = []
        for _ in 0..<5 {
            let t = Date()
            _ = try Run.checked(bin + "/shipyardctl", ["approvals", "--state-dir", state])
            times.append(Date().timeIntervalSince(t))
        }
        column.cliApprovals = times.sorted()[2]
        column.residentMB = Double(SequenceBench.residentKB(daemon.pid)) / 1024

        // 2,000 live-update streams held open; the record changes every 2 s (a trigger for a
        // project that does not exist is refused, which changes nothing: a sync does).
        let count = Int(ProcessInfo.processInfo.environment["BENCH_STREAMS"] ?? "2000") ?? 2000
        let ready = scratch + "/streams-ready", stop = scratch + "/streams-stop"
        unlink(ready)
        unlink(stop)
        let clients = try Subprocess("/usr/bin/python3", ["-c", streamClients, String(port), String(count), ready, stop], stdout: 2, stderr: 2)
        try SequenceBench.waitUntil(timeout: 120) { FileManager.default.fileExists(atPath: ready) }
        column.streams = Int((try? String(contentsOfFile: ready, encoding: .utf8)) ?? "") ?? 0
        column.streamsAsked = count
        let before = cpuSeconds(daemon.pid)
        let started = Date()
        var probes: [Double] = []
        for _ in 0..<10 {
            _ = try? Run.checked(bin + "/shipyardctl", ["sync", "--state-dir", state])
            let t = Date()
            _ = try client.get("/healthz")
            probes.append(Date().timeIntervalSince(t))
            usleep(2_000_000)
        }
        column.streamsCPU = (cpuSeconds(daemon.pid) - before) / Date().timeIntervalSince(started) * 100
        column.streamsHealthz = probes.sorted()[5]
        column.streamsResidentMB = Double(SequenceBench.residentKB(daemon.pid)) / 1024
        FileManager.default.createFile(atPath: stop, contents: nil)
        _ = clients.wait()
        daemon.signal(SIGTERM)
        daemon.wait()
        try? FileManager.default.removeItem(atPath: state)
        return column
    }
}
