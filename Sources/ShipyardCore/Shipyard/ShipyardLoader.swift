/// The outcome of reading a shipyard file: the shipyard when it has no errors, and every
/// finding, in file order.
public struct ShipyardDocument: Sendable {
    public var shipyard: Shipyard?
    public var diagnostics: [Diagnostic]

    public var errors: [Diagnostic] { diagnostics.filter { $0.severity == .error } }
    public var warnings: [Diagnostic] { diagnostics.filter { $0.severity == .warning } }
}

/// Reads and validates shipyard files (spec `spec.keptn.sh/0.2.0` to `0.2.4`).
///
/// Keptn itself checks little (a version, at least one stage, stage names), so a typo in a
/// shipyard usually shows up as a promotion that silently never happens. The loader reports every
/// mistake it can see: an error where the file cannot mean what its author meant, a warning where
/// Keptn would accept the file but the author should know something.
public enum ShipyardLoader {
    public static let supportedPatches = 0...4

    public static func load(_ bytes: some Collection<UInt8>, parser: YAMLParser = YAMLParser()) -> ShipyardDocument {
        var log = DiagnosticLog()
        let root: YAMLNode?
        do {
            root = try parser.parse(bytes)
        } catch {
            log.error(error.message, at: error.mark)
            return ShipyardDocument(shipyard: nil, diagnostics: log.sorted)
        }
        var reader = ShipyardReader(log: log)
        let shipyard = reader.read(root)
        log = reader.log
        return ShipyardDocument(shipyard: log.hasErrors ? nil : shipyard, diagnostics: log.sorted)
    }

    public static func load(_ text: String) -> ShipyardDocument {
        load(Array(text.utf8))
    }
}

/// Walks the YAML tree and builds the model, logging what is wrong on the way.
struct ShipyardReader {
    var log: DiagnosticLog
    let schema = SchemaReader()

    init(log: DiagnosticLog) {
        self.log = log
    }

    mutating func read(_ root: YAMLNode?) -> Shipyard? {
        guard let root, !root.isNull else {
            log.error(
                "the file is empty; a shipyard starts with 'apiVersion: spec.keptn.sh/0.2.4' and 'kind: Shipyard'",
                at: .start)
            return nil
        }
        guard root.mapping != nil else {
            log.error(
                "a shipyard is a mapping with apiVersion, kind, metadata and spec, not \(root.kindDescription)",
                at: root.mark)
            return nil
        }
        if root["apiVersion"] == nil, root["stages"] != nil || root["registry"] != nil {
            log.error(
                "this is a Keptn 0.7 shipyard (top-level 'stages' with deployment_strategy and no apiVersion); "
                    + "Shipyard reads spec 0.2: rewrite it with 'apiVersion: spec.keptn.sh/0.2.4', 'kind: Shipyard' "
                    + "and spec.stages[].sequences[].tasks[]",
                at: root.mark)
            return nil
        }
        guard let top = fields(root, of: "the shipyard", allowed: ["apiVersion", "kind", "metadata", "spec"]) else {
            return nil
        }

        let version = readAPIVersion(top["apiVersion"], in: root)
        readKind(top["kind"], in: root)
        let name = readMetadata(top["metadata"])
        let stages = readSpec(top["spec"], in: root, specPatch: version?.patch)
        checkTriggers(stages)
        guard let version, let stages else { return nil }
        return Shipyard(apiVersion: version.text, specPatch: version.patch, name: name, stages: stages)
    }

    // MARK: Top level

    mutating func readAPIVersion(_ pair: YAMLPair?, in root: YAMLNode) -> (text: String, patch: Int)? {
        guard let pair else {
            log.error("apiVersion is missing; add 'apiVersion: spec.keptn.sh/0.2.4'", at: root.mark)
            return nil
        }
        guard let text = string(pair.value, what: "apiVersion") else { return nil }
        let prefix = "spec.keptn.sh/"
        var version = Substring(text)
        let hasPrefix = version.hasPrefix(prefix)
        if hasPrefix { version = version.dropFirst(prefix.count) }
        if version.hasPrefix("v") { version = version.dropFirst() }
        let parts = version.split(separator: ".", omittingEmptySubsequences: false)
        if parts.count == 3, parts[0] == "0", parts[1] == "2", let patch = Int(parts[2]),
            ShipyardLoader.supportedPatches.contains(patch)
        {
            if !hasPrefix || text.contains("/v") {
                log.error("apiVersion must be written 'spec.keptn.sh/0.2.\(patch)'", at: pair.value.mark)
                return nil
            }
            return (text, patch)
        }
        log.error(
            "unsupported apiVersion \"\(text)\"; Shipyard reads spec.keptn.sh/0.2.0 to spec.keptn.sh/0.2.4",
            at: pair.value.mark)
        return nil
    }

    mutating func readKind(_ pair: YAMLPair?, in root: YAMLNode) {
        guard let pair else {
            log.error("kind is missing; add 'kind: Shipyard'", at: root.mark)
            return
        }
        guard let kind = string(pair.value, what: "kind") else { return }
        if kind != "Shipyard" {
            log.error("kind must be \"Shipyard\", not \"\(kind)\"", at: pair.value.mark)
        }
    }

