import Foundation
import ShipyardCore
import ShipyardTestKit
import Testing

/// Keptn's own lighthouse test vectors (`Tests/Fixtures/lighthouse-vectors.json`, transcribed from
/// keptn/keptn's lighthouse-service tests; `lighthouse-vectors.md` says how), replayed end to end
/// through the daemon: for each, a service whose SLO is the vector's, earlier evaluations recorded
/// first when the vector compares with them, the vector's answer given by an SLI provider program,
/// and the recorded `evaluation.finished` (and the `get-sli` exchange) checked against what
/// Keptn's test asserts, or against README's stated difference where Shipyard differs.
@Suite(.serialized) struct LighthouseVectorTests {
    /// Vectors where Shipyard answers differently on purpose, each with README's row and what
    /// Shipyard does instead.
    static var statedDifferences: [String: (readme: String, check: (Replay, [String: Any]) -> Void)] { [
        // README "no SLO file": the provider is not asked (Keptn asks it for nothing, then passes).
        "TestStartEvaluationHandler_HandleEvent/No SLO file available -  send get-sli event": (
            "no SLO file",
            { replay, data in
                #expect(replay.types == ["evaluation.started", "evaluation.finished"], "\(replay.types)")
                #expect(data["result"] as? String == "pass")
                #expect((data["message"] as? String)?.hasPrefix("no evaluation performed by lighthouse because no SLO file configured for project lighthouse") == true)
            }
        ),
        // README "an SLO Shipyard cannot fully read": no total_score is an error before the
        // provider is asked (Keptn asks it, then errors with "no target score defined").
        "TestStartEvaluationHandler_HandleEvent/Retrieve SLO by commitID": (
            "an SLO file with an error",
            { replay, data in
                #expect(replay.types == ["evaluation.started", "evaluation.finished"], "\(replay.types)")
                #expect(data["result"] as? String == "fail" && data["status"] as? String == "errored")
                #expect((data["message"] as? String)?.contains("total_score") == true, "\(data["message"] ?? "")")
            }
        ),
    ] }

    struct Vector {
        let index: Int
        let json: [String: Any]
        var name: String { json["name"] as? String ?? "?" }
        var service: String { String(format: "v%02d", index) }
        var slo: String? { json["slo"] as? String }
        var replay: [String: Any] { json["replay"] as? [String: Any] ?? [:] }
        var previous: [[String: Any]] { ((json["previous"] as? [String: Any])?["answers"] as? [[String: Any]]) ?? [] }
        var recordWith: String? { (json["previous"] as? [String: Any])?["recordWith"] as? String }
        var answer: Any { json["sli"] is [String: Any] ? json["sli"]! : ["indicatorValues": []] }
        var trigger: [String: Any] { json["trigger"] as? [String: Any] ?? [:] }
        var data: [String: Any] { trigger["data"] as? [String: Any] ?? [:] }

        /// How the vector's evaluation is triggered: `shipyardctl trigger evaluation` with its
        /// window and labels (Keptn's `keptn trigger evaluation`), or, for what that cannot carry,
        /// a sequence whose first task hands the data on (`data.test`) or that starts with the
        /// evaluation and no data at all.
        var arguments: [String] {
            if trigger["evaluationIsTheFirstTask"] as? Bool == true { return ["check"] }
            var arguments = ["evaluation"]
            let window = (trigger["window"] as? [String: Any])?["shipyard"] as? [String: Any] ?? data["evaluation"] as? [String: Any] ?? [:]
            if let start = window["start"] as? String, let end = window["end"] as? String {
                arguments += ["--start", start, "--end", end]
            } else if let timeframe = window["timeframe"] as? String {
                arguments += ["--timeframe", timeframe]
            } else if data["test"] != nil {
                return ["replay"]
            } else {
                arguments += ["--timeframe", "5m"]
            }
            for (key, value) in (data["labels"] as? [String: String] ?? [:]).sorted(by: { $0.key < $1.key }) {
                arguments += ["--label", "\(key)=\(value)"]
            }
            return arguments
        }
    }

    /// One vector's recorded events, as the daemon wrote them.
    struct Replay {
        var events: [[String: Any]]
        var types: [String] {
            // What lighthouse sends (and the provider answers), not the evaluation's own trigger.
            events.compactMap { ($0["type"] as? String)?.replacingOccurrences(of: KeptnEvent.prefix, with: "") }
                .filter { ($0.hasPrefix("evaluation.") || $0.hasPrefix("get-sli.")) && $0 != "evaluation.triggered" }
        }

