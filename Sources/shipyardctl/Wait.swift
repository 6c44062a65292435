import ArgumentParser
import Foundation
import ShipyardCore
import ShipyardDaemon

/// `--wait` on trigger and approve: follow the delivery until it ends, stops at an approval, or
/// the time allowed passes. Exit codes (README, shipyardctl(1)): 0 it finished with pass or
/// warning, 3 it ended otherwise (fail, aborted, timed out, errored), 4 it waits for an
/// approval (printed with the command that decides it), 5 it still runs after --wait-timeout.
struct WaitOptions: ParsableArguments {
    @Flag(help: "Wait until the delivery finishes (exit 0 on pass or warning, 3 otherwise), stops at an approval (exit 4) or --wait-timeout passes (exit 5).")
    var wait = false

    @Option(help: ArgumentHelp("How long --wait waits at most (a duration: 90s, 30m, 2h).", valueName: "duration"))
    var waitTimeout: String = "30m"

    func validate() throws {
        if (try? GoDuration.duration(waitTimeout)) == nil {
            throw ValidationError("--wait-timeout takes a duration like 90s, 30m or 2h, not \(waitTimeout)")
        }
    }

    var limit: Duration { (try? GoDuration.duration(waitTimeout)) ?? .seconds(1800) }
}

enum DeliveryWait {
    static let finishedWell: Int32 = 0
    static let endedBadly: Int32 = 3
    static let atApproval: Int32 = 4
    static let stillRunning: Int32 = 5

    /// Follows `context`, printing each stage as it ends, and exits with the code for where it
    /// stopped. (After an approve the record already shows its effect: a gate that still needs
    /// another person's approval is where it stops.)
    /// `onlyNew`: say nothing of stages that had ended before (after an approve).
    static func follow(_ context: String, options: StateOptions, limit: Duration, onlyNew: Bool = false) async throws -> Never {
        let clock = ContinuousClock()
        let deadline = clock.now + limit
        var told = Set<String>()
        var first = true
        while true {
            guard let response = try options.get("/api/v1/sequences/\(Query.path(context))") else {
                throw CLIError("shipyardd stopped while waiting for \(context) (systemctl status shipyardd); the delivery goes on when it is back")
            }
            let view = try RecordView.decode(DeliveryView.self, response)
            if first, onlyNew {
                for stage in view.stages where ["finished", "aborted", "timedOut"].contains(stage.state) { told.insert("\(stage.stage).\(stage.sequence)") }
            }
            first = false
            for stage in view.stages where ["finished", "aborted", "timedOut"].contains(stage.state) {
                let key = "\(stage.stage).\(stage.sequence)"
                guard told.insert(key).inserted else { continue }
                var line = "\(key): \(stage.state)\(stage.result.map { " (\($0))" } ?? "")"
                if let started = stage.startedAt ?? stage.triggeredAt { line += " in \(Clock.took(from: started, to: stage.finishedAt, now: Date()))" }
                if let message = stage.message, !message.isEmpty, stage.result != "pass" { line += ": \(message)" }
                print(Output.safe(line))
            }
            for stage in view.stages where stage.state == "waitingForApproval" {
                guard let gate = stage.tasks.first(where: { $0.name == "approval" && $0.state == "started" }), let id = gate.triggeredID
                else { continue }
                print(Output.safe("\(stage.stage).\(stage.sequence): waiting for approval \(id.prefix(8)) (shipyardctl approve \(id.prefix(8)) --wait, or reject it)"))
                Foundation.exit(atApproval)
            }
            if !view.stages.isEmpty, view.stages.allSatisfy({ ["finished", "aborted", "timedOut"].contains($0.state) }) {
                // Every stage: a failed stage whose rollback then passed is not a good delivery.
                let good = view.stages.allSatisfy { $0.state == "finished" && ($0.result == "pass" || $0.result == "warning") }
                Foundation.exit(good ? finishedWell : endedBadly)
            }
            if clock.now >= deadline {
                let where_ = view.stages.last.map { "\($0.stage).\($0.sequence) is \($0.state)" + ($0.waitingFor.map { ", waiting for \($0)" } ?? "") } ?? "nothing started"
                FileHandle.standardError.write(Data("shipyardctl: still running after \(GoDuration.format(limit)): \(Output.safe(where_)) (shipyardctl sequence \(context.prefix(8)))\n".utf8))
                Foundation.exit(stillRunning)
            }
            fflush(nil)  // each stage as it ends, also into a pipe
            try await Task.sleep(for: .milliseconds(500))
        }
    }
}
