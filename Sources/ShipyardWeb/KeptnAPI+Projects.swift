import Foundation
import Hummingbird
import HTTPTypes
import NIOCore
import ShipyardCore
import ShipyardDaemon
import ShipyardGit
import ShipyardStore

/// Keptn's control plane for the CLI: projects, stages and services (from the config, the
/// shipyard and Git), sequence control and state, an evaluation's trigger, and the datastore's
/// events (`keptn get event`).
extension Site {
    struct KeptnService: Encodable {
        var serviceName: String
        var deployedImage: String?
        var lastEventTypes: [String: String] = [:]
        var openRemediations: [String] = []
    }

    struct KeptnStage: Encodable {
        var stageName: String
        var parentStages: [String]
        var services: [KeptnService]
    }

    struct KeptnProject: Encodable {
        var projectName: String
        var shipyard: String
        var shipyardVersion: String
        var stages: [KeptnStage]
        var gitCredentials: [String: String]
        var isUpstreamAutoProvisioned = false
    }

    struct KeptnPage<Item: Encodable>: Encodable {
        var items: [Item]
        var key: String
        var nextPageKey = "0"
        var totalCount: Int

        func encode(to encoder: any Encoder) throws {
            var container = encoder.container(keyedBy: DynamicKey.self)
            try container.encode(items, forKey: DynamicKey(key))
            try container.encode(nextPageKey, forKey: DynamicKey("nextPageKey"))
            try container.encode(totalCount, forKey: DynamicKey("totalCount"))
        }
    }

    struct DynamicKey: CodingKey {
        var stringValue: String
        var intValue: Int? { nil }
        init(_ value: String) { stringValue = value }
        init?(stringValue: String) { self.stringValue = stringValue }
        init?(intValue: Int) { nil }
    }

    /// A project as Keptn's CLI reads it: its stages in the shipyard's order, each with the
    /// services it knows (see `services`).
    func keptnProject(_ name: String) throws(KeptnRefusal) -> KeptnProject {
        guard let project = status()?.projects.first(where: { $0.name == name }) else {
            throw KeptnRefusal(.notFound, "Project not found: \(Untrusted.printable(name, limit: 100)) is not in this host's config (projects are the config's; see shipyardd.yaml(5))")
        }
        let mirror = Mirror(path: state.mirror(project: name))
        var shipyard = ""
        if let commit = project.shipyardCommit.map({ ObjectID(hex: $0) }),
            case .blob(_, let bytes)? = try? mirror.file(at: commit, path: project.shipyardPath, limit: 1 << 20)
        {
            shipyard = String(decoding: bytes, as: UTF8.self)
        }
        let deployed = ((try? store?.newestPerStage(deployed: true)) ?? []).filter { $0.project == name }
        let stages = project.stages.enumerated().map { index, stage in
            KeptnStage(
                stageName: stage, parentStages: index == 0 ? [] : [project.stages[index - 1]],
                services: services(project: project, stage: stage, mirror: mirror).map { service in
                    KeptnService(serviceName: service, deployedImage: deployed.first { $0.stage == stage && $0.service == service }?.image)
                })
        }
        return KeptnProject(
            projectName: name, shipyard: shipyard, shipyardVersion: Self.shipyardVersion(shipyard), stages: stages,
            gitCredentials: ["remoteURL": Self.withoutCredentials(project.upstream)])
    }

    /// A stage's services: those the project ever delivered, and the folders `STAGE/SERVICE/` of
    /// the repository at the newest commit (where a service's SLO and job files live; the SLI
    /// provider's own folder, `STAGE/prometheus/`, is none). Keptn needs `keptn create service`
    /// first; here a folder in Git, or a first delivery (shipyardctl trigger), is enough.
    func services(project: ProjectStatus, stage: String, mirror: Mirror) -> [String] {
        var names = Set((try? store?.services(project: project.name, limit: 1000)) ?? [])
        if let commit = project.commit.map({ ObjectID(hex: $0) }), let entries = try? mirror.entries(at: commit, path: stage, limit: 1000) {
            for entry in entries where entry.kind == .folder && entry.name != "prometheus" && APITokens.isName(entry.name) {
                names.insert(entry.name)
            }
        }
        return names.sorted()
    }

