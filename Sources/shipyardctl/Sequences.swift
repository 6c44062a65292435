import ArgumentParser
import Foundation
import ShipyardCore
import ShipyardStore
import ShipyardDaemon

/// What the CLI reads comes from shipyardd over its socket. When shipyardd is not running, root
/// and the daemon's own user (who may open the record) read the record directly, read-only.
enum RecordView {
    /// The record, opened read-only for a reader that may open it; otherwise why not.
    static func direct(_ options: StateOptions) throws -> SQLiteStore? {
        let state = try options.readable()
        let path = state.storeFile
        let socketExists = FileManager.default.fileExists(atPath: options.socketPath)
        let notRunning = options.explain(.unreachable(errno: socketExists ? ECONNREFUSED : ENOENT), sent: "read")
        guard access(path, R_OK) == 0 else {
            if errno == ENOENT { return nil }
            throw CLIError(notRunning)
        }
        FileHandle.standardError.write(Data("shipyardctl: shipyardd is not running; reading its record (\(path)) directly\n".utf8))
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
        } catch let error as ContextLookup {
            throw CLIError(error.description)
        }
    }

    static func decode<T: Decodable>(_ type: T.Type, _ response: LocalAPIClient.Response) throws -> T {
        do {
            return try JSON.decode(type, from: response.body)
        } catch {
            throw CLIError("shipyardd's answer is not what this shipyardctl reads (\(error)); are both the same version?")
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
    @Option(name: .shortAndLong, help: OutputFormat.help) var output: OutputFormat = .table

    static let defaultLimit = 50

    func validate() throws {
        if let state, SequenceState(rawValue: state) == nil {
            throw ValidationError("--state takes one of \(SequenceState.allCases.map(\.rawValue).joined(separator: ", "))")
        }
        if limit < 1 { throw ValidationError("--limit takes a number of at least 1") }
    }

    func run() async throws {
        try await Self.failing {
            let rows: [SequenceSummary]
            let more: Bool
            let target = "/api/v1/sequences" + Query.string([
                ("project", project), ("service", service), ("state", state), ("since", since.map { Timestamps.format($0.date) }),
                ("limit", all ? nil : "\(limit)"), ("all", all ? "true" : nil),
            ])
            if let response = try options.get(target) {
                rows = try RecordView.decode([SequenceSummary].self, response)
                more = response.headers["shipyard-more"] == "true"
            } else {
                let query = SequenceQuery(
                    project: project, service: service, state: state.flatMap(SequenceState.init), since: since?.date, limit: all ? nil : limit)
                let store = try RecordView.direct(options)
                let page = try store.map { store in try RecordView.reading { try store.sequences(query) } }
                rows = store.map { SequenceSummary.rows(page?.sequences ?? [], store: $0) } ?? []
                more = page?.more == true
            }
            switch output {
            case .json:
                print(String(decoding: try JSON.encode(rows), as: UTF8.self))
            case .table:
                if rows.isEmpty {
                    let filtered = project != nil || service != nil || state != nil || since != nil
                    print(filtered ? "no sequences match" : "no sequences yet; start one with: shipyardctl trigger delivery --project P --service S --image IMG")
                    return
                }
                let now = Date()
                print(Table.render([["CONTEXT", "PROJECT", "SERVICE", "STAGE", "SEQUENCE", "IMAGE", "STATE", "RESULT", "TRIGGERED", "TOOK"]] + rows.map {
                    [String($0.context.prefix(8)), $0.project, $0.service, $0.stage, $0.sequence, Clock.image($0.image), $0.state, $0.result ?? "-",
                     $0.triggeredAt.map { Clock.when($0, now: now) } ?? "-", Clock.took(from: $0.startedAt ?? $0.triggeredAt ?? "", to: $0.finishedAt, now: now)]
                }), terminator: "")
                let waiting = rows.filter { $0.waitingFor != nil }
                if !waiting.isEmpty { print() }
                for row in waiting {
                    guard let why = row.waitingFor else { continue }
                    print(Output.safe("\(row.context.prefix(8)) \(row.stage): waiting for \(why)"))
                }
            }
            if more {
                FileHandle.standardError.write(Data("(older sequences not shown: the newest \(limit) and every active one are; use --limit N, --since or --all)\n".utf8))
            }
        }
    }
}

struct SequenceDetail: AsyncParsableCommand {
    static let configuration = CommandConfiguration(commandName: "sequence", abstract: "Show one delivery: every stage and task of a context.")
    @OptionGroup var options: StateOptions
    @Argument(help: "The context id, or a unique prefix of at least 4 characters.", completion: .custom(Completions.contexts))
    var context: String
    @Option(name: .shortAndLong, help: OutputFormat.help) var output: OutputFormat = .table

    func run() async throws {
        try await Self.failing {
            let view: DeliveryView
            let approvals: [ApprovalRequest]
            if let response = try options.get("/api/v1/sequences/\(Query.path(context))") {
                view = try RecordView.decode(DeliveryView.self, response)
                approvals = (try? options.get("/api/v1/approvals")).flatMap { $0 }.flatMap { try? JSON.decode([ApprovalRequest].self, from: $0.body) } ?? []
            } else {
                guard let store = try RecordView.direct(options) else { throw CLIError("no sequence has the context \(context): shipyardd has recorded nothing yet") }
                let full = try RecordView.reading { try store.context(named: context) }
                let executions = try RecordView.reading { try store.sequences(context: full) }
                var direct = DeliveryView(context: full, executions: executions, waits: WaitReasons.explain(executions, store: store))
                direct.webhooks = DeliveryView.webhooks(of: full, store: store)
                view = direct
                approvals = (try? PendingApprovals.read(try options.readable())) ?? []
            }
            switch output {
            case .json:
                print(String(decoding: try JSON.encode(view), as: UTF8.self))
            case .table:
                print(Self.render(view, approvals: approvals), terminator: "")
            }
        }
    }

    static func render(_ view: DeliveryView, approvals: [ApprovalRequest]) -> String {
        let now = Date()
        let stages = view.stages
        var out = "context \(Untrusted.printable(view.context)), project \(view.project), service \(stages.first?.service ?? "")"
        if let image = view.image { out += ", image \(Untrusted.printable(image, limit: 300))" }
        out += "\ntriggered \(view.triggeredAt.map { Clock.when($0, now: now) } ?? "-")"
        if let by = view.triggeredBy { out += " by \(Untrusted.printable(by, limit: 200))" }
        out += "\n"
        for stage in stages {
            out += "\n\(stage.stage).\(stage.sequence): \(stage.state)\(stage.result.map { " (\($0))" } ?? "")"
            out += stage.commit.map { " at \($0.prefix(12))" } ?? ""
            if let started = stage.startedAt ?? stage.triggeredAt {
                out += ", \(stage.finishedAt == nil ? "running for" : "took") \(Clock.took(from: started, to: stage.finishedAt, now: now))"
            }
            out += "\n"
            if let why = stage.waitingFor { out += "  waiting for \(Untrusted.printable(why, limit: 600))\n" }
            for task in stage.tasks {
                var line = "  \(task.name.padding(toLength: 16, withPad: " ", startingAt: 0)) \(task.state)"
                if let result = task.result { line += " \(result)/\(task.status ?? "")" }
                if let started = task.startedAt { line += " (\(Clock.took(from: started, to: task.finishedAt, now: now)))" }
                if let due = task.dueAt, task.state == "pending" { line += " until \(Clock.when(due, now: now))" }
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
        if let webhooks = view.webhooks, !webhooks.isEmpty {
            out += "\nwebhooks:\n"
            for hook in webhooks {
                out += "  \(hook.stage) \(hook.event) → \(Untrusted.printable(hook.subscription, limit: 200)): \(hook.outcome)"
                for request in hook.requests {
                    out += "\n    \(request.method) \(Untrusted.printable(request.url, limit: 300)) "
                    out += request.status.map { "\($0)" } ?? request.outcome
                    if request.attempts > 1 { out += " after \(request.attempts) attempts" }
                }
                if let message = hook.message, !message.isEmpty, hook.outcome != "ok" { out += "\n    → \(Untrusted.printable(message, limit: 1000))" }
                out += "\n"
            }
        }
        return out
    }
}

/// Times as a person reads them in a table: local, short, and how long something took.
enum Clock {
    /// "10:02:11" today, "Dec 01 10:02" this year, "2025-12-01 10:02" before.
    static func when(_ stamp: String, now: Date) -> String {
        guard let date = Timestamps.parse(stamp) else { return stamp }
        let calendar = Calendar.current
        let formatter = DateFormatter()
        formatter.locale = Locale(identifier: "en_US_POSIX")
        formatter.dateFormat = calendar.isDate(date, inSameDayAs: now) ? "HH:mm:ss"
            : calendar.component(.year, from: date) == calendar.component(.year, from: now) ? "MMM dd HH:mm" : "yyyy-MM-dd HH:mm"
        return formatter.string(from: date)
    }

    /// "42s", "3m05s", "2h10m", "3d4h"; for something still running, how long so far and "…".
    static func took(from start: String, to end: String?, now: Date) -> String {
        guard let begun = Timestamps.parse(start) else { return "-" }
        let finished = end.flatMap(Timestamps.parse)
        let seconds = max(0, Int(((finished ?? now).timeIntervalSince(begun)).rounded()))
        let text = seconds < 60 ? "\(seconds)s"
            : seconds < 3600 ? "\(seconds / 60)m\(String(format: "%02d", seconds % 60))s"
            : seconds < 86400 ? "\(seconds / 3600)h\(String(format: "%02d", seconds % 3600 / 60))m"
            : "\(seconds / 86400)d\(seconds % 86400 / 3600)h"
        return finished == nil ? text + "…" : text
    }

    /// An image as a column shows it: the name and tag without the registry and path.
    static func image(_ image: String?) -> String {
        guard let image, !image.isEmpty else { return "-" }
        return Display.image(image)
    }
}

struct Events: AsyncParsableCommand {
    static let configuration = CommandConfiguration(abstract: "Print the event record as CloudEvents, one JSON object per line.")
    @OptionGroup var options: StateOptions
    @Option(help: "Only this context (or a unique prefix of at least 4 characters).", completion: .custom(Completions.contexts))
    var context: String?
    @Option(help: ArgumentHelp("Only events of this type, or whose type ends in .TYPE (approval.finished, production.delivery.triggered).", valueName: "type"))
    var type: String?
    @Flag(help: "Keep printing new events as they are recorded (Ctrl-C stops).") var follow = false

    func run() async throws {
        try await Self.failing {
            var position: Int64 = 0
            let output = FileHandle.standardOutput
            var direct: SQLiteStore?
            // A context given is one that exists: all of it, or a unique prefix.
            var context = self.context
            if let given = context {
                if let response = try options.get("/api/v1/sequences/\(Query.path(given))") {
                    context = try RecordView.decode(DeliveryView.self, response).context
                } else {
                    direct = try RecordView.direct(options)
                    guard let store = direct else { throw CLIError("no sequence has the context \(given): shipyardd has recorded nothing yet") }
                    context = try RecordView.reading { try store.context(named: given) }
                }
            }
            repeat {
                // Pages of a bounded size: memory stays flat whatever the record holds.
                while true {
                    let target = "/api/v1/events" + Query.string([
                        ("context", context), ("type", type), ("after", "\(position)"), ("limit", "2000"), ("format", "lines"),
                    ])
                    var chunk = Data()
                    var count = 0
                    if direct == nil, let response = try options.get(target) {
                        chunk = response.body
                        count = chunk.reduce(0) { $0 + ($1 == 0x0A ? 1 : 0) }
                        position = response.headers["shipyard-position"].flatMap(Int64.init) ?? position
                    } else {
                        if direct == nil { direct = try RecordView.direct(options) }
                        guard let store = direct else {
                            if follow { break }
                            throw CLIError("no event record at \(options.state.storeFile) yet: shipyardd creates it when it first starts")
                        }
                        let page = try RecordView.reading { try store.events(context: context, type: type, after: position, limit: 2000) }
                        for event in page {
                            chunk.append(event.json)
                            chunk.append(0x0A)
                        }
                        count = page.count
                        position = page.last?.position ?? position
                    }
                    if !chunk.isEmpty { output.write(chunk) }
                    if count < 2000 { break }
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
            print(Output.safe(try options.send("/api/v1/events", body: event, timeout: request.timeout).message))
        }
    }
}

struct Approvals: AsyncParsableCommand {
    static let configuration = CommandConfiguration(abstract: "List approvals waiting for a person.")
    @OptionGroup var options: StateOptions
    @Option(help: "Only this project.") var project: String?
    @Option(name: .shortAndLong, help: OutputFormat.help) var output: OutputFormat = .table

    func run() async throws {
        try await Self.failing {
            let requests: [ApprovalRequest]
            if let response = try options.get("/api/v1/approvals" + Query.string([("project", project)])) {
                requests = try RecordView.decode([ApprovalRequest].self, response)
            } else {
                // The approval files are the group's to read, whether shipyardd runs or not.
                requests = try RecordView.reading { try PendingApprovals.read(try options.readable(), project: project) }
            }
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
                    for aside in request.notCounted ?? [] { line += "\n  not counted: \(aside)" }
                    print(Output.safe(line))
                }
                print("approve with: shipyardctl approve ID [--reason R]; reject with: shipyardctl reject ID --reason R")
            }
        }
    }
}
