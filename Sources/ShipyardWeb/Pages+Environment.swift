import Foundation
import ShipyardCore
import ShipyardDaemon
import ShipyardStore

/// Bridge's first screen, done from the record: per project, services × stages, with what runs
/// in each stage (the last delivery that finished there with pass or warning), since when, its
/// last evaluation's score, and what is on its way (a newer delivery, and why it waits).
extension Pages {
    struct EnvironmentCell: Sendable {
        var deployed: StoredSequence?
        var newest: StoredSequence?
        /// The last evaluation of the service in the stage: score and result.
        var score: Double?
        var evaluationResult: String?
        var waitingFor: String?
    }

    struct EnvironmentProject: Sendable {
        var name: String
        var stages: [String]
        var services: [String]
        /// By "service/stage".
        var cells: [String: EnvironmentCell]
    }

    static func environment(_ projects: [EnvironmentProject], viewer: Viewer, flash: String? = nil) -> String {
        let deliver = viewer.mayControl ? viewer.csrf : nil
        return layout(title: "Environment", active: "/environment", viewer: viewer, flash: flash) { html in
            html.raw("<h1>Environment</h1>")
            guard !projects.isEmpty else {
                html.raw("<p class=\"empty\">No projects yet.</p>")
                return
            }
            for project in projects {
                html.raw("<section class=\"environment\" data-project=\"\(HTML.escape(project.name))\"><h2>")
                html.add(project.name)
                html.raw("</h2>")
                guard !project.services.isEmpty else {
                    html.raw("<p class=\"empty\">Nothing delivered yet: <code>shipyardctl trigger delivery --project ")
                    html.add(project.name)
                    html.raw(" --service S --image IMG</code></p></section>")
                    continue
                }
                html.raw("<div class=\"scroll\"><table class=\"environment\"><thead><tr><th>Service</th>")
                for stage in project.stages {
                    html.raw("<th>")
                    html.add(stage)
                    html.raw("</th>")
                }
                html.raw("</tr></thead><tbody>")
                for service in project.services {
                    html.raw("<tr data-service=\"\(HTML.escape(service))\"><th scope=\"row\">")
                    html.add(service)
                    if let csrf = deliver {
                        // Deliver an image of this service (the project's delivery sequence).
                        html.raw("<form class=\"deliver\" method=\"post\" action=\"/environment/deliver\"><input type=\"hidden\" name=\"csrf\" value=\"")
                        html.add(csrf)
                        html.raw("\"><input type=\"hidden\" name=\"project\" value=\"")
                        html.add(project.name)
                        html.raw("\"><input type=\"hidden\" name=\"service\" value=\"")
                        html.add(service)
                        // A request id of its own: a form sent twice starts one delivery.
                        html.raw("\"><input type=\"hidden\" name=\"request\" value=\"\(CommandRequest.newID())\"><input name=\"image\" class=\"reason\" size=\"22\" placeholder=\"image to deliver\" aria-label=\"image to deliver\"><button type=\"submit\">Deliver</button></form>")
                    }
                    html.raw("</th>")
                    for stage in project.stages {
                        cell(&html, project.cells["\(service)/\(stage)"], stage: stage, slot: EvaluationSlot(project: project.name, stage: stage, service: service))
                    }
                    html.raw("</tr>")
                }
                html.raw("</tbody></table></div></section>")
            }
        }
    }

    static func cell(_ html: inout HTML, _ cell: EnvironmentCell?, stage: String, slot: EvaluationSlot) {
        html.raw("<td class=\"slot\" data-stage=\"\(HTML.escape(stage))\">")
        guard let cell, cell.deployed != nil || cell.newest != nil else {
            html.raw("<span class=\"note\">–</span></td>")
            return
        }
        if let deployed = cell.deployed {
            html.raw("<div class=\"deployed\"><a href=\"/deliveries/\(HTML.query(deployed.context))\" class=\"version\">")
            html.add(deployed.image.map(shortImage) ?? String(deployed.context.prefix(8)))
            html.raw("</a> ")
            badge(&html, state: deployed.state.rawValue, result: deployed.result?.rawValue)
            html.raw("<div class=\"note\">")
            html.add("since \(time(deployed.finishedAt))")
            html.raw("</div></div>")
        } else {
            html.raw("<div class=\"note\">nothing deployed yet</div>")
        }
        if let score = cell.score {
            let css = StateStyle.of(state: "finished", result: cell.evaluationResult).css
            html.raw("<div class=\"score \(css)\"><a href=\"\(HTML.escape(link(slot)))\">")
            html.add("evaluation \(number(score)) (\(cell.evaluationResult ?? "?"))")
            html.raw("</a></div>")
        }
        if let newest = cell.newest, newest.id != cell.deployed?.id {
            html.raw("<div class=\"next\"><a href=\"/deliveries/\(HTML.query(newest.context))\">")
            // On its way, or the last one tried that did not get there.
            html.add((newest.isActive ? "→ " : "last tried ") + (newest.image.map(shortImage) ?? String(newest.context.prefix(8))))
            html.raw("</a> ")
            badge(&html, state: newest.state.rawValue, result: newest.result?.rawValue)
            if let why = cell.waitingFor {
                html.raw("<div class=\"waiting-for\">")
                html.add("waiting for \(why)")
                html.raw("</div>")
            }
            html.raw("</div>")
        }
        html.raw("</td>")
    }
}

extension Site {
    /// The environment screen's data: every project in the config, its stages in the
    /// shipyard's order (then any others the record has), each service it has delivered.
    func environmentProjects(status: DaemonStatus?, store: (any Store)?) -> [Pages.EnvironmentProject] {
        let deployed = (try? store?.newestPerStage(deployed: true)) ?? []
        let newest = (try? store?.newestPerStage(deployed: false)) ?? []
        let waits = store.map { WaitReasons.explain(newest.filter { $0.isActive }, store: $0) } ?? [:]
        var names = status?.projects.map(\.name) ?? []
        for sequence in newest where !names.contains(sequence.project) { names.append(sequence.project) }
        return names.map { name in
            var stages = status?.projects.first { $0.name == name }?.stages ?? []
            var services: [String] = []
            var cells: [String: Pages.EnvironmentCell] = [:]
            for sequence in newest where sequence.project == name {
                if !stages.contains(sequence.stage) { stages.append(sequence.stage) }
                if !services.contains(sequence.service) { services.append(sequence.service) }
                cells["\(sequence.service)/\(sequence.stage)", default: Pages.EnvironmentCell()].newest = sequence
                cells["\(sequence.service)/\(sequence.stage)"]?.waitingFor = waits[sequence.id]
            }
            for sequence in deployed where sequence.project == name {
                cells["\(sequence.service)/\(sequence.stage)", default: Pages.EnvironmentCell()].deployed = sequence
            }
            for (key, _) in cells {
                let parts = key.split(separator: "/", maxSplits: 1).map(String.init)
                guard parts.count == 2, let last = (try? store?.evaluations(EvaluationQuery(project: name, stage: parts[1], service: parts[0], limit: 1)))??.first
                else { continue }
                cells[key]?.score = last.data["evaluation"]?["score"]?.number
                cells[key]?.evaluationResult = last.result
            }
            return Pages.EnvironmentProject(name: name, stages: stages, services: services.sorted(), cells: cells)
        }
    }
}
