import Foundation
import Hummingbird
import HTTPTypes
import NIOCore
import ShipyardCore
import ShipyardStore
import ShipyardDaemon
import Synchronization

extension Site {
    func routes(_ router: Router<WebContext>) {
        router.get("/") { _, _ in self.redirect("/environment") }
        router.get("/static/app.css") { _, _ in
            self.response(type: "text/css; charset=utf-8", body: Assets.css, extra: [(.cacheControl, "max-age=300")])
        }
        router.get("/static/app.js") { _, _ in
            self.response(type: "text/javascript; charset=utf-8", body: Assets.js, extra: [(.cacheControl, "max-age=300")])
        }
        router.get("/healthz") { _, _ in self.response(type: "text/plain", body: "ok\n") }
        router.get("/readyz") { _, _ in
            await self.daemon.isReady
                ? self.response(type: "text/plain", body: "ready\n")
                : self.response(.serviceUnavailable, type: "text/plain", body: "not ready\n")
        }
        router.get("/metrics") { _, _ in self.metrics() }
        router.get("/events/stream") { request, _ in self.stream(request) }

        // Pages.
        router.get("/projects") { request, context in
            let identity = self.identify(request, context: context, makeSession: true)
            return self.page(Pages.projects(self.status(), viewer: await self.viewer(identity)), identity: identity)
        }
        router.get("/environment") { request, context in
            let identity = self.identify(request, context: context, makeSession: true)
            let projects = self.environmentProjects(status: self.status(), store: self.store)
            let flash = self.takeFlash(identity, request)
            return self.page(Pages.environment(projects, viewer: await self.viewer(identity), flash: flash), identity: identity)
        }
        router.get("/evaluations") { request, context in
            let identity = self.identify(request, context: context, makeSession: true)
            let query = request.uri.queryParameters
            func value(_ key: String) -> String? { query.get(key).flatMap { $0.isEmpty ? nil : String($0.prefix(200)) } }
            // Every project, stage and service with a delivery, for links to the others.
            let slots = ((try? self.store?.newestPerStage(deployed: false)) ?? []).map {
                Pages.EvaluationSlot(project: $0.project, stage: $0.stage, service: $0.service)
            }
            guard let slot = value("project").flatMap({ project in
                value("stage").flatMap { stage in value("service").map { Pages.EvaluationSlot(project: project, stage: stage, service: $0) } }
            }) ?? slots.first else {
                return self.page(Pages.environment([], viewer: await self.viewer(identity)), identity: identity)
            }
            let found = (try? self.store?.evaluations(EvaluationQuery(
                project: slot.project, stage: slot.stage, service: slot.service, includeInvalidated: true, limit: 30))) ?? []
            let history = EvaluationHistory(found.reversed().map(EvaluationRow.init))
            return self.page(Pages.evaluations(history, slot: slot, others: slots, viewer: await self.viewer(identity)), identity: identity)
        }
        router.get("/deliveries") { request, context in
            let identity = self.identify(request, context: context, makeSession: true)
            let query = request.uri.queryParameters
            func value(_ key: String) -> String? { query.get(key).flatMap { $0.isEmpty ? nil : String($0.prefix(200)) } }
            let filter = Pages.DeliveryFilter(
                project: value("project"), service: value("service"), state: value("state"), stage: value("stage"), version: value("version"),
                since: value("since"))
            var sequenceQuery = SequenceQuery(
                project: filter.project, service: filter.service, state: filter.state.flatMap(SequenceState.init), since: filter.sinceDate, limit: 200)
            sequenceQuery.stage = filter.stage
            sequenceQuery.image = filter.version
            let page = (try? self.store?.sequences(sequenceQuery)) ?? nil
            var sequences = page?.sequences ?? []
            if filter.stage != nil, let store = self.store {
                // Deliveries that reached the stage, each with all its stages.
                var seen = Set<String>()
                let contexts = sequences.map(\.context).filter { seen.insert($0).inserted }
                sequences = contexts.flatMap { (try? store.sequences(context: $0)) ?? [] }
            }
            let waits = self.store.map { WaitReasons.explain(sequences.filter { $0.isActive }, store: $0) } ?? [:]
            let status = self.status()
            let projects = await self.daemon.currentConfig.projects.map(\.name)
            var stages: [String] = []
            for stage in status?.projects.flatMap(\.stages) ?? [] where !stages.contains(stage) { stages.append(stage) }
            let html = Pages.deliveries(
                sequences, waits: waits, more: page?.more ?? false, filter: filter, projects: projects, stages: stages, viewer: await self.viewer(identity))
            return self.page(html, identity: identity)
        }
        router.get("/deliveries/:context") { request, context in
            let identity = self.identify(request, context: context, makeSession: true)
            let id = context.parameters.get("context") ?? ""
            let executions = Site.validContext(id) ? ((try? self.store?.sequences(context: id)) ?? []) : []
            let viewer = await self.viewer(identity)
            guard !executions.isEmpty else {
                let html = Pages.layout(title: "Not found", active: "/deliveries", viewer: viewer) { html in
                    html.raw("<h1>No delivery has the context <code>")
                    html.add(id)
                    html.raw("</code></h1>")
                }
                return self.page(html, identity: identity, status: .notFound)
            }
            let events = self.events(context: id)
            var extras: [String: Pages.TaskExtras] = [:]
            for execution in executions {
                for task in execution.tasks {
                    guard let triggered = task.triggeredID else { continue }
                    var extra = Pages.TaskExtras()
                    if let finished = events.last(where: { $0.triggeredid == triggered && $0.type.hasSuffix(".finished") }) {
                        if task.name == "approval" { extra.decision = finished.data["approval"] }
                        if task.name == "evaluation" { extra.evaluation = finished.data }
                    }
                    extra.log = self.logTail(context: id, stage: execution.stage, task: task.name)
                    extras[triggered] = extra
                }
            }
            let flash = self.takeFlash(identity, request)
            let waits = self.store.map { WaitReasons.explain(executions, store: $0) } ?? [:]
            let project = self.status()?.projects.first { $0.name == executions[0].project }
            let commit = Pages.commitLink(upstream: project?.upstream, commit: executions[0].commit)
            return self.page(
                Pages.delivery(context: id, executions: executions, extras: extras, events: events, waits: waits, commitLink: commit, viewer: viewer, flash: flash),
                identity: identity)
        }
        router.get("/approvals") { request, context in
            let identity = self.identify(request, context: context, makeSession: true)
            await self.daemon.approvalsSettled()
            let pending = (try? PendingApprovals.read(self.state)) ?? []
            let evaluations = (try? self.store?.latestEvaluations(contexts: pending.map(\.context))) ?? [:]
            let flash = self.takeFlash(identity, request)
            return self.page(Pages.approvals(pending, evaluations: evaluations, viewer: await self.viewer(identity), flash: flash), identity: identity)
        }
        router.post("/approvals/:id/:decision") { request, context in
            await self.decideFromForm(request, context: context)
        }
        // Pause, resume, abort a delivery; deliver an image: for those who may (sequenceControl,
        // else the approvers), judged again by the command layer.
        router.post("/deliveries/:context/:action") { request, context in
            let id = context.parameters.get("context") ?? ""
            let action = context.parameters.get("action") ?? ""
            return await self.fromForm(request, context: context, what: "control") { form, caller in
                let back = "/deliveries/" + HTML.query(id)
                guard let kind = ["pause": CommandRequest.Kind.pause, "resume": .resume, "abort": .abort][action] else {
                    return (CommandOutcome(id: "", ok: false, message: "a delivery takes pause, resume or abort, not \(action)"), back)
                }
                var command = CommandRequest(kind: kind)
                command.context = id
                command.reason = form["reason"].flatMap { $0.isEmpty ? nil : $0 }
                return (await self.daemon.commands.perform(command, as: caller, peer: context.remoteAddress?.description), back)
            }
        }
        router.post("/environment/deliver") { request, context in
            await self.fromForm(request, context: context, what: "trigger") { form, caller in
                let id = form["request"].flatMap { CommandRequest.isValidID($0) ? $0 : nil } ?? CommandRequest.newID()
                var command = CommandRequest(id: id, kind: .trigger, project: form["project"])
                command.service = form["service"]
                command.sequence = form["sequence"].flatMap { $0.isEmpty ? nil : $0 } ?? "delivery"
                command.image = form["image"].flatMap { $0.isEmpty ? nil : $0.trimmingCharacters(in: .whitespaces) }
                let outcome = await self.daemon.commands.perform(command, as: caller, peer: context.remoteAddress?.description)
                var answer = outcome
                if let warnings = outcome.warnings, !warnings.isEmpty { answer.message += " (warning: " + warnings.joined(separator: "; ") + ")" }
                return (answer, outcome.context.map { "/deliveries/" + HTML.query($0) } ?? "/environment")
            }
        }

        // Signing in (htpasswd).
        router.get("/login") { request, context in
            let identity = self.identify(request, context: context, makeSession: true)
            guard self.passwords != nil else { return self.redirect("/deliveries", identity: identity) }
            return self.page(Pages.login(viewer: await self.viewer(identity), error: nil, user: ""), identity: identity)
        }
        router.post("/login") { request, context in await self.login(request, context: context) }
        router.post("/logout") { request, context in
            var request = request
            let identity = self.identify(request, context: context, makeSession: false)
            let form = Site.form(String(buffer: (try? await request.collectBody(upTo: 16384)) ?? ByteBuffer()))
            guard let token = identity.token, Site.same(form["csrf"], identity.session?.csrf), !Site.crossSite(request) else {
                return self.refusal("refused: no valid session or CSRF token")
            }
            if let user = identity.session?.user {
                self.daemon.log.info("web: \(Untrusted.printable(user, limit: 64)) signed out")
            }
            self.sessions.end(token)
            return self.redirect("/deliveries", extra: [(.setCookie, self.cookie("", expire: true))])
        }

        // The JSON API: the CLI's keys.
        router.get("/api/v1/status") { _, _ in
            guard let data = FileManager.default.contents(atPath: self.state.root + "/status.json") else {
                return self.refusal("no status yet", status: .serviceUnavailable)
            }
            // The integrations as they are now (their pings come every few seconds; the file is
            // written when something else changes).
            let live = self.daemon.integrations.all
            if !live.isEmpty, var status = try? JSON.decode(DaemonStatus.self, from: data) {
                status.integrations = live
                return self.json(status)
            }
            return self.response(type: "application/json", body: String(decoding: data, as: UTF8.self))
        }
        router.get("/api/v1/sequences") { request, context in
            let query = request.uri.queryParameters
            func value(_ key: String) -> String? { query.get(key).flatMap { $0.isEmpty ? nil : String($0) } }
            if let state = value("state"), SequenceState(rawValue: state) == nil {
                return self.refusal("state takes one of \(SequenceState.allCases.map(\.rawValue).joined(separator: ", "))", status: .badRequest)
            }
            if let since = value("since"), Timestamps.parse(since) == nil {
                return self.refusal("since takes a time like 2026-11-01T00:00:00Z", status: .badRequest)
            }
            let limit = max(1, min(value("limit").flatMap(Int.init) ?? 50, 10_000))
            // The whole history only for a caller of the local socket (shipyardctl sequences --all);
            // a web visitor gets at most 10,000.
            let all = value("all") == "true"
            let page: SequencePage?
            do {
                page = try self.store?.sequences(SequenceQuery(
                    project: value("project"), service: value("service"), state: value("state").flatMap(SequenceState.init),
                    since: value("since").flatMap(Timestamps.parse), limit: all ? (context.local ? nil : 10_000) : limit))
            } catch {
                return self.refusal("\(error)", status: .internalServerError)
            }
            // Whether older sequences were left out (the CLI says so on standard error).
            let rows = self.store.map { SequenceSummary.rows(page?.sequences ?? [], store: $0) } ?? []
            return self.json(rows, extra: [(Site.moreHeader, page?.more == true ? "true" : "false")])
        }
        router.post("/api/v1/sequences") { request, context in
            await self.command(request, context: context) { body in
                let trigger = try JSON.decode(TriggerBody.self, from: body)
                if let id = trigger.requestID, !CommandRequest.isValidID(id) {
                    throw BadRequest("requestID takes lowercase letters, digits and -, at most 64")
                }
                var command = CommandRequest(id: trigger.requestID ?? CommandRequest.newID(), kind: .trigger, project: trigger.project)
                command.sequence = trigger.sequence
                command.service = trigger.service
                command.stage = trigger.stage
                command.image = trigger.image
                command.labels = trigger.labels
                command.evaluation = trigger.evaluation
                command.strict = trigger.strict
                return command
            }
        }
        router.post("/api/v1/sequences/:context/:action") { request, context in
            let id = context.parameters.get("context") ?? ""
            let action = context.parameters.get("action") ?? ""
            return await self.command(request, context: context) { body in
                guard let kind = ["pause": CommandRequest.Kind.pause, "resume": .resume, "abort": .abort][action] else {
                    throw BadRequest("a sequence takes /pause, /resume or /abort, not /\(action)")
                }
                var command = CommandRequest(kind: kind)
                command.context = id
                command.reason = try Site.reason(body)
                return command
            }
        }
        router.post("/api/v1/events") { request, context in
            await self.command(request, context: context) { body in
                var command = CommandRequest(kind: .event)
                command.event = try JSON.decode(KeptnEvent.self, from: body)
                return command
            }
        }
        router.post("/api/v1/sync") { request, context in
            await self.command(request, context: context) { body in
                CommandRequest(kind: .sync, project: body.isEmpty ? nil : try JSON.decode(SyncBody.self, from: body).project)
            }
        }
        router.get("/api/v1/evaluations") { request, _ in
            let query = request.uri.queryParameters
            func value(_ key: String) -> String? { query.get(key).flatMap { $0.isEmpty ? nil : String($0) } }
            guard let project = value("project"), let stage = value("stage"), let service = value("service") else {
                return self.refusal("evaluations takes project, stage and service", status: .badRequest)
            }
            let limit = max(1, min(value("limit").flatMap(Int.init) ?? 10, 1000))
            let found = (try? self.store?.evaluations(EvaluationQuery(
                project: project, stage: stage, service: service, includeInvalidated: value("includeInvalidated") == "true", limit: limit))) ?? []
            return self.json(found.reversed().map(EvaluationRow.init))
        }
        router.post("/api/v1/evaluations/:id/invalidate") { request, context in
            let id = context.parameters.get("id") ?? ""
            return await self.command(request, context: context) { body in
                var command = CommandRequest(kind: .invalidate)
                command.evaluationID = id
                command.reason = try Site.reason(body)
                return command
            }
        }
        router.get("/api/v1/sequences/:context") { _, context in
            // The whole context or a unique prefix of it, as the CLI takes approval ids.
            let id: String
            switch self.resolve(context: context.parameters.get("context") ?? "") {
            case .success(let found): id = found
            case .failure(let refusal): return self.refusal(refusal.message, status: refusal.status)
            }
            let executions = (try? self.store?.sequences(context: id)) ?? []
            guard !executions.isEmpty else { return self.refusal("no sequence has the context \(id)", status: .notFound) }
            let waits = self.store.map { WaitReasons.explain(executions, store: $0) } ?? [:]
            var view = DeliveryView(context: id, executions: executions, waits: waits)
            view.webhooks = self.store.flatMap { DeliveryView.webhooks(of: id, store: $0) }
            return self.json(view)
        }
        router.get("/api/v1/events") { request, _ in
            let query = request.uri.queryParameters
            var context = query.get("context").map { String($0) }
            if let given = context {
                switch self.resolve(context: given) {
                case .success(let found): context = found
                case .failure(let refusal): return self.refusal(refusal.message, status: refusal.status)
                }
            }
            let type = query.get("type").flatMap { $0.isEmpty ? nil : String($0) }
            let after = query.get("after").flatMap { Int64($0) } ?? 0
            let limit = max(1, min(query.get("limit").flatMap { Int($0) } ?? 1000, 5000))
            let recorded: [RecordedEvent]
            do {
                recorded = try self.store?.events(context: context, type: type, after: after, limit: limit) ?? []
            } catch {
                return self.refusal("\(error)", status: .internalServerError)
            }
            // The position of the last event given: the next page starts after it.
            let position: [(HTTPField.Name, String)] = [(Site.positionHeader, "\(recorded.last?.position ?? after)")]
            var body = ByteBuffer()
            if query.get("format") == "lines" {
                // One recorded event a line, exactly as recorded (shipyardctl events).
                for event in recorded {
                    body.writeBytes(event.json)
                    body.writeInteger(UInt8(0x0A))
                }
                return self.response(type: "application/x-ndjson", body: body, extra: position)
            }
            body.writeString("[")
            for (index, event) in recorded.enumerated() {
                if index > 0 { body.writeString(",") }
                body.writeBytes(event.json)
            }
            body.writeString("]")
            return self.response(type: "application/json", body: body, extra: position)
        }
        router.get("/api/v1/approvals") { request, _ in
            let project = request.uri.queryParameters.get("project").map { String($0) }
            await self.daemon.approvalsSettled()
            return self.json((try? PendingApprovals.read(self.state, project: project)) ?? [])
        }
        router.post("/api/v1/approvals/:id/:decision") { request, context in
            await self.decideFromAPI(request, context: context)
        }

        // Keptn's API (the keptn CLI, job-executor-service): x-token callers.
        keptnRoutes(router)
    }
}
