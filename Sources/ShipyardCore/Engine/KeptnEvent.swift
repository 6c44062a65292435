public import Foundation

/// A Keptn CloudEvent (CloudEvents 1.0, JSON format) as it is recorded in the journal and handed
/// to task executors.
public struct KeptnEvent: Codable, Sendable, Equatable {
    public var specversion = "1.0"
    public var id: String
    public var source: String
    public var type: String
    public var time: String
    public var datacontenttype = "application/json"
    public var shkeptnspecversion = "0.2.4"
    /// The sequence context: every event of one delivery, across stages, shares it.
    public var shkeptncontext: String
    /// On `.started`/`.finished` events, the id of the `.triggered` event they answer. Shipyard
    /// also sets it on a task's `.triggered` event, to the id of its sequence's `.triggered` event.
    public var triggeredid: String?
    /// The shipyard commit the sequence runs with.
    public var gitcommitid: String?
    /// Extension on a sequence's `.triggered` event: the tasks it runs, pinned from the shipyard
    /// at `gitcommitid`, so a replay of the journal never depends on a later shipyard.
    public var shipyardtasks: [PlannedTask]?
    /// Extension on a sequence's `.triggered` event: the id of the `shipyardctl` request that
    /// asked for it, so that a request retried after a crash is applied once.
    public var shipyardrequestid: String?
    /// Extension on events a person of this host sent (a trigger, `send event`, a vote): the
    /// uid the kernel named for them. Names change (`usermod -l`); the account does not, so rules
    /// about "the same person" compare this.
    public var shipyarduid: UInt32?
    public var data: JSONValue

    public init(
        id: String, source: String = "shipyardd", type: String, time: String, context: String,
        triggeredid: String? = nil, gitcommitid: String? = nil, shipyardtasks: [PlannedTask]? = nil, data: JSONValue
    ) {
        self.id = id
        self.source = source
        self.type = type
        self.time = time
        self.shkeptncontext = context
        self.triggeredid = triggeredid
        self.gitcommitid = gitcommitid
        self.shipyardtasks = shipyardtasks
        self.data = data
    }

    enum CodingKeys: String, CodingKey {
        case specversion, id, source, type, time, datacontenttype, shkeptnspecversion, shkeptncontext, triggeredid
        case gitcommitid, shipyardtasks, shipyardrequestid, shipyarduid, data
    }

    /// Events from other tools may leave out what CloudEvents makes optional.
    public init(from decoder: any Decoder) throws {
        let c = try decoder.container(keyedBy: CodingKeys.self)
        specversion = try c.decodeIfPresent(String.self, forKey: .specversion) ?? "1.0"
        id = try c.decode(String.self, forKey: .id)
        source = try c.decode(String.self, forKey: .source)
        type = try c.decode(String.self, forKey: .type)
        time = try c.decodeIfPresent(String.self, forKey: .time) ?? ""
        datacontenttype = try c.decodeIfPresent(String.self, forKey: .datacontenttype) ?? "application/json"
        shkeptnspecversion = try c.decodeIfPresent(String.self, forKey: .shkeptnspecversion) ?? "0.2.4"
        shkeptncontext = try c.decode(String.self, forKey: .shkeptncontext)
        triggeredid = try c.decodeIfPresent(String.self, forKey: .triggeredid)
        gitcommitid = try c.decodeIfPresent(String.self, forKey: .gitcommitid)
        shipyardtasks = try c.decodeIfPresent([PlannedTask].self, forKey: .shipyardtasks)
        shipyardrequestid = try c.decodeIfPresent(String.self, forKey: .shipyardrequestid)
        shipyarduid = try c.decodeIfPresent(UInt32.self, forKey: .shipyarduid)
        data = try c.decodeIfPresent(JSONValue.self, forKey: .data) ?? .object([:])
    }

    public static let prefix = "sh.keptn.event."

    /// What an event type names: a task event (`<task>.<phase>`) or a sequence event
    /// (`<stage>.<sequence>.<phase>`).
    public enum Kind: Equatable, Sendable {
        case task(name: String, phase: String)
        case sequence(stage: String, name: String, phase: String)
    }

    public var kind: Kind? { Self.kind(of: type) }

    public static func kind(of type: String) -> Kind? {
        guard type.hasPrefix(Self.prefix) else { return nil }
        let parts = type.dropFirst(Self.prefix.count).split(separator: ".", omittingEmptySubsequences: false).map(String.init)
        switch parts.count {
        case 2: return .task(name: parts[0], phase: parts[1])
        case 3: return .sequence(stage: parts[0], name: parts[1], phase: parts[2])
        default: return nil
        }
    }

    public var date: Date? { Timestamps.parse(time) }
}

/// A task as a sequence runs it: copied from the shipyard when the sequence is triggered.
public struct PlannedTask: Codable, Sendable, Equatable {
    public var name: String
    /// Go duration syntax, as in the shipyard.
    public var triggeredAfter: String?
    public var properties: JSONValue?

    public init(name: String, triggeredAfter: String? = nil, properties: JSONValue? = nil) {
        self.name = name
        self.triggeredAfter = triggeredAfter
        self.properties = properties
    }

    public init(_ task: Shipyard.Task) {
        name = task.name
        triggeredAfter = task.triggeredAfter.map(GoDuration.format)
        properties = task.properties.map(JSONValue.init)
    }

    var delay: TimeInterval {
        guard let text = triggeredAfter, let nanos = try? GoDuration.nanoseconds(text) else { return 0 }
        return Double(nanos) / 1e9
    }
}

/// RFC 3339 timestamps with milliseconds, in UTC, as events carry them.
public enum Timestamps {
    /// RFC 3339 with milliseconds, rounded to the nearest. The formatter truncates, and loses
    /// precision on the way: a time read from "…27.152Z" came back as "…27.151Z". So the time is
    /// rounded to its millisecond and given to the formatter half a millisecond later.
    public static func format(_ date: Date) -> String {
        let milliseconds = (date.timeIntervalSince1970 * 1000).rounded()
        return Date.ISO8601FormatStyle(includingFractionalSeconds: true).format(Date(timeIntervalSince1970: (milliseconds + 0.5) / 1000))
    }

    public static func parse(_ text: String) -> Date? {
        (try? Date.ISO8601FormatStyle(includingFractionalSeconds: true).parse(text))
            ?? (try? Date.ISO8601FormatStyle().parse(text))
    }
}
