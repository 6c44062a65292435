import ArgumentParser
import Foundation
import ShipyardCore
import ShipyardDaemon

/// The engine rebuilt from the journal, read-only: the CLI's view of every sequence.
enum JournalView {
    static func engine(_ options: StateOptions) throws -> (Engine, [KeptnEvent]) {
        let loaded: Journal.Loaded
        do {
            loaded = try Journal.read(directory: try options.readable().root + "/journal")
        } catch {
            throw CLIError("cannot read the journal: \(error)")
        }
        var engine = Engine()
        for event in loaded.events { engine.replay(event) }
        return (engine, loaded.events)
    }
}

struct Sequences: AsyncParsableCommand {
    static let configuration = CommandConfiguration(abstract: "List sequences with Keptn's state names, oldest first.")
    @OptionGroup var options: StateOptions
    @Option(help: "Only this project.") var project: String?
    @Option(help: "Only this state (triggered, started, waiting, waitingForApproval, paused, finished, aborted, timedOut).") var state: String?
    @Option(name: .shortAndLong, help: "table or json.") var output: OutputFormat = .table

    func validate() throws {
        if let state, SequenceState(rawValue: state) == nil {
            throw ValidationError("--state takes one of \(SequenceState.allCases.map(\.rawValue).joined(separator: ", "))")
        }
    }

    func run() async throws {
        try await Self.failing {
            let (engine, _) = try JournalView.engine(options)
            let rows = engine.ordered.map { SequenceSummary($0, state: engine.state(of: $0)) }
                .filter { project == nil || $0.project == project }
                .filter { state == nil || $0.state == state }
            switch output {
            case .json:
                print(String(decoding: try JSON.encode(rows), as: UTF8.self))
            case .table:
                if rows.isEmpty {
                    print("no sequences yet; start one with: shipyardctl trigger delivery --project P --service S --image IMG")
                    return
                }
                print(Table.render([["CONTEXT", "PROJECT", "STAGE", "SEQUENCE", "SERVICE", "STATE", "RESULT"]] + rows.map {
                    [$0.context, $0.project, $0.stage, $0.sequence, $0.service, $0.state, $0.result ?? "-"]
                }), terminator: "")
            }
        }
    }
}

struct SequenceDetail: AsyncParsableCommand {
    static let configuration = CommandConfiguration(commandName: "sequence", abstract: "Show one delivery: every stage and task of a context.")
    @OptionGroup var options: StateOptions
    @Argument(help: "The context id.") var context: String
    @Option(name: .shortAndLong, help: "table or json.") var output: OutputFormat = .table

    struct TaskJSON: Encodable {
        var name: String
        var state: String
        var result: String?
        var status: String?
        var message: String?
        var triggeredID: String?
    }

    struct StageJSON: Encodable {
        var stage: String
        var sequence: String
        var service: String
        var state: String
        var result: String?
        var message: String?
        var commit: String?
        var tasks: [TaskJSON]
    }

    func run() async throws {
        try await Self.failing {
            let (engine, _) = try JournalView.engine(options)
            let executions = engine.executions(inContext: context)
            guard !executions.isEmpty else { throw CLIError("no sequence has the context \(context)") }
            let stages = executions.map { e in
                StageJSON(
                    stage: e.stage, sequence: e.sequence, service: e.service, state: engine.state(of: e).rawValue,
                    result: e.result?.rawValue, message: e.message, commit: e.commit,
                    tasks: e.tasks.map { t in
                        TaskJSON(
                            name: t.name, state: t.phase.rawValue, result: t.phase == .finished ? t.result.rawValue : nil,
                            status: t.phase == .finished ? t.status.rawValue : nil, message: t.message, triggeredID: t.triggeredID)
                    })
            }
            switch output {
            case .json:
                struct Body: Encodable { var context: String; var project: String; var stages: [StageJSON] }
                print(String(decoding: try JSON.encode(Body(context: context, project: executions[0].project, stages: stages)), as: UTF8.self))
            case .table:
                var out = "context \(Untrusted.printable(context)), project \(executions[0].project), service \(executions[0].service)\n"
                for stage in stages {
                    out += "\n\(stage.stage).\(stage.sequence): \(stage.state)\(stage.result.map { " (\($0))" } ?? "")"
                    out += stage.commit.map { " at \($0.prefix(12))" } ?? ""
                    out += "\n"
                    for task in stage.tasks {
                        var line = "  \(task.name.padding(toLength: 16, withPad: " ", startingAt: 0)) \(task.state)"
                        if let result = task.result { line += " \(result)/\(task.status ?? "")" }
                        if let message = task.message, !message.isEmpty { line += ": \(Untrusted.printable(message, limit: 1000))" }
                        out += line + "\n"
                    }
                    if let message = stage.message, !message.isEmpty, stage.state != "started" {
                        out += "  → \(Untrusted.printable(message, limit: 1000))\n"
                    }
                }
                print(out, terminator: "")
            }
        }
    }
}

