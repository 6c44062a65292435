import Foundation
import Testing

@testable import ShipyardCore

/// Ids "e1", "e2", … so that expectations can name events.
struct CountingIDs: IDGenerator {
    var count = 0
    mutating func next() -> String {
        count += 1
        return "e\(count)"
    }
}

extension [EngineEffect] {
    /// The events an engine command recorded.
    var records: [KeptnEvent] {
        compactMap { if case .record(let event) = $0 { event } else { nil } }
    }
}

/// Drives the engine like the daemon does, with a hand-moved clock, and keeps the journal.
struct Harness {
    var engine = Engine()
    var ids = CountingIDs()
    var now = Date(timeIntervalSince1970: 1_800_000_000)
    var shipyards: [String: PinnedShipyard] = [:]
    var journal: [KeptnEvent] = []
    var effects: [EngineEffect] = []
    /// Every execution as the engine last reported it (what the daemon's store keeps): the
    /// engine itself lets go of those that ended.
    var history: [String: Engine.Change] = [:]

    init(_ text: String, project: String = "fulltour", commit: String = "c0ffee") throws {
        let document = ShipyardLoader.load(text)
        shipyards[project] = PinnedShipyard(shipyard: try #require(document.shipyard, "\(document.diagnostics)"), commit: commit)
    }

    /// A shipyard of these stages (the `stages:` list, indented as under `spec:`).
    init(stages: String) throws {
        try self.init("apiVersion: spec.keptn.sh/0.2.4\nkind: Shipyard\nspec:\n" + stages)
    }

    init(corpus file: String) throws {
        try self.init(String(contentsOf: Fixtures.corpus.appendingPathComponent("keptn/\(file)"), encoding: .utf8))
    }

    init(example file: String) throws {
        try self.init(String(contentsOf: Fixtures.repository.appendingPathComponent("examples/demo/\(file)"), encoding: .utf8))
    }

    @discardableResult
    mutating func handle(_ command: Engine.Command) throws -> [EngineEffect] {
        let result = try engine.handle(command, shipyards: shipyards, now: now, ids: &ids)
        effects = result
        for case .record(let event) in result { journal.append(event) }
        for change in engine.takeChanges() { history[change.execution.id] = change }
        return result
    }

    /// Every execution of a context, ended or not, in arrival order.
    func executions(inContext context: String) -> [SequenceExecution] {
        history.values.map(\.execution).filter { $0.context == context }.sorted { $0.order < $1.order }
    }

    /// Starts a sequence and returns its context.
    @discardableResult
    mutating func trigger(_ sequence: String = "delivery", service: String = "helloservice", stage: String? = nil, image: String? = nil) throws -> String {
        var data: [String: JSONValue] = [:]
        if let image { data["configurationChange"] = .object(["values": .object(["image": .string(image)])]) }
        try handle(.trigger(TriggerRequest(project: "fulltour", service: service, sequence: sequence, stage: stage, data: .object(data))))
        return try #require(journal.last { $0.type.hasSuffix(".\(sequence).triggered") }?.shkeptncontext)
    }

    /// The newest `.triggered` event of a task that has not finished, in a context.
    func pending(_ task: String, context: String? = nil) -> KeptnEvent? {
        journal.last { event in
            event.type == "sh.keptn.event.\(task).triggered" && (context == nil || event.shkeptncontext == context)
                && !journal.contains { $0.triggeredid == event.id && $0.type == "sh.keptn.event.\(task).finished" }
        }
    }

    /// Answers a triggered task as an executor would: `.started`, then `.finished`.
    mutating func complete(_ task: String, _ result: TaskResult = .pass, status: TaskStatus = .succeeded, data: [String: JSONValue] = [:], context: String? = nil) throws {
        let triggered = try #require(pending(task, context: context), "no pending \(task)")
        try send(task, "started", to: triggered)
        var payload = data
        payload["result"] = .string(result.rawValue)
        payload["status"] = .string(status.rawValue)
        try send(task, "finished", to: triggered, data: payload)
    }

    mutating func send(_ task: String, _ phase: String, to triggered: KeptnEvent, data: [String: JSONValue] = [:]) throws {
        let event = KeptnEvent(
            id: ids.next(), source: "test-executor", type: "sh.keptn.event.\(task).\(phase)", time: Timestamps.format(now),
            context: triggered.shkeptncontext, triggeredid: triggered.id, data: .object(data))
        try handle(.event(event))
    }

    /// The journal's event types, without the `sh.keptn.event.` prefix.
    var types: [String] { journal.map { String($0.type.dropFirst(KeptnEvent.prefix.count)) } }

    func execution(_ stage: String, _ sequence: String, context: String) -> SequenceExecution? {
        executions(inContext: context).last { $0.stage == stage && $0.sequence == sequence }
    }

    func state(_ stage: String, _ sequence: String = "delivery", context: String) -> SequenceState? {
        execution(stage, sequence, context: context).flatMap { history[$0.id]?.state }
    }
}
