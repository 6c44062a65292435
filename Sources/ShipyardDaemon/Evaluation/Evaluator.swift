import Foundation
import ShipyardCore
import ShipyardGit

/// What an evaluation needs from the repository and the config before it asks for values: the
/// SLO and SLI files at the sequence's commit, the timeframe, and the outcome when it is already
/// decided without a provider (no SLO, a broken SLO, no provider, no timeframe).
struct EvaluationPlan: Sendable {
    var slo: SLO?
    var sloBytes: [UInt8] = []
    var sloPath: String
    var queries: [String: String]?
    var start = Date(timeIntervalSince1970: 0)
    var end = Date(timeIntervalSince1970: 0)
    var decided: EvaluationOutcome?
}

/// The built-in `evaluation` task's parts that touch files: reading the SLO and SLI files from
/// the mirror (Git decides the objectives and queries, never which program runs), and the
/// outcomes decided before any value is fetched.
enum Evaluator {
    /// The largest SLO or SLI file read.
    static let maxFileBytes = 1 << 20

    /// `{project}`, `{stage}` and `{service}` in a configured path.
    static func expand(_ pattern: String, project: String, stage: String, service: String) -> String {
        pattern.replacingOccurrences(of: "{project}", with: project).replacingOccurrences(of: "{stage}", with: stage)
            .replacingOccurrences(of: "{service}", with: service)
    }

    /// Reads and checks everything an evaluation needs before its provider is asked. Blocks on
    /// Git: call it off the actor.
    static func plan(
        triggered: KeptnEvent, execution: SequenceExecution, index: Int, project: DaemonConfig.Project, mirror: Mirror, now: Date
    ) -> EvaluationPlan {
        let stage = execution.stage
        let service = execution.service
        let sloPath = expand(project.sloPath, project: project.name, stage: stage, service: service)
        var plan = EvaluationPlan(sloPath: sloPath)
        let eventTime = triggered.date ?? now
        func decide(_ result: TaskResult, _ message: String, errored: Bool = false) -> EvaluationPlan {
            var decided = plan
            let unset = Date(timeIntervalSince1970: 0)
            decided.decided = Lighthouse.decided(
                result, message: message, errored: errored, timeStart: plan.start == unset ? eventTime : plan.start,
                timeEnd: plan.end == unset ? eventTime : plan.end, sloFileContent: plan.sloBytes)
            return decided
        }
        // The timeframe first, as Keptn's lighthouse: without one nothing is evaluated (errored,
        // with empty times), SLO file or not.
        let previousTask = index > 0 ? execution.tasks[index - 1] : nil
        var fallback: (start: Date, end: Date)?
        if let started = previousTask?.startedAt ?? previousTask?.triggeredAt, let finished = previousTask?.finishedAt {
            fallback = (started, finished)
        }
        switch EvaluationTimeframe.resolve(data: triggered.data, eventTime: eventTime, fallback: fallback) {
        case .success(let window):
            plan.start = window.start
            plan.end = window.end
        case .failure(let error):
            plan.decided = Lighthouse.timeframeFailed(error)
            return plan
        }
        guard let commit = execution.commit else {
            return decide(.fail, "the sequence has no commit to read \(sloPath) from", errored: true)
        }
        let id = ObjectID(hex: commit)
        switch read(mirror: mirror, commit: id, path: sloPath, what: "SLO file") {
        case .failure(let failure):
            return decide(.fail, failure.message, errored: true)
        case .success(nil):
            // Keptn passes an evaluation without an SLO (in its words, with the path looked for);
            // `sequence` and `status` show it. `requireSLO` fails it instead.
            plan.decided = Lighthouse.noSLOFile(
                project: project.name, path: "\(sloPath) at commit \(id.short)", timeStart: plan.start, timeEnd: plan.end, required: project.requireSLO)
            return plan
        case .success(let bytes?):
            plan.sloBytes = bytes
        }
        let (slo, diagnostics) = SLOFile.load(plan.sloBytes)
        guard let slo, !diagnostics.contains(where: { $0.severity == .error }) else {
            plan.decided = Lighthouse.invalidSLO(path: sloPath, diagnostics: diagnostics, timeStart: plan.start, timeEnd: plan.end, sloFileContent: plan.sloBytes)
            return plan
        }
        plan.slo = slo

        guard let provider = project.sliProvider else {
            // Keptn passes here (keptn#1212): objectives nobody can measure are not a pass.
            plan.decided = Lighthouse.noSLIProvider(
                project: project.name, path: sloPath, objectives: slo.objectives.count, timeStart: plan.start, timeEnd: plan.end, sloFileContent: plan.sloBytes)
            return plan
        }
        let paths = project.effectiveSLIPaths.map { expand($0, project: project.name, stage: stage, service: service) }
        var files: [SLIFile] = []
        for path in paths {
            switch read(mirror: mirror, commit: id, path: path, what: "SLI file") {
            case .failure(let failure):
                return decide(.fail, failure.message, errored: true)
            case .success(nil):
                continue
            case .success(let bytes?):
                let (file, diagnostics) = SLIFile.load(bytes)
                if let error = diagnostics.first(where: { $0.severity == .error }) {
                    return decide(.fail, error.formatted(file: path), errored: true)
                }
                if let file { files.append(file) }
            }
        }
        if case .prometheus = provider, files.isEmpty {
            return decide(.fail, "no SLI file for the prometheus provider at commit \(id.short) (looked for \(paths.joined(separator: ", ")))", errored: true)
        }
        plan.queries = files.isEmpty ? nil : SLIFile.merged(files).indicators
        return plan
    }

