import ArgumentParser
import Foundation
import ShipyardCore
import ShipyardDaemon

struct Lint: ParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Validate shipyard files (Keptn spec 0.2.0 to 0.2.4) and Keptn's slo.yaml, sli.yaml and webhook.yaml files.",
        discussion: """
            Prints every finding as FILE:LINE:COLUMN: error|warning: MESSAGE, in file order.
            Exits 0 when no file has an error (warnings are printed but allowed), 1 when any file \
            has one, 2 on a usage error. Use - to read standard input. SLO and SLI files are \
            recognised by their content (objectives, indicators); given together, every objective \
            must have a query in the SLI files. Keptn's webhook.yaml (apiVersion: webhookconfig.keptn.sh/…) \
            is checked as shipyardd reads it before a request: templates, secrets, curl lines. A shipyardd config (projects:, tasks: …) is \
            recognised too and checked as the daemon reads it: files, programs and accounts it \
            names that this host lacks are warnings here, errors in shipyardd --check-config.
            """
    )

    @Option(name: .shortAndLong, help: "table (FILE:LINE:COLUMN lines, for people and editors) or json (for tools).")
    var output: OutputFormat = .table

    @Flag(name: .shortAndLong, help: "Print nothing for files without findings.")
    var quiet = false

    enum Kind: String { case shipyard, slo, sli, webhook, config }

    static func kind(_ root: YAMLNode) -> Kind {
        if SLOFile.recognizes(root) { return .slo }
        if SLIFile.recognizes(root) { return .sli }
        if WebhookFile.recognizes(root) { return .webhook }
        // shipyardd's own config: its projects, and none of a shipyard's keys.
        if root["projects"] != nil, root["apiVersion"] == nil, root["spec"] == nil { return .config }
        return .shipyard
    }

    @Argument(help: "Shipyard, slo.yaml, sli.yaml and webhook.yaml files (or shipyardd's config) to check (- for standard input).")
    var files: [String]

    func validate() throws {
        if files.isEmpty { throw ValidationError("name at least one shipyard file to check") }
    }

    func run() throws {
        var reports: [LintReport.File] = []
        var slos: [(index: Int, slo: SLO)] = []
        var slis: [(name: String, file: SLIFile)] = []
        for file in files {
            let name = file == "-" ? "<stdin>" : file
            var diagnostics: [Diagnostic]
            var kind = Kind.shipyard
            do {
                let bytes = try InputFile.read(file, limit: YAMLParser.Limits().maxBytes)
                // Recognised by content: Keptn's slo.yaml and sli.yaml, else a shipyard.
                let root = (try? YAMLParser().parse(bytes)).flatMap { $0 }
                kind = root.map(Self.kind) ?? .shipyard
                switch root.map(Self.kind) {
                case .slo?:
                    let loaded = SLOFile.load(bytes)
                    diagnostics = loaded.diagnostics
                    if let slo = loaded.slo { slos.append((reports.count, slo)) }
                case .sli?:
                    let loaded = SLIFile.load(bytes)
                    diagnostics = loaded.diagnostics
                    if let sli = loaded.sli { slis.append((name, sli)) }
                case .webhook?:
                    diagnostics = WebhookFile.load(bytes).diagnostics
                case .config?:
                    diagnostics = ConfigLoader.load(bytes, host: .warnings).diagnostics
                case .shipyard?, nil:
                    diagnostics = ShipyardLoader.load(bytes).diagnostics
                }
            } catch {
                diagnostics = [Diagnostic(.error, "\(error)", at: .start)]
            }
            reports.append(LintReport.File(file: name, diagnostics: diagnostics, kind: kind))
        }
        // An objective whose SLI none of the SLI files given defines would fail at every evaluation.
        if !slis.isEmpty {
            let merged = SLIFile.merged(slis.map(\.file))
            let names = slis.map(\.name).joined(separator: ", ")
            for (index, slo) in slos {
                for objective in slo.objectives where merged.indicators[objective.sli] == nil {
                    // An informational objective (no pass criteria) never fails an evaluation.
                    reports[index].diagnostics.append(Diagnostic(
                        objective.pass.isEmpty ? .warning : .error,
                        "objective \"\(objective.sli)\" has no query in the SLI files given (\(names)); add it under indicators:",
                        at: objective.mark))
                }
                reports[index].diagnostics.sort { $0.mark < $1.mark }
            }
        }
        let report = LintReport(files: reports)
        switch output {
        case .table: print(report.text(quiet: quiet), terminator: "")
        case .json: print(try report.json())
        }
        if report.errorCount > 0 { throw ExitCode(1) }
    }
}

/// What `lint` found, in the two forms it prints.
struct LintReport {
    struct File {
        var file: String
        var diagnostics: [Diagnostic]
        var kind: Lint.Kind = .shipyard
        var valid: Bool { !diagnostics.contains { $0.severity == .error } }
    }

    var files: [File]

    var errorCount: Int { files.reduce(0) { $0 + $1.diagnostics.filter { $0.severity == .error }.count } }
    var warningCount: Int { files.reduce(0) { $0 + $1.diagnostics.filter { $0.severity == .warning }.count } }

    func text(quiet: Bool) -> String {
        var out = ""
        for file in files {
            if file.kind == .config {
                out += "\(file.file): a shipyardd config, not a shipyard\(file.diagnostics.isEmpty ? ": ok" : ""); before a reload, check it as the daemon's user: sudo -u shipyard shipyardd --check-config \(file.file)\n"
                for diagnostic in file.diagnostics { out += diagnostic.formatted(file: file.file) + "\n" }
                continue
            }
            for diagnostic in file.diagnostics {
                out += diagnostic.formatted(file: file.file) + "\n"
            }
            if file.diagnostics.isEmpty, !quiet {
                out += "\(file.file): ok\n"
            }
        }
        return out
    }

    private struct JSONDiagnostic: Encodable {
        var file: String
        var line: Int
        var column: Int
        var severity: Diagnostic.Severity
        var message: String
    }

    private struct JSONFile: Encodable {
        var file: String
        var kind: String
        var valid: Bool
        var errors: Int
        var warnings: Int
    }

    private struct JSONReport: Encodable {
        var errors: Int
        var warnings: Int
        var files: [JSONFile]
        var diagnostics: [JSONDiagnostic]
    }

    func json() throws -> String {
        let body = JSONReport(
            errors: errorCount,
            warnings: warningCount,
            files: files.map { f in
                JSONFile(
                    file: f.file, kind: f.kind.rawValue, valid: f.valid,
                    errors: f.diagnostics.filter { $0.severity == .error }.count,
                    warnings: f.diagnostics.filter { $0.severity == .warning }.count)
            },
            diagnostics: files.flatMap { f in
                f.diagnostics.map {
                    JSONDiagnostic(
                        file: f.file, line: $0.mark.line, column: $0.mark.column,
                        severity: $0.severity, message: $0.message)
                }
            }
        )
        let encoder = JSONEncoder()
        encoder.outputFormatting = [.sortedKeys, .withoutEscapingSlashes]
        return String(decoding: try encoder.encode(body), as: UTF8.self)
    }
}
