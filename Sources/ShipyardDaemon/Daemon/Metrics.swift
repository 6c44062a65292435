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
    private let webhookCounters = Mutex<[String: Counter]>([:])

    static let pollBuckets: [Duration] = [.milliseconds(5), .milliseconds(25), .milliseconds(100), .milliseconds(500), .seconds(2), .seconds(10), .seconds(60)]
    static let taskBuckets: [Duration] = [.seconds(1), .seconds(10), .seconds(60), .seconds(300), .seconds(900), .seconds(3600)]

    public init() {
        var gauges: [String: Gauge] = [:]
        for state in ["triggered", "waiting", "started", "waitingForApproval", "paused"] {
            gauges[state] = registry.makeGauge(descriptor: Self.named("shipyard_sequences_active", "Sequences that have not ended, by Keptn state."), labels: [("state", state)])
        }
        stateGauges = gauges
        pendingApprovals = registry.makeGauge(descriptor: Self.named("shipyard_approvals_pending", "Approvals waiting for a person."))
        oldestApproval = registry.makeGauge(descriptor: Self.named("shipyard_approval_oldest_age_seconds", "How long the oldest pending approval has waited (0 when none)."))
        up = registry.makeGauge(descriptor: Self.named("shipyard_up", "1 once the daemon is ready."))
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
            registry.makeCounter(descriptor: Self.named("shipyard_polls_total", "Polls of the upstream by outcome."), labels: [("project", name), ("outcome", outcome)])
        }
        return Project(
            unchanged: polls("unchanged"), fetched: polls("fetched"), failed: polls("failed"),
            duration: registry.makeDurationHistogram(descriptor: Self.named("shipyard_poll_duration_seconds", "How long a poll took."), labels: [("project", name)], buckets: Self.pollBuckets),
            reloads: registry.makeCounter(descriptor: Self.named("shipyard_shipyard_reloads_total", "Shipyards loaded from a new commit."), labels: [("project", name)]),
            rejected: registry.makeCounter(descriptor: Self.named("shipyard_shipyard_rejected_total", "Shipyards refused (invalid, missing, not a file, too large)."), labels: [("project", name)]))
    }

    /// A task run that ended (a local program, the built-in evaluation, or an external service's `.finished`).
    func taskEnded(_ task: String, result: String, duration: Duration?) {
        Self.cached(taskCounters, "\(task)\u{0}\(result)") {
            registry.makeCounter(descriptor: Self.named("shipyard_task_runs_total", "Task runs that ended, by task and result."), labels: [("task", task), ("result", result)])
        }.increment()
        guard let duration else { return }
        Self.cached(taskDurations, task) {
            registry.makeDurationHistogram(descriptor: Self.named("shipyard_task_duration_seconds", "From a task's .started to its .finished."), labels: [("task", task)], buckets: Self.taskBuckets)
        }.record(duration)
    }

    /// A webhook request that ended (after its retries), by project, subscription and outcome
    /// (ok, failed, refused, timeout, error). The labels come from the host config, never from Git.
    func webhookRequest(project: String, webhook: String, outcome: String) {
        Self.cached(webhookCounters, "\(project)\u{0}\(webhook)\u{0}\(outcome)") {
            registry.makeCounter(
                descriptor: Self.named("shipyard_webhook_requests_total", "Webhook requests by project, subscription and outcome."),
                labels: [("project", project), ("webhook", webhook), ("outcome", outcome)])
        }.increment()
    }

    /// A sequence that ended, by its final state and result.
    func sequenceEnded(state: String, result: String) {
        Self.cached(endedCounters, "\(state)\u{0}\(result)") {
            registry.makeCounter(descriptor: Self.named("shipyard_sequences_ended_total", "Sequences that ended, by state and result."), labels: [("state", state), ("result", result)])
        }.increment()
    }

    /// The active sequences by state, as the engine holds them.
    func activeSequences(_ counts: [String: Int]) {
        for (state, gauge) in stateGauges { gauge.set(to: Double(counts[state] ?? 0)) }
    }

    /// A request of the CLI (the local API) or the web, by kind and outcome (`accepted`, `refused`).
    public func request(_ kind: String, outcome: String) {
        Self.cached(requestCounters, "\(kind)\u{0}\(outcome)") {
            registry.makeCounter(descriptor: Self.named("shipyard_requests_total", "Requests by kind and outcome."), labels: [("kind", kind), ("outcome", outcome)])
        }.increment()
    }

    /// A metric's whole name (`shipyard_polls_total`) and its help line.
    private static func named(_ name: String, _ help: String) -> MetricNameDescriptor {
        MetricNameDescriptor(metricName: name, unitName: "", helpText: help)
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