    static func shipyardVersion(_ text: String) -> String {
        for line in text.split(separator: "\n") where line.hasPrefix("apiVersion:") {
            return line.dropFirst("apiVersion:".count).trimmingCharacters(in: CharacterSet(charactersIn: " \"'"))
        }
        return "spec.keptn.sh/0.2.2"
    }

    /// An upstream URL as it may be shown: `https://user:secret@host/…` loses `user:secret@`.
    static func withoutCredentials(_ url: String) -> String {
        guard let scheme = url.range(of: "://"), let at = url[scheme.upperBound...].firstIndex(of: "@") else { return url }
        let slash = url[scheme.upperBound...].firstIndex(of: "/") ?? url.endIndex
        guard at < slash else { return url }
        return String(url[..<scheme.upperBound]) + url[url.index(after: at)...]
    }

    func stage(_ project: KeptnProject, _ name: String) throws(KeptnRefusal) -> KeptnStage {
        guard let stage = project.stages.first(where: { $0.stageName == name }) else {
            throw KeptnRefusal(.notFound, "Stage not found: \(Untrusted.printable(name, limit: 100)) is not a stage of \(project.projectName)'s shipyard")
        }
        return stage
    }

    func projectRoutes(_ router: Router<WebContext>) {
        router.get("/api/controlPlane/v1/project") { request, context in
            await self.keptn(request, context) { _ throws(KeptnRefusal) in
                var projects: [KeptnProject] = []
                for name in self.status()?.projects.map(\.name) ?? [] { projects.append(try self.keptnProject(name)) }
                return self.json(KeptnPage(items: projects, key: "projects", totalCount: projects.count))
            }
        }
        router.post("/api/controlPlane/v1/project") { request, context in
            await self.keptn(request, context) { _ in
                self.keptnError(.badRequest, "projects are this host's config (projects: in shipyardd.yaml(5)), not created through the API")
            }
        }
        router.get("/api/controlPlane/v1/project/:project") { request, context in
            await self.keptn(request, context) { _ throws(KeptnRefusal) in
                self.json(try self.keptnProject(context.parameters.get("project") ?? ""))
            }
        }
        router.get("/api/controlPlane/v1/project/:project/stage") { request, context in
            await self.keptn(request, context) { _ throws(KeptnRefusal) in
                let stages = try self.keptnProject(context.parameters.get("project") ?? "").stages
                return self.json(KeptnPage(items: stages, key: "stages", totalCount: stages.count))
            }
        }
        router.get("/api/controlPlane/v1/project/:project/stage/:stage") { request, context in
            await self.keptn(request, context) { _ throws(KeptnRefusal) in
                self.json(try self.stage(try self.keptnProject(context.parameters.get("project") ?? ""), context.parameters.get("stage") ?? ""))
            }
        }
        router.get("/api/controlPlane/v1/project/:project/stage/:stage/service") { request, context in
            await self.keptn(request, context) { _ throws(KeptnRefusal) in
                let stage = try self.stage(try self.keptnProject(context.parameters.get("project") ?? ""), context.parameters.get("stage") ?? "")
                return self.json(KeptnPage(items: stage.services, key: "services", totalCount: stage.services.count))
            }
        }
        router.get("/api/controlPlane/v1/project/:project/stage/:stage/service/:service") { request, context in
            await self.keptn(request, context) { _ throws(KeptnRefusal) in
                let stage = try self.stage(try self.keptnProject(context.parameters.get("project") ?? ""), context.parameters.get("stage") ?? "")
                let name = context.parameters.get("service") ?? ""
                guard let service = stage.services.first(where: { $0.serviceName == name }) else {
                    throw KeptnRefusal(.notFound, "Service not found: \(Untrusted.printable(name, limit: 100)) (a service is a folder STAGE/SERVICE/ in the repository, or one delivered before)")
                }
                return self.json(service)
            }
        }
        router.post("/api/controlPlane/v1/project/:project/service") { request, context in
            await self.keptn(request, context) { _ in
                self.keptnError(.badRequest, "services are folders in the project's repository (STAGE/SERVICE/ beside its slo.yaml): commit one there, or deliver it once (a first delivery creates it)")
            }
        }
        // `keptn trigger evaluation`: the stage's evaluation sequence, as a trigger.
        router.post("/api/controlPlane/v1/project/:project/stage/:stage/service/:service/evaluation") { request, context in
            await self.keptn(request, context) { caller throws(KeptnRefusal) in
                let body = try await self.keptnBody(request)
                var command = CommandRequest(kind: .trigger, project: context.parameters.get("project"))
                command.stage = context.parameters.get("stage")
                command.service = context.parameters.get("service")
                command.sequence = Engine.evaluationSequence
                if body["start"]?.string != nil || body["timeframe"]?.string != nil {
                    command.evaluation = CommandRequest.EvaluationWindow(timeframe: body["timeframe"]?.string, start: body["start"]?.string, end: body["end"]?.string)
                }
                if let labels = body["labels"]?.object {
                    command.labels = labels.compactMapValues(\.string)
                }
                return self.keptnAnswer(await self.daemon.commands.perform(command, as: caller, peer: context.remoteAddress?.description), context: nil)
            }
        }
        // `keptn abort|pause|resume sequence`.
        router.post("/api/controlPlane/v1/sequence/:project/:context/control") { request, context in
            await self.keptn(request, context) { caller throws(KeptnRefusal) in
                let body = try await self.keptnBody(request)
                let state = body["state"]?.string ?? ""
                guard let kind = ["abort": CommandRequest.Kind.abort, "pause": .pause, "resume": .resume][state] else {
                    throw KeptnRefusal(.badRequest, "state must be abort, pause or resume, not \(Untrusted.printable(state, limit: 40))")
                }
                let given = context.parameters.get("context") ?? ""
                let project = context.parameters.get("project") ?? ""
                guard Self.validContext(given), let found = try? self.store?.sequences(context: given), found.contains(where: { $0.project == project }) else {
                    throw KeptnRefusal(.notFound, "Sequence not found: no sequence of \(Untrusted.printable(project, limit: 100)) has the context \(Untrusted.printable(given, limit: 100))")
                }
                var command = CommandRequest(kind: kind)
                command.context = given
                command.reason = body["stage"]?.string.map { "through Keptn's API (stage \(Untrusted.printable($0, limit: 60)))" } ?? "through Keptn's API"
                let outcome = await self.daemon.commands.perform(command, as: caller, peer: context.remoteAddress?.description)
                return outcome.ok ? self.json([String: String]()) : self.keptnAnswer(outcome, context: given)
            }
        }
        router.get("/api/controlPlane/v1/sequence/:project") { request, context in
            await self.keptn(request, context) { _ throws(KeptnRefusal) in
                try self.sequenceStates(project: context.parameters.get("project") ?? "", query: request.uri.queryParameters)
            }
        }
        // `keptn get event`: newest first, paged by position.
        router.get("/api/mongodb-datastore/event") { request, context in
            await self.keptn(request, context) { _ throws(KeptnRefusal) in
                let parameters = request.uri.queryParameters
                func value(_ key: String) -> String? { parameters.get(key).flatMap { $0.isEmpty ? nil : String($0.prefix(200)) } }
                var query = EventQuery(limit: max(1, min(value("pageSize").flatMap(Int.init) ?? 20, 100)))
                query.project = value("project")
                query.stage = value("stage")
                query.service = value("service")
                query.context = value("keptnContext")
                query.type = value("type")
                query.eventID = value("eventID")
                query.fromTime = value("fromTime")
                query.before = value("nextPageKey").flatMap(Int64.init).flatMap { $0 > 0 ? $0 : nil }
                guard let store = self.store else { throw KeptnRefusal(.serviceUnavailable, "no record yet") }
                let pageSize = query.limit
                query.limit += 1  // one more says whether there is a next page
                var found: (events: [RecordedEvent], total: Int)
                do {
                    found = try store.eventsNewestFirst(query)
                } catch {
                    throw KeptnRefusal(.internalServerError, "\(error)")
                }
                let more = found.events.count > pageSize
                found.events = Array(found.events.prefix(pageSize))
                return self.rawEvents(found.events, extra: [
                    ("nextPageKey", "\"\(more ? String(found.events.last!.position) : "0")\""), ("pageSize", "\(pageSize)"), ("totalCount", "\(found.total)"),
                ])
            }
        }
    }