        func last(_ type: String) -> [String: Any]? { events.last { $0["type"] as? String == KeptnEvent.prefix + type } }
    }

    static let shipyard = """
        apiVersion: spec.keptn.sh/0.2.2
        kind: Shipyard
        metadata:
          name: lighthouse
        spec:
          stages:
            - name: qa
              sequences:
                - name: replay
                  tasks:
                    - name: je-test
                    - name: evaluation
                - name: check
                  tasks:
                    - name: evaluation

        """

    @Test func keptnsLighthouseVectorsEndToEnd() async throws {
        let text = try Data(contentsOf: Repository.root.appendingPathComponent("Tests/Fixtures/lighthouse-vectors.json"))
        let all = try #require(try JSONSerialization.jsonObject(with: text) as? [[String: Any]])
        #expect(all.count == 78)
        let vectors = all.enumerated().map { Vector(index: $0.offset + 1, json: $0.element) }.filter { $0.json["expressible"] as? Bool == true }
        #expect(vectors.count == 70)

        let dir = try TemporaryDirectory()
        for sub in ["answers", "trigger"] { try FileManager.default.createDirectory(atPath: dir.path + "/" + sub, withIntermediateDirectories: true) }
        // The provider answers for the service it is asked about (the task environment names it):
        // a shell and cat, so that seventy of them at once cost the machine little.
        let provider = try dir.write("sli-provider", """
            #!/bin/sh
            cat > /dev/null
            exec cat "\(dir.path)/answers/$SHIPYARD_SERVICE.json"

            """, mode: 0o755)
        // The task before the evaluation hands on the test's times (Keptn's data.test).
        let test = try dir.write("je-test", """
            #!/bin/sh
            printf '{"result":"pass","data":%s}' "$(cat \(dir.path)/trigger/$SHIPYARD_SERVICE.json)" > "$SHIPYARD_RESULT"

            """, mode: 0o755)
        let upstream = try UpstreamRepository(in: dir.path)
        func json(_ value: Any) throws -> String { String(decoding: try JSONSerialization.data(withJSONObject: value, options: [.sortedKeys]), as: UTF8.self) }
        for vector in vectors where vector.arguments == ["replay"] {
            try dir.write("trigger/\(vector.service).json", try json(["test": vector.data["test"]!]))
        }

        // Phase 1: the SLO the earlier evaluations are recorded with (informational objectives,
        // so each ends pass and keeps its values).
        var files = ["shipyard.yaml": Self.shipyard]
        for vector in vectors { if let record = vector.recordWith { files["qa/\(vector.service)/slo.yaml"] = record } }
        let first = try upstream.commit(files)
        let daemon = try RunningDaemon(directory: dir.path, config: """
            projects:
              - name: lighthouse
                upstream: \(upstream.fileURL)
                pollInterval: 1h
                sliProvider:
                  command: ["\(provider)"]
                  timeout: 30s
            tasks:
              je-test:
                command: ["\(test)"]
            """)
        #expect(await daemon.waitFor("lighthouse") { $0.shipyardCommit == first } != nil, "\(daemon.log)")

        func trigger(_ vector: Vector) throws -> String {
            let out = try daemon.ctl(["trigger"] + vector.arguments + ["--project", "lighthouse", "--stage", "qa", "--service", vector.service, "--output", "json"])
            #expect(out.status == 0, "\(vector.name): \(out.stderr)")
            return ((try? JSONSerialization.jsonObject(with: Data(out.stdout.utf8))) as? [String: String])?["context"] ?? ""
        }
        func waitFinished(_ contexts: [String]) async -> Bool {
            let wanted = Set(contexts)
            return await eventually(timeout: .seconds(180), every: .milliseconds(250)) {
                let out = try? daemon.ctl(["sequences", "--project", "lighthouse", "--limit", "1000", "--output", "json"])
                let rows = ((try? JSONSerialization.jsonObject(with: Data((out?.stdout ?? "").utf8))) as? [[String: Any]]) ?? []
                let done = rows.filter { wanted.contains($0["context"] as? String ?? "") && ["finished", "aborted", "timedOut"].contains($0["state"] as? String ?? "") }
                return Set(done.compactMap { $0["context"] as? String }).count == wanted.count
            }
        }

        // The earlier evaluations, one round per answer (oldest first), every service at once.
        var previousIDs: [String: [String]] = [:]
        let rounds = vectors.map(\.previous.count).max() ?? 0
        for round in 0..<rounds {
            var contexts: [String: String] = [:]
            for vector in vectors where vector.previous.count > round {
                try dir.write("answers/\(vector.service).json", try json(vector.previous[round]))
                contexts[vector.service] = try trigger(vector)
            }
            #expect(await waitFinished(Array(contexts.values)), "round \(round)")
            for (service, context) in contexts {
                let finished = Replay(events: events(daemon, context)).last("evaluation.finished")
                #expect(((finished?["data"] as? [String: Any])?["result"] as? String) == "pass", "\(service) round \(round): \(finished ?? [:])")
                previousIDs[service, default: []].append(finished?["id"] as? String ?? "")
            }
        }

        // Phase 2: each vector's own SLO (none, or an invalid one, as the vector has it).
        try upstream.git("rm", "-q", "-r", "--ignore-unmatch", "qa")
        files = [:]
        for vector in vectors { if let slo = vector.slo { files["qa/\(vector.service)/slo.yaml"] = slo } }
        let second = try upstream.commit(files, message: "the vectors' SLOs")
        #expect(try daemon.ctl(["sync", "--timeout", "60"]).status == 0)
        #expect(daemon.project("lighthouse")?.shipyardCommit == second)
        var contexts: [String: String] = [:]
        for vector in vectors {
            try dir.write("answers/\(vector.service).json", try json(vector.answer))
            contexts[vector.service] = try trigger(vector)
        }
        #expect(await waitFinished(Array(contexts.values)))

        var differing: [String] = []
        for vector in vectors {
            let replay = Replay(events: events(daemon, contexts[vector.service] ?? ""))
            let finished = replay.last("evaluation.finished")
            let data = finished?["data"] as? [String: Any] ?? [:]
            if let stated = Self.statedDifferences[vector.name] {
                stated.check(replay, data)
                differing.append("\(vector.name) (README: \(stated.readme))")
                continue
            }
            let problems = Self.check(vector, replay: replay, commit: second, previous: previousIDs[vector.service] ?? [])
            #expect(problems.isEmpty, "\(vector.index) \(vector.name):\n  \(problems.joined(separator: "\n  "))\n  got: \(data)")
        }
        #expect(differing.count == Self.statedDifferences.count)
        #expect(await daemon.stop() == 0)
    }

