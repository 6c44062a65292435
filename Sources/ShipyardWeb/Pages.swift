import Foundation
import ShipyardCore
import ShipyardStore
import ShipyardDaemon

/// HTML, escaped. Every value from the record, a repository or a request goes through `escape`.
struct HTML: Sendable {
    var text = ""

    mutating func raw(_ string: String) { text += string }
    mutating func add(_ string: String) { text += HTML.escape(string) }

    static func escape(_ string: String) -> String {
        var out = ""
        out.reserveCapacity(string.utf8.count)
        for scalar in string.unicodeScalars {
            switch scalar {
            case "&": out += "&amp;"
            case "<": out += "&lt;"
            case ">": out += "&gt;"
            case "\"": out += "&quot;"
            case "'": out += "&#39;"
            default:
                // Control characters (an escape sequence in a message) and invisible format
                // characters (a right-to-left override in a task name from Git, which would show
                // "exe.txt" for "txt.exe", a zero-width space) are shown, not passed on.
                if scalar.value < 0x20 && scalar != "\n" && scalar != "\t" || (0x7F..<0xA0).contains(scalar.value)
                    || scalar.properties.generalCategory == .format || scalar.value == 0x2028 || scalar.value == 0x2029
                {
                    out += "\\u{\(String(scalar.value, radix: 16))}"
                } else {
                    out.unicodeScalars.append(scalar)
                }
            }
        }
        return out
    }

    /// A query string value.
    static func query(_ string: String) -> String {
        string.addingPercentEncoding(withAllowedCharacters: .alphanumerics.union(CharacterSet(charactersIn: "-._~"))) ?? ""
    }
}

/// Who is looking, and what they may do.
struct Viewer: Sendable {
    var user: String?
    var csrf: String?
    var mayDecide: Bool
    /// Pause, resume, abort and deliver (sequenceControl, else the approvers).
    var mayControl = false
    /// Which gates this user may decide (nil: none).
    var rights: DecisionRights? = nil
    /// Whether this web view has a way to sign in at all (`http.auth`).
    var authConfigured: Bool
    var loginForm: Bool
}

/// Keptn's states, in the colours Keptn's Bridge gives them (B1), as a CSS class and a label.
enum StateStyle {
    static func of(state: String, result: String?) -> (css: String, label: String) {
        switch state {
        case "finished":
            switch result {
            case "pass": return ("pass", "finished: pass")
            case "warning": return ("warning", "finished: warning")
            default: return ("fail", "finished: fail")
            }
        case "waitingForApproval": return ("approval", "waiting for approval")
        case "started": return ("running", "running")
        case "triggered": return ("running", "triggered")
        case "waiting": return ("waiting", "waiting")
        case "paused": return ("paused", "paused")
        case "aborted": return ("aborted", "aborted")
        case "timedOut": return ("fail", "timed out")
        default: return ("waiting", state)
        }
    }
}

enum Pages {
    static func layout(title: String, active: String, viewer: Viewer, flash: String? = nil, live: Bool = true, _ body: (inout HTML) -> Void) -> String {
        var html = HTML()
        html.raw("<!doctype html><html lang=\"en\"><head><meta charset=\"utf-8\"><meta name=\"viewport\" content=\"width=device-width, initial-scale=1\">")
        html.raw("<title>")
        html.add(title)
        html.raw(" · Shipyard</title><link rel=\"stylesheet\" href=\"/static/app.css\">")
        if live { html.raw("<script src=\"/static/app.js\" defer></script>") }
        html.raw("</head><body><header><nav><a class=\"brand\" href=\"/deliveries\">Shipyard</a>")
        for (path, label) in [("/environment", "Environment"), ("/deliveries", "Deliveries"), ("/approvals", "Approvals"), ("/projects", "Projects")] {
            html.raw("<a href=\"\(path)\"\(active == path ? " class=\"active\" aria-current=\"page\"" : "")>\(label)</a>")
        }
        html.raw("<span class=\"who\">")
        if let user = viewer.user {
            html.raw("signed in as <strong id=\"user\">")
            html.add(user)
            html.raw("</strong>")
            if viewer.loginForm, let csrf = viewer.csrf {
                html.raw("<form method=\"post\" action=\"/logout\" class=\"inline\"><input type=\"hidden\" name=\"csrf\" value=\"")
                html.add(csrf)
                html.raw("\"><button type=\"submit\">Sign out</button></form>")
            }
        } else if viewer.loginForm {
            html.raw("<a id=\"login\" href=\"/login\">Sign in</a>")
        } else if !viewer.authConfigured {
            html.raw("read-only")
        }
        html.raw("</span></nav></header>")
        // Outside <main>, which the live refresh replaces: a confirmation stays until dismissed.
        if let flash, !flash.isEmpty {
            html.raw("<p class=\"flash\" id=\"flash\" role=\"status\"><span>")
            html.add(flash)
            html.raw("</span><button type=\"button\" class=\"dismiss\" aria-label=\"Dismiss\">×</button></p>")
        }
        html.raw("<main id=\"main\">")
        body(&html)
        html.raw("</main></body></html>")
        return html.text
    }

