/// Keptn's `sli.yaml`: `{spec_version, indicators: {name: query}}`, one per SLI provider
/// (e.g. `prometheus/sli.yaml`), kept at project, stage and service level.
public struct SLIFile: Sendable, Equatable {
    /// Name → query.
    public var indicators: [String: String]
    /// Where each indicator's name is written.
    public var marks: [String: SourceMark]

    public init(indicators: [String: String], marks: [String: SourceMark] = [:]) {
        self.indicators = indicators
        self.marks = marks
    }

    /// Reads an sli.yaml: errors for a file that is not a mapping, unknown keys, missing
    /// `indicators`, and a query that is not a string. Returns the file whenever the YAML is a
    /// mapping, even with errors.
    public static func load(_ bytes: some Collection<UInt8>) -> (sli: SLIFile?, diagnostics: [Diagnostic]) {
        var log = DiagnosticLog()
        guard let root = SchemaReader().document(
            bytes, empty: "an SLI file has 'indicators:' with a query per SLI", what: "an SLI file is a mapping with spec_version and indicators",
            log: &log)
        else { return (nil, log.sorted) }
        var top: [String: YAMLPair] = [:]
        _ = SchemaReader().mapping(root, of: "the SLI file", allowed: ["spec_version", "indicators"], log: &log, into: &top)
        if let version = top["spec_version"], !version.value.isNull, SLOFile.scalarText(version.value) == nil {
            log.error("spec_version must be a string such as \"1.0\", not \(version.value.kindDescription)", at: version.value.mark)
        }
        var file = SLIFile(indicators: [:])
        guard let indicators = top["indicators"], !indicators.value.isNull else {
            log.error("the SLI file has no indicators; add 'indicators:' with 'NAME: QUERY' lines", at: root.mark)
            return (file, log.sorted)
        }
        guard let pairs = indicators.value.mapping else {
            log.error(
                "indicators must be a mapping of SLI names to queries, not \(indicators.value.kindDescription)",
                at: indicators.value.mark)
            return (file, log.sorted)
        }
        for pair in pairs {
            let name = pair.key.scalar?.text ?? ""
            guard let query = SLOFile.scalarText(pair.value) else {
                log.error("the query for \"\(name)\" must be a string, not \(pair.value.kindDescription)", at: pair.value.mark)
                continue
            }
            file.indicators[name] = query
            file.marks[name] = pair.key.mark
        }
        return (file, log.sorted)
    }

    public static func load(_ text: String) -> (sli: SLIFile?, diagnostics: [Diagnostic]) {
        load(Array(text.utf8))
    }

    /// Whether a parsed YAML document looks like an SLI file: `indicators` at the top level.
    public static func recognizes(_ root: YAMLNode) -> Bool {
        root["indicators"] != nil
    }

    /// Project → stage → service files merged; a later (more specific) file wins per indicator.
    public static func merged(_ files: [SLIFile]) -> SLIFile {
        var merged = SLIFile(indicators: [:])
        for file in files {
            merged.indicators.merge(file.indicators) { _, newer in newer }
            merged.marks.merge(file.marks) { _, newer in newer }
        }
        return merged
    }
}