    func events(_ daemon: RunningDaemon, _ context: String) -> [[String: Any]] {
        let text = (try? daemon.ctl(["events", "--context", context]).stdout) ?? ""
        return text.split(separator: "\n").compactMap { try? JSONSerialization.jsonObject(with: Data($0.utf8)) as? [String: Any] }
    }

    /// What differs from the vector's `replay` expectations (empty: Keptn's answer).
    static func check(_ vector: Vector, replay: Replay, commit: String, previous: [String]) -> [String] {
        let finished = replay.last("evaluation.finished")
        let data = finished?["data"] as? [String: Any] ?? [:]
        let evaluation = data["evaluation"] as? [String: Any] ?? [:]
        var problems: [String] = []
        func expect(_ ok: Bool, _ what: @autoclosure () -> String) { if !ok { problems.append(what()) } }
        for (key, wanted) in vector.replay {
            switch key {
            case "how":
                continue
            case "result", "status":
                expect(same(data[key], wanted), "\(key): \(data[key] ?? "nil") ≠ \(wanted)")
            case "evaluation.result", "evaluation.score", "evaluation.sloFileContent", "evaluation.comparedEvents", "evaluation.indicatorResults":
                let field = String(key.dropFirst("evaluation.".count))
                if key == "evaluation.sloFileContent" {
                    expect(evaluation[field] as? String == Data((vector.slo ?? "").utf8).base64EncodedString(), "sloFileContent is not the SLO read at the commit")
                } else if key == "evaluation.comparedEvents" {
                    expect(same(evaluation[field], previous), "comparedEvents: \(evaluation[field] ?? "nil") ≠ \(previous)")
                } else {
                    expect(same(evaluation[field], wanted), "\(key): \(evaluation[field] ?? "nil") ≠ \(wanted)")
                }
            case "evaluation.timeStart", "evaluation.timeEnd":
                let field = String(key.dropFirst("evaluation.".count))
                if let text = wanted as? String, text.contains("within") {
                    // A timeframe alone: the window ends at the evaluation's trigger and is as long.
                    let start = (evaluation["timeStart"] as? String).flatMap(Timestamps.parse)
                    let end = (evaluation["timeEnd"] as? String).flatMap(Timestamps.parse)
                    expect(start != nil && end != nil && end!.timeIntervalSince(start!) == 600, "a 10m timeframe gave \(evaluation["timeStart"] ?? "") … \(evaluation["timeEnd"] ?? "")")
                } else {
                    expect(same(evaluation[field], wanted), "\(key): \(evaluation[field] ?? "nil") ≠ \(wanted)")
                }
            case "indicators":
                // Indicator results come in the SLO's order of objectives (one without a value
                // names no metric).
                let results = evaluation["indicatorResults"] as? [[String: Any]] ?? []
                let objectives = SLOFile.load(vector.slo ?? "").0?.objectives.map(\.sli) ?? []
                for (metric, fields) in wanted as? [String: [String: Any]] ?? [:] {
                    guard let position = objectives.firstIndex(of: metric), position < results.count else {
                        problems.append("no indicator result for \(metric)")
                        continue
                    }
                    let result = results[position]
                    for (path, value) in fields {
                        let actual: Any? = path.hasPrefix("value.") ? (result["value"] as? [String: Any])?[String(path.dropFirst(6))] : result[path]
                        expect(same(actual, value), "\(metric).\(path): \(actual ?? "nil") ≠ \(value)")
                    }
                }
            case "messageContains", "messageNotContains":
                let message = data["message"] as? String ?? ""
                for part in wanted as? [String] ?? [] {
                    expect(message.contains(part) == (key == "messageContains"), "message \(key == "messageContains" ? "lacks" : "has") \"\(part)\": \(message)")
                }
            case "events":
                expect(replay.types.starts(with: wanted as? [String] ?? []), "events: \(replay.types) do not start with \(wanted)")
            case "noEvents":
                for type in wanted as? [String] ?? [] { expect(!replay.types.contains(type), "\(type) was sent") }
            case "evaluationFinishedCount":
                expect(replay.types.filter { $0 == "evaluation.finished" }.count == wanted as? Int, "evaluation.finished count")
            case "evaluation.finished.gitcommitid":
                expect(finished?["gitcommitid"] as? String == commit, "gitcommitid \(finished?["gitcommitid"] ?? "nil") ≠ \(commit)")
            case "get-sli.triggered":
                let asked = (replay.last("get-sli.triggered")?["data"] as? [String: Any])?["get-sli"] as? [String: Any] ?? [:]
                for (field, value) in wanted as? [String: Any] ?? [:] { expect(same(asked[field], value), "get-sli.\(field): \(asked[field] ?? "nil") ≠ \(value)") }
            default:
                problems.append("the replay does not know \(key)")
            }
        }
        return problems
    }