    /// `{"events":[…recorded JSON…], …}`: each event exactly as recorded.
    func rawEvents(_ events: [RecordedEvent], extra: [(String, String)]) -> Response {
        var body = ByteBuffer()
        body.writeString("{\"events\":[")
        for (index, event) in events.enumerated() {
            if index > 0 { body.writeString(",") }
            body.writeBytes(event.json)
        }
        body.writeString("]")
        for (key, value) in extra { body.writeString(",\"\(key)\":\(value)") }
        body.writeString("}")
        return response(type: "application/json", body: body)
    }

    struct SequenceStates: Encodable {
        struct State: Encodable {
            var name: String
            var service: String
            var project: String
            var time: String
            var shkeptncontext: String
            var state: String
            var stages: [Stage]
        }
        struct Evaluation: Encodable {
            var result: String
            var score: Double
        }
        struct Stage: Encodable {
            var name: String
            var image: String?
            var state: String
            var latestEvaluation: Evaluation?
            var latestEvent: [String: String]?
        }
        var states: [State]
        var nextPageKey = "0"
        var totalCount: Int
    }

    /// Keptn's sequence states: one per delivery (context), its stages in the order they ran.
    func sequenceStates(project: String, query: Hummingbird.Parameters) throws(KeptnRefusal) -> Response {
        func value(_ key: String) -> String? { query.get(key).flatMap { $0.isEmpty ? nil : String($0.prefix(200)) } }
        guard status()?.projects.contains(where: { $0.name == project }) == true else {
            throw KeptnRefusal(.notFound, "Project not found: \(Untrusted.printable(project, limit: 100))")
        }
        guard let store else { throw KeptnRefusal(.serviceUnavailable, "no record yet") }
        let limit = max(1, min(value("pageSize").flatMap(Int.init) ?? 20, 100))
        var rows: [StoredSequence]
        if let context = value("keptnContext") {
            rows = ((try? store.sequences(context: context)) ?? []).filter { $0.project == project }
        } else {
            var sequenceQuery = SequenceQuery(project: project, state: value("state").flatMap(SequenceState.init), limit: limit * 8)
            sequenceQuery.since = value("fromTime").flatMap(Timestamps.parse)
            rows = (try? store.sequences(sequenceQuery).sequences) ?? []
        }
        if let name = value("name") { rows = rows.filter { $0.sequence == name } }
        var order: [String] = []
        var byContext: [String: [StoredSequence]] = [:]
        for row in rows {
            if byContext[row.context] == nil { order.append(row.context) }
            byContext[row.context, default: []].append(row)
        }
        let evaluations = (try? store.latestEvaluations(contexts: order)) ?? [:]
        // Newest first, as Keptn lists them.
        order.sort { (byContext[$0]?.map(\.triggeredAt).min() ?? .distantPast) > (byContext[$1]?.map(\.triggeredAt).min() ?? .distantPast) }
        let states = order.prefix(limit).map { context -> SequenceStates.State in
            let stages = byContext[context, default: []].sorted { $0.triggeredAt < $1.triggeredAt }
            let first = stages[0]
            let last = stages[stages.count - 1]
            return SequenceStates.State(
                name: first.sequence, service: first.service, project: first.project, time: Timestamps.format(first.triggeredAt),
                shkeptncontext: context, state: last.state.rawValue,
                stages: stages.map { stage in
                    let evaluation = evaluations[context]
                    return SequenceStates.Stage(
                        name: stage.stage, image: stage.image, state: stage.state.rawValue,
                        latestEvaluation: evaluation.flatMap { value in
                            value["result"]?.string.map { SequenceStates.Evaluation(result: $0, score: value["evaluation"]?["score"]?.number ?? 0) }
                        },
                        latestEvent: nil)
                })
        }
        return json(SequenceStates(states: Array(states), totalCount: states.count))
    }
}
