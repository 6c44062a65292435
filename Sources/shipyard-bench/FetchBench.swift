import Foundation
import ShipyardCore
import ShipyardDaemon
import ShipyardTestKit

/// The daemon's fetches: resident memory after many of them, and what a push to `main` costs
/// over file:// when a large unrelated branch sits beside it, against the same over git://.
enum FetchBench {
    static func run(scratch: String, bin: String) throws {
        let fetches = Int(ProcessInfo.processInfo.environment["BENCH_FETCHES"] ?? "") ?? 1000
        let dir = scratch + "/fetch"
        try FileManager.default.createDirectory(atPath: dir, withIntermediateDirectories: true)
        let upstream = try UpstreamRepository(in: dir)
        let shipyard = try String(contentsOfFile: "examples/demo/shipyard.yaml", encoding: .utf8)
        let a = try upstream.commit(["shipyard.yaml": shipyard])
        let b = try upstream.commit(["README": "b\n"])
        // 64 MiB that do not compress, on a branch nobody watches.
        try upstream.git("checkout", "-q", "-b", "assets")
        try Run.checked("/bin/dd", ["if=/dev/urandom", "of=\(upstream.work)/assets.bin", "bs=1M", "count=64", "status=none"])
        try upstream.git("add", "assets.bin")
        try upstream.commit([:], message: "assets", branch: "assets")
        try upstream.git("checkout", "-q", "main")
        let server = try GitDaemonServer(root: dir)

        print("")
        print("Fetches (each sync below moves main upstream, so the daemon fetches):")
        // Memory: main alternates between two commits the mirror has, fetch after fetch.
        let memory = try daemon(bin: bin, dir: dir + "/memory", upstream: server.url("upstream.git"))
        var at10 = 0
        let started = Date()
        for i in 1...fetches {
            try Run.checked("/usr/bin/git", ["-C", upstream.bare, "update-ref", "refs/heads/main", i % 2 == 0 ? a : b])
            try sync(bin: bin, state: dir + "/memory/state")
            if i == 10 { at10 = SequenceBench.residentKB(memory.pid) }
        }
        let atEnd = SequenceBench.residentKB(memory.pid)
        memory.kill9()
        print("  resident memory over \(fetches) fetches over git:// (\(String(format: "%.0f", Date().timeIntervalSince(started)))s):"
            + " after 10 \(at10) KB, after \(fetches) \(atEnd) KB, growth \(atEnd - at10) KB (target: under 2048 KB)")

        // A push to main beside the 64 MiB branch: CPU of the daemon (and its fetch children).
        print("  a push to main with a 64 MiB unrelated branch beside it (median of 10; CPU of shipyardd and its children):")
        for (label, url) in [("git://", server.url("upstream.git")), ("file://", upstream.fileURL)] {
            let state = dir + "/cost-\(label.dropLast(3))/state"
            let process = try daemon(bin: bin, dir: (state as NSString).deletingLastPathComponent, upstream: url)
            try sync(bin: bin, state: state)
            var costs: [Double] = []
            for i in 0..<10 {
                try upstream.commit(["README": "push \(i)\n"])
                let before = cpuSeconds(process.pid)
                try sync(bin: bin, state: state)
                costs.append(cpuSeconds(process.pid) - before)
            }
            let mirror = try Run.checked("/usr/bin/du", ["-sk", state + "/projects/bench/mirror.git"]).split(separator: "\t").first ?? "?"
            process.kill9()
            print("    \(Bench.pad(label, 10))\(Bench.ms(costs.sorted()[costs.count / 2])) per push, mirror \(mirror) KB")
        }
    }

    static func daemon(bin: String, dir: String, upstream: String) throws -> Subprocess {
        try FileManager.default.createDirectory(atPath: dir, withIntermediateDirectories: true)
        let config = dir + "/config.yaml"
        try writeFile(config, Data("stateDirectory: \(dir)/state\nprojects:\n  - name: bench\n    upstream: \(upstream)\n    pollInterval: 1h\n".utf8))
        let log = open(dir + "/daemon.log", O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0o644)
        defer { close(log) }
        let process = try Subprocess(bin + "/shipyardd", ["--config", config], stdout: log, stderr: log)
        // Ready once its local API's socket is there (the request spool of earlier releases is gone).
        try SequenceBench.waitUntil(timeout: 30) { FileManager.default.fileExists(atPath: dir + "/state/shipyardd.sock") }
        return process
    }

    static func sync(bin: String, state: String) throws {
        try Run.checked(bin + "/shipyardctl", ["sync", "--state-dir", state, "--timeout", "60"])
    }

    /// User and system time of a process and its waited-for children, from /proc.
    static func cpuSeconds(_ pid: pid_t) -> Double {
        guard let stat = try? String(contentsOfFile: "/proc/\(pid)/stat", encoding: .utf8),
            let close = stat.lastIndex(of: ")")
        else { return 0 }
        let fields = stat[stat.index(after: close)...].split(separator: " ")
        // After the command: state(0) ... utime(11) stime(12) cutime(13) cstime(14), in ticks.
        let ticks = [11, 12, 13, 14].compactMap { fields.count > $0 ? Double(fields[$0]) : nil }.reduce(0, +)
        return ticks / Double(sysconf(Int32(_SC_CLK_TCK)))
    }
}
