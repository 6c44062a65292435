public import Foundation
public import ShipyardCore
import Synchronization

/// A Keptn integration (job-executor-service, a distributor, a script) as it registers through
/// Keptn's Uniform API: its name, where it runs, and the task events it polls for. Registering
/// starts nothing: which tasks an integration may answer is the host config's (a task without a
/// local program waits for events from `eventSenders`); the registry says who is out there,
/// answers their pings, and lets `shipyardctl status` show when each was last seen.
public struct Integration: Codable, Sendable, Equatable {
    /// Keptn's fields, as go-utils' `models.Integration` has them.
    public var id: String
    public var name: String
    /// `hostname`, `integrationversion`, `distributorversion`, `location`, `kubernetesmetadata`,
    /// and `lastseen` (set here at every ping).
    public var metadata: JSONValue
    public var subscriptions: [Subscription]
    /// Who registered it (the API token's user or role), and when.
    public var registeredBy: String?
    public var registeredAt: String?

    public struct Subscription: Codable, Sendable, Equatable {
        public var id: String
        public var event: String
        public var filter: Filter

        public init(id: String, event: String, filter: Filter) {
            self.id = id
            self.event = event
            self.filter = filter
        }
    }

    /// Keptn sends `null` for an empty filter list; kept as sent.
    public struct Filter: Codable, Sendable, Equatable {
        public var projects: [String]?
        public var stages: [String]?
        public var services: [String]?

        public init(projects: [String]? = nil, stages: [String]? = nil, services: [String]? = nil) {
            self.projects = projects
            self.stages = stages
            self.services = services
        }

        public func encode(to encoder: any Encoder) throws {
            var container = encoder.container(keyedBy: CodingKeys.self)
            try container.encode(projects, forKey: .projects)
            try container.encode(stages, forKey: .stages)
            try container.encode(services, forKey: .services)
        }
    }

    /// When it last registered or pinged.
    public var lastSeen: String? { metadata["lastseen"]?.string }
    public var hostname: String? { metadata["hostname"]?.string }
}

/// What a registration sends (`POST /api/controlPlane/v1/uniform/registration`).
public struct IntegrationRegistration: Codable, Sendable {
    public var id: String?
    public var name: String
    public var metadata: JSONValue?
    public var subscriptions: [Integration.Subscription]?

    public init(name: String, metadata: JSONValue? = nil, subscriptions: [Integration.Subscription]? = nil) {
        self.name = name
        self.metadata = metadata
        self.subscriptions = subscriptions
    }
}

/// The registered integrations: in memory, and in `<state>/integrations.json` so that a restart
/// of the daemon does not turn every integration's next ping into a 404 (the go-sdk never
/// registers again; after ten failed pings it stops).
public final class Integrations: Sendable {
    static let maxIntegrations = 200
    static let maxSubscriptions = 64
    static let maxMetadataBytes = 8192

    private let file: String?
    private let state: Mutex<[String: Integration]>

    /// `file`: where they are kept (nil: in memory only).
    public init(file: String?) {
        self.file = file
        var loaded: [String: Integration] = [:]
        if let file, let data = FileManager.default.contents(atPath: file), let list = try? JSON.decode([Integration].self, from: data) {
            for integration in list { loaded[integration.id] = integration }
        }
        state = Mutex(loaded)
    }

    public enum Failure: Error, Equatable {
        case invalid(String)
    }

    /// Registers (or registers again) an integration: Keptn's id (a digest of its name, namespace
    /// and host, so the same integration keeps its id), a UUID for each subscription without one.
    /// Returns it and whether it is new.
    public func register(_ registration: IntegrationRegistration, by who: String, now: Date = Date()) throws(Failure) -> (Integration, created: Bool) {
        let name = registration.name.trimmingCharacters(in: .whitespaces)
        guard !name.isEmpty, name.count <= 200, Untrusted.printable(name, limit: 200) == name else {
            throw .invalid("an integration needs a name of at most 200 printable characters")
        }
        var metadata = registration.metadata ?? .object([:])
        guard metadata.object != nil else { throw .invalid("metadata must be an object") }
        guard ((try? JSON.encode(metadata))?.count ?? Int.max) <= Self.maxMetadataBytes else {
            throw .invalid("metadata is larger than \(Self.maxMetadataBytes) bytes")
        }
        let subscriptions = registration.subscriptions ?? []
        guard subscriptions.count <= Self.maxSubscriptions else { throw .invalid("at most \(Self.maxSubscriptions) subscriptions") }
        for subscription in subscriptions {
            guard subscription.event.hasPrefix(KeptnEvent.prefix) || subscription.event.hasPrefix("sh.keptn."), subscription.event.count <= 200 else {
                throw .invalid("a subscription's event must be a Keptn event type like sh.keptn.event.deployment.triggered, not \"\(Untrusted.printable(subscription.event, limit: 80))\"")
            }
        }
        let hostname = metadata["hostname"]?.string ?? ""
        let namespace = metadata["kubernetesmetadata"]?["namespace"]?.string ?? ""
        let id = Self.digestID("\(name)-\(namespace)-\(hostname)")
        metadata["lastseen"] = .string(Timestamps.format(now))
        return try state.withLock { (byID: inout [String: Integration]) throws(Failure) -> (Integration, created: Bool) in
            let created = byID[id] == nil
            // A subscription registered again keeps its id (the go-sdk remembers which events it
            // handled by subscription id and event id).
            let earlier = byID[id]?.subscriptions ?? []
            let numbered = subscriptions.map { subscription -> Integration.Subscription in
                var subscription = subscription
                if subscription.id.isEmpty {
                    subscription.id = earlier.first { $0.event == subscription.event && $0.filter == subscription.filter }?.id ?? UUID().uuidString.lowercased()
                }
                return subscription
            }
            guard !created || byID.count < Self.maxIntegrations else {
                throw .invalid("\(Self.maxIntegrations) integrations are registered already; remove one (DELETE /api/controlPlane/v1/uniform/registration/ID)")
            }
            let integration = Integration(
                id: id, name: name, metadata: metadata, subscriptions: numbered, registeredBy: who,
                registeredAt: byID[id]?.registeredAt ?? Timestamps.format(now))
            byID[id] = integration
            // Written under the lock: two registrations at once never leave the older list on disk.
            save(Array(byID.values))
            return (integration, created)
        }
    }

    /// A ping: the integration as registered, now seen; nil for an id nobody registered.
    public func ping(_ id: String, now: Date = Date()) -> Integration? {
        state.withLock { byID in
            guard var integration = byID[id] else { return nil }
            integration.metadata["lastseen"] = .string(Timestamps.format(now))
            byID[id] = integration
            return integration
        }
    }

    public func remove(_ id: String) -> Bool {
        state.withLock { byID in
            guard byID.removeValue(forKey: id) != nil else { return false }
            save(Array(byID.values))
            return true
        }
    }

    /// Every integration, by name.
    public var all: [Integration] {
        state.withLock { Array($0.values) }.sorted { ($0.name, $0.id) < ($1.name, $1.id) }
    }

    private func save(_ list: [Integration]) {
        guard let file, let data = try? JSON.encode(list.sorted { $0.id < $1.id }) else { return }
        try? AtomicFile.write(data, to: file, mode: 0o640, durable: false)
    }

    /// 40 hex digits, as Keptn's ids are (Keptn takes SHA-1; any stable digest serves).
    static func digestID(_ text: String) -> String {
        String(SHA256.hex(Array(text.utf8)).prefix(40))
    }
}
