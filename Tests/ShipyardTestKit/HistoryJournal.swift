public import Foundation
import ShipyardCore

/// A journal as earlier releases wrote it (`journal/events.jsonl`), made by the real engine:
/// two-stage deliveries (qa: deploy, test; production: approval, deploy), for the import tests
/// and `make bench`.
public enum HistoryJournal {
    public static let shipyard = """
        apiVersion: spec.keptn.sh/0.2.4
        kind: Shipyard
        spec:
          stages:
            - name: qa
              sequences:
                - name: delivery
                  tasks: [{name: deploy}, {name: test}]
            - name: production
              sequences:
                - name: delivery
                  triggeredOn: [{event: qa.delivery.finished}]
                  tasks:
                    - name: approval
                      properties: {pass: automatic, warning: manual}
                    - name: deploy

        """

    public struct Summary: Sendable {
        public var events = 0
        public var bytes = 0
        /// The contexts of the finished deliveries, oldest first.
        public var finished: [String] = []
        /// The contexts left waiting for approval in production.
        public var waiting: [String] = []
        /// The id of each waiting approval's `.triggered` event.
        public var approvals: [String] = []

        public init() {}
    }

    /// Writes `deliveries` finished deliveries, the first at `start` and one every `spacing`
    /// seconds, then `waiting` deliveries whose production approval waits for a person (their
    /// tests ended with a warning). `lastLine` is appended as it is (a torn line, say). The
    /// sequences run with the shipyard at `commit`.
    @discardableResult
    public static func write(
        to path: String, project: String, deliveries: Int, start: Date, spacing: TimeInterval, waiting: Int = 0, lastLine: String = "",
        commit: String = String(repeating: "0", count: 40)
    ) throws -> Summary {
        let document = ShipyardLoader.load(shipyard)
        guard let parsed = document.shipyard else { throw ProcessFailure(description: "history shipyard invalid: \(document.diagnostics)") }
        let shipyards = [project: PinnedShipyard(shipyard: parsed, commit: commit)]
        try FileManager.default.createDirectory(atPath: (path as NSString).deletingLastPathComponent, withIntermediateDirectories: true)
        guard FileManager.default.createFile(atPath: path, contents: nil), let out = FileHandle(forWritingAtPath: path) else {
            throw ProcessFailure(description: "cannot create \(path)")
        }
        defer { try? out.close() }
        let encoder = JSONEncoder()
        encoder.outputFormatting = [.sortedKeys, .withoutEscapingSlashes]
        var engine = Engine()
        var ids = UUIDGenerator()
        var summary = Summary()
        var buffer = Data()
        var now = start

        func record(_ effects: [EngineEffect]) throws {
            for case .record(let event) in effects {
                buffer.append(try encoder.encode(event))
                buffer.append(0x0A)
                summary.events += 1
            }
            if buffer.count > 1 << 20 { try flush() }
        }
        func flush() throws {
            try out.write(contentsOf: buffer)
            summary.bytes += buffer.count
            buffer.removeAll(keepingCapacity: true)
        }
        /// Answers every task the effects start, as an executor would; returns the approvals left waiting.
        func answer(_ effects: [EngineEffect], testResult: String) throws -> [String] {
            var pending = effects
            var approvals: [String] = []
            while !pending.isEmpty {
                let current = pending
                pending = []
                for effect in current {
                    switch effect {
                    case .runTask(let triggered):
                        let name = triggered.type.dropFirst(KeptnEvent.prefix.count).dropLast(".triggered".count)
                        let result = name == "test" ? testResult : "pass"
                        for phase in ["started", "finished"] {
                            let event = KeptnEvent(
                                id: ids.next(), source: "executor", type: "\(KeptnEvent.prefix)\(name).\(phase)", time: Timestamps.format(now),
                                context: triggered.shkeptncontext, triggeredid: triggered.id,
                                data: .object(["result": .string(result), "status": .string("succeeded"), "message": .string("\(name) done")]))
                            let more = try engine.handle(.event(event), shipyards: shipyards, now: now, ids: &ids)
                            try record(more)
                            pending += more
                        }
                    case .approvalNeeded(let id):
                        approvals.append(id)
                    default:
                        break
                    }
                }
            }
            _ = engine.takeChanges()
            return approvals
        }

        for i in 0..<(deliveries + waiting) {
            let held = i >= deliveries
            let request = TriggerRequest(
                project: project, service: held ? "held-\(i - deliveries)" : "svc-\(i % 50)", sequence: "delivery",
                data: .object(["configurationChange": .object(["values": .object(["image": .string("registry.example/app:1.\(i)")])])]),
                source: "shipyardctl/history")
            let effects = try engine.handle(.trigger(request), shipyards: shipyards, now: now, ids: &ids)
            try record(effects)
            let context = effects.compactMap { effect -> String? in
                if case .record(let event) = effect { return event.shkeptncontext }
                return nil
            }.first ?? ""
            let approvals = try answer(effects, testResult: held ? "warning" : "pass")
            if held {
                summary.waiting.append(context)
                summary.approvals += approvals
            } else {
                summary.finished.append(context)
            }
            now += spacing
        }
        buffer.append(Data(lastLine.utf8))
        try flush()
        return summary
    }
}