    mutating func readMetadata(_ pair: YAMLPair?) -> String? {
        guard let pair, !pair.value.isNull else { return nil }
        guard let meta = fields(pair.value, of: "metadata", allowed: ["name"]) else { return nil }
        guard let name = meta["name"], !name.value.isNull else { return nil }
        return string(name.value, what: "metadata.name")
    }

    mutating func readSpec(_ pair: YAMLPair?, in root: YAMLNode, specPatch: Int?) -> [Shipyard.Stage]? {
        guard let pair else {
            log.error("spec is missing; a shipyard lists its stages under spec.stages", at: root.mark)
            return nil
        }
        guard let spec = fields(pair.value, of: "spec", allowed: ["stages"]) else { return nil }
        guard let stagesPair = spec["stages"], !stagesPair.value.isNull else {
            log.error("spec has no stages; a shipyard needs at least one stage", at: pair.value.mark)
            return nil
        }
        guard let items = list(stagesPair.value, what: "spec.stages") else { return nil }
        guard !items.isEmpty else {
            log.error("spec.stages is empty; a shipyard needs at least one stage", at: stagesPair.value.mark)
            return nil
        }
        var stages: [Shipyard.Stage] = []
        var seen: [String: SourceMark] = [:]
        for item in items {
            guard let stage = readStage(item, specPatch: specPatch) else { continue }
            if let first = seen[stage.name] {
                log.error(
                    "duplicate stage name \"\(stage.name)\" (first defined at line \(first.line)); stage names must be unique",
                    at: stage.mark)
                continue
            }
            seen[stage.name] = stage.mark
            stages.append(stage)
        }
        return stages
    }

    // MARK: Stages, sequences, tasks

    mutating func readStage(_ node: YAMLNode, specPatch: Int?) -> Shipyard.Stage? {
        guard let stage = fields(node, of: "a stage", allowed: ["name", "sequences"]) else { return nil }
        let name = readName(stage["name"], of: "stage", in: node, strict: true)
        var sequences: [Shipyard.Sequence] = []
        if let pair = stage["sequences"], !pair.value.isNull, let items = list(pair.value, what: "sequences") {
            var seen: [String: SourceMark] = [:]
            for item in items {
                guard let sequence = readSequence(item, specPatch: specPatch) else { continue }
                if let first = seen[sequence.name] {
                    log.error(
                        "duplicate sequence name \"\(sequence.name)\" in stage \"\(name?.text ?? "?")\" (first defined at line \(first.line))",
                        at: sequence.mark)
                    continue
                }
                seen[sequence.name] = sequence.mark
                sequences.append(sequence)
            }
        }
        guard let name else { return nil }
        return Shipyard.Stage(name: name.text, sequences: sequences, mark: name.mark)
    }

    mutating func readSequence(_ node: YAMLNode, specPatch: Int?) -> Shipyard.Sequence? {
        guard let sequence = fields(node, of: "a sequence", allowed: ["name", "triggeredOn", "tasks"]) else {
            return nil
        }
        let name = readName(sequence["name"], of: "sequence", in: node, strict: false)

        var triggers: [Shipyard.Trigger] = []
        if let pair = sequence["triggeredOn"], !pair.value.isNull {
            if let items = list(pair.value, what: "triggeredOn") {
                for item in items {
                    if let trigger = readTrigger(item) { triggers.append(trigger) }
                }
            }
        }

        var tasks: [Shipyard.Task] = []
        let tasksPair = sequence["tasks"]
        if let pair = tasksPair, !pair.value.isNull {
            if let items = list(pair.value, what: "tasks") {
                var seen: [String: SourceMark] = [:]
                for item in items {
                    guard let task = readTask(item, specPatch: specPatch) else {
                        continue
                    }
                    if let first = seen[task.name] {
                        log.warning(
                            "task \"\(task.name)\" runs a second time in this sequence (first at line \(first.line)); "
                                + "both share the event type sh.keptn.event.\(task.name).*, which confuses Keptn's services (keptn#5501)",
                            at: task.mark)
                    } else {
                        seen[task.name] = task.mark
                    }
                    tasks.append(task)
                }
            }
        }
        let noTasks = tasksPair.map { $0.value.isNull || $0.value.sequence?.isEmpty == true } ?? true
        if noTasks {
            let label = name.map { "sequence \"\($0.text)\"" } ?? "this sequence"
            log.error(
                "\(label) has no tasks; Keptn would end it at once ('task sequence does not contain any tasks'): add at least one task",
                at: tasksPair?.value.mark ?? node.mark)
        }
        guard let name else { return nil }
        return Shipyard.Sequence(name: name.text, triggeredOn: triggers, tasks: tasks, mark: name.mark)
    }

