import Dispatch
import Foundation
import ShipyardCore
import ShipyardStore
import ShipyardDaemon
import ShipyardTestKit

/// The daemon's sequence throughput and its start-up with a long history on disk.
enum SequenceBench {
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
                - name: hold
                  tasks:
                    - name: external
                - name: gate
                  tasks:
                    - name: approval
                      properties: {pass: manual, warning: manual}
                    - name: marker

        """

    static func run(scratch: String, repository: String) throws {
        let bin = URL(fileURLWithPath: "/proc/self/exe").resolvingSymlinksInPath().deletingLastPathComponent().path
        let sequences = Int(ProcessInfo.processInfo.environment["BENCH_SEQUENCES"] ?? "") ?? 1000
        try prepare(scratch: scratch, repository: repository)

        // Throughput: one-task sequences whose task is /bin/true, spread over 20 services.
        let state = scratch + "/seq-state"
        let config = scratch + "/seq-config.yaml"
        try writeConfig(config, state: state, repository: repository, scratch: scratch)
        let daemon = try start(bin: bin, config: config, scratch: scratch)
        try waitUntil(timeout: 30) { loadedShipyard(state) }
        let api = LocalAPIClient(path: StateDirectory(state).socket)
        let begin = Date()
        // Sixteen clients at once, as CI jobs would trigger: each waits for its answer.
        DispatchQueue.concurrentPerform(iterations: 16) { client in
            for i in stride(from: client, to: sequences, by: 16) {
                _ = try? api.post("/api/v1/sequences", json: TriggerBody(project: "bench", service: "svc-\(i % 20)", sequence: "run"), timeout: .seconds(60))
            }
        }
        try waitUntil(timeout: 600) { finishedCount(state) >= sequences }
        let elapsed = Date().timeIntervalSince(begin)
        print("")
        print("Sequences: \(sequences) one-task sequences (task /bin/true, 20 services) in \(String(format: "%.1f", elapsed))s: \(String(format: "%.0f", Double(sequences) / elapsed)) tasks/s, each step committed durably to the record")
        print("  (Keptn needs a Kubernetes cluster, NATS and MongoDB for the same; there is no like-for-like local figure)")
        print("On SQLite:")
        try approvalLatency(bin: bin, state: state, scratch: scratch)
        daemon.signal(SIGTERM)
        daemon.wait()
        try StoreBench.run(scratch: scratch)
        try approvalsListing(bin: bin, scratch: scratch)

        try HistoryBench.run(scratch: scratch, repository: repository, bin: bin)
        try WebBench.run(scratch: scratch, repository: repository, bin: bin)
    }

    /// The bench daemon's config: the bench project, a no-op task and the marker; `extra` appended.
    static func writeConfig(_ path: String, state: String, repository: String, scratch: String, extra: String = "") throws {
        try """
            stateDirectory: \(state)
            projects:
              - name: bench
                upstream: file://\(repository)
                pollInterval: 1h
            tasks:
              noop:
                command: ["/bin/true"]
              marker:
                command: ["\(scratch)/marker"]
            \(extra)

