import Foundation
import Testing

@testable import ShipyardCore

/// slo.yaml and sli.yaml reading, each finding at its line and column; the timeframe rules; and
/// prometheus-service's query side.
@Suite struct EvaluationSLOFileTests {
    func lint(_ text: String) -> [String] {
        SLOFile.load(text).diagnostics.map(\.description)
    }

    /// The tour's quality gate (keptn/examples onboarding-carts slo-quality-gates.yaml).
    let tourSLO = """
        ---
        spec_version: "1.0"
        comparison:
          aggregate_function: "avg"
          compare_with: "single_result"
          include_result_with_score: "pass"
          number_of_comparison_results: 1
        filter:
        objectives:
          - sli: "response_time_p95"
            displayName: "Response time P95"
            key_sli: false
            pass:             # pass if (relative change <= 10% AND absolute value is < 600ms)
              - criteria:
                  - "<=+10%"  # relative values require a prefixed sign (plus or minus)
                  - "<600"    # absolute values only require a logical operator
            warning:          # if the response time is below 800ms, the result should be a warning
              - criteria:
                  - "<=800"
            weight: 1
          - sli: "throughput"
          - sli: error_rate
            pass:
              - criteria: ["<=1"]
        total_score:
          pass: "90%"
          warning: "75%"
        """

