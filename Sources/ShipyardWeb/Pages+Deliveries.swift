import Foundation
import ShipyardCore
import ShipyardDaemon
import ShipyardStore

/// The deliveries list, one row per delivery (Bridge's sequence list): what was delivered, when,
/// how long it took, how far it got and why it waits.
extension Pages {
    struct DeliveryFilter: Sendable {
        var project: String?
        var service: String?
        var state: String?
        var stage: String?
        /// Part of the image: a version.
        var version: String?
        /// `1h`, `24h`, `7d`, `30d`.
        var since: String?

        static let periods: [(String, String, TimeInterval)] = [("1h", "last hour", 3600), ("24h", "last day", 86400), ("7d", "last week", 7 * 86400), ("30d", "last 30 days", 30 * 86400)]

        var sinceDate: Date? {
            Self.periods.first { $0.0 == since }.map { Date().addingTimeInterval(-$0.2) }
        }

        var isFiltered: Bool { [project, service, state, stage, version, since].contains { $0 != nil } }
    }

    /// One delivery: its sequences, in the order their stages ran.
    struct DeliveryRow {
        var context: String
        var sequences: [StoredSequence]

        var first: StoredSequence { sequences[0] }
        var last: StoredSequence { sequences[sequences.count - 1] }
        var image: String? { sequences.lazy.compactMap(\.image).first }
        var isActive: Bool { sequences.contains { $0.isActive } }
        var finishedAt: Date? { isActive ? nil : sequences.compactMap(\.finishedAt).max() }

        /// Newest delivery first; its stages oldest first.
        static func group(_ sequences: [StoredSequence]) -> [DeliveryRow] {
            var order: [String] = []
            var byContext: [String: [StoredSequence]] = [:]
            for sequence in sequences.reversed() {
                if byContext[sequence.context] == nil { order.append(sequence.context) }
                byContext[sequence.context, default: []].insert(sequence, at: 0)
            }
            return order.map { DeliveryRow(context: $0, sequences: byContext[$0] ?? []) }
        }
    }

    static func deliveries(
        _ sequences: [StoredSequence], waits: [String: String], more: Bool, filter: DeliveryFilter, projects: [String], stages: [String], viewer: Viewer
    ) -> String {
        layout(title: "Deliveries", active: "/deliveries", viewer: viewer) { html in
            html.raw("<h1>Deliveries</h1><form class=\"filters\" method=\"get\" action=\"/deliveries\">")
            select(&html, "Project", name: "project", options: projects.map { ($0, $0) }, selected: filter.project)
            html.raw("<label>Service <input name=\"service\" size=\"12\" value=\"")
            html.add(filter.service ?? "")
            html.raw("\"></label>")
            select(&html, "Stage", name: "stage", options: stages.map { ($0, $0) }, selected: filter.stage)
            html.raw("<label>Version <input name=\"version\" size=\"10\" placeholder=\"v0.2\" value=\"")
            html.add(filter.version ?? "")
            html.raw("\"></label>")
            select(&html, "State", name: "state", options: SequenceState.allCases.map { ($0.rawValue, $0.rawValue) }, selected: filter.state)
            select(&html, "Triggered", name: "since", options: DeliveryFilter.periods.map { ($0.0, $0.1) }, selected: filter.since, all: "any time")
            html.raw("<button type=\"submit\">Filter</button></form>")
            let rows = DeliveryRow.group(sequences)
            guard !rows.isEmpty else {
                html.raw("<p class=\"empty\">No deliveries\(filter.isFiltered ? " match" : " yet").</p>")
                return
            }
            html.raw("<div class=\"scroll\"><table class=\"deliveries\"><thead><tr><th>Delivery</th><th>Service</th><th>Image</th><th>Triggered</th><th>Took</th><th>Stages</th></tr></thead><tbody>")
            for row in rows {
                let link = "/deliveries/" + HTML.query(row.context)
                html.raw("<tr class=\"delivery\" data-context=\"\(HTML.escape(row.context))\" data-stage=\"\(HTML.escape(row.last.stage))\"><td><a href=\"\(link)\"><code>")
                html.add(String(row.context.prefix(8)))
                html.raw("</code></a><div class=\"note\">")
                html.add("\(row.first.project) · \(row.first.sequence)")
                html.raw("</div></td><td>")
                html.add(row.first.service)
                html.raw("</td><td class=\"image\">")
                html.add(row.image.map(shortImage) ?? "-")
                html.raw("</td><td>")
                html.add(time(row.first.triggeredAt))
                if let by = row.first.triggeredBy {
                    html.raw("<div class=\"note\">")
                    html.add(by)
                    html.raw("</div>")
                }
                html.raw("</td><td>")
                html.add(duration(from: row.first.triggeredAt, to: row.finishedAt))
                html.raw("</td><td><ol class=\"reached\">")
                for sequence in row.sequences {
                    html.raw("<li data-stage=\"\(HTML.escape(sequence.stage))\">")
                    html.add(sequence.stage)
                    html.raw(" ")
                    badge(&html, state: sequence.state.rawValue, result: sequence.result?.rawValue)
                    html.raw("</li>")
                }
                html.raw("</ol>")
                for sequence in row.sequences {
                    guard let why = waits[sequence.id] else { continue }
                    html.raw("<div class=\"waiting-for\">")
                    html.add("\(sequence.stage): waiting for \(why)")
                    html.raw("</div>")
                }
                if let message = row.last.message, !message.isEmpty, !row.isActive, row.last.result != .pass {
                    html.raw("<div class=\"message\">")
                    html.add(message)
                    html.raw("</div>")
                }
                html.raw("</td></tr>")
            }
            html.raw("</tbody></table></div>")
            if more { html.raw("<p class=\"more\">Older deliveries are not shown; narrow the filter.</p>") }
        }
    }

    static func select(_ html: inout HTML, _ label: String, name: String, options: [(String, String)], selected: String?, all: String = "all") {
        html.raw("<label>\(label) <select name=\"\(name)\"><option value=\"\">\(all)</option>")
        for (value, text) in options {
            html.raw("<option value=\"")
            html.add(value)
            html.raw("\"\(selected == value ? " selected" : "")>")
            html.add(text)
            html.raw("</option>")
        }
        html.raw("</select></label>")
    }

    static func shortImage(_ image: String) -> String { Display.image(image) }

    /// The commit on the upstream's web host, for an https upstream (GitHub, GitLab, Gitea and
    /// Forgejo all answer `<repository>/commit/<id>`); nil for others.
    static func commitLink(upstream: String?, commit: String?) -> String? {
        guard let upstream, let commit, commit.count >= 7, commit.allSatisfy(\.isHexDigit),
            upstream.hasPrefix("https://"), var components = URLComponents(string: upstream), components.host != nil
        else { return nil }
        components.user = nil
        components.password = nil
        components.query = nil
        components.fragment = nil
        var path = components.path
        if path.hasSuffix("/") { path.removeLast() }
        if path.hasSuffix(".git") { path.removeLast(4) }
        guard !path.isEmpty else { return nil }
        components.path = path + "/commit/" + commit
        return components.string
    }
}
