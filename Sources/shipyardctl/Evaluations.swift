import ArgumentParser
import Foundation
import ShipyardCore
import ShipyardStore
import ShipyardDaemon

/// `shipyardctl evaluations`: the quality-gate history of one service in one stage (Bridge's
/// heatmap, in the terminal), and invalidating an evaluation.
struct EvaluationsCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "evaluations",
        abstract: "Show the quality-gate evaluations of a service in a stage, or invalidate one.",
        subcommands: [EvaluationHistory.self, InvalidateEvaluation.self],
        defaultSubcommand: EvaluationHistory.self)
}

struct EvaluationHistory: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "list",
        abstract: "A table of SLIs by evaluation, oldest left: each cell the value and its status (pass, warning, fail, info).",
        discussion: """
            The SCORE row gives each evaluation's score and result, as Keptn's Bridge heatmap does; \
            columns are labelled by the buildId label when the trigger had one (--label buildId=…), \
            else by the evaluation's time. Invalidated evaluations are left out unless --include-invalidated.
            """)
    @OptionGroup var options: StateOptions
    @Option(help: "The project.") var project: String
    @Option(help: "The stage.") var stage: String
    @Option(help: "The service.") var service: String
    @Option(help: "Show the newest N evaluations.") var limit: Int = 10
    @Flag(help: "Show invalidated evaluations too (marked *).") var includeInvalidated = false
    @Option(name: .shortAndLong, help: OutputFormat.help) var output: OutputFormat = .table

    func validate() throws {
        if limit < 1 || limit > 1000 { throw ValidationError("--limit takes a number from 1 to 1000") }
    }

    typealias Row = EvaluationRow

    func run() async throws {
        try await Self.failing {
            let rows: [Row]
            let target = "/api/v1/evaluations" + Query.string([
                ("project", project), ("stage", stage), ("service", service), ("limit", "\(limit)"), ("includeInvalidated", includeInvalidated ? "true" : nil),
            ])
            if let response = try options.get(target) {
                rows = try RecordView.decode([Row].self, response)
            } else {
                let query = EvaluationQuery(project: project, stage: stage, service: service, includeInvalidated: includeInvalidated, limit: limit)
                let found = try RecordView.direct(options).map { store in try RecordView.reading { try store.evaluations(query) } } ?? []
                rows = found.reversed().map(Row.init)
            }
            switch output {
            case .json:
                print(String(decoding: try JSON.encode(rows), as: UTF8.self))
            case .table:
                guard !rows.isEmpty else {
                    print("no evaluations of \(service) in \(project)/\(stage) yet; run one with: shipyardctl trigger evaluation --project \(project) --stage \(stage) --service \(service) --timeframe 5m")
                    return
                }
                print(Self.heatmap(rows), terminator: "")
            }
        }
    }

    /// Rows: SCORE, then each SLI in the order the newest evaluation lists them; a cell is the
    /// value and its status letter (P pass, W warning, F fail, I info), `-` where an evaluation
    /// did not have that SLI.
    static func heatmap(_ rows: [Row]) -> String {
        let history = ShipyardDaemon.EvaluationHistory(rows)
        var table: [[String]] = [[""] + history.columns.map { String($0.id.prefix(8)) + ($0.invalidated ? "*" : "") }]
        table.append(["LABEL"] + history.columns.map(\.label))
        table.append(["SCORE"] + history.columns.map { "\($0.score.map(format) ?? "-") \(letter($0.result))" })
        for metric in history.metrics {
            table.append([metric] + history.columns.map { column in
                guard let cell = column.cells[metric] else { return "-" }
                return "\(cell.value.map(format) ?? "n/a") \(letter(cell.status))"
            })
        }
        var out = Table.render(table)
        out += "P pass, W warning, F fail, I info (no pass criteria); newest on the right"
        out += rows.contains(where: \.invalidated) ? "; * invalidated\n" : "\n"
        if let newest = rows.last, let message = newest.message, !message.isEmpty {
            out += "newest (\(newest.id.prefix(8))): \(Untrusted.printable(message, limit: 1000))\n"
        }
        return out
    }

    static func letter(_ status: String) -> String {
        switch status {
        case "pass": return "P"
        case "warning": return "W"
        case "info": return "I"
        default: return "F"
        }
    }

    static func format(_ value: Double) -> String { Display.number(value) }
}

struct InvalidateEvaluation: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "invalidate",
        abstract: "Mark an evaluation so that later evaluations no longer compare with it (Keptn's evaluation.invalidated).")
    @OptionGroup var options: StateOptions
    @OptionGroup var request: RequestOptions
    @Argument(help: "The evaluation's id, or a unique prefix of at least 4 characters (the column heads of shipyardctl evaluations).")
    var id: String
    @Option(help: "Why (recorded with your name).") var reason: String

    func run() async throws {
        try await Self.failing {
            let path = "/api/v1/evaluations/\(Query.path(id))/invalidate"
            print(Output.safe(try options.send(path, body: ReasonBody(reason: reason), timeout: request.timeout).message))
        }
    }
}