    @Test func theTourSLOReadsCleanly() throws {
        let (slo, diagnostics) = SLOFile.load(tourSLO)
        #expect(diagnostics.isEmpty, "\(diagnostics)")
        let model = try #require(slo)
        #expect(model.comparison.compareWith == "single_result")
        #expect(model.comparison.resultsToCompare == 1)
        #expect(model.comparison.acceptedResults == ["pass"])
        #expect(model.filter == [:])
        #expect(model.objectives.map(\.sli) == ["response_time_p95", "throughput", "error_rate"])
        #expect(model.objectives[0] == SLO.Objective(
            sli: "response_time_p95", displayName: "Response time P95", pass: [["<=+10%", "<600"]], warning: [["<=800"]],
            weight: 1, keySLI: false, mark: SourceMark(line: 10, column: 5)))
        #expect(model.objectives[1].pass.isEmpty && model.objectives[1].mark == SourceMark(line: 21, column: 5))
        #expect(model.totalScorePass == "90%" && model.totalScoreWarning == "75%")
        let root = try #require(try YAMLParser().parse(tourSLO))
        #expect(SLOFile.recognizes(root))
        #expect(!SLIFile.recognizes(root))
    }

    @Test func notYAMLOrNotAMappingGivesNoSLO() {
        let broken = SLOFile.load("objectives: [\n")
        #expect(broken.slo == nil && broken.diagnostics.count == 1 && broken.diagnostics[0].severity == .error)
        let list = SLOFile.load("- sli: a\n")
        #expect(list.slo == nil)
        #expect(lint("- sli: a\n") == [
            "1:1: error: an SLO file is a mapping with spec_version, filter, comparison, objectives and total_score, not a list"
        ])
        #expect(SLOFile.load("").slo == nil)
    }

    @Test func unknownKeysAreErrorsWithASuggestion() {
        #expect(lint("""
            objective:
              - sli: a
            total_score: {pass: "90%"}
            """) == [
            "1:1: error: unknown key \"objective\" in the SLO file; did you mean \"objectives\"?",
            "1:1: error: the SLO file has no objectives; Keptn fails such an evaluation (\"no SLO objective was provided\")",
        ])
        #expect(lint("""
            comparison:
              compare_with: single_result
              agregate_function: avg
            objectives:
              - sli: a
                displayname: A
                pass:
                  - criterion: ["<1"]
            total_score:
              pass: "90%"
              warn: "75%"
            """) == [
            "3:3: error: unknown key \"agregate_function\" in comparison; did you mean \"aggregate_function\"?",
            "6:5: error: unknown key \"displayname\" in an objective; did you mean \"displayName\"?",
            "8:9: error: unknown key \"criterion\" in a pass entry; did you mean \"criteria\"?",
            "8:9: warning: this pass entry has no criteria, so it is always met",
            "11:3: error: unknown key \"warn\" in total_score (it takes pass, warning)",
        ])
    }

    @Test func aCriterionThatDoesNotParseIsReportedWhereItIsWritten() {
        #expect(lint("""
            objectives:
              - sli: rt
                pass:
                  - criteria:
                      - "<=10ms"
                      - "!=5"
                      - "<600"
                warning:
                  - criteria: [800]
            total_score: {pass: "90%"}
            """) == [
            "5:13: error: criterion \"<=10ms\" does not parse (could not parse criteria target value): write an operator <, <=, =, >= or > and a number, e.g. \"<=800\", \"<=+10%\" or \">=-5\"",
            "6:13: error: criterion \"!=5\" does not parse (invalid criteria string): write an operator <, <=, =, >= or > and a number, e.g. \"<=800\", \"<=+10%\" or \">=-5\"; there is no != operator",
            "9:20: error: criterion \"800\" does not parse (invalid criteria string): write an operator <, <=, =, >= or > and a number, e.g. \"<=800\", \"<=+10%\" or \">=-5\"",
        ])
    }

    @Test func weightKeySLIAndTotalScoreMustHaveTheirTypes() {
        #expect(lint("""
            objectives:
              - sli: rt
                pass: [{criteria: ["<1"]}]
                weight: 1.5
                key_sli: "yes"
            total_score:
              pass: ninety
              warning: "75 %"
            """) == [
            "4:13: error: weight must be a whole number, not the number 1.5",
            "5:14: error: key_sli must be true or false, not the string \"yes\"",
            "7:9: error: total_score.pass \"ninety\" is not a percentage such as \"90%\" or a number",
            "8:12: error: total_score.warning \"75 %\" is not a percentage such as \"90%\" or a number",
        ])
        let (slo, _) = SLOFile.load("objectives: [{sli: a, pass: [{criteria: ['<1']}], weight: 0}]\ntotal_score: {pass: 90}\n")
        #expect(slo?.objectives.first?.weight == 1)
        #expect(slo?.totalScorePass == "90")
    }

    @Test func unknownAggregateOrIncludeAreErrors() {
        #expect(lint("""
            comparison:
              compare_with: several_results
              number_of_comparison_results: 3
              include_result_with_score: pass_or_warning
              aggregate_function: median
            objectives: [{sli: a, pass: [{criteria: ["<1"]}]}]
            total_score: {pass: "90%"}
            """) == [
            "4:30: error: include_result_with_score must be all, pass or pass_or_warn, not \"pass_or_warning\"; did you mean \"pass_or_warn\"?",
            "5:23: error: aggregate_function must be avg, p50, p90 or p95, not \"median\" (Keptn silently compares with 0 then)",
        ])
    }

    @Test func aMissingTargetScoreOrNoObjectivesAreErrors() {
        #expect(lint("objectives: [{sli: a, pass: [{criteria: [\"<1\"]}]}]\n") == [
            "1:1: error: the SLO file has no total_score; Keptn fails the evaluation with \"no target score defined\": add total_score: {pass: \"90%\", warning: \"75%\"}"
        ])
        #expect(lint("objectives: [{sli: a}]\ntotal_score:\n  warning: 75%\n") == [
            "3:3: error: total_score has no pass; Keptn fails the evaluation with \"no target score defined\": add pass: \"90%\""
        ])
        #expect(lint("objectives: []\ntotal_score: {pass: 90%}\n") == [
            "1:13: error: objectives is empty; Keptn fails such an evaluation (\"no SLO objective was provided\")"
        ])
        // A file with errors still gives its SLO, so lint can cross-check it.
        #expect(SLOFile.load("objectives: []\n").slo?.objectives == [])
    }

    @Test func objectivesNeedAnSLIAndShouldNotRepeatIt() {
        #expect(lint("""
            objectives:
              - displayName: nameless
              - sli: ""
              - sli: rt
                pass: [{criteria: ["<1"]}]
              - sli: rt
            total_score: {pass: "90%"}
            """) == [
            "2:5: error: objective has no sli; name the SLI it scores with 'sli: NAME'",
            "3:10: error: objective sli is empty; name the SLI this objective scores",
            "6:5: warning: objective sli \"rt\" is already used at line 4; Keptn gives each SLI value to the first objective only, so this one fails with \"no value received from SLI provider\"",
        ])
    }

    @Test func nullObjectivesAreDropped() throws {
        // keptn#5522
        let (slo, diagnostics) = SLOFile.load("objectives:\n  -\n  - sli: a\n  - ~\ntotal_score: {pass: \"90%\"}\n")
        #expect(diagnostics.isEmpty)
        #expect(try #require(slo).objectives.map(\.sli) == ["a"])
    }

    @Test func comparisonWithoutCompareWithWarnsThatKeptnComparesWithThree() throws {
        let text = "comparison:\n  aggregate_function: p90\nobjectives: [{sli: a}]\ntotal_score: {pass: \"90%\"}\n"
        #expect(lint(text) == [
            "2:3: warning: comparison has no compare_with: Keptn then compares with 3 previous results (its docs say 1); write compare_with: single_result or several_results"
        ])
        let comparison = try #require(SLOFile.load(text).slo).comparison
        #expect(comparison.compareWith == nil)
        #expect(comparison.resultsToCompare == 3)
        #expect(comparison.numberOfComparisonResults == 3)
        #expect(comparison.aggregateFunction == "p90")
        #expect(comparison.acceptedResults == nil)
        // No block at all: 1.
        #expect(try #require(SLOFile.load("objectives: [{sli: a}]\ntotal_score: {pass: \"90%\"}\n").slo).comparison == .absent)
        #expect(lint("comparison:\n  compare_with: single_result\n  number_of_comparison_results: 5\nobjectives: [{sli: a}]\ntotal_score: {pass: 90%}\n") == [
            "3:33: warning: compare_with: single_result compares with 1 result; number_of_comparison_results: 5 only counts with several_results"
        ])
    }

    @Test func theFilterBecomesAMap() throws {
        let (slo, diagnostics) = SLOFile.load(
            "filter:\n  handler: \"ItemsController.addToCart\"\n  id: 42\nobjectives: [{sli: a}]\ntotal_score: {pass: \"90%\"}\n")
        #expect(diagnostics.isEmpty)
        #expect(try #require(slo).filter == ["handler": "ItemsController.addToCart", "id": "42"])
        #expect(lint("filter: [a]\nobjectives: [{sli: a}]\ntotal_score: {pass: \"90%\"}\n") == [
            "1:9: error: filter must be a mapping of names to values, not a list"
        ])
    }

    @Test func noEffectSettingsOnInfoObjectivesAreWarned() {
        #expect(lint("objectives:\n  - sli: a\n    key_sli: true\n    warning: [{criteria: [\"<1\"]}]\ntotal_score: {pass: \"90%\"}\n") == [
            "3:5: warning: key_sli has no effect on an objective without pass criteria: it is only reported (status info)",
            "4:5: warning: warning criteria have no effect on an objective without pass criteria: it is only reported (status info)",
        ])
    }

    // MARK: sli.yaml

    @Test func sliFilesReadIndicatorsAndMerge() throws {
        let project = """
            ---
            spec_version: '1.0'
            indicators:
              throughput: "sum(rate(http_requests_total{job='$SERVICE-$PROJECT-$STAGE'}[$DURATION_SECONDS]))"
              response_time_p95: histogram_quantile(0.95, x)
            """
        let (file, diagnostics) = SLIFile.load(project)
        #expect(diagnostics.isEmpty)
        let sli = try #require(file)
        #expect(sli.indicators["throughput"] == "sum(rate(http_requests_total{job='$SERVICE-$PROJECT-$STAGE'}[$DURATION_SECONDS]))")
        #expect(sli.marks["response_time_p95"] == SourceMark(line: 5, column: 3))
        #expect(SLIFile.recognizes(try #require(try YAMLParser().parse(project))))

        let service = SLIFile(indicators: ["response_time_p95": "service query", "error_rate": "e"])
        let merged = SLIFile.merged([sli, service])
        #expect(merged.indicators == [
            "throughput": sli.indicators["throughput"]!, "response_time_p95": "service query", "error_rate": "e",
        ])
    }

    @Test func sliFileMistakesAreErrors() {
        func lint(_ text: String) -> [String] { SLIFile.load(text).diagnostics.map(\.description) }
        #expect(lint("indicator:\n  a: q\n") == [
            "1:1: error: unknown key \"indicator\" in the SLI file; did you mean \"indicators\"?",
            "1:1: error: the SLI file has no indicators; add 'indicators:' with 'NAME: QUERY' lines",
        ])
        #expect(lint("indicators:\n  a: [q]\n  b:\n") == [
            "2:6: error: the query for \"a\" must be a string, not a list",
            "3:5: error: the query for \"b\" must be a string, not an empty value",
        ])
        #expect(lint("indicators: [a]\n") == ["1:13: error: indicators must be a mapping of SLI names to queries, not a list"])
        #expect(SLIFile.load("- a\n").sli == nil)
        #expect(lint("- a\n") == ["1:1: error: an SLI file is a mapping with spec_version and indicators, not a list"])
    }
}

@Suite struct EvaluationTimeframeTests {
    let eventTime = Date(timeIntervalSince1970: 1_714_557_600)  // 2024-05-01T10:00:00Z

    func resolve(_ data: JSONValue, fallback: (start: Date, end: Date)? = nil) -> Result<(start: Date, end: Date), TimeframeError> {
        EvaluationTimeframe.resolve(data: data, eventTime: eventTime, fallback: fallback)
    }

    func evaluation(_ fields: [String: String]) -> JSONValue {
        .object(["evaluation": .object(fields.mapValues(JSONValue.string))])
    }

    func window(_ data: JSONValue, fallback: (start: Date, end: Date)? = nil) throws -> [String] {
        let (start, end) = try resolve(data, fallback: fallback).get()
        return [Timestamps.format(start), Timestamps.format(end)]
    }

    func error(_ data: JSONValue) -> String? {
        if case .failure(let error) = resolve(data) { return error.message }
        return nil
    }

    @Test func startAndEnd() throws {
        #expect(try window(evaluation(["start": "2024-05-01T09:00:00.000Z", "end": "2024-05-01T09:30:00Z"]))
            == ["2024-05-01T09:00:00.000Z", "2024-05-01T09:30:00.000Z"])
    }

    @Test func aTimeframeAloneIsMeasuredBackFromTheEventTime() throws {
        // keptn#4094: from the event's time, not the clock.
        #expect(try window(evaluation(["timeframe": "5m"])) == ["2024-05-01T09:55:00.000Z", "2024-05-01T10:00:00.000Z"])
    }

    @Test func startAndTimeframe() throws {
        #expect(try window(evaluation(["start": "2024-05-01T08:00:00", "timeframe": "1h30m"]))
            == ["2024-05-01T08:00:00.000Z", "2024-05-01T09:30:00.000Z"])
    }

    @Test func keptnsErrors() {
        #expect(error(evaluation(["start": "2024-05-01T09:00:00Z", "end": "2024-05-01T09:30:00Z", "timeframe": "5m"]))
            == "'end' and 'timeframe' are mutually exclusive")
        #expect(error(evaluation(["end": "2024-05-01T09:30:00Z", "timeframe": "5m"])) == "'end' and 'timeframe' are mutually exclusive")
        #expect(error(evaluation(["end": "2024-05-01T09:30:00Z"])) == "start date is required when using an end date")
        #expect(error(evaluation(["start": "2024-05-01T09:00:00Z", "end": "2024-05-01T09:00:59Z"]))
            == "end date must be at least 1 minute after start date")
        #expect(error(evaluation(["timeframe": "30s"])) == "end date must be at least 1 minute after start date")
        #expect(error(evaluation(["timeframe": "5 minutes"]))?.hasPrefix("could not parse provided timeframe: ") == true)
        #expect(error(evaluation(["start": "yesterday", "end": "2024-05-01T09:30:00Z"]))?.hasPrefix("could not parse data.evaluation.start") == true)
        #expect(error(.object([:])) == "evaluation.triggered event does not contain evaluation timeframe")
        #expect(error(.object(["evaluation": .object(["timeframe": .number(5)])]))?.hasPrefix("data.evaluation.timeframe must be a string") == true)
    }

    @Test func testTimesAreUsedWhenTheEvaluationHasNone() throws {
        let test: JSONValue = .object([
            "test": .object(["start": .string("2024-05-01T09:00:00Z"), "end": .string("2024-05-01T09:10:00+00:00")])
        ])
        #expect(try window(test) == ["2024-05-01T09:00:00.000Z", "2024-05-01T09:10:00.000Z"])
        // data.evaluation wins.
        var both = test
        both["evaluation"] = .object(["timeframe": .string("2m")])
        #expect(try window(both) == ["2024-05-01T09:58:00.000Z", "2024-05-01T10:00:00.000Z"])
        // A start alone is ignored, as in Keptn.
        var startOnly = test
        startOnly["evaluation"] = .object(["start": .string("2024-05-01T07:00:00Z")])
        #expect(try window(startOnly) == ["2024-05-01T09:00:00.000Z", "2024-05-01T09:10:00.000Z"])
    }

    @Test func thePrecedingTaskIsTheFallback() throws {
        let fallback = (eventTime.addingTimeInterval(-600), eventTime.addingTimeInterval(-60))
        #expect(try window(.object([:]), fallback: fallback) == ["2024-05-01T09:50:00.000Z", "2024-05-01T09:59:00.000Z"])
        #expect(try window(evaluation(["timeframe": "5m"]), fallback: fallback) == ["2024-05-01T09:55:00.000Z", "2024-05-01T10:00:00.000Z"])
    }

    @Test func timestampsInKeptnsFormats() {
        #expect(KeptnTime.parse("2024-05-01T10:00:00.000Z") == eventTime)
        #expect(KeptnTime.parse("2024-05-01T12:00:00+02:00") == eventTime)
        #expect(KeptnTime.parse("2024-05-01T10:00:00") == eventTime)
        #expect(KeptnTime.parse("2024-05-01T10:00:00.5Z") == eventTime.addingTimeInterval(0.5))
        #expect(KeptnTime.parse("2019-10-20T07:57:27.152330783Z").map(Timestamps.format) == "2019-10-20T07:57:27.152Z")
        #expect(KeptnTime.parse("2024-02-29T00:00:00Z") != nil)
        #expect(KeptnTime.parse("2023-02-29T00:00:00Z") == nil)
        #expect(KeptnTime.parse("2024-05-01 10:00:00") == nil)
        #expect(KeptnTime.parse("2024-05-01T10:00:00.Z") == nil)
        #expect(KeptnTime.parse("1970-01-01T00:00:00Z") == Date(timeIntervalSince1970: 0))
    }
}

@Suite struct EvaluationPrometheusTests {
    let start = Date(timeIntervalSince1970: 1_714_557_600)

    @Test func placeholdersAreReplacedAsPrometheusServiceDoes() throws {
        let query = try PrometheusSLI.expand(
            "sum(rate(http_requests_total{job='$SERVICE-$PROJECT-$STAGE',handler=\"$handler\",env='$ENVIRONMENT',e='$env',v='$LABEL.version',d='$DEPLOYMENT'}[$DURATION_SECONDS]))",
            project: "sockshop", stage: "qa", service: "carts", deployment: "canary",
            filters: ["handler": "'ItemsController.addToCart'", "environment": "prod", "env": "x"],
            labels: ["version": "1.2", "v": "no"], start: start, end: start.addingTimeInterval(299.2))
        #expect(query
            == "sum(rate(http_requests_total{job='carts-sockshop-qa',handler=\"ItemsController.addToCart\",env='prod',e='x',v='1.2',d='canary'}[300s]))"
        )
        #expect(PrometheusSLI.durationSeconds(start: start, end: start.addingTimeInterval(120)) == "120s")
    }

    func expand(_ query: String, deployment: String = "d", filters: [String: String] = [:], labels: [String: String] = [:]) throws(PrometheusSLIError) -> String {
        try PrometheusSLI.expand(
            query, project: "p", stage: "s", service: "svc", deployment: deployment, filters: filters, labels: labels, start: start,
            end: start.addingTimeInterval(60))
    }

    /// A triggerer's label or an external task's deployment cannot rewrite the query: inside a
    /// string it stays a string, outside one only a plain token goes in.
    @Test func valuesCannotEscapeTheirStringAndTurnAFailIntoAPass() throws {
        let attack = #"x"}[1m]) or vector(0) #"#
        let query = #"sum(rate(errors{env="$LABEL.env"}[$DURATION_SECONDS])) / sum(rate(requests{env="$LABEL.env"}[$DURATION_SECONDS]))"#
        #expect(try expand(query, labels: ["env": attack])
            == #"sum(rate(errors{env="x\"}[1m]) or vector(0) #"}[60s])) / sum(rate(requests{env="x\"}[1m]) or vector(0) #"}[60s]))"#)
        #expect(try expand(#"up{d='$DEPLOYMENT'}"#, deployment: #"a'}) or vector(1) #\"#) == #"up{d='a\'}) or vector(1) #\\'}"#)
        #expect(try expand(#"up{d="$DEPLOYMENT"}"#, deployment: "a\nb\u{1}") == #"up{d="a\nb\x01"}"#)
        // A backslash of the query's own escapes its quote: what follows is still inside the string.
        #expect(try expand(#"up{d="\"$DEPLOYMENT"}"#, deployment: #"""#) == #"up{d="\"\""}"#)
        // Outside quotes: a plain token, or nothing.
        #expect(try expand("topk($LABEL.n, up)", labels: ["n": "5"]) == "topk(5, up)")
        for value in ["5, up) or vector(1", "1 ", "x{a=\"b\"}"] {
            #expect(throws: PrometheusSLIError.self) { try expand("topk($LABEL.n, up)", labels: ["n": value]) }
        }
        #expect(throws: PrometheusSLIError.self) { try expand("up{d=`$DEPLOYMENT`}", deployment: "a`b") }
        #expect(try expand("up{d=`$DEPLOYMENT`}", deployment: #"a"b\"#) == #"up{d=`a"b\`}"#)
        // In a regular expression a value matches itself only: `.*` or `a|b` cannot widen it.
        #expect(try expand(#"up{svc=~"$LABEL.s"}"#, labels: ["s": ".*"]) == #"up{svc=~"\\.\\*"}"#)
        #expect(try expand(#"up{svc !~ '$LABEL.s'}"#, labels: ["s": "a|b"]) == #"up{svc !~ 'a\\|b'}"#)
        #expect(try expand(#"up{svc="$LABEL.s"}"#, labels: ["s": ".*"]) == #"up{svc=".*"}"#)
        // A comment ends at a new line, which a value cannot bring.
        #expect(try expand("up # $DEPLOYMENT", deployment: "x\nor vector(1)") == "up # x or vector(1)")
    }

    /// Filters naming each other expand once each, in one pass: 27 of them (2^26 copies the way
    /// prometheus-service replaced them) give a short query at once.
    @Test func placeholderChainsExpandOnceAndTheQueryIsBounded() throws {
        var filters: [String: String] = ["a": "x"]
        var name = "a"
        for _ in 2...27 {
            let longer = name + "a"
            filters[longer] = "$" + name + "$" + name
            name = longer
        }
        #expect(try expand("up{f=\"$" + name + "\"}", filters: filters) == "up{f=\"$" + String(name.dropLast()) + "$" + String(name.dropLast()) + "\"}")
        let long = String(repeating: "v", count: 9000)
        #expect(try expand(#"up{a="$LABEL.v"}"#, labels: ["v": long]).utf8.count == 9000 + 8)
        #expect(throws: PrometheusSLIError.self) { try expand(#"up{a="$LABEL.v",b="$LABEL.v"}"#, labels: ["v": long]) }
    }

    func value(_ body: String) -> Result<Double, PrometheusSLIError> {
        PrometheusSLI.value(fromResponse: Array(body.utf8))
    }

    func message(_ body: String) -> String? {
        if case .failure(let error) = value(body) { return error.message }
        return nil
    }

    func vector(_ samples: String) -> String {
        #"{"status":"success","data":{"resultType":"vector","result":[\#(samples)]}}"#
    }

    @Test func exactlyOneSampleGivesItsValue() throws {
        #expect(try value(vector(#"{"metric":{},"value":[1571649085,"0.20111420612813372"]}"#)).get() == 0.20111420612813372)
    }

    @Test func prometheusServicesErrors() {
        #expect(message(vector("")) == "query did not return any values")
        #expect(message(vector(#"{"metric":{"a":"1"},"value":[1,"1"]},{"metric":{"a":"2"},"value":[1,"2"]}"#))
            == "query did return multiple values")
        #expect(message(vector(#"{"metric":{},"value":[1,"NaN"]}"#)) == "query did not return valid values")
        #expect(message(vector(#"{"metric":{},"value":[1,"+Inf"]}"#)) == "query did not return valid values")
        #expect(message(vector(#"{"metric":{},"value":[1,"abc"]}"#)) == "query did not return valid values")
        #expect(message(#"{"status":"error","errorType":"bad_data","error":"1:5: parse error: unexpected end of input"}"#)
            == "unable to query prometheus api: bad_data: 1:5: parse error: unexpected end of input")
        #expect(message(#"{"status":"success","data":{"resultType":"matrix","result":[]}}"#) == "prometheus api response is not a Vector: matrix")
        #expect(message("<html>bad gateway</html>")?.hasPrefix("unable to query prometheus api: the response is not JSON") == true)
    }
}
