public import Prometheus
import Synchronization

/// What `/metrics` reports, counted where it happens. Counters are made once per label set and
/// kept (a quiet poll adds one to an atomic, nothing more); gauges of the active work are set
/// when the record changes.
public final class DaemonMetrics: Sendable {
    public let registry = PrometheusCollectorRegistry()
    private let taskCounters = Mutex<[String: Counter]>([:])
    private let taskDurations = Mutex<[String: DurationHistogram]>([:])
    private let requestCounters = Mutex<[String: Counter]>([:])
    private let stateGauges: [String: Gauge]
    private let endedCounters = Mutex<[String: Counter]>([:])

    static let pollBuckets: [Duration] = [.milliseconds(5), .milliseconds(25), .milliseconds(100), .milliseconds(500), .seconds(2), .seconds(10), .seconds(60)]
    static let taskBuckets: [Duration] = [.seconds(1), .seconds(10), .seconds(60), .seconds(300), .seconds(900), .seconds(3600)]

    public init() {
        var gauges: [String: Gauge] = [:]
        for state in ["triggered", "waiting", "started", "waitingForApproval", "paused"] {
            gauges[state] = registry.makeGauge(
                name: "shipyard_sequences_active", labels: [("state", state)], help: "Sequences that have not ended, by Keptn state.")
        }
        stateGauges = gauges
        pendingApprovals = registry.makeGauge(name: "shipyard_approvals_pending", help: "Approvals waiting for a person.")
        oldestApproval = registry.makeGauge(
            name: "shipyard_approval_oldest_age_seconds", help: "How long the oldest pending approval has waited (0 when none).")
        up = registry.makeGauge(name: "shipyard_up", help: "1 once the daemon is ready.")
    }

    public let pendingApprovals: Gauge
    public let oldestApproval: Gauge
    public let up: Gauge

    /// A project's poll counters, made when its watcher starts.
    struct Project: Sendable {
        let unchanged: Counter
        let fetched: Counter
        let failed: Counter
        let duration: DurationHistogram
        let reloads: Counter
        let rejected: Counter
    }

    func project(_ name: String) -> Project {
        func polls(_ outcome: String) -> Counter {
            registry.makeCounter(name: "shipyard_polls_total", labels: [("project", name), ("outcome", outcome)], help: "Polls of the upstream by outcome.")
        }
        return Project(
            unchanged: polls("unchanged"), fetched: polls("fetched"), failed: polls("failed"),
            duration: registry.makeDurationHistogram(
                name: "shipyard_poll_duration_seconds", labels: [("project", name)], buckets: Self.pollBuckets, help: "How long a poll took."),
            reloads: registry.makeCounter(name: "shipyard_shipyard_reloads_total", labels: [("project", name)], help: "Shipyards loaded from a new commit."),
            rejected: registry.makeCounter(
                name: "shipyard_shipyard_rejected_total", labels: [("project", name)], help: "Shipyards refused (invalid, missing, not a file, too large)."))
    }

    /// A task run that ended (a local program, the built-in evaluation, or an external service's `.finished`).
    func taskEnded(_ task: String, result: String, duration: Duration?) {
        Self.cached(taskCounters, "\(task)\u{0}\(result)") {
            registry.makeCounter(name: "shipyard_task_runs_total", labels: [("task", task), ("result", result)], help: "Task runs that ended, by task and result.")
        }.increment()
        guard let duration else { return }
        Self.cached(taskDurations, task) {
            registry.makeDurationHistogram(
                name: "shipyard_task_duration_seconds", labels: [("task", task)], buckets: Self.taskBuckets, help: "From a task's .started to its .finished.")
        }.record(duration)
    }

    /// A sequence that ended, by its final state and result.
    func sequenceEnded(state: String, result: String) {
        Self.cached(endedCounters, "\(state)\u{0}\(result)") {
            registry.makeCounter(name: "shipyard_sequences_ended_total", labels: [("state", state), ("result", result)], help: "Sequences that ended, by state and result.")
        }.increment()
    }

    /// The active sequences by state, as the engine holds them.
    func activeSequences(_ counts: [String: Int]) {
        for (state, gauge) in stateGauges { gauge.set(to: Double(counts[state] ?? 0)) }
    }

    /// A request of the CLI's spool or the web, by kind and outcome (`accepted`, `refused`).
    public func request(_ kind: String, outcome: String) {
        Self.cached(requestCounters, "\(kind)\u{0}\(outcome)") {
            registry.makeCounter(name: "shipyard_requests_total", labels: [("kind", kind), ("outcome", outcome)], help: "Requests by kind and outcome.")
        }.increment()
    }

    /// The metric of a label set, made the first time it is needed.
    private static func cached<Metric>(_ cache: borrowing Mutex<[String: Metric]>, _ key: String, make: () -> Metric) -> Metric {
        cache.withLock { all in
            if let metric = all[key] { return metric }
            let metric = make()
            all[key] = metric
            return metric
        }
    }

    /// The Prometheus text format.
    public func emit() -> [UInt8] {
        var buffer: [UInt8] = []
        buffer.reserveCapacity(8192)
        registry.emit(into: &buffer)
        return buffer
    }
}