    static func badge(_ html: inout HTML, state: String, result: String?) {
        let (css, label) = StateStyle.of(state: state, result: result)
        html.raw("<span class=\"state \(css)\" data-state=\"\(HTML.escape(state))\">")
        html.add(label)
        html.raw("</span>")
    }

    static func time(_ date: Date?) -> String {
        guard let date else { return "" }
        return Timestamps.format(date).replacingOccurrences(of: "T", with: " ").prefix(19) + "Z"
    }

    static func duration(from start: Date?, to end: Date?) -> String {
        guard let start else { return "" }
        let seconds = max(0, (end ?? Date()).timeIntervalSince(start))
        let text: String
        if seconds < 1 { text = String(format: "%.0f ms", seconds * 1000) } else if seconds < 120 { text = String(format: "%.1f s", seconds) } else if seconds < 7200 {
            text = "\(Int(seconds) / 60) min \(Int(seconds) % 60) s"
        } else {
            text = "\(Int(seconds) / 3600) h \(Int(seconds) % 3600 / 60) min"
        }
        return end == nil ? text + " so far" : text
    }

    // MARK: Projects

    static func projects(_ status: DaemonStatus?, viewer: Viewer) -> String {
        layout(title: "Projects", active: "/projects", viewer: viewer) { html in
            html.raw("<h1>Projects</h1>")
            guard let status, !status.projects.isEmpty else {
                html.raw("<p class=\"empty\">No projects yet.</p>")
                return
            }
            html.raw("<div class=\"scroll\"><table class=\"projects\"><thead><tr><th>Project</th><th>Upstream</th><th>Branch</th><th>Fetched</th><th>Loaded shipyard</th><th>Last poll</th><th>State</th></tr></thead><tbody>")
            for project in status.projects {
                html.raw("<tr data-project=\"\(HTML.escape(project.name))\"><td>")
                html.add(project.name)
                html.raw("</td><td><code>")
                html.add(project.upstream)
                html.raw("</code></td><td>")
                html.add(project.branch)
                html.raw("</td><td><code>")
                html.add(String((project.commit ?? "-").prefix(12)))
                html.raw("</code></td><td><code>")
                html.add(String((project.shipyardCommit ?? "-").prefix(12)))
                html.raw("</code> ")
                html.add(project.stages.joined(separator: " → "))
                html.raw("</td><td>")
                html.add(project.lastPollAt ?? "never")
                html.raw("</td><td>")
                if let error = project.error {
                    html.raw("<span class=\"state fail\">error</span><div class=\"error\">")
                    html.add(error.message)
                    if let line = error.line {
                        html.raw("<br><code>")
                        html.add("\(project.shipyardPath):\(line):\(error.column ?? 1)")
                        html.raw("</code>")
                        if let commit = error.commit { html.add(" at \(commit.prefix(12))") }
                    }
                    if project.consecutiveFailures > 0 { html.add(" (\(project.consecutiveFailures) failed polls)") }
                    html.raw("</div>")
                } else {
                    html.raw("<span class=\"state pass\">ok</span>")
                }
                if let gate = project.qualityGate {
                    html.raw("<div class=\"note\">")
                    html.add("\(gate.passedWithoutSLO) evaluation(s) passed without an SLO file: \(gate.lastMessage)")
                    html.raw("</div>")
                }
                html.raw("</td></tr>")
            }
            html.raw("</tbody></table></div>")
        }
    }

    // MARK: One delivery

    struct TaskExtras: Sendable {
        /// `approval.finished`'s `data.approval`: who decided, when, why, how.
        var decision: JSONValue?
        /// `evaluation.finished`'s data.
        var evaluation: JSONValue?
        var log: String?
    }

