/// A service's quality gate, Keptn's `slo.yaml` (go-utils `ServiceLevelObjectives`), with the
/// defaults lighthouse-service applies (`parseSLO` in lighthouse-service/event_handler/common.go).
public struct SLO: Sendable, Equatable {
    public struct Comparison: Sendable, Equatable {
        /// As written; nil when absent.
        public var compareWith: String?
        /// "all" | "pass" | "pass_or_warn" (lower-cased as Keptn compares it).
        public var includeResultWithScore: String
        public var numberOfComparisonResults: Int
        /// "avg" | "p50" | "p90" | "p95"
        public var aggregateFunction: String
        /// How many previous evaluations are compared with, Keptn's code: `single_result` → 1,
        /// `several_results` → `numberOfComparisonResults`, anything else (a missing
        /// `compare_with` too) → 3; no comparison block at all → 1. The spec and the docs say the
        /// default is 1; the code is followed, and `SLOFile` warns when `compare_with` is missing.
        public var resultsToCompare: Int
        /// The overall results (`data.result`) previous evaluations must have: nil for "all",
        /// ["pass"], or ["pass", "warning"]. The overall result is judged, never each SLI's
        /// (keptn#2224, keptn#2388).
        public var acceptedResults: Set<String>?

        /// A comparison block as written, with Keptn's defaults for what is missing: include
        /// `all`, 0 results → 3, aggregate `avg`.
        public init(
            compareWith: String?, includeResultWithScore: String = "all", numberOfComparisonResults: Int = 3,
            aggregateFunction: String = "avg"
        ) {
            self.compareWith = compareWith
            let include = includeResultWithScore.lowercased()
            self.includeResultWithScore = include.isEmpty ? "all" : include
            self.numberOfComparisonResults = numberOfComparisonResults == 0 ? 3 : numberOfComparisonResults
            self.aggregateFunction = aggregateFunction.isEmpty ? "avg" : aggregateFunction
            switch compareWith {
            case "single_result": resultsToCompare = 1
            case "several_results": resultsToCompare = self.numberOfComparisonResults
            default: resultsToCompare = 3
            }
            switch self.includeResultWithScore {
            case "pass": acceptedResults = ["pass"]
            case "pass_or_warn": acceptedResults = ["pass", "warning"]
            default: acceptedResults = nil
            }
        }

        /// No comparison block: Keptn's `single_result`, 1 result, `all`, `avg`.
        public static let absent: Comparison = {
            var comparison = Comparison(compareWith: "single_result", numberOfComparisonResults: 1)
            comparison.compareWith = nil
            return comparison
        }()
    }

    public struct Objective: Sendable, Equatable {
        public var sli: String
        public var displayName: String
        /// Each entry one `criteria:` list (all must hold); the entries are OR'ed.
        public var pass: [[String]]
        public var warning: [[String]]
        /// 0 or absent → 1.
        public var weight: Int
        public var keySLI: Bool
        /// Where `sli:` is written (for lint cross-checks).
        public var mark: SourceMark

        public init(
            sli: String, displayName: String = "", pass: [[String]] = [], warning: [[String]] = [], weight: Int = 1,
            keySLI: Bool = false, mark: SourceMark = .start
        ) {
            self.sli = sli
            self.displayName = displayName
            self.pass = pass
            self.warning = warning
            self.weight = weight == 0 ? 1 : weight
            self.keySLI = keySLI
            self.mark = mark
        }

        /// What messages call the objective: its display name, else its SLI.
        public var name: String { displayName.isEmpty ? sli : displayName }
    }

    public var filter: [String: String]
    /// The most text the filters may hold together.
    public static let maxFilterBytes = 16 << 10
    public var comparison: Comparison
    public var objectives: [Objective]
    /// As written, e.g. "90%".
    public var totalScorePass: String?
    public var totalScoreWarning: String?

    public init(
        filter: [String: String] = [:], comparison: Comparison = .absent, objectives: [Objective],
        totalScorePass: String?, totalScoreWarning: String? = nil
    ) {
        self.filter = filter
        self.comparison = comparison
        self.objectives = objectives
        self.totalScorePass = totalScorePass
        self.totalScoreWarning = totalScoreWarning
    }

    /// Keptn's reading of a `total_score` value: a trailing `%` is dropped, the rest must be a
    /// number (`strconv.ParseFloat(strings.TrimSuffix(s, "%"))`).
    public static func percentage(_ text: String) -> Double? {
        var body = Substring(text)
        if body.hasSuffix("%") { body = body.dropLast() }
        return GoFloat.parse(String(body))
    }
}

