/// A shipyard as Keptn's spec 0.2.x describes it: stages, each with the sequences it can run,
/// each a list of tasks; sequences can be chained across stages with `triggeredOn`.
///
/// Values of this type are only made by `ShipyardLoader`, so a `Shipyard` is always one that
/// validated without errors: every name is set, every `triggeredOn` points at a real sequence.
public struct Shipyard: Sendable {
    /// As written, e.g. `spec.keptn.sh/0.2.2`.
    public var apiVersion: String
    /// The patch level of spec 0.2 (0 to 4).
    public var specPatch: Int
    public var name: String?
    public var stages: [Stage]

    public struct Stage: Sendable {
        public var name: String
        public var sequences: [Sequence]
        public var mark: SourceMark

        public func sequence(named name: String) -> Sequence? {
            sequences.first { $0.name == name }
        }
    }

    public struct Sequence: Sendable {
        public var name: String
        public var triggeredOn: [Trigger]
        public var tasks: [Task]
        public var mark: SourceMark
    }

    /// `triggeredOn: [{event: "<stage>.<sequence>.finished", selector: {match: {...}}}]`.
    public struct Trigger: Sendable {
        public var stage: String
        public var sequence: String
        /// Empty means Keptn's default: fire when the sequence finished with pass or warning.
        public var match: [Match]
        public var mark: SourceMark

        /// The event this trigger listens to, in the short form the shipyard uses.
        public var event: String { "\(stage).\(sequence).finished" }
    }

    /// One entry of `selector.match`: `result: fail`, or `evaluation.result: fail`.
    public struct Match: Sendable, Hashable {
        /// nil for `result`, the task's name for `<task>.result`.
        public var task: String?
        public var result: TaskResult

        public var key: String { task.map { "\($0).result" } ?? "result" }
    }

    public struct Task: Sendable {
        public var name: String
        /// Wait this long before the task is triggered (spec 0.2.2+).
        public var triggeredAfter: Duration?
        /// Free-form task configuration; sent to the task under its own name (e.g. `approval.pass`).
        public var properties: YAMLNode?
        public var mark: SourceMark

        /// The most text a task's properties may hold: they are copied into each of its events.
        public static let maxPropertiesBytes = 64 << 10
    }

    public func stage(named name: String) -> Stage? {
        stages.first { $0.name == name }
    }
}

/// Keptn's task and sequence results.
public enum TaskResult: String, Sendable, Hashable, Codable, CaseIterable {
    case pass, warning, fail
}

/// The two strategies Keptn's approval service knows.
public enum ApprovalStrategy: String, Sendable, Hashable, Codable, CaseIterable {
    case automatic, manual
}

/// Keptn's rule for project, stage and service names (go-utils `ValidateKeptnEntityName`).
public enum EntityName {
    public enum Verdict: Equatable {
        case valid
        /// Keptn's own regex has a second alternative without `$`, so it accepts any name that
        /// merely starts with a lowercase letter. Such names still work there.
        case acceptedByKeptnsLooseCheck
        case invalid
    }

    public static func check(_ name: String) -> Verdict {
        let bytes = Array(name.utf8)
        func isLower(_ b: UInt8) -> Bool { b >= 0x61 && b <= 0x7A }
        func isDigit(_ b: UInt8) -> Bool { b >= 0x30 && b <= 0x39 }
        guard let first = bytes.first, isLower(first) else { return .invalid }
        let strict = bytes.allSatisfy { isLower($0) || isDigit($0) || $0 == 0x2D } && bytes.last != 0x2D
        return strict ? .valid : .acceptedByKeptnsLooseCheck
    }

    public static let rule = "lowercase letters, digits and '-', starting with a letter and not ending with '-'"
}