    /// Keptn's value against Shipyard's: numbers within 1e-9, objects key by key (a key Keptn
    /// sends empty — "", false, null, [] — may be absent), arrays element by element. Both sides
    /// are compared as JSON values, so that a boolean is never taken for a number.
    static func same(_ actual: Any?, _ wanted: Any?) -> Bool {
        same(value(actual), value(wanted))
    }

    static func value(_ any: Any?) -> JSONValue? {
        guard let any, !(any is NSNull), let data = try? JSONSerialization.data(withJSONObject: [any]) else { return nil }
        return (try? JSONDecoder().decode([JSONValue].self, from: data))?.first
    }

    static func same(_ actual: JSONValue?, _ wanted: JSONValue?) -> Bool {
        switch wanted {
        case nil, .null?:
            return actual == nil || actual == .null || actual == .array([])
        case .number(let number)?:
            guard let value = actual?.number else { return false }
            return abs(value - number) <= 1e-9 * max(1, abs(number))
        case .bool(let flag)?:
            return (actual?.bool ?? false) == flag
        case .string(let text)?:
            return (actual?.string ?? "") == text
        case .array(let array)?:
            let values = actual?.array ?? []
            return values.count == array.count && zip(values, array).allSatisfy { same($0, $1) }
        case .object(let object)?:
            let values = actual?.object ?? [:]
            return object.allSatisfy { key, value in same(values[key], value) }
        }
    }
}