/// Reads `slo.yaml` with a diagnostic, at its line and column, for everything Keptn would
/// silently misread or only report when the evaluation runs.
public enum SLOFile {
    static let topKeys = ["spec_version", "filter", "comparison", "objectives", "total_score"]
    static let objectiveKeys = ["sli", "displayName", "pass", "warning", "weight", "key_sli"]
    static let comparisonKeys = [
        "compare_with", "include_result_with_score", "number_of_comparison_results", "aggregate_function",
    ]
    static let totalScoreKeys = ["pass", "warning"]
    static let includeValues = ["all", "pass", "pass_or_warn"]

    /// Reads slo.yaml. Returns an SLO whenever the YAML is a mapping, even with errors, so lint
    /// can go on checking; nil otherwise. Null objectives are dropped as Keptn drops them
    /// (keptn#5522).
    public static func load(_ bytes: some Collection<UInt8>) -> (slo: SLO?, diagnostics: [Diagnostic]) {
        var log = DiagnosticLog()
        guard let root = SchemaReader().document(
            bytes, empty: "an SLO file has objectives and total_score",
            what: "an SLO file is a mapping with spec_version, filter, comparison, objectives and total_score", log: &log)
        else { return (nil, log.sorted) }
        var reader = SLOReader(log: log)
        let slo = reader.read(root)
        return (slo, reader.log.sorted)
    }

    public static func load(_ text: String) -> (slo: SLO?, diagnostics: [Diagnostic]) {
        load(Array(text.utf8))
    }

    /// Whether a parsed YAML document looks like an SLO file: `objectives` or `total_score` at
    /// the top level.
    public static func recognizes(_ root: YAMLNode) -> Bool {
        root["objectives"] != nil || root["total_score"] != nil
    }
}

extension SLOFile {
    /// Text of a scalar that Go's YAML decoder would put into a string field (any non-null scalar).
    public static func scalarText(_ node: YAMLNode) -> String? {
        guard let scalar = node.scalar, scalar.resolved != .null else { return nil }
        return scalar.text
    }
}

private struct SLOReader {
    var log: DiagnosticLog
    let schema = SchemaReader()

    mutating func read(_ root: YAMLNode) -> SLO {
        var top: [String: YAMLPair] = [:]
        _ = schema.mapping(root, of: "the SLO file", allowed: SLOFile.topKeys, log: &log, into: &top)
        if let version = top["spec_version"], !version.value.isNull, SLOFile.scalarText(version.value) == nil {
            log.error("spec_version must be a string such as \"1.0\", not \(version.value.kindDescription)", at: version.value.mark)
        }
        let filter = readFilter(top["filter"])
        let comparison = readComparison(top["comparison"])
        let objectives = readObjectives(top["objectives"], root: root)
        let (pass, warning) = readTotalScore(top["total_score"], root: root)
        return SLO(
            filter: filter, comparison: comparison, objectives: objectives, totalScorePass: pass,
            totalScoreWarning: warning)
    }

    private mutating func readFilter(_ pair: YAMLPair?) -> [String: String] {
        guard let pair, !pair.value.isNull else { return [:] }
        guard let pairs = pair.value.mapping else {
            log.error("filter must be a mapping of names to values, not \(pair.value.kindDescription)", at: pair.value.mark)
            return [:]
        }
        guard pair.value.textBytes <= SLO.maxFilterBytes else {
            // Put into every query and kept with the evaluation in the record.
            log.error(
                "filter is \(ByteCount.format(pair.value.textBytes)) of text once aliases are expanded; the limit is \(ByteCount.format(SLO.maxFilterBytes)) "
                    + "(filters go into every query and into the record)",
                at: pair.value.mark)
            return [:]
        }
        var filter: [String: String] = [:]
        for entry in pairs {
            let key = entry.key.scalar?.text ?? ""
            if entry.value.isNull {
                filter[key] = ""
            } else if let text = SLOFile.scalarText(entry.value) {
                filter[key] = text
            } else {
                log.error("filter \"\(key)\" must be a string, not \(entry.value.kindDescription)", at: entry.value.mark)
            }
        }
        return filter
    }