struct Events: AsyncParsableCommand {
    static let configuration = CommandConfiguration(abstract: "Print the event record as CloudEvents, one JSON object per line.")
    @OptionGroup var options: StateOptions
    @Option(help: "Only this context.") var context: String?
    @Flag(help: "Keep printing new events as they are recorded (Ctrl-C stops).") var follow = false

    func run() async throws {
        try await Self.failing {
            let path = options.state.root + "/journal/events.jsonl"
            var offset = 0
            repeat {
                if let handle = FileHandle(forReadingAtPath: path) {
                    try handle.seek(toOffset: UInt64(offset))
                    let data = try handle.readToEnd() ?? Data()
                    try? handle.close()
                    // Only whole lines: a line being written is printed on the next round.
                    if let last = data.lastIndex(of: 0x0A) {
                        for line in data[data.startIndex...last].split(separator: 0x0A) {
                            if let context, !String(decoding: line, as: UTF8.self).contains("\"shkeptncontext\":\"\(context)\"") { continue }
                            FileHandle.standardOutput.write(Data(line) + Data([0x0A]))
                        }
                        offset += last - data.startIndex + 1
                    }
                } else if !follow {
                    throw CLIError("no event record at \(path)")
                }
                if follow { try await Task.sleep(for: .milliseconds(200)) }
            } while follow
        }
    }
}

struct Send: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Send something to the daemon.", subcommands: [SendEvent.self])
}

struct SendEvent: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "event",
        abstract: "Inject a Keptn CloudEvent: an external executor's .started or .finished.")
    @OptionGroup var options: StateOptions
    @OptionGroup var request: RequestOptions
    @Option(help: "The CloudEvent as JSON (- for standard input).") var file: String

    func run() async throws {
        try await Self.failing {
            let bytes: [UInt8]
            do {
                bytes = try InputFile.read(file, limit: 60 * 1024)
            } catch {
                throw CLIError("\(file): \(error)")
            }
            var event: KeptnEvent
            do {
                event = try JSON.decode(KeptnEvent.self, from: Data(bytes))
            } catch {
                throw CLIError("\(file) is not a CloudEvent shipyardctl can read: \(error)")
            }
            if event.time.isEmpty { event.time = Timestamps.format(Date()) }
            var spool = SpoolRequest(kind: .event)
            spool.event = event
            print(Output.safe(try await options.send(spool, timeout: request.timeout).message))
        }
    }
}

struct Approvals: AsyncParsableCommand {
    static let configuration = CommandConfiguration(abstract: "List approvals waiting for a person.")
    @OptionGroup var options: StateOptions
    @Option(help: "Only this project.") var project: String?
    @Option(name: .shortAndLong, help: "table or json.") var output: OutputFormat = .table

    func run() async throws {
        try await Self.failing {
            let directory = try options.readable().root + "/approvals"
            let names: [String]
            do {
                names = try FileManager.default.contentsOfDirectory(atPath: directory).filter { $0.hasSuffix(".json") }
            } catch where FileManager.default.fileExists(atPath: directory) {
                throw CLIError("cannot read \(directory): \(error.localizedDescription)")
            } catch {
                names = []  // the daemon has not written an approval yet
            }
            let requests = names.compactMap { name -> ApprovalRequest? in
                FileManager.default.contents(atPath: directory + "/" + name).flatMap { try? JSON.decode(ApprovalRequest.self, from: $0) }
            }.filter { project == nil || $0.project == project }.sorted { $0.requestedAt < $1.requestedAt }
            switch output {
            case .json:
                print(String(decoding: try JSON.encode(requests), as: UTF8.self))
            case .table:
                if requests.isEmpty {
                    print("no approvals are waiting")
                    return
                }
                print(Table.render([["ID", "PROJECT", "STAGE", "SERVICE", "IMAGE", "PREVIOUS", "TRIGGERED BY", "WAITING SINCE"]] + requests.map {
                    [String($0.id.prefix(8)), $0.project, $0.stage, $0.service, $0.image ?? "-", $0.previousResult ?? "-",
                     $0.triggeredBy ?? "-", $0.requestedAt]
                }), terminator: "")
                print("approve with: shipyardctl approve ID [--reason R]; reject with: shipyardctl reject ID --reason R")
            }
        }
    }
}
