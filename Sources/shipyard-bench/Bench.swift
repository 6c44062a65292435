import Foundation
import ShipyardCore
import ShipyardGit
import ShipyardTestKit

/// `make bench`: the daemon's Git polling measured side by side with what users would otherwise
/// run (git-sync's `git fetch`, Argo CD's `git ls-remote`), on the same loopback remotes.
@main
struct Bench {
    static func main() throws {
        let polls = Int(ProcessInfo.processInfo.environment["BENCH_POLLS"] ?? "") ?? 10_000
        // mkdtemp: a name of our own, never a folder someone else made first in the shared /tmp.
        var template = Array((FileManager.default.temporaryDirectory.path + "/shipyard-bench.XXXXXX").utf8CString)
        guard let made = mkdtemp(&template) else { throw POSIXError(POSIXErrorCode(rawValue: errno) ?? .EIO) }
        let dir = String(cString: made)
        defer { try? FileManager.default.removeItem(atPath: dir) }

        let repo = dir + "/upstream.git"
        try run("/usr/bin/git", ["init", "-q", "--bare", "-b", "main", repo])
        try run("/usr/bin/git", ["clone", "-q", repo, dir + "/work"])
        let shipyard = try String(contentsOfFile: "examples/demo/shipyard.yaml", encoding: .utf8)
        try shipyard.write(toFile: dir + "/work/shipyard.yaml", atomically: true, encoding: .utf8)
        for i in 0..<50 {
            try "\(i)\n".write(toFile: dir + "/work/file\(i % 7).txt", atomically: true, encoding: .utf8)
            try run("/usr/bin/git", ["-C", dir + "/work", "add", "."])
            try run("/usr/bin/git", ["-C", dir + "/work", "-c", "user.name=b", "-c", "user.email=b@b", "commit", "-q", "-m", "c\(i)"])
        }
        try run("/usr/bin/git", ["-C", dir + "/work", "push", "-q", "origin", "main"])
        try run("/usr/bin/git", ["clone", "-q", "--bare", repo, dir + "/fetcher.git"])

        let server = try GitDaemonServer(root: dir)
        let port = server.port

        let bin = URL(fileURLWithPath: "/proc/self/exe").resolvingSymlinksInPath().deletingLastPathComponent().path
        // BENCH_ONLY=projects runs that section alone (with the libgit2 poll it is compared to);
        // evaluation, web, sequences, webhooks and fetch likewise.
        let only = ProcessInfo.processInfo.environment["BENCH_ONLY"]
        if only == "evaluation" {
            try EvaluationBench.run(scratch: dir)
            return
        }
        if only == "sequences" {
            // Deliveries, approval latency, the approvals listing and a year of history.
            try SequenceBench.run(scratch: dir, repository: repo)
            return
        }
        if only == "store" {
            try SequenceBench.prepare(scratch: dir, repository: repo)
            try StoreBench.run(scratch: dir)
            return
        }
        if only == "web" {
            try WebBench.run(scratch: dir, repository: repo, bin: bin)
            return
        }
        if only == "webhooks" {
            try WebhookBench.run(scratch: dir, bin: bin)
            return
        }
        if only == "fetch" {
            try FetchBench.run(scratch: dir, bin: bin)
            return
        }
        if only == "projects" {
            let access = RemoteAccess(url: "git://127.0.0.1:\(port)/upstream.git")
            let alone = measure(200) { _ = try? lsRemoteBranch(access, branch: "main") }
            try ProjectsBench.run(scratch: dir, port: port, bin: bin, libgit2PollCPU: alone.cpu)
            return
        }
        var libgit2PollCPU = 0.0
        let remotes = [("git://", "git://127.0.0.1:\(port)/upstream.git"), ("file://", "file://" + repo)]
        print("One no-change poll (median of 200; CPU is user+system of this process or of the git child):")
        print(pad("remote", 10) + pad("method", 34) + pad("wall", 12) + "CPU")
        for (label, url) in remotes {
            let access = RemoteAccess(url: url)
            let ours = measure(200) { _ = try? lsRemoteBranch(access, branch: "main") }
            let lsRemote = measure(200, child: true) { try? run("/usr/bin/git", ["ls-remote", url, "refs/heads/main"]) }
            let fetch = measure(200, child: true) {
                try? run("/usr/bin/git", ["-C", dir + "/fetcher.git", "fetch", "-q", url, "+refs/heads/main:refs/heads/main"])
            }
            if label == "git://" { libgit2PollCPU = ours.cpu }
            print(pad(label, 10) + pad("shipyardd (libgit2 connect + ls)", 34) + pad(ms(ours.wall), 12) + ms(ours.cpu))
            print(pad(label, 10) + pad("git ls-remote (Argo CD)", 34) + pad(ms(lsRemote.wall), 12) + ms(lsRemote.cpu))
            print(pad(label, 10) + pad("git fetch (git-sync)", 34) + pad(ms(fetch.wall), 12) + ms(fetch.cpu))
            print(pad("", 10) + "shipyardd uses \(String(format: "%.0f", lsRemote.cpu / ours.cpu))x less CPU than git ls-remote, \(String(format: "%.0f", fetch.cpu / ours.cpu))x less than git fetch (target: 10x)")
        }

        let access = RemoteAccess(url: "git://127.0.0.1:\(port)/upstream.git")
        for _ in 0..<100 { _ = try? lsRemoteBranch(access, branch: "main") }
        let before = residentKB()
        let start = Date()
        var failures = 0
        for _ in 0..<polls {
            if (try? lsRemoteBranch(access, branch: "main")) == nil { failures += 1 }
        }
        let after = residentKB()
        print("")
        print("Resident memory over \(polls) no-change polls over git:// (\(String(format: "%.1f", Date().timeIntervalSince(start)))s, \(failures) failed):")
        print("  before \(before) KB, after \(after) KB, growth \(after - before) KB (target: under 2048 KB)")

        try EvaluationBench.run(scratch: dir)
        try SequenceBench.run(scratch: dir, repository: repo)
        try WebhookBench.run(scratch: dir, bin: bin)
        try FetchBench.run(scratch: dir, bin: bin)
        try ProjectsBench.run(scratch: dir, port: port, bin: bin, libgit2PollCPU: libgit2PollCPU)
    }