    /// The webhooks a delivery called: which, for which event, how each request went (secrets
    /// were masked before the record).
    static func webhooks(_ html: inout HTML, _ calls: [KeptnEvent]) {
        guard !calls.isEmpty else { return }
        html.raw("<section class=\"webhooks\"><h2>Webhooks</h2><div class=\"scroll\"><table><thead><tr><th>Time</th><th>Stage</th><th>Event</th><th>Webhook</th><th>Outcome</th><th>Requests</th></tr></thead><tbody>")
        for call in calls {
            let hook = call.data["webhook"]?.object ?? [:]
            let outcome = hook["outcome"]?.string ?? ""
            html.raw("<tr class=\"webhook\" data-outcome=\"\(HTML.escape(outcome))\"><td>")
            html.add(call.time)
            html.raw("</td><td>")
            html.add(call.data["stage"]?.string ?? "")
            html.raw("</td><td>")
            html.add(String((hook["event"]?.string ?? "").dropFirst(KeptnEvent.prefix.count)))
            html.raw("</td><td>")
            html.add(hook["subscription"]?.string ?? "")
            html.raw("</td><td>")
            badge(&html, state: "finished", result: outcome == "ok" ? "pass" : "fail")
            html.add(" \(outcome)")
            html.raw("</td><td class=\"message\">")
            if case .array(let requests)? = hook["requests"] {
                for request in requests {
                    html.raw("<div><code>")
                    html.add("\(request["method"]?.string ?? "") \(request["url"]?.string ?? "")")
                    html.raw("</code> ")
                    if case .number(let status)? = request["status"] { html.add("\(Int(status))") } else { html.add(request["outcome"]?.string ?? "") }
                    if case .number(let attempts)? = request["attempts"], attempts > 1 { html.add(" after \(Int(attempts)) attempts") }
                    html.raw("</div>")
                }
            }
            if let message = hook["message"]?.string, !message.isEmpty {
                html.raw("<div class=\"why\">")
                html.add(message)
                html.raw("</div>")
            }
            html.raw("</td></tr>")
        }
        html.raw("</tbody></table></div></section>")
    }