    /// A file's bytes at a commit; nil when it is not there. Only a regular file of a sane size
    /// is read: a symbolic link, a directory or a submodule is refused with a message.
    static func read(mirror: Mirror, commit: ObjectID, path: String, what: String) -> Result<[UInt8]?, EvaluationFailure> {
        do {
            switch try mirror.file(at: commit, path: path, limit: maxFileBytes) {
            case .blob(_, let bytes): return .success(bytes)
            case .missing:
                // A folder of the path that is a symbolic link hides the file from Git's tree:
                // say so, rather than pass the gate as if there were no file.
                var prefix = ""
                for component in path.split(separator: "/").dropLast() {
                    prefix += (prefix.isEmpty ? "" : "/") + component
                    if case .notAFile(let kind) = try mirror.file(at: commit, path: prefix, limit: 0) {
                        if kind == Mirror.symbolicLink {
                            return .failure(EvaluationFailure("the \(what) \(path) at commit \(commit.short) is under \(prefix), which is a symbolic link; only regular files and folders are read"))
                        }
                        if kind == Mirror.submodule {
                            // Its files live in another repository, which the daemon never fetches:
                            // passing the gate as if there were no SLO would be wrong.
                            return .failure(EvaluationFailure(
                                "the \(what) \(path) at commit \(commit.short) is under \(prefix), which is a submodule: its files are in another repository, which is not fetched; commit the file in this repository"))
                        }
                    }
                }
                return .success(nil)
            case .notAFile(let kind): return .failure(EvaluationFailure("the \(what) \(path) at commit \(commit.short) is \(kind), not a file; only regular files are read"))
            case .tooLarge(let size): return .failure(EvaluationFailure("the \(what) \(path) at commit \(commit.short) is \(size) bytes; at most \(maxFileBytes) are read"))
            }
        } catch {
            return .failure(EvaluationFailure("cannot read the \(what) \(path) at commit \(commit.short): \(error)"))
        }
    }

    /// The question an SLI provider is asked.
    static func request(plan: EvaluationPlan, slo: SLO, triggered: KeptnEvent, execution: SequenceExecution, provider: DaemonConfig.SLIProvider) -> SLIRequest {
        var labels: [String: String] = [:]
        for (key, value) in triggered.data["labels"]?.object ?? [:] {
            if let text = value.string { labels[key] = text }
        }
        var indicators: [String] = []
        for objective in slo.objectives where !indicators.contains(objective.sli) { indicators.append(objective.sli) }
        return SLIRequest(
            sliProvider: provider.name, project: execution.project, stage: execution.stage, service: execution.service,
            start: Timestamps.format(plan.start), end: Timestamps.format(plan.end), indicators: indicators, customFilters: slo.filter,
            labels: labels, queries: plan.queries)
    }
}

struct EvaluationFailure: Error, Sendable {
    var message: String
    init(_ message: String) { self.message = message }
}