    struct Figures {
        var wall: Double
        var cpu: Double
    }

    /// Median wall and CPU time per iteration, in seconds.
    static func measure(_ count: Int, child: Bool = false, _ body: () -> Void) -> Figures {
        var walls: [Double] = []
        var cpus: [Double] = []
        for _ in 0..<count {
            let cpu0 = cpuSeconds(child: child)
            let t0 = DispatchTime.now().uptimeNanoseconds
            body()
            walls.append(Double(DispatchTime.now().uptimeNanoseconds - t0) / 1e9)
            cpus.append(cpuSeconds(child: child) - cpu0)
        }
        // Child CPU is only accounted at whole-tick granularity by some kernels: use the mean there.
        let cpu = child ? cpus.reduce(0, +) / Double(cpus.count) : cpus.sorted()[cpus.count / 2]
        return Figures(wall: walls.sorted()[walls.count / 2], cpu: max(cpu, 1e-7))
    }

    static func cpuSeconds(child: Bool) -> Double {
        var usage = rusage()
        getrusage(child ? RUSAGE_CHILDREN.rawValue : RUSAGE_SELF.rawValue, &usage)
        func seconds(_ t: timeval) -> Double { Double(t.tv_sec) + Double(t.tv_usec) / 1e6 }
        return seconds(usage.ru_utime) + seconds(usage.ru_stime)
    }

    static func residentKB() -> Int {
        let status = (try? String(contentsOfFile: "/proc/self/status", encoding: .utf8)) ?? ""
        let line = status.split(separator: "\n").first { $0.hasPrefix("VmRSS:") } ?? ""
        return Int(line.split(separator: " ").dropFirst().first ?? "0") ?? 0
    }

    static func ms(_ seconds: Double) -> String { String(format: "%.3f ms", seconds * 1000) }
    static func pad(_ s: String, _ n: Int) -> String { s.padding(toLength: n, withPad: " ", startingAt: 0) }

    /// The sizes a section measures: `variable` from the environment (`100,1000`), else `defaults`.
    static func sizes(_ variable: String, _ defaults: String) -> [Int] {
        (ProcessInfo.processInfo.environment[variable] ?? defaults).split(separator: ",").compactMap { Int($0) }
    }

    /// One line of a side-by-side table: the label, then each column's figure.
    static func row<Column>(_ label: String, _ columns: [Column], width: Int, _ value: (Column) -> String) {
        print(pad("  " + label, width) + columns.map { pad(value($0), 14) }.joined())
    }

    /// Runs a program to completion with its output discarded (no pipes, so no reader threads
    /// distort the timing); it is reaped, so its CPU time lands in RUSAGE_CHILDREN.
    static func run(_ path: String, _ args: [String]) throws {
        let null = open("/dev/null", O_WRONLY | O_CLOEXEC)
        defer { close(null) }
        let status = try Subprocess(path, args, stdout: null, stderr: null).wait()
        guard status == 0 else { throw ProcessFailure(description: "\(path) \(args.joined(separator: " ")) exited \(status)") }
    }
}