    mutating func readTask(_ node: YAMLNode, specPatch: Int?) -> Shipyard.Task? {
        guard let task = fields(node, of: "a task", allowed: ["name", "triggeredAfter", "properties"]) else {
            return nil
        }
        let name = readName(task["name"], of: "task", in: node, strict: false)

        var delay: Duration?
        if let pair = task["triggeredAfter"], !pair.value.isNull {
            if let text = pair.value.string {
                do {
                    let nanos = try GoDuration.nanoseconds(text)
                    if nanos < 0 {
                        log.error("triggeredAfter must not be negative", at: pair.value.mark)
                    } else {
                        delay = .nanoseconds(nanos)
                        if let specPatch, specPatch < 2 {
                            log.warning(
                                "triggeredAfter arrived in spec 0.2.2 and this file declares 0.2.\(specPatch); Keptn accepts it anyway, but say 'apiVersion: spec.keptn.sh/0.2.2' or later",
                                at: pair.key.mark)
                        }
                    }
                } catch {
                    log.error("triggeredAfter: \(error)", at: pair.value.mark)
                }
            } else {
                let hint = pair.value.scalar.map { "; write it with a unit, e.g. \"\($0.text)s\"" } ?? ""
                log.error(
                    "triggeredAfter must be a duration like \"90s\", \"15m\" or \"1h30m\", not \(pair.value.kindDescription)\(hint)",
                    at: pair.value.mark)
            }
        }

        var properties: YAMLNode?
        if let pair = task["properties"], !pair.value.isNull {
            if pair.value.mapping == nil {
                log.error(
                    "properties must be a mapping (key: value pairs), not \(pair.value.kindDescription)",
                    at: pair.value.mark)
            } else if pair.value.textBytes > Shipyard.Task.maxPropertiesBytes {
                // Copied into every event of the task and so into the record, once per delivery.
                log.error(
                    "the properties of this task are \(ByteCount.format(pair.value.textBytes)) of text once aliases are expanded; "
                        + "the limit is \(ByteCount.format(Shipyard.Task.maxPropertiesBytes)) (they are copied into every event of the task): "
                        + "keep large data in a file of the repository and name it here",
                    at: pair.value.mark)
            } else {
                properties = pair.value
                if name?.text == "approval" { checkApproval(pair.value) }
            }
        }
        if name?.text == "approval", properties == nil {
            log.warning(
                "approval has no properties, so every result waits for a person (Keptn's approval service treats a missing strategy as manual); "
                    + "say so with 'properties: {pass: manual, warning: manual}'",
                at: name?.mark ?? node.mark)
        }
        guard let name else { return nil }
        return Shipyard.Task(name: name.text, triggeredAfter: delay, properties: properties, mark: name.mark)
    }

    /// `approval` properties: `pass` and `warning`, each `automatic` or `manual`.
    mutating func checkApproval(_ node: YAMLNode) {
        guard let props = fields(node, of: "approval properties", allowed: ["pass", "warning"]) else { return }
        for key in ["pass", "warning"] {
            guard let pair = props[key], !pair.value.isNull else {
                log.warning(
                    "approval has no '\(key)' strategy, so a \(key) result waits for a person (Keptn's approval service treats a missing strategy as manual); write '\(key): manual' to say so",
                    at: node.mark)
                continue
            }
            guard let value = string(pair.value, what: "approval.\(key)") else { continue }
            if ApprovalStrategy(rawValue: value) == nil {
                log.error(
                    "approval.\(key) must be \"automatic\" or \"manual\", not \"\(value)\"",
                    at: pair.value.mark)
            }
        }
    }

    // MARK: Names

    mutating func readName(_ pair: YAMLPair?, of what: String, in node: YAMLNode, strict: Bool) -> (text: String, mark: SourceMark)? {
        guard let pair, !pair.value.isNull else {
            log.error("this \(what) has no name; add 'name: ...'", at: node.mark)
            return nil
        }
        guard let name = string(pair.value, what: "a \(what) name") else { return nil }
        let mark = pair.value.mark
        if name.contains(".") {
            log.error(
                "\(what) name \"\(name)\" contains '.', which breaks Keptn's event types (sh.keptn.event.<stage>.<sequence>.triggered); use \(EntityName.rule)",
                at: mark)
            return (name, mark)
        }
        switch EntityName.check(name) {
        case .valid:
            break
        case .acceptedByKeptnsLooseCheck:
            log.warning(
                "\(what) name \"\(name)\" breaks Keptn's naming rule (\(EntityName.rule)); Keptn only accepts it through a loophole in its check",
                at: mark)
        case .invalid:
            if strict {
                log.error("stage name \"\(name)\" is invalid: use \(EntityName.rule)", at: mark)
            } else {
                log.warning("\(what) name \"\(name)\" breaks Keptn's naming rule (\(EntityName.rule))", at: mark)
            }
        }
        return (name, mark)
    }

    // MARK: Node helpers

    mutating func fields(_ node: YAMLNode, of what: String, allowed: [String]) -> [String: YAMLPair]? {
        var result: [String: YAMLPair] = [:]
        if !schema.mapping(node, of: what, allowed: allowed, log: &log, into: &result) { return nil }
        return result
    }

    mutating func string(_ node: YAMLNode, what: String) -> String? {
        schema.string(node, what: what, log: &log)
    }

    mutating func list(_ node: YAMLNode, what: String) -> [YAMLNode]? {
        schema.list(node, what: what, log: &log)
    }
}
