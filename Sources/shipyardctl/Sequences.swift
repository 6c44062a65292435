import ArgumentParser
import Foundation
import ShipyardCore
import ShipyardDaemon

/// The store, read-only: the CLI's view of every sequence and event. Opening it never blocks
/// the daemon, and every query is indexed, so its cost does not grow with the history.
enum RecordView {
    /// nil: the daemon has not created the record yet.
    static func open(_ options: StateOptions) throws -> SQLiteStore? {
        let path = try options.readable().storeFile
        guard FileManager.default.fileExists(atPath: path) else { return nil }
        do {
            return try SQLiteStore(readingAt: path)
        } catch {
            throw CLIError("\(error)")
        }
    }

    static func reading<T>(_ body: () throws -> T) throws -> T {
        do {
            return try body()
        } catch let error as StoreError {
            throw CLIError(error.description)
        }
    }
}

/// `--since`: an age (`24h`, `7d`, `2w`) or a date (`2026-11-01`, RFC 3339).
struct Since: ExpressibleByArgument {
    var date: Date

    init?(argument: String) {
        if let unit = argument.last, unit == "d" || unit == "w", let count = Int(argument.dropLast()), count >= 0 {
            date = Date().addingTimeInterval(-Double(count) * (unit == "d" ? 86400 : 7 * 86400))
        } else if let span = try? GoDuration.duration(argument) {
            date = Date().addingTimeInterval(-span.seconds)
        } else if let parsed = Timestamps.parse(argument) {
            date = parsed
        } else if argument.count == 10, let day = Timestamps.parse(argument + "T00:00:00Z") {
            date = day
        } else {
            return nil
        }
    }

    static var defaultCompletionKind: CompletionKind { .default }
}

struct Sequences: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "List sequences with Keptn's state names: the newest ones and every active one, oldest first.")
    @OptionGroup var options: StateOptions
    @Option(help: "Only this project.") var project: String?
    @Option(help: "Only this service.") var service: String?
    @Option(help: "Only this state (triggered, started, waiting, waitingForApproval, paused, finished, aborted, timedOut).") var state: String?
    @Option(help: ArgumentHelp("Only sequences triggered since then: an age (24h, 7d, 2w) or a date (2026-11-01, RFC 3339).", valueName: "age-or-date"))
    var since: Since?
    @Option(help: "Show the newest N sequences (active ones are always shown).") var limit: Int = Self.defaultLimit
    @Flag(help: "Show every sequence in the record (overrides --limit).") var all = false
    @Option(name: .shortAndLong, help: "table or json.") var output: OutputFormat = .table

    static let defaultLimit = 50

    func validate() throws {
        if let state, SequenceState(rawValue: state) == nil {
            throw ValidationError("--state takes one of \(SequenceState.allCases.map(\.rawValue).joined(separator: ", "))")
        }
        if limit < 1 { throw ValidationError("--limit takes a number of at least 1") }
    }

    func run() async throws {
        try await Self.failing {
            let query = SequenceQuery(
                project: project, service: service, state: state.flatMap(SequenceState.init), since: since?.date, limit: all ? nil : limit)
            let page = try RecordView.open(options).map { store in try RecordView.reading { try store.sequences(query) } }
            let rows = (page?.sequences ?? []).map(SequenceSummary.init)
            switch output {
            case .json:
                print(String(decoding: try JSON.encode(rows), as: UTF8.self))
            case .table:
                if rows.isEmpty {
                    let filtered = project != nil || service != nil || state != nil || since != nil
                    print(filtered ? "no sequences match" : "no sequences yet; start one with: shipyardctl trigger delivery --project P --service S --image IMG")
                    return
                }
                print(Table.render([["CONTEXT", "PROJECT", "STAGE", "SEQUENCE", "SERVICE", "STATE", "RESULT"]] + rows.map {
                    [$0.context, $0.project, $0.stage, $0.sequence, $0.service, $0.state, $0.result ?? "-"]
                }), terminator: "")
            }
            if page?.more == true {
                FileHandle.standardError.write(Data("(older sequences not shown: the newest \(limit) and every active one are; use --limit N, --since or --all)\n".utf8))
            }
        }
    }
}

struct SequenceDetail: AsyncParsableCommand {
    static let configuration = CommandConfiguration(commandName: "sequence", abstract: "Show one delivery: every stage and task of a context.")
    @OptionGroup var options: StateOptions
    @Argument(help: "The context id.") var context: String
    @Option(name: .shortAndLong, help: "table or json.") var output: OutputFormat = .table

    func run() async throws {
        try await Self.failing {
            let executions = try RecordView.open(options).map { store in try RecordView.reading { try store.sequences(context: context) } } ?? []
            guard !executions.isEmpty else { throw CLIError("no sequence has the context \(context)") }
            let view = DeliveryView(context: context, executions: executions)
            let stages = view.stages
            let approvals = (try? PendingApprovals.read(try options.readable())) ?? []
            switch output {
            case .json:
                print(String(decoding: try JSON.encode(view), as: UTF8.self))
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
                        if task.name == "approval", task.state == "started", let id = task.triggeredID,
                            let pending = approvals.first(where: { $0.id == id }), let progress = pending.progress
                        {
                            line += "; \(progress)" + (pending.mayApprove.map { "; may still approve: \(Untrusted.printable($0, limit: 400))" } ?? "")
                        }
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
            var store = try RecordView.open(options)
            if store == nil, !follow { throw CLIError("no event record at \(options.state.storeFile) yet: shipyardd creates it when it first starts") }
            var position: Int64 = 0
            let output = FileHandle.standardOutput
            repeat {
                if store == nil { store = try RecordView.open(options) }
                if let store {
                    // Pages of a bounded size: memory stays flat whatever the record holds.
                    while true {
                        let page = try RecordView.reading { try store.events(context: context, after: position, limit: 2000) }
                        var chunk = Data()
                        for event in page {
                            chunk.append(event.json)
                            chunk.append(0x0A)
                        }
                        if !chunk.isEmpty { output.write(chunk) }
                        position = page.last?.position ?? position
                        if page.count < 2000 { break }
                    }
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
            let requests = try RecordView.reading { try PendingApprovals.read(try options.readable(), project: project) }
            switch output {
            case .json:
                print(String(decoding: try JSON.encode(requests), as: UTF8.self))
            case .table:
                if requests.isEmpty {
                    print("no approvals are waiting")
                    return
                }
                let policies = requests.contains { $0.required != nil }
                print(Table.render([["ID", "PROJECT", "STAGE", "SERVICE", "IMAGE", "PREVIOUS", "TRIGGERED BY", "WAITING SINCE"] + (policies ? ["APPROVALS"] : [])] + requests.map {
                    [String($0.id.prefix(8)), $0.project, $0.stage, $0.service, $0.image ?? "-", $0.previousResult ?? "-",
                     $0.triggeredBy ?? "-", $0.requestedAt] + (policies ? [$0.progress ?? "-"] : [])
                }), terminator: "")
                for request in requests where request.required != nil {
                    var line = "\(request.id.prefix(8)): \(request.progress ?? "")"
                    if let may = request.mayApprove { line += "; may still approve: \(may)" }
                    if let expires = request.expiresAt { line += "; expires \(expires)" }
                    print(Output.safe(line))
                }
                print("approve with: shipyardctl approve ID [--reason R]; reject with: shipyardctl reject ID --reason R")
            }
        }
    }
}
