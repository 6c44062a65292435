import ArgumentParser
import Foundation
import ShipyardCore
import ShipyardDaemon

/// How long a request waits for the daemon's answer.
struct RequestOptions: ParsableArguments {
    @Option(help: "Seconds to wait for the daemon's answer.")
    var timeout: Int = 10
}

struct Trigger: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Start a sequence (the first stage that has it, unless --stage) and print its context id.")

    @OptionGroup var options: StateOptions
    @OptionGroup var request: RequestOptions

    @Argument(help: "The sequence, e.g. delivery.")
    var sequence: String

    @Option(help: "The project.") var project: String
    @Option(help: "The service.") var service: String
    @Option(help: "Start in this stage instead of the first that has the sequence.") var stage: String?
    @Option(help: "The artifact to deliver (data.configurationChange.values.image, SHIPYARD_IMAGE).") var image: String?
    @Option(name: .customLong("label"), help: "A label KEY=VALUE (repeatable; tasks see LABELS_KEY).") var labels: [String] = []
    @Option(help: "For an evaluation: score the last DURATION before the trigger (data.evaluation.timeframe; trigger evaluation's default is 5m).") var timeframe: String?
    @Option(help: "For an evaluation: the timeframe's start (RFC 3339; with --end or --timeframe).") var start: String?
    @Option(help: "For an evaluation: the timeframe's end (RFC 3339; needs --start).") var end: String?
    @Option(name: .shortAndLong, help: OutputFormat.help) var output: OutputFormat = .table
    @Flag(help: "Refuse the trigger, rather than warn, when the project has never delivered the service (a typo?) or its newest shipyard is refused (the last good one would run).")
    var strict = false
    @OptionGroup var waiting: WaitOptions
    @Option(help: "An id for this request (lowercase letters, digits and -, e.g. a UUID): a trigger sent again with the same id starts nothing new and answers with the first one's context.")
    var requestID: String?

    func validate() throws {
        for label in labels where !label.contains("=") {
            throw ValidationError("--label takes KEY=VALUE, not \(label)")
        }
        if let image, !Untrusted.isImageReference(image) {
            throw ValidationError("--image \(Untrusted.printable(image, limit: 200)) is not an image reference: [registry[:port]/]name[:tag][@digest], e.g. ghcr.io/podtato-head/podtatoserver:v0.1.1")
        }
        for label in labels {
            let parts = label.split(separator: "=", maxSplits: 1)
            if let problem = Untrusted.labelProblem(key: String(parts[0]), value: parts.count > 1 ? String(parts[1]) : "") {
                throw ValidationError(problem)
            }
        }
        if end != nil, start == nil { throw ValidationError("--end needs --start") }
        if end != nil, timeframe != nil { throw ValidationError("give --timeframe or --end, not both") }
        if let timeframe, (try? GoDuration.duration(timeframe)) == nil {
            throw ValidationError("--timeframe takes a duration like 5m or 1h30m, not \(timeframe)")
        }
        if start != nil, end == nil, timeframe == nil { throw ValidationError("--start needs --end or --timeframe") }
        for (name, value) in [("--start", start), ("--end", end)] {
            if let value, KeptnTime.parse(value) == nil { throw ValidationError("\(name) takes a time like 2026-11-27T10:00:00Z, not \(value)") }
        }
        if let requestID, !CommandRequest.isValidID(requestID) {
            throw ValidationError("--request-id takes lowercase letters, digits and -, at most 64, not \(requestID)")
        }
    }

    func run() async throws {
        try await Self.failing {
            var body = TriggerBody(project: project, service: service, sequence: sequence)
            body.requestID = requestID
            body.stage = stage
            body.image = image
            if timeframe != nil || start != nil || end != nil {
                body.evaluation = CommandRequest.EvaluationWindow(timeframe: timeframe, start: start, end: end)
            } else if sequence == "evaluation" {
                // As `keptn trigger evaluation`: the last 5 minutes unless told otherwise.
                body.evaluation = CommandRequest.EvaluationWindow(timeframe: "5m")
            }
            body.labels = Dictionary(labels.map { label in
                let parts = label.split(separator: "=", maxSplits: 1)
                return (String(parts[0]), parts.count > 1 ? String(parts[1]) : "")
            }) { _, last in last }
            body.strict = strict ? true : nil
            let outcome = try options.send("/api/v1/sequences", body: body, timeout: request.timeout)
            for warning in outcome.warnings ?? [] {
                FileHandle.standardError.write(Data("shipyardctl: warning: \(Output.safe(warning)) (--strict refuses this)\n".utf8))
            }
            switch output {
            case .json: print(#"{"context":"\#(outcome.context ?? "")"}"#)
            case .table: print(Output.safe(outcome.message))
            }
            if waiting.wait, let context = outcome.context {
                fflush(nil)
                try await DeliveryWait.follow(context, options: options, limit: waiting.limit)
            }
        }
    }
}

struct Control: ParsableArguments {
    @Argument(help: "The sequence's context id, or a unique prefix of at least 4 characters (shipyardctl sequences lists them).",
              completion: .custom(Completions.contexts))
    var context: String

    @Option(help: "Why; recorded with who asked, in the sequence's events.")
    var reason: String?
}

/// pause, resume and abort: one request naming a context.
protocol ControlCommand: AsyncParsableCommand {
    static var kind: CommandRequest.Kind { get }
    var options: StateOptions { get }
    var request: RequestOptions { get }
    var target: Control { get }
}

extension ControlCommand {
    func run() async throws {
        try await Self.failing {
            let path = "/api/v1/sequences/\(Query.path(target.context))/\(Self.kind.rawValue)"
            print(Output.safe(try options.send(path, body: ReasonBody(reason: target.reason), timeout: request.timeout).message))
        }
    }
}

struct Pause: ControlCommand {
    static let configuration = CommandConfiguration(abstract: "Pause a sequence: running tasks go on, nothing new starts.")
    static let kind = CommandRequest.Kind.pause
    @OptionGroup var options: StateOptions
    @OptionGroup var request: RequestOptions
    @OptionGroup var target: Control
}

struct Resume: ControlCommand {
    static let configuration = CommandConfiguration(abstract: "Resume a paused sequence.")
    static let kind = CommandRequest.Kind.resume
    @OptionGroup var options: StateOptions
    @OptionGroup var request: RequestOptions
    @OptionGroup var target: Control
}

struct Abort: ControlCommand {
    static let configuration = CommandConfiguration(abstract: "Abort a sequence: its running task is stopped, no follow-on starts.")
    static let kind = CommandRequest.Kind.abort
    @OptionGroup var options: StateOptions
    @OptionGroup var request: RequestOptions
    @OptionGroup var target: Control
}