    static func delivery(
        context: String, executions: [StoredSequence], extras: [String: TaskExtras], events: [KeptnEvent], waits: [String: String] = [:],
        commitLink: String? = nil, viewer: Viewer, flash: String?
    ) -> String {
        let first = executions.first
        return layout(title: "Delivery \(context.prefix(8))", active: "/deliveries", viewer: viewer, flash: flash) { html in
            html.raw("<h1>Delivery <code>")
            html.add(context)
            html.raw("</code></h1><p class=\"summary\">")
            html.add("\(first?.project ?? "") · \(first?.service ?? "")")
            if let image = executions.lazy.compactMap(\.image).first {
                html.raw(" · <strong class=\"image\">")
                html.add(image)
                html.raw("</strong>")
            }
            html.add(" · commit ")
            if let commitLink, let commit = first?.commit {
                html.raw("<a class=\"commit\" rel=\"noreferrer\" href=\"")
                html.add(commitLink)
                html.raw("\"><code>")
                html.add(String(commit.prefix(12)))
                html.raw("</code></a>")
            } else {
                html.add(first?.commit.map { String($0.prefix(12)) } ?? "-")
            }
            html.add(" · triggered by \(first?.triggeredBy ?? "-") at \(time(first?.triggeredAt))")
            html.raw("</p>")
            let running = executions.contains { $0.isActive && $0.state == .started }
            html.raw("<div class=\"stages\"\(running ? " data-running=\"1\"" : "")>")
            for execution in executions {
                html.raw("<section class=\"stage\" data-stage=\"\(HTML.escape(execution.stage))\" data-state=\"\(HTML.escape(execution.state.rawValue))\"><h2>")
                html.add("\(execution.stage).\(execution.sequence)")
                html.raw(" ")
                badge(&html, state: execution.state.rawValue, result: execution.result?.rawValue)
                html.raw("</h2><p class=\"times\">")
                html.add("triggered \(time(execution.triggeredAt))")
                if let started = execution.startedAt { html.add(" · started \(time(started)) · \(duration(from: started, to: execution.isActive ? nil : execution.finishedAt))") }
                html.raw("</p>")
                if let why = waits[execution.id] {
                    html.raw("<p class=\"waiting-for\">")
                    html.add("Waiting for \(why)")
                    html.raw("</p>")
                }
                if !execution.isActive, execution.result == .fail, let message = execution.message, !message.isEmpty {
                    html.raw("<p class=\"why\">Why: ")
                    html.add(message)
                    html.raw("</p>")
                }
                html.raw("<div class=\"scroll\"><table class=\"tasks\"><thead><tr><th>Task</th><th>State</th><th>Result</th><th>Started</th><th>Duration</th><th>Message</th></tr></thead><tbody>")
                for task in execution.tasks {
                    let extra = task.triggeredID.flatMap { extras[$0] }
                    html.raw("<tr class=\"task\" data-task=\"\(HTML.escape(task.name))\" data-state=\"\(HTML.escape(task.state))\"><td>")
                    html.add(task.name)
                    html.raw("</td><td>")
                    let taskState = task.state == "started" && task.name == "approval" ? "waitingForApproval" : task.state == "started" ? "started" : task.state
                    if task.state == "finished" {
                        badge(&html, state: "finished", result: task.result?.rawValue)
                    } else {
                        badge(&html, state: taskState, result: nil)
                    }
                    html.raw("</td><td>")
                    html.add([task.result?.rawValue, task.status?.rawValue].compactMap { $0 }.joined(separator: " / "))
                    html.raw("</td><td>")
                    html.add(time(task.startedAt ?? task.triggeredAt))
                    html.raw("</td><td>")
                    if task.state != "pending" {
                        html.add(duration(from: task.startedAt ?? task.triggeredAt, to: task.state == "finished" ? task.finishedAt : nil))
                    }
                    html.raw("</td><td class=\"message\">")
                    html.add(task.message ?? "")
                    if let decision = extra?.decision {
                        html.raw("<div class=\"decision\">")
                        html.add("\(decision["decision"]?.string ?? "") by \(decision["by"]?.string ?? "?")")
                        if let via = decision["via"]?.string { html.add(" (\(via))") }
                        if let at = decision["at"]?.string { html.add(" at \(at)") }
                        if let reason = decision["reason"]?.string, !reason.isEmpty {
                            html.raw(": <q>")
                            html.add(reason)
                            html.raw("</q>")
                        }
                        html.raw("</div>")
                    }
                    if let evaluation = extra?.evaluation { self.evaluation(&html, evaluation) }
                    if let log = extra?.log, !log.isEmpty {
                        html.raw("<details class=\"log\"\(task.state == "started" ? " open" : "")><summary>log</summary><pre>")
                        html.add(log)
                        html.raw("</pre></details>")
                    }
                    html.raw("</td></tr>")
                }
                html.raw("</tbody></table></div>")
                if execution.isActive, viewer.mayControl, let csrf = viewer.csrf {
                    controls(&html, context: context, paused: execution.state == .paused, csrf: csrf)
                }
                if execution.state == .waitingForApproval, let task = execution.tasks.first(where: { $0.name == "approval" && $0.state == "started" }), let id = task.triggeredID {
                    decisionForm(&html, id: id, project: execution.project, stage: execution.stage, viewer: viewer, back: "/deliveries/" + HTML.query(context))
                }
                html.raw("</section>")
            }
            html.raw("</div>")
            webhooks(&html, events.filter { $0.type == "sh.shipyard.webhook.called" })
            html.raw("<details class=\"events\"><summary>")
            html.add("\(events.count) events")
            html.raw("</summary><div class=\"scroll\"><table><thead><tr><th>Time</th><th>Type</th><th>Source</th><th>Data</th></tr></thead><tbody>")
            let encoder = JSONEncoder()
            encoder.outputFormatting = [.sortedKeys, .withoutEscapingSlashes, .prettyPrinted]
            for event in events {
                html.raw("<tr><td>")
                html.add(event.time)
                html.raw("</td><td>")
                html.add(String(event.type.dropFirst(event.type.hasPrefix(KeptnEvent.prefix) ? KeptnEvent.prefix.count : 0)))
                html.raw("</td><td>")
                html.add(event.source)
                html.raw("</td><td>")
                var data = event.data
                if data["evaluation"]?["sloFileContent"] != nil { data["evaluation"]?["sloFileContent"] = .string("…") }
                // Collapsed to its keys; opened, the payload pretty-printed (at most 16 KiB).
                let keys = data.object?.keys.sorted() ?? []
                html.raw("<details class=\"payload\"><summary><code>")
                html.add(keys.isEmpty ? "{}" : "{ " + keys.joined(separator: ", ") + " }")
                html.raw("</code></summary><pre>")
                // At most 4 KiB each: a page of thousands of events stays a page.
                let pretty = String(decoding: (try? encoder.encode(data)) ?? Data(), as: UTF8.self)
                html.add(pretty.count > 4096 ? pretty.prefix(4096) + "\n… (shipyardctl events --context \(context.prefix(8)) has all of it)" : pretty)
                html.raw("</pre></details></td></tr>")
            }
            html.raw("</tbody></table></div></details>")
        }
    }