    private mutating func readComparison(_ pair: YAMLPair?) -> SLO.Comparison {
        guard let pair, !pair.value.isNull else { return .absent }
        var fields: [String: YAMLPair] = [:]
        guard schema.mapping(pair.value, of: "comparison", allowed: SLOFile.comparisonKeys, log: &log, into: &fields) else {
            return .absent
        }
        var compareWith: String?
        if let field = fields["compare_with"], !field.value.isNull {
            if let text = SLOFile.scalarText(field.value) {
                compareWith = text
                if text != "single_result" && text != "several_results" {
                    log.warning(
                        "compare_with \"\(text)\" is neither single_result nor several_results; Keptn then compares with 3 results",
                        at: field.value.mark)
                }
            } else {
                log.error("compare_with must be single_result or several_results, not \(field.value.kindDescription)", at: field.value.mark)
            }
        } else {
            log.warning(
                "comparison has no compare_with: Keptn then compares with 3 previous results (its docs say 1); "
                    + "write compare_with: single_result or several_results",
                at: pair.value.mark)
        }
        var include = "all"
        if let field = fields["include_result_with_score"], !field.value.isNull {
            if let text = SLOFile.scalarText(field.value), SLOFile.includeValues.contains(text.lowercased()) {
                include = text.lowercased()
            } else {
                var message = "include_result_with_score must be all, pass or pass_or_warn, not "
                message += SLOFile.scalarText(field.value).map { "\"\($0)\"" } ?? field.value.kindDescription
                if let text = SLOFile.scalarText(field.value),
                    let guess = SLOFile.includeValues.min(by: {
                        SchemaReader.editDistance(text.lowercased(), $0) < SchemaReader.editDistance(text.lowercased(), $1)
                    }), SchemaReader.editDistance(text.lowercased(), guess) <= 3
                {
                    message += "; did you mean \"\(guess)\"?"
                }
                log.error(message, at: field.value.mark)
            }
        }
        var number = 0
        if let field = fields["number_of_comparison_results"], !field.value.isNull {
            if case .int(let value)? = field.value.scalar?.resolved, value >= 0, value <= 1000 {
                number = Int(value)
            } else {
                log.error(
                    "number_of_comparison_results must be a whole number from 0 to 1000, not \(field.value.kindDescription)",
                    at: field.value.mark)
            }
            if compareWith == "single_result", number > 1 {
                log.warning(
                    "compare_with: single_result compares with 1 result; number_of_comparison_results: \(number) only counts with several_results",
                    at: field.value.mark)
            }
        }
        var aggregate = "avg"
        if let field = fields["aggregate_function"], !field.value.isNull {
            if let text = SLOFile.scalarText(field.value), SLOAggregate.functions.contains(text) {
                aggregate = text
            } else {
                var message = "aggregate_function must be avg, p50, p90 or p95, not "
                message += SLOFile.scalarText(field.value).map { "\"\($0)\"" } ?? field.value.kindDescription
                message += " (Keptn silently compares with 0 then)"
                log.error(message, at: field.value.mark)
                if let text = SLOFile.scalarText(field.value) { aggregate = text }
            }
        }
        return SLO.Comparison(
            compareWith: compareWith, includeResultWithScore: include, numberOfComparisonResults: number,
            aggregateFunction: aggregate)
    }

    private mutating func readObjectives(_ pair: YAMLPair?, root: YAMLNode) -> [SLO.Objective] {
        guard let pair, !pair.value.isNull else {
            log.error("the SLO file has no objectives; Keptn fails such an evaluation (\"no SLO objective was provided\")", at: root.mark)
            return []
        }
        guard let items = schema.list(pair.value, what: "objectives", log: &log) else { return [] }
        var objectives: [SLO.Objective] = []
        var seen: [String: SourceMark] = [:]
        for item in items where !item.isNull {
            guard let objective = readObjective(item) else { continue }
            if !objective.sli.isEmpty {
                if let first = seen[objective.sli] {
                    log.warning(
                        "objective sli \"\(objective.sli)\" is already used at line \(first.line); Keptn gives each SLI value to the first objective only, so this one fails with \"no value received from SLI provider\"",
                        at: objective.mark)
                } else {
                    seen[objective.sli] = objective.mark
                }
            }
            objectives.append(objective)
        }
        if objectives.isEmpty {
            log.error("objectives is empty; Keptn fails such an evaluation (\"no SLO objective was provided\")", at: pair.value.mark)
        }
        return objectives
    }

