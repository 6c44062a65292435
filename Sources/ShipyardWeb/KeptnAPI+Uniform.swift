import Foundation
import Hummingbird
import HTTPTypes
import NIOCore
import ShipyardCore
import ShipyardDaemon
import ShipyardGit
import ShipyardStore

/// Keptn's remote execution plane, as the go-sdk drives it (job-executor-service with
/// `KEPTN_API_ENDPOINT`): registration, pings with subscriptions, the open task events it polls
/// for, its error logs; and the resource-service reads it makes (`job/config.yaml`).
extension Site {
    func uniformRoutes(_ router: Router<WebContext>) {
        router.post("/api/controlPlane/v1/uniform/registration") { request, context in
            await self.keptn(request, context) { caller throws(KeptnRefusal) in
                try await self.mayIntegrate(caller)
                let body = try await self.keptnBody(request)
                guard let registration = try? JSON.decode(IntegrationRegistration.self, from: try JSON.encode(body)) else {
                    throw KeptnRefusal(.badRequest, "a registration is {\"name\", \"metadata\", \"subscriptions\": [{\"event\", \"filter\"}]}")
                }
                do throws(Integrations.Failure) {
                    let (integration, created) = try self.daemon.integrations.register(registration, by: caller.user)
                    if created {
                        self.daemon.log.info(
                            "integration \(integration.name) registered by \(caller.user)",
                            metadata: ["id": "\(integration.id)", "host": "\(Untrusted.printable(integration.hostname ?? "?", limit: 100))"])
                    }
                    return self.json(["id": integration.id], status: created ? .created : .ok)
                } catch {
                    guard case .invalid(let message) = error else { throw KeptnRefusal(.badRequest, "\(error)") }
                    throw KeptnRefusal(.badRequest, message)
                }
            }
        }
        router.get("/api/controlPlane/v1/uniform/registration") { request, context in
            await self.keptn(request, context) { _ in
                let name = request.uri.queryParameters.get("name").map({ String($0) })
                return self.json(self.daemon.integrations.all.filter { name == nil || $0.name == name }.map(KeptnIntegration.init))
            }
        }
        router.put("/api/controlPlane/v1/uniform/registration/:id/ping") { request, context in
            await self.keptn(request, context) { _ throws(KeptnRefusal) in
                guard let integration = self.daemon.integrations.ping(context.parameters.get("id") ?? "") else {
                    throw KeptnRefusal(.notFound, "no integration is registered with this id (after a re-install of shipyardd, restart the integration so that it registers again)")
                }
                return self.json(KeptnIntegration(integration))
            }
        }
        router.delete("/api/controlPlane/v1/uniform/registration/:id") { request, context in
            await self.keptn(request, context) { caller throws(KeptnRefusal) in
                try await self.mayIntegrate(caller)
                let id = context.parameters.get("id") ?? ""
                guard self.daemon.integrations.remove(id) else { throw KeptnRefusal(.notFound, "no integration is registered with this id") }
                self.daemon.log.info("integration \(id) removed by \(caller.user)")
                return self.json([String: String]())
            }
        }
        router.get("/api/controlPlane/v1/event/triggered/:type") { request, context in
            await self.keptn(request, context) { _ throws(KeptnRefusal) in
                try await self.openTasks(type: context.parameters.get("type") ?? "", query: request.uri.queryParameters)
            }
        }
        // An integration's error log (the go-sdk sends one with an errored .finished).
        router.post("/api/controlPlane/v1/log") { request, context in
            await self.keptn(request, context) { caller throws(KeptnRefusal) in
                let body = try await self.keptnBody(request)
                for entry in (body["logs"]?.array ?? []).prefix(20) {
                    let message = Untrusted.printable(entry["message"]?.string ?? "", limit: 1000)
                    let integration = entry["integrationid"]?.string.flatMap { id in self.daemon.integrations.all.first { $0.id == id }?.name } ?? caller.user
                    self.daemon.log.warning(
                        "integration \(Untrusted.printable(integration, limit: 100)): \(message)",
                        metadata: [
                            "context": "\(Untrusted.printable(entry["shkeptncontext"]?.string ?? "", limit: 100))",
                            "triggeredid": "\(Untrusted.printable(entry["triggeredid"]?.string ?? "", limit: 100))",
                            "task": "\(Untrusted.printable(entry["task"]?.string ?? "", limit: 100))",
                        ])
                }
                return self.json([String: String]())
            }
        }
    }

    /// Registering and removing integrations: for those who may answer tasks (eventSenders), as an
    /// integration does; anyone else could fill or empty the registry.
    func mayIntegrate(_ caller: Caller) async throws(KeptnRefusal) {
        if let refusal = await daemon.commands.mayAnswerTasks(caller) {
            daemon.metrics.request("api-integration", outcome: "refused")
            throw KeptnRefusal(.forbidden, refusal)
        }
    }

    /// The open task events of one type, as the go-sdk polls them: `.triggered` events of tasks
    /// not yet finished, of active sequences, that no local program runs here (a task of
    /// `tasks:` in the config runs on this host, never on an integration too; an evaluation is
    /// shipyardd's own).
    func openTasks(type: String, query parameters: Hummingbird.Parameters) async throws(KeptnRefusal) -> Response {
        func value(_ key: String) -> String? { parameters.get(key).flatMap { $0.isEmpty ? nil : String($0.prefix(200)) } }
        guard case .task(let task, "triggered")? = KeptnEvent.kind(of: type) else {
            throw KeptnRefusal(.badRequest, "\(Untrusted.printable(type, limit: 120)) is not a task's .triggered type (sh.keptn.event.TASK.triggered)")
        }
        guard task != Engine.evaluationSequence, await daemon.currentConfig.tasks[task] == nil else {
            return rawEvents([], extra: [("nextPageKey", "\"0\""), ("totalCount", "0")])
        }
        guard let store else { throw KeptnRefusal(.serviceUnavailable, "no record yet") }
        var query = OpenTaskQuery(task: task, project: value("project"), stage: value("stage"), service: value("service"), eventID: value("eventID"))
        query.limit = Self.maxOpenTasks
        let found: [RecordedEvent]
        do {
            found = try store.openTasks(query)
        } catch {
            throw KeptnRefusal(.internalServerError, "\(error)")
        }
        return rawEvents(found, extra: [("nextPageKey", "\"0\""), ("totalCount", "\(found.count)")])
    }

    /// The most open events of one type one poll is given (the oldest first; the rest follow as
    /// those finish).
    static let maxOpenTasks = 500
}

/// An integration as Keptn's Uniform API gives it (go-utils' `models.Integration`).
struct KeptnIntegration: Encodable {
    var id: String
    var name: String
    var metadata: JSONValue
    var subscriptions: [Integration.Subscription]

    init(_ integration: Integration) {
        id = integration.id
        name = integration.name
        metadata = integration.metadata
        subscriptions = integration.subscriptions
    }
}