    /// The evaluation behind a result: score against its thresholds, and each SLI.
    static func evaluation(_ html: inout HTML, _ data: JSONValue) {
        let evaluation = data["evaluation"]
        html.raw("<div class=\"evaluation\"><strong>")
        let score = evaluation?["score"]?.number.map { String(format: "%.1f", $0) } ?? "-"
        html.add("score \(score): \(data["result"]?.string ?? evaluation?["result"]?.string ?? "?")")
        html.raw("</strong>")
        let indicators = evaluation?["indicatorResults"]?.array ?? []
        if !indicators.isEmpty {
            html.raw("<div class=\"scroll\"><table class=\"slis\"><thead><tr><th>SLI</th><th>Value</th><th>Compared</th><th>Pass</th><th>Warning</th><th>Status</th></tr></thead><tbody>")
            for indicator in indicators {
                let value = indicator["value"]
                html.raw("<tr><td>")
                html.add(indicator["displayName"]?.string.flatMap { $0.isEmpty ? nil : $0 } ?? value?["metric"]?.string ?? "")
                html.raw("</td><td>")
                html.add(value?["success"]?.bool == true ? value?["value"]?.number.map { String(format: "%g", $0) } ?? "" : "n/a: \(value?["message"]?.string ?? "")")
                html.raw("</td><td>")
                html.add(value?["comparedValue"]?.number.map { String(format: "%g", $0) } ?? "")
                for key in ["passTargets", "warningTargets"] {
                    html.raw("<td>")
                    for target in indicator[key]?.array ?? [] {
                        let violated = target["violated"]?.bool == true
                        html.raw("<span class=\"\(violated ? "violated" : "met")\">")
                        html.add("\(target["criteria"]?.string ?? "") (\(target["targetValue"]?.number.map { String(format: "%g", $0) } ?? ""))")
                        html.raw("</span> ")
                    }
                    html.raw("</td>")
                }
                html.raw("<td>")
                html.add(indicator["status"]?.string ?? "")
                html.raw("</td></tr>")
            }
            html.raw("</tbody></table></div>")
        }
        html.raw("</div>")
    }

    /// Approve / Reject with a reason, for someone who may decide; nothing for anyone else.
    /// Pause or resume, and abort behind a second step that asks why (a `<details>`: no script).
    static func controls(_ html: inout HTML, context: String, paused: Bool, csrf: String) {
        let base = "/deliveries/" + HTML.query(context)
        html.raw("<div class=\"controls\"><form method=\"post\" action=\"\(base)/\(paused ? "resume" : "pause")\" class=\"inline\"><input type=\"hidden\" name=\"csrf\" value=\"")
        html.add(csrf)
        html.raw("\"><button type=\"submit\" class=\"\(paused ? "resume" : "pause")\">\(paused ? "Resume" : "Pause")</button></form>")
        html.raw("<details class=\"abort\"><summary>Abort…</summary><form method=\"post\" action=\"\(base)/abort\"><input type=\"hidden\" name=\"csrf\" value=\"")
        html.add(csrf)
        html.raw("\"><input name=\"reason\" class=\"reason\" placeholder=\"why (recorded)\"><button type=\"submit\" class=\"reject abort\">Abort this delivery</button></form></details></div>")
    }

