import Foundation
import Logging
import ShipyardCore
import ShipyardStore

/// `shipyardctl` on any host of a shared record. A standby's local API reads the record from
/// PostgreSQL as the leader's does, and hands each command (checked here first: its caller is
/// the uid this host's kernel named, described by this host's accounts) to the leader through
/// the record's `requests`; the leader claims it with its epoch, applies it through the same
/// command layer, and answers; the standby waits for the answer and gives it to its caller.
struct RequestForwarder: Sendable {
    let store: PostgresStore
    /// This host's name in the shared record.
    let via: String
    /// How often the answer is looked for.
    static let look: Duration = .milliseconds(100)

    func forward(_ request: CommandRequest, _ caller: Caller) async -> CommandOutcome {
        guard let body = try? JSON.encode(request) else {
            return CommandOutcome(id: request.id, ok: false, message: "the request cannot be forwarded to the leader")
        }
        let forwarded = ForwardedRequest(
            via: via, uid: caller.uid, user: caller.user, groups: caller.groups.sorted(), channel: caller.via.rawValue,
            administrator: caller.isAdministrator, body: body)
        let (store, look) = (store, Self.look)
        return await TaskRunner.onThread(name: "forward") {
            func failed(_ message: String) -> CommandOutcome { CommandOutcome(id: request.id, ok: false, message: message) }
            do {
                try store.forward(forwarded)
            } catch {
                return failed("this host (a standby) cannot hand the request to the leader: \(error); nothing was done")
            }
            // From here on the leader may apply it: an error reading its answer is no refusal.
            let start = ContinuousClock.now
            var claimed = false
            var trouble: String?
            while true {
                do {
                    if let answer = try store.answer(of: forwarded.id) {
                        return (try? JSON.decode(CommandOutcome.self, from: answer)) ?? failed("the leader's answer cannot be read")
                    }
                    if !claimed, (ContinuousClock.now - start).seconds > PostgresStore.requestLifetime {
                        let nobody = failed("no host took the request within \(Int(PostgresStore.requestLifetime)) s (no host leads the shared record at this moment?): nothing was done; shipyardctl status says who leads")
                        if try store.abandon(forwarded.id, outcome: try JSON.encode(nobody)) { return nobody }
                        claimed = true
                    }
                    trouble = nil
                } catch {
                    trouble = "\(error)"
                }
                if (ContinuousClock.now - start).seconds > 2 * PostgresStore.requestLifetime {
                    let why = trouble.map { "this host cannot read the leader's answer (\($0))" } ?? "the leader took it but has not answered"
                    return failed("request \(forwarded.id) was handed to the leader, and \(why) within \(Int(2 * PostgresStore.requestLifetime)) s: it may have been applied; shipyardctl sequences and approvals show whether it was")
                }
                Thread.sleep(forTimeInterval: look.seconds)
            }
        }
    }
}

extension Daemon {
    /// The leader's side: requests standbys took, claimed with this leader's epoch every 200 ms,
    /// applied in order through the command layer as their callers', and answered.
    func runRequestInbox(_ store: PostgresStore) async {
        // Applied, but the answer could not be written yet: written before anything else is
        // claimed, and never claimed (so never applied) again meanwhile.
        var unanswered: [String: Data] = [:]
        while !stopping, !Task.isCancelled {
            let owed = unanswered
            let written = await TaskRunner.onThread(name: "requests") { owed.filter { (try? store.answer($0.key, outcome: $0.value)) != nil }.map(\.key) }
            for id in written { unanswered[id] = nil }
            let answering = Set(unanswered.keys)
            let claimed = await TaskRunner.onThread(name: "requests") { (try? store.claimRequests(answering: answering)) ?? [] }
            for forwarded in claimed {
                let outcome = await apply(forwarded)
                let answer = (try? JSON.encode(outcome)) ?? Data()
                let saved = await TaskRunner.onThread(name: "requests") { (try? store.answer(forwarded.id, outcome: answer)) != nil }
                if !saved { unanswered[forwarded.id] = answer }
            }
            if claimed.isEmpty { try? await Task.sleep(for: .milliseconds(200)) }
        }
    }

    func apply(_ forwarded: ForwardedRequest) async -> CommandOutcome {
        guard let request = try? JSON.decode(CommandRequest.self, from: forwarded.body) else {
            logger.warning("a request forwarded by \(forwarded.via) cannot be read; refused")
            return CommandOutcome(id: "", ok: false, message: "the leader cannot read the forwarded request (hosts of different versions?)")
        }
        var caller = Caller(
            uid: forwarded.uid, user: forwarded.user, groups: Set(forwarded.groups), via: Caller.Channel(rawValue: forwarded.channel) ?? .web)
        caller.host = forwarded.via
        caller.forwardedAdministrator = forwarded.administrator
        logger.info("request \(request.kind.rawValue) forwarded by \(forwarded.via)", metadata: ["user": "\(caller.user)"])
        return await commands.perform(request, as: caller, peer: "via \(forwarded.via)")
    }
}

/// A standby's `approvals/`: the leader's request files, copied from the record every second
/// (written only when they changed; those of decided approvals removed).
struct ApprovalMirror: Sendable {
    let store: PostgresStore
    let directory: String
    let logger: Logger

    func run() async {
        var failing = false
        while !Task.isCancelled {
            let (store, directory) = (store, directory)
            let outcome: String? = await TaskRunner.onThread(name: "approvals") {
                do {
                    try Self.copy(try store.sharedApprovals(), into: directory)
                    return nil
                } catch {
                    return "\(error)"
                }
            }
            if let outcome, !failing { logger.warning("cannot copy the leader's approval requests into approvals/: \(outcome)") }
            failing = outcome != nil
            try? await Task.sleep(for: .seconds(1))
        }
    }

    /// An approval id as a file name: an event id's letters only (never a path).
    static func isFileName(_ id: String) -> Bool {
        !id.isEmpty && id.count <= 128 && !id.hasPrefix(".")
            && id.unicodeScalars.allSatisfy { ("a"..."z").contains($0) || ("A"..."Z").contains($0) || ("0"..."9").contains($0) || "-_.".unicodeScalars.contains($0) }
    }

    static func copy(_ shared: [String: Data], into directory: String) throws {
        try FileManager.default.createDirectory(atPath: directory, withIntermediateDirectories: true)
        for (id, body) in shared where Self.isFileName(id) {
            let path = directory + "/\(id).json"
            if FileManager.default.contents(atPath: path) != body { try AtomicFile.write(body, to: path, mode: 0o640) }
        }
        for name in (try? FileManager.default.contentsOfDirectory(atPath: directory)) ?? [] where name.hasSuffix(".json") {
            if shared[String(name.dropLast(5))] == nil { unlink(directory + "/" + name) }
        }
    }
}
