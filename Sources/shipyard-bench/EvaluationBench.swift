import Foundation
import ShipyardCore
import ShipyardStore
import ShipyardDaemon

/// Quality gates: what one evaluation costs shipyardd besides its SLI provider's own time, the
/// scoring (Keptn's lighthouse rules) and the read of the previous evaluations it compares with,
/// as the SLO, the comparison and the history grow.
enum EvaluationBench {
    static func run(scratch: String) throws {
        print("")
        print("One evaluation, scoring only (median of 200; no provider time):")
        let objectiveCounts = Bench.sizes("BENCH_OBJECTIVES", "20,100")
        let previousCounts = Bench.sizes("BENCH_PREVIOUS", "10,100,1000")
        print(Bench.pad("  objectives \\ previous evaluations", 40) + previousCounts.map { Bench.pad("\($0)", 14) }.joined())
        for objectives in objectiveCounts {
            let figures = previousCounts.map { previous in score(objectives: objectives, previous: previous) }
            Bench.row("\(objectives) objectives", figures, width: 40) { Bench.ms($0) }
        }
        print("  (target: 20 objectives and 100 previous evaluations under 5 ms)")

        print("")
        print("Reading the 100 previous evaluations compared with, as the history grows (median of 50):")
        let histories = Bench.sizes("BENCH_EVALUATION_HISTORY", "1000,10000")
        var reads: [Double] = []
        for size in histories {
            reads.append(try readPrevious(scratch: scratch, history: size, objectives: 20))
        }
        print(Bench.pad("  evaluations recorded", 40) + histories.map { Bench.pad("\($0)", 14) }.joined())
        Bench.row("store read of 100 previous", reads, width: 40) { Bench.ms($0) }
    }

    static func slo(objectives: Int) -> SLO {
        SLO(
            comparison: SLO.Comparison(compareWith: "several_results", includeResultWithScore: "pass", numberOfComparisonResults: 100),
            objectives: (0..<objectives).map { index in
                SLO.Objective(sli: "sli_\(index)", pass: [["<=+10%", "<600"]], warning: [["<=800"]], keySLI: index == 0)
            },
            totalScorePass: "90%", totalScoreWarning: "75%")
    }

    static func values(objectives: Int, seed: Int) -> [SLIResult] {
        (0..<objectives).map { SLIResult(metric: "sli_\($0)", value: Double(300 + (seed * 7 + $0 * 13) % 200), success: true) }
    }

    static func score(objectives: Int, previous: Int) -> Double {
        let objective = slo(objectives: objectives)
        var comparison = objective.comparison
        comparison.resultsToCompare = previous
        var gate = objective
        gate.comparison = comparison
        let history = (0..<previous).map { index in
            PreviousEvaluation(
                id: "evaluation-\(index)", result: "pass",
                values: Dictionary(uniqueKeysWithValues: values(objectives: objectives, seed: index).map { ($0.metric, $0.value) }))
        }
        let current = values(objectives: objectives, seed: 9999)
        let now = Date()
        let content = Array("spec_version: \"1.0\"\n".utf8)
        return Bench.measure(200) {
            _ = Lighthouse.evaluate(gate, values: current, previous: history, timeStart: now.addingTimeInterval(-120), timeEnd: now, sloFileContent: content)
        }.wall
    }

    /// A store holding `history` lighthouse evaluations of one service (among four), then the
    /// query an evaluation makes: the newest 100 passing ones.
    static func readPrevious(scratch: String, history: Int, objectives: Int) throws -> Double {
        let path = scratch + "/evaluations-\(history).db"
        let store = try SQLiteStore(writingAt: path)
        let gate = slo(objectives: objectives)
        let now = Date()
        var batch: [KeptnEvent] = []
        for index in 0..<history {
            let service = "service-\(index % 4)"
            let outcome = Lighthouse.evaluate(
                gate, values: values(objectives: objectives, seed: index), previous: [], timeStart: now.addingTimeInterval(-120), timeEnd: now,
                sloFileContent: [])
            var data: JSONValue = .object([
                "project": .string("bench"), "stage": .string("qa"), "service": .string(service), "result": .string(outcome.result.rawValue),
                "status": .string("succeeded"), "message": .string(outcome.message),
            ])
            data["evaluation"] = outcome.evaluation
            batch.append(KeptnEvent(
                id: "finished-\(index)", source: "shipyardd/lighthouse", type: "sh.keptn.event.evaluation.finished", time: Timestamps.format(now),
                context: "context-\(index)", triggeredid: "triggered-\(index)", data: data))
            if batch.count == 500 {
                try store.commit(events: batch, changes: [])
                batch = []
            }
        }
        try store.commit(events: batch, changes: [])
        let query = EvaluationQuery(project: "bench", stage: "qa", service: "service-1", results: ["pass"], limit: 100)
        return Bench.measure(50) {
            _ = try? store.previousEvaluations(query)
        }.wall
    }
}
