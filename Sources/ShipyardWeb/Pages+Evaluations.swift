import Foundation
import ShipyardCore
import ShipyardDaemon

/// A service's quality gates in one stage, as Keptn's Bridge shows them: a heatmap of every SLI
/// by evaluation (oldest left), and each SLI's values over time as a chart, drawn on the server
/// as SVG (no script, no chart library, nothing from a CDN).
extension Pages {
    struct EvaluationSlot: Sendable {
        var project: String
        var stage: String
        var service: String
    }

    static func evaluations(_ history: EvaluationHistory, slot: EvaluationSlot, others: [EvaluationSlot], viewer: Viewer) -> String {
        layout(title: "Evaluations of \(slot.service) in \(slot.stage)", active: "/environment", viewer: viewer) { html in
            html.raw("<h1>Evaluations</h1><p class=\"summary\">")
            html.add("\(slot.project) · \(slot.stage) · \(slot.service)")
            html.raw("</p>")
            if others.count > 1 {
                html.raw("<p class=\"note\">Other services and stages: ")
                for other in others where other.project != slot.project || other.stage != slot.stage || other.service != slot.service {
                    html.raw("<a href=\"\(HTML.escape(link(other)))\">")
                    html.add("\(other.service) in \(other.stage)")
                    html.raw("</a> ")
                }
                html.raw("</p>")
            }
            guard !history.columns.isEmpty else {
                html.raw("<p class=\"empty\">No evaluations yet.</p>")
                return
            }
            heatmap(&html, history)
            html.raw("<h2>Over time</h2><div class=\"charts\">")
            chart(&html, title: "score", points: history.columns.map { ($0.label, $0.score, $0.result) }, fixed: (0, 100))
            for metric in history.metrics {
                chart(&html, title: metric, points: history.columns.map { column in
                    (column.label, column.cells[metric]?.value, column.cells[metric]?.status ?? "missing")
                }, fixed: nil)
            }
            html.raw("</div>")
        }
    }

    static func link(_ slot: EvaluationSlot) -> String {
        "/evaluations?project=\(HTML.query(slot.project))&stage=\(HTML.query(slot.stage))&service=\(HTML.query(slot.service))"
    }

    static func heatmap(_ html: inout HTML, _ history: EvaluationHistory) {
        html.raw("<div class=\"scroll\"><table class=\"heatmap\"><thead><tr><th></th>")
        for column in history.columns {
            html.raw("<th\(column.invalidated ? " class=\"invalidated\" title=\"invalidated\"" : "")><a href=\"/deliveries/\(HTML.query(column.context))\">")
            html.add(column.label)
            html.raw("</a></th>")
        }
        html.raw("</tr></thead><tbody><tr class=\"score\"><th scope=\"row\">score</th>")
        for column in history.columns {
            heatCell(&html, text: column.score.map(number) ?? "-", status: column.result, title: "\(column.label): \(column.result)")
        }
        html.raw("</tr>")
        for metric in history.metrics {
            html.raw("<tr data-sli=\"\(HTML.escape(metric))\"><th scope=\"row\">")
            html.add(metric)
            html.raw("</th>")
            for column in history.columns {
                if let cell = column.cells[metric] {
                    heatCell(&html, text: cell.value.map(number) ?? "n/a", status: cell.status, title: "\(metric) at \(column.label): \(cell.status)")
                } else {
                    html.raw("<td class=\"heat missing\">–</td>")
                }
            }
            html.raw("</tr>")
        }
        html.raw("</tbody></table></div>")
    }

    static func heatCell(_ html: inout HTML, text: String, status: String, title: String) {
        let css = ["pass", "warning", "fail", "info"].contains(status) ? status : "fail"
        html.raw("<td class=\"heat \(css)\" data-status=\"\(css)\" title=\"")
        html.add(title)
        html.raw("\">")
        html.add(text)
        html.raw("</td>")
    }

    /// One SLI's values, oldest left: a line through the measured values, each point coloured by
    /// its status; the axis from the lowest to the highest value (or `fixed`).
    static func chart(_ html: inout HTML, title: String, points: [(label: String, value: Double?, status: String)], fixed: (Double, Double)?) {
        let width = 560.0, height = 120.0, left = 56.0, right = 12.0, top = 10.0, bottom = 22.0
        let values = points.compactMap(\.value)
        var low = fixed?.0 ?? values.min() ?? 0
        var high = fixed?.1 ?? values.max() ?? 1
        if high == low { low -= 1; high += 1 }
        let span = points.count > 1 ? (width - left - right) / Double(points.count - 1) : 0
        func x(_ index: Int) -> Double { points.count > 1 ? left + Double(index) * span : (left + width - right) / 2 }
        func y(_ value: Double) -> Double { top + (high - value) / (high - low) * (height - top - bottom) }
        html.raw("<figure class=\"chart\" data-sli=\"\(HTML.escape(title))\"><figcaption>")
        html.add(title)
        html.raw("</figcaption><svg viewBox=\"0 0 \(Int(width)) \(Int(height))\" role=\"img\" aria-label=\"")
        html.add("\(title) over \(points.count) evaluations")
        html.raw("\"><line class=\"axis\" x1=\"\(left)\" y1=\"\(top)\" x2=\"\(left)\" y2=\"\(height - bottom)\"/>")
        html.raw("<line class=\"axis\" x1=\"\(left)\" y1=\"\(height - bottom)\" x2=\"\(width - right)\" y2=\"\(height - bottom)\"/>")
        for (value, anchor) in [(high, top + 4), (low, height - bottom)] {
            html.raw("<text class=\"tick\" x=\"\(left - 6)\" y=\"\(anchor)\" text-anchor=\"end\">")
            html.add(number(value))
            html.raw("</text>")
        }
        if let first = points.first {
            html.raw("<text class=\"tick\" x=\"\(left)\" y=\"\(height - 6)\">")
            html.add(first.label)
            html.raw("</text>")
        }
        if points.count > 1, let last = points.last {
            html.raw("<text class=\"tick\" x=\"\(width - right)\" y=\"\(height - 6)\" text-anchor=\"end\">")
            html.add(last.label)
            html.raw("</text>")
        }
        let line = points.indices.compactMap { index in points[index].value.map { "\(x(index)),\(y($0))" } }
        if line.count > 1 { html.raw("<polyline class=\"trend\" points=\"\(line.joined(separator: " "))\"/>") }
        for (index, point) in points.enumerated() {
            guard let value = point.value else { continue }
            let css = ["pass", "warning", "fail", "info"].contains(point.status) ? point.status : "fail"
            html.raw("<circle class=\"point \(css)\" cx=\"\(x(index))\" cy=\"\(y(value))\" r=\"4\"><title>")
            html.add("\(point.label): \(number(value)) (\(point.status))")
            html.raw("</title></circle>")
        }
        html.raw("</svg></figure>")
    }

    static func number(_ value: Double) -> String { Display.number(value) }
}