    static func decisionForm(_ html: inout HTML, id: String, project: String, stage: String, viewer: Viewer, back: String) {
        guard viewer.mayDecide, viewer.user != nil, let csrf = viewer.csrf, viewer.rights?.may(project: project, stage: stage) ?? false else { return }
        let action = "/approvals/" + HTML.query(id)
        html.raw("<form class=\"decide\" method=\"post\" data-approval=\"\(HTML.escape(id))\"><input type=\"hidden\" name=\"csrf\" value=\"")
        html.add(csrf)
        html.raw("\"><input type=\"hidden\" name=\"back\" value=\"")
        html.add(back)
        html.raw("\"><input name=\"reason\" class=\"reason\" placeholder=\"reason (needed to reject)\" maxlength=\"500\">")
        html.raw("<button class=\"approve\" type=\"submit\" formaction=\"\(action)/approve\">Approve</button>")
        html.raw("<button class=\"reject\" type=\"submit\" formaction=\"\(action)/reject\">Reject</button></form>")
    }

    // MARK: Approvals

    static func approvals(_ pending: [ApprovalRequest], evaluations: [String: JSONValue], viewer: Viewer, flash: String?) -> String {
        layout(title: "Approvals", active: "/approvals", viewer: viewer, flash: flash) { html in
            html.raw("<h1>Approvals</h1>")
            if viewer.authConfigured, viewer.user == nil {
                html.raw("<p class=\"note\">Sign in to approve or reject.</p>")
            } else if viewer.user != nil, !viewer.mayDecide {
                html.raw("<p class=\"note\">You are not among the approvers.</p>")
            }
            guard !pending.isEmpty else {
                html.raw("<p class=\"empty\" id=\"no-approvals\">No approvals are waiting.</p>")
                return
            }
            html.raw("<div class=\"scroll\"><table class=\"approvals\"><thead><tr><th>Project</th><th>Stage</th><th>Service</th><th>Image</th><th>Previous result</th><th>Triggered by</th><th>Waiting since</th><th></th></tr></thead><tbody>")
            for request in pending {
                html.raw("<tr class=\"approval\" data-approval=\"\(HTML.escape(request.id))\" data-context=\"\(HTML.escape(request.context))\"><td>")
                html.add(request.project)
                html.raw("</td><td>")
                html.add(request.stage)
                html.raw("</td><td><a href=\"/deliveries/\(HTML.query(request.context))\">")
                html.add(request.service)
                html.raw("</a></td><td><code>")
                html.add(request.image ?? "-")
                html.raw("</code></td><td>")
                html.add(request.previousResult ?? "-")
                if let evaluation = evaluations[request.context] {
                    let score = evaluation["evaluation"]?["score"]?.number.map { String(format: "%.1f", $0) } ?? "-"
                    html.raw("<div class=\"note\">")
                    html.add("evaluation in \(evaluation["stage"]?.string ?? "?"): score \(score), \(evaluation["result"]?.string ?? "?")")
                    html.raw("</div>")
                }
                html.raw("</td><td>")
                html.add(request.triggeredBy ?? "-")
                html.raw("</td><td>")
                html.add(request.requestedAt)
                if let progress = request.progress {
                    html.raw("<div class=\"note progress\">")
                    html.add(progress)
                    if let may = request.mayApprove { html.add("; may still approve: \(may)") }
                    if let expires = request.expiresAt { html.add("; expires \(expires)") }
                    for aside in request.notCounted ?? [] {
                        html.raw("<br>")
                        html.add("not counted: \(aside)")
                    }
                    html.raw("</div>")
                }
                html.raw("</td><td>")
                decisionForm(&html, id: request.id, project: request.project, stage: request.stage, viewer: viewer, back: "/approvals")
                html.raw("</td></tr>")
            }
            html.raw("</tbody></table></div>")
        }
    }

    // MARK: Sign in

    static func login(viewer: Viewer, error: String?, user: String) -> String {
        layout(title: "Sign in", active: "", viewer: viewer, live: false) { html in
            html.raw("<h1>Sign in</h1>")
            if let error {
                html.raw("<p class=\"flash error\" id=\"login-error\">")
                html.add(error)
                html.raw("</p>")
            }
            html.raw("<form method=\"post\" action=\"/login\" class=\"login\"><input type=\"hidden\" name=\"csrf\" value=\"")
            html.add(viewer.csrf ?? "")
            html.raw("\"><label>User <input name=\"user\" id=\"login-user\" autocomplete=\"username\" value=\"")
            html.add(user)
            html.raw("\"></label><label>Password <input name=\"password\" id=\"login-password\" type=\"password\" autocomplete=\"current-password\"></label><button type=\"submit\" id=\"login-submit\">Sign in</button></form>")
        }
    }
}