    private mutating func readObjective(_ node: YAMLNode) -> SLO.Objective? {
        var fields: [String: YAMLPair] = [:]
        guard schema.mapping(node, of: "an objective", allowed: SLOFile.objectiveKeys, log: &log, into: &fields) else {
            return nil
        }
        var sli = ""
        var mark = node.mark
        if let field = fields["sli"] {
            mark = field.key.mark
            if let text = SLOFile.scalarText(field.value), !text.isEmpty {
                sli = text
            } else if field.value.isNull || field.value.string == "" {
                log.error("objective sli is empty; name the SLI this objective scores", at: field.value.mark)
            } else {
                log.error("objective sli must be a name, not \(field.value.kindDescription)", at: field.value.mark)
            }
        } else {
            log.error("objective has no sli; name the SLI it scores with 'sli: NAME'", at: node.mark)
        }
        var displayName = ""
        if let field = fields["displayName"], !field.value.isNull {
            if let text = SLOFile.scalarText(field.value) {
                displayName = text
            } else {
                log.error("displayName must be a string, not \(field.value.kindDescription)", at: field.value.mark)
            }
        }
        let pass = readCriteriaSets(fields["pass"], what: "pass")
        let warning = readCriteriaSets(fields["warning"], what: "warning")
        var weight = 1
        if let field = fields["weight"], !field.value.isNull {
            if case .int(let value)? = field.value.scalar?.resolved, let int = Int(exactly: value), abs(int) <= 1_000_000 {
                weight = int == 0 ? 1 : int
                if int < 0 {
                    log.warning("weight \(int) is negative; it lowers the maximum score", at: field.value.mark)
                }
            } else {
                log.error("weight must be a whole number, not \(field.value.kindDescription)", at: field.value.mark)
            }
        }
        var keySLI = false
        if let field = fields["key_sli"], !field.value.isNull {
            if case .bool(let value)? = field.value.scalar?.resolved {
                keySLI = value
            } else {
                log.error("key_sli must be true or false, not \(field.value.kindDescription)", at: field.value.mark)
            }
        }
        if pass.isEmpty {
            if keySLI, let field = fields["key_sli"] {
                log.warning(
                    "key_sli has no effect on an objective without pass criteria: it is only reported (status info)",
                    at: field.key.mark)
            }
            if !warning.isEmpty, let field = fields["warning"] {
                log.warning(
                    "warning criteria have no effect on an objective without pass criteria: it is only reported (status info)",
                    at: field.key.mark)
            }
        }
        return SLO.Objective(
            sli: sli, displayName: displayName, pass: pass, warning: warning, weight: weight, keySLI: keySLI, mark: mark)
    }

    private mutating func readCriteriaSets(_ pair: YAMLPair?, what: String) -> [[String]] {
        guard let pair, !pair.value.isNull else { return [] }
        guard let items = schema.list(pair.value, what: what, log: &log) else { return [] }
        var sets: [[String]] = []
        for item in items {
            if item.isNull {
                log.warning("an empty entry in \(what) is ignored; write '- criteria: [...]'", at: item.mark)
                continue
            }
            var fields: [String: YAMLPair] = [:]
            guard schema.mapping(item, of: "a \(what) entry", allowed: ["criteria"], log: &log, into: &fields) else {
                continue
            }
            guard let criteria = fields["criteria"], !criteria.value.isNull else {
                log.warning("this \(what) entry has no criteria, so it is always met", at: item.mark)
                sets.append([])
                continue
            }
            guard let list = schema.list(criteria.value, what: "criteria", log: &log) else { continue }
            if list.isEmpty {
                log.warning("this \(what) entry has an empty criteria list, so it is always met", at: criteria.value.mark)
            }
            var set: [String] = []
            for node in list {
                guard let text = SLOFile.scalarText(node) else {
                    log.error("a criterion must be a string such as \"<=800\", not \(node.kindDescription)", at: node.mark)
                    continue
                }
                do {
                    _ = try Criterion.parse(text)
                } catch {
                    var message = "criterion \"\(text)\" does not parse (\(error)): write an operator <, <=, =, >= or > and a number, e.g. \"<=800\", \"<=+10%\" or \">=-5\""
                    if text.contains("!=") { message += "; there is no != operator" }
                    log.error(message, at: node.mark)
                }
                set.append(text)
            }
            sets.append(set)
        }
        return sets
    }

    private mutating func readTotalScore(_ pair: YAMLPair?, root: YAMLNode) -> (String?, String?) {
        guard let pair, !pair.value.isNull else {
            log.error(
                "the SLO file has no total_score; Keptn fails the evaluation with \"no target score defined\": add total_score: {pass: \"90%\", warning: \"75%\"}",
                at: root.mark)
            return (nil, nil)
        }
        var fields: [String: YAMLPair] = [:]
        guard schema.mapping(pair.value, of: "total_score", allowed: SLOFile.totalScoreKeys, log: &log, into: &fields) else {
            return (nil, nil)
        }
        func read(_ key: String) -> (text: String, value: Double?)? {
            guard let field = fields[key], !field.value.isNull else { return nil }
            guard let text = SLOFile.scalarText(field.value) else {
                log.error("total_score.\(key) must be a percentage such as \"90%\", not \(field.value.kindDescription)", at: field.value.mark)
                return ("", nil)
            }
            guard let value = SLO.percentage(text) else {
                log.error("total_score.\(key) \"\(text)\" is not a percentage such as \"90%\" or a number", at: field.value.mark)
                return (text, nil)
            }
            return (text, value)
        }
        let pass = read("pass")
        let warning = read("warning")
        if pass == nil {
            log.error(
                "total_score has no pass; Keptn fails the evaluation with \"no target score defined\": add pass: \"90%\"",
                at: pair.value.mark)
        }
        if let p = pass?.value, let w = warning?.value, w > p, let field = fields["warning"] {
            log.warning(
                "total_score.warning (\(GoFloat.format(w))) is above pass (\(GoFloat.format(p))): a score that reaches warning already passes",
                at: field.value.mark)
        }
        return (pass.map(\.text), warning.map(\.text))
    }
}