            """.write(toFile: path, atomically: true, encoding: .utf8)
    }

    /// The bench's shipyard pushed upstream, and the marker program (a task that writes when it started).
    static func prepare(scratch: String, repository: String) throws {
        let work = scratch + "/seq-work"
        try Run.checked("/usr/bin/git", ["clone", "-q", repository, work])
        try shipyard.write(toFile: work + "/shipyard.yaml", atomically: true, encoding: .utf8)
        try Run.checked("/usr/bin/git", ["-C", work, "-c", "user.name=b", "-c", "user.email=b@b", "commit", "-qam", "bench shipyard"])
        try Run.checked("/usr/bin/git", ["-C", work, "push", "-q", "origin", "HEAD:main"])
        try writeFile(scratch + "/marker", Data("#!/bin/sh\ndate +%s.%N > \(scratch)/markers/$SHIPYARD_CONTEXT\n".utf8), mode: 0o755)
        try FileManager.default.createDirectory(atPath: scratch + "/markers", withIntermediateDirectories: true)
    }

    /// From `shipyardctl approve` returning to the next task's process starting.
    static func approvalLatency(bin: String, state: String, scratch: String) throws {
        let rounds = 21
        var contexts: [String] = []
        for i in 0..<rounds {
            let out = try Run.checked(bin + "/shipyardctl", [
                "trigger", "gate", "--project", "bench", "--service", "gate-\(i)", "--output", "json", "--state-dir", state,
            ])
            contexts.append(String(out.split(separator: "\"")[3]))
        }
        func pending() -> [ApprovalRequest] {
            ((try? FileManager.default.contentsOfDirectory(atPath: state + "/approvals")) ?? []).compactMap {
                FileManager.default.contents(atPath: state + "/approvals/" + $0).flatMap { try? JSON.decode(ApprovalRequest.self, from: $0) }
            }
        }
        try waitUntil(timeout: 60) { pending().count == rounds }
        var latencies: [Double] = []
        var fromInvocation: [Double] = []
        for request in pending() {
            let invoked = Date().timeIntervalSince1970
            try Run.checked(bin + "/shipyardctl", ["approve", request.id, "--state-dir", state])
            let returned = Date().timeIntervalSince1970
            let marker = scratch + "/markers/" + request.context
            try waitUntil(timeout: 30) { FileManager.default.fileExists(atPath: marker) && ((try? String(contentsOfFile: marker, encoding: .utf8)) ?? "").hasSuffix("\n") }
            let started = Double(((try? String(contentsOfFile: marker, encoding: .utf8)) ?? "").trimmingCharacters(in: .whitespacesAndNewlines)) ?? 0
            latencies.append((started - returned) * 1000)
            fromInvocation.append((started - invoked) * 1000)
        }
        latencies.sort()
        fromInvocation.sort()
        print(String(format: "Approval latency, shipyardctl approve returning to the next task's process starting: median %.1f ms, max %.1f ms over %d approvals (target: median under 50 ms)", latencies[latencies.count / 2], latencies.last ?? 0, latencies.count))
        print("  (negative: the task had started before the CLI printed its answer)")
        print(String(format: "  from running shipyardctl approve to the next task's process starting: median %.1f ms", fromInvocation[fromInvocation.count / 2]))
    }

    /// `shipyardctl approvals` with 10,000 pending approvals.
    static func approvalsListing(bin: String, scratch: String) throws {
        let state = scratch + "/approvals-state"
        try FileManager.default.createDirectory(atPath: state + "/approvals", withIntermediateDirectories: true)
        for i in 0..<10_000 {
            let request = ApprovalRequest(
                id: UUID().uuidString.lowercased(), project: "bench", stage: "production", service: "svc-\(i)", sequence: "delivery",
                context: UUID().uuidString.lowercased(), previousResult: "pass", image: "registry/app:\(i)", triggeredBy: "shipyardctl/bench",
                requestedAt: Timestamps.format(Date()))
            try JSON.encode(request).write(to: URL(fileURLWithPath: state + "/approvals/\(request.id).json"))
        }
        var times: [Double] = []
        for _ in 0..<5 {
            let t0 = Date()
            try Run.checked(bin + "/shipyardctl", ["approvals", "--state-dir", state])
            times.append(Date().timeIntervalSince(t0) * 1000)
        }
        times.sort()
        print(String(format: "shipyardctl approvals with 10,000 pending: median %.0f ms over 5 runs (target: under 300 ms)", times[2]))
    }

    static func start(bin: String, config: String, scratch: String) throws -> Subprocess {
        let log = open(scratch + "/seq-daemon.log", O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0o644)
        defer { close(log) }
        return try Subprocess(bin + "/shipyardd", ["--config", config], stdout: log, stderr: log)
    }

    static func loadedShipyard(_ state: String) -> Bool {
        guard let data = FileManager.default.contents(atPath: state + "/status.json"),
            let status = try? JSON.decode(DaemonStatus.self, from: data)
        else { return false }
        return status.projects.first?.stages == ["bench"]
    }

    static func readyLogged(_ scratch: String) -> Bool {
        ((try? String(contentsOfFile: scratch + "/seq-daemon.log", encoding: .utf8)) ?? "").contains(" ready")
    }

    static func finishedCount(_ state: String) -> Int {
        let store = try? SQLiteStore(readingAt: StateDirectory(state).storeFile)
        return (try? store?.sequences(SequenceQuery(state: .finished)).sequences.count) ?? 0
    }

    static func waitUntil(timeout: TimeInterval, _ condition: () -> Bool) throws {
        let deadline = Date().addingTimeInterval(timeout)
        while !condition() {
            guard Date() < deadline else { throw ProcessFailure(description: "bench: timed out") }
            usleep(20_000)
        }
    }

    static func residentKB(_ pid: pid_t) -> Int {
        let status = (try? String(contentsOfFile: "/proc/\(pid)/status", encoding: .utf8)) ?? ""
        let line = status.split(separator: "\n").first { $0.hasPrefix("VmRSS:") } ?? ""
        return Int(line.split(separator: " ").dropFirst().first ?? "0") ?? 0
    }
}
