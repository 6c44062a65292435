import Foundation

/// `triggeredOn`: the entries, their selectors' matches, and the checks across stages (loops,
/// matches that can never be met).
extension ShipyardReader {
    mutating func readTrigger(_ node: YAMLNode) -> Shipyard.Trigger? {
        guard let trigger = fields(node, of: "a triggeredOn entry", allowed: ["event", "selector"]) else { return nil }
        guard let eventPair = trigger["event"], !eventPair.value.isNull else {
            log.error(
                "this triggeredOn entry has no event; write 'event: <stage>.<sequence>.finished'",
                at: node.mark)
            return nil
        }
        guard let event = string(eventPair.value, what: "event") else { return nil }
        var short = event
        if short.hasPrefix("sh.keptn.event.") { short.removeFirst("sh.keptn.event.".count) }
        let parts = short.split(separator: ".", omittingEmptySubsequences: false)
        guard parts.count == 3, parts[2] == "finished", !parts[0].isEmpty, !parts[1].isEmpty else {
            log.error(
                "triggeredOn event \"\(event)\" must be '<stage>.<sequence>.finished', e.g. \"qa.delivery.finished\"",
                at: eventPair.value.mark)
            return nil
        }
        if short != event {
            log.error(
                "write the triggeredOn event in its short form \"\(short)\"; Keptn compares it with '<stage>.<sequence>.finished' and never matches \"\(event)\"",
                at: eventPair.value.mark)
            return nil
        }
        var matches: [Shipyard.Match] = []
        var complete = true
        if let selectorPair = trigger["selector"], !selectorPair.value.isNull {
            if let selector = fields(selectorPair.value, of: "a selector", allowed: ["match"]) {
                if let matchPair = selector["match"], !matchPair.value.isNull {
                    if let entries = readMatch(matchPair.value) { matches = entries } else { complete = false }
                }
            } else {
                complete = false
            }
        }
        guard complete else { return nil }
        return Shipyard.Trigger(
            stage: String(parts[0]), sequence: String(parts[1]), match: matches, mark: eventPair.value.mark)
    }

    mutating func readMatch(_ node: YAMLNode) -> [Shipyard.Match]? {
        guard let pairs = node.mapping else {
            log.error(
                "selector.match must be a mapping like 'result: fail', not \(node.kindDescription)", at: node.mark)
            return nil
        }
        var matches: [Shipyard.Match] = []
        var complete = true
        for pair in pairs {
            let key = pair.key.scalar?.text ?? ""
            let task: String?
            if key == "result" {
                task = nil
            } else if key.hasSuffix(".result"), key.count > ".result".count {
                task = String(key.dropLast(".result".count))
            } else {
                log.error(
                    "selector.match takes 'result' or '<task>.result' (e.g. 'evaluation.result'), not \"\(key)\"",
                    at: pair.key.mark)
                complete = false
                continue
            }
            guard let text = pair.value.string else {
                log.error(
                    "\(key) must be a string (pass, warning or fail), not \(pair.value.kindDescription)",
                    at: pair.value.mark)
                complete = false
                continue
            }
            if let result = TaskResult(rawValue: text) {
                matches.append(Shipyard.Match(task: task, result: result))
            } else if text == "failed" {
                log.warning(
                    "Keptn compares results with \"fail\", so \"failed\" never matches there; Shipyard reads it as \"fail\": write \"fail\"",
                    at: pair.value.mark)
                matches.append(Shipyard.Match(task: task, result: .fail))
            } else {
                log.error("\(key) must be pass, warning or fail, not \"\(text)\"", at: pair.value.mark)
                complete = false
            }
        }
        return complete ? matches : nil
    }

    /// Checks that every `triggeredOn` points at a sequence that exists, and that task selectors
    /// name a task that sequence runs.
    mutating func checkTriggers(_ stages: [Shipyard.Stage]?) {
        guard let stages else { return }
        for stage in stages {
            for sequence in stage.sequences {
                for trigger in sequence.triggeredOn {
                    guard let source = stages.first(where: { $0.name == trigger.stage }) else {
                        log.error(
                            "triggeredOn names stage \"\(trigger.stage)\", which does not exist (stages: \(stages.map(\.name).joined(separator: ", ")))",
                            at: trigger.mark)
                        continue
                    }
                    guard let upstream = source.sequence(named: trigger.sequence) else {
                        let names = source.sequences.map(\.name)
                        log.error(
                            "triggeredOn names sequence \"\(trigger.sequence)\" in stage \"\(trigger.stage)\", which has "
                                + (names.isEmpty ? "no sequences" : "only \(names.joined(separator: ", "))"),
                            at: trigger.mark)
                        continue
                    }
                    checkMatches(trigger, upstream: upstream)
                    if trigger.match.isEmpty, trigger.stage == stage.name, trigger.sequence == sequence.name {
                        log.warning(
                            "sequence \"\(sequence.name)\" triggers itself on every pass or warning, an endless loop; add a selector such as 'match: {result: fail}'",
                            at: trigger.mark)
                    } else if let loop = Self.loop(closedBy: trigger, into: "\(stage.name).\(sequence.name)", stages: stages) {
                        log.warning(
                            "\(loop) is a loop: it repeats in one delivery for as long as the selector matches (a remediation that never heals); Shipyard ends it after maxSequencesPerContext sequences of one context (50 unless the daemon's config says otherwise)",
                            at: trigger.mark)
                    }
                }
            }
        }
    }

    /// The loop a trigger closes, as "a → b → a", when the sequence it starts leads back to the
    /// one it listens to; nil otherwise.
    static func loop(closedBy trigger: Shipyard.Trigger, into target: String, stages: [Shipyard.Stage]) -> String? {
        // Edges: a finished sequence → the sequences whose triggeredOn names it.
        var next: [String: [String]] = [:]
        for stage in stages {
            for sequence in stage.sequences {
                for on in sequence.triggeredOn { next["\(on.stage).\(on.sequence)", default: []].append("\(stage.name).\(sequence.name)") }
            }
        }
        let source = "\(trigger.stage).\(trigger.sequence)"
        // Breadth-first from the target back to the source: the shortest way round.
        var previous: [String: String] = [target: target]
        var queue = [target]
        while !queue.isEmpty {
            let node = queue.removeFirst()
            if node == source {
                var path = [source]
                var at = source
                while at != target, let before = previous[at] {
                    path.append(before)
                    at = before
                }
                return ([source] + path.reversed()).joined(separator: " → ")
            }
            for following in next[node] ?? [] where previous[following] == nil {
                previous[following] = node
                queue.append(following)
            }
        }
        return nil
    }

    mutating func checkMatches(_ trigger: Shipyard.Trigger, upstream: Shipyard.Sequence) {
        for match in trigger.match {
            guard let task = match.task else { continue }
            let names = upstream.tasks.map(\.name)
            if !names.contains(task) {
                log.error(
                    "the selector names task \"\(task)\", which sequence \(trigger.stage).\(trigger.sequence) does not run (it runs \(names.joined(separator: ", ")))",
                    at: trigger.mark)
            } else if names.last != task, match.result != .fail {
                // Keptn compares with the last task that ran: a task before the last one is that
                // only when it fails (after a pass or a warning, the next task runs).
                log.warning(
                    "\"\(task).result: \(match.result.rawValue)\" never matches: Keptn compares '<task>.result' with the last task that ran, and \(task) is that only when it fails (after a \(match.result.rawValue) \(trigger.stage).\(trigger.sequence) goes on to \(names[(names.lastIndex(of: task) ?? 0) + 1]))",
                    at: trigger.mark)
            }
        }
    }
}
