import Foundation
import Logging
import ShipyardCore
import ShipyardGit

/// The approval desk's driving: votes counted under the policy in force, decisions recorded
/// through the engine, expiry and reminder timers. The desk's state and files: ApprovalDesk.
extension Orchestrator {
    func setClock(_ clock: @escaping @Sendable () -> Date) { desk.clock = clock }
    func setAccounts(_ accounts: AccountDirectory) { desk.accounts = accounts }

    /// Wakes the daemon when an approval's expiry or next reminder is due (`approvalDeadlines`
    /// acts then).
    func scheduleDeadlines(of id: String) {
        guard let (execution, index) = engine.task(triggeredID: id),
            let policy = configuration.approvalPolicy(project: execution.project, stage: execution.stage)
        else { return }
        let since = execution.tasks[index].triggeredAt ?? Date()
        if let expiry = policy.expireAfter { schedule(since.addingTimeInterval(expiry.seconds)) }
        if let interval = policy.remindAfter { schedule((desk.reminded[id] ?? since).addingTimeInterval(interval.seconds)) }
    }

    var pendingApprovalIDs: [String] {
        engine.active.flatMap { execution in
            execution.tasks.filter { $0.name == "approval" && $0.phase == .started }.compactMap(\.triggeredID)
        }
    }

    /// Writes (again) a pending approval's file, as the policy in force and the votes so far say.
    @discardableResult
    func writeApproval(triggeredID: String) -> ApprovalRequest? {
        guard let (execution, index) = engine.task(triggeredID: triggeredID) else { return nil }
        let request = desk.request(triggeredID, execution: execution, index: index, config: configuration)
        desk.write(request)
        return request
    }

    /// `approvals/` holds exactly the pending approvals: a file left by a crash between the record
    /// of a decision and the file's removal goes.
    func reconcileApprovals() {
        desk.reconcile(pending: Set(pendingApprovalIDs))
    }

    /// The pending approval an id or unique id prefix names.
    func pendingApproval(_ prefix: String) throws(EngineError) -> (triggeredID: String, execution: SequenceExecution) {
        try ApprovalDesk.pendingApproval(prefix, active: engine.active, store: store)
    }

    func schedule(_ date: Date) {
        // A wake already due no later (even one due now that has not run yet) serves this one.
        if let wakeAt, wakeAt <= date { return }
        wakeAt = date
        wakeTask?.cancel()
        let delay = max(0, date.timeIntervalSinceNow)
        wakeTask = Task { [weak self] in
            try? await Task.sleep(for: .milliseconds(Int64(delay * 1000) + 5))
            guard !Task.isCancelled else { return }
            await self?.wake()
        }
    }

    func wake() async {
        wakeAt = nil
        _ = try? await submit(.tick)
        await approvalDeadlines()
    }

    /// A person's decision: checked against the gate's policy (or the config's approvers), then
    /// recorded; an approval opens the gate once `required` distinct people approved, a
    /// rejection closes it at once.
    /// Who may decide the gate is asked of `Authorization` under this orchestrator's config, the
    /// one whose policy the gate is counted by, once the gate is no longer being settled.
    func decide(_ decision: Decision) async -> (ok: Bool, message: String, context: String?) {
        let user = decision.user
        let reason = decision.reason ?? ""
        var pending: (triggeredID: String, execution: SequenceExecution)
        var waited = 0
        while true {
            do {
                pending = try pendingApproval(decision.approval)
            } catch {
                return (false, error.message, nil)
            }
            // Only the decision that closes a gate waits (for its record): another decision on
            // the same gate meanwhile waits for it, and then finds it decided.
            guard desk.settling.contains(pending.triggeredID), waited < 400 else { break }
            waited += 1
            try? await Task.sleep(for: .milliseconds(25))
        }
        let (id, execution) = pending
        guard !desk.settling.contains(id) else {
            return (false, "approval \(id) is being decided right now; look again (shipyardctl approvals) in a moment", execution.context)
        }
        let policy = configuration.approvalPolicy(project: execution.project, stage: execution.stage)
        if let message = Authorization(config: configuration).decide(user: user, groups: decision.groups, project: execution.project, stage: execution.stage) {
            logger.warning("approval \(id) refused: \(message)", metadata: ["via": "\(decision.via)"])
            return (false, message, execution.context)
        }
        let now = desk.clock()
        // A decision is judged by the clock when it is recorded, not when the expiry timer runs:
        // one that comes after expiresAt is late, and the expiry follows at once. (Requests that
        // waited in the socket while the daemon was down are answered before expiries that fell
        // due meanwhile are judged: those are in time.)
        if let index = engine.task(triggeredID: id)?.1, let deadline = desk.deadline(of: execution, task: index, config: configuration), now >= deadline,
            !desk.dueWhileDown(deadline)
        {
            schedule(now)
            let message = "approval \(id) expired at \(Timestamps.format(deadline)) (expireAfter for \(policy?.scope ?? "this gate")); it is being declined and the decision was not recorded"
            logger.warning("approval \(id) refused: \(message)", metadata: ["by": "\(user)", "via": "\(decision.via)"])
            return (false, message, execution.context)
        }
        let vote = ApprovalVote(by: user, uid: decision.uid, at: Timestamps.format(now), reason: reason, via: decision.via)
        guard decision.approve, let gate = desk.gate(of: execution, config: configuration) else {
            return await settle(id, execution, approved: decision.approve, votes: [vote], by: user, via: decision.via)
        }
        // Earlier approvals may be enough already (one set aside counts again once its person is
        // an approver again): the gate opens by that count, whoever asked.
        let before = ApprovalRules.tally(desk.votes[id] ?? [], gate: gate, accounts: desk.accounts)
        if before.isMet, let last = before.counted.last {
            return await settle(id, execution, approved: true, votes: before.counted, by: last.by, via: last.via, notCounted: before.setAside, recount: "recount")
        }
        switch ApprovalRules.approve(vote, votes: desk.votes[id] ?? [], gate: gate, accounts: desk.accounts) {
        case .refused(let message):
            logger.warning("approval \(id) refused: \(message)", metadata: ["by": "\(user)", "via": "\(decision.via)"])
            return (false, message, execution.context)
        case .approved(let tally):
            guard recordVote(vote, id: id, execution: execution) else { return (false, recordFailure, execution.context) }
            return await settle(id, execution, approved: true, votes: tally.counted, by: user, via: decision.via, notCounted: tally.setAside)
        case .counted(let tally):
            guard recordVote(vote, id: id, execution: execution) else { return (false, recordFailure, execution.context) }
            writeApproval(triggeredID: id)
            let aside = tally.setAside.isEmpty ? "" : "; not counted: " + tally.notCounted.joined(separator: "; ")
            return (true, "approved by \(user): \(tally.summary); waiting for \(tally.required - tally.counted.count) more from \(ApprovalRules.stillMay(gate, tally: tally, accounts: desk.accounts))\(aside)", execution.context)
        }
    }

    var recordFailure: String {
        "nothing was done: the record cannot be written (\(failed ?? "see the daemon's log")); try again once it can"
    }

    /// Records one approval; false (and nothing counted) when the record cannot be written.
    func recordVote(_ vote: ApprovalVote, id: String, execution: SequenceExecution) -> Bool {
        var data: JSONValue = .object(["project": .string(execution.project), "stage": .string(execution.stage), "service": .string(execution.service)])
        data["approval"] = vote.json
        var event = KeptnEvent(
            id: ids.next(), source: vote.via == "cli" ? "shipyardctl/\(vote.by)" : "\(vote.via)/\(vote.by)", type: ApprovalVote.type, time: vote.at,
            context: execution.context, triggeredid: id, gitcommitid: execution.commit, data: data)
        event.shipyarduid = vote.uid
        guard recordAside([event]) else { return false }
        desk.votes[id, default: []].append(vote)
        defer { logger.info("approval counted", metadata: ["by": "\(vote.by)", "via": "\(vote.via)", "context": "\(execution.context)", "stage": "\(execution.stage)"]) }
        return true
    }

    /// `recount` names what opened a gate without a vote of its own (a reload, a start): the
    /// record says so, with the votes it counted and those it did not.
    func settle(
        _ id: String, _ execution: SequenceExecution, approved: Bool, votes decided: [ApprovalVote], by user: String, via: String,
        notCounted: [ApprovalRules.Tally.SetAside] = [], recount: String? = nil
    ) async -> (ok: Bool, message: String, context: String?) {
        desk.settling.insert(id)
        defer { desk.settling.remove(id) }
        let now = Date()
        let decision = approved ? "approved" : "declined"
        let people = decided.map(\.by).joined(separator: ", ")
        let occasion = ["reload": "the config's reload", "start": "the daemon's start"][recount ?? ""]
            ?? "a later count (the approvals counted again under the policy and the accounts as they are now)"
        let reason = recount.map { _ in "opened at \(occasion): the policy in force for \(execution.stage) needs \(decided.count == 1 ? "this approval" : "these \(decided.count) approvals")" }
            ?? decided.last?.reason ?? ""
        var data: JSONValue = .object([
            "project": .string(execution.project), "stage": .string(execution.stage), "service": .string(execution.service),
            "result": .string(approved ? "pass" : "fail"), "status": .string("succeeded"),
            "message": .string("\(decision) by \(people)" + (reason.isEmpty ? "" : ": \(reason)")),
        ])
        var record: [String: JSONValue] = [
            "decision": .string(decision), "by": .string(people),
            "at": .string(recount != nil ? Timestamps.format(now) : decided.last?.at ?? Timestamps.format(now)),
            "reason": .string(reason), "via": .string(recount ?? via),
        ]
        if decided.count > 1 || recount != nil { record["approvals"] = .array(decided.map(\.json)) }
        if decided.count == 1, let uid = decided[0].uid { record["uid"] = .number(Double(uid)) }
        if !notCounted.isEmpty {
            record["notCounted"] = .array(notCounted.map { aside in
                var entry = aside.vote.json
                entry["why"] = .string(aside.reason)
                return entry
            })
        }
        data["approval"] = .object(record)
        let event = KeptnEvent(
            id: CommandRequest.newID(), source: recount != nil || via == "daemon" ? "shipyardd" : via == "cli" ? "shipyardctl/\(user)" : "\(via)/\(user)",
            type: "\(KeptnEvent.prefix)approval.finished", time: Timestamps.format(now), context: execution.context, triggeredid: id,
            gitcommitid: execution.commit, data: data)
        do {
            let effects = try await submit(.event(event))
            desk.votes[id] = nil
            desk.reminded[id] = nil
            logger.info("approval \(decision)", metadata: ["by": "\(people)", "via": "\(recount ?? via)", "context": "\(execution.context)", "stage": "\(execution.stage)"])
            return (true, Self.whatHappensNext(decision: decision, execution: execution, effects: effects), execution.context)
        } catch {
            return (false, error.message, execution.context)
        }
    }

    /// Expiry and reminders of pending approvals, when due (also at start: a daemon that was down
    /// when one was due does it now, once); then sleeps until the next one is.
    /// `cause` names what counts the gates again: a reload, the start, or a timer ("recount").
    func approvalDeadlines(now: Date = Date(), cause: String = "recount") async {
        guard !stopping, failed == nil else { return }
        for id in pendingApprovalIDs {
            // A gate whose closing decision is being recorded is that decision's.
            guard !desk.settling.contains(id), let (execution, index) = engine.task(triggeredID: id) else { continue }
            let waitingSince = execution.tasks[index].triggeredAt ?? now
            guard let gate = desk.gate(of: execution, config: configuration) else { continue }
            let policy = gate.policy
            // A policy loosened by a reload (or changed while the daemon was down) may already be
            // met: by the approvals that count under it, counted as a vote is.
            let tally = ApprovalRules.tally(desk.votes[id] ?? [], gate: gate, accounts: desk.accounts)
            if tally.isMet, let last = tally.counted.last {
                logger.notice("approval \(id) opened by the \(cause): \(tally.summary)", metadata: ["context": "\(execution.context)", "stage": "\(execution.stage)"])
                _ = await settle(id, execution, approved: true, votes: tally.counted, by: last.by, via: last.via, notCounted: tally.setAside, recount: cause)
                continue
            }
            if let expiry = policy.expireAfter {
                let deadline = waitingSince.addingTimeInterval(expiry.seconds)
                // One that fell due while the daemon was down waits for the requests that waited
                // in the socket meanwhile (`downtimeAnswered`).
                if now >= deadline, desk.dueWhileDown(deadline) { continue }
                if now >= deadline {
                    let vote = ApprovalVote(by: "shipyardd", at: Timestamps.format(now), reason: "expired: nobody decided within \(GoDuration.format(expiry)) (expireAfter for \(policy.scope))", via: "daemon")
                    logger.notice("approval \(id) expired", metadata: ["context": "\(execution.context)", "stage": "\(execution.stage)"])
                    _ = await settle(id, execution, approved: false, votes: [vote], by: "shipyardd", via: "daemon")
                    continue
                }
                schedule(deadline)
            }
            if let interval = policy.remindAfter {
                let due = (desk.reminded[id] ?? waitingSince).addingTimeInterval(interval.seconds)
                if now >= due {
                    remind(id, execution, waited: now.timeIntervalSince(waitingSince))
                    desk.reminded[id] = now
                    schedule(now.addingTimeInterval(interval.seconds))
                } else {
                    schedule(due)
                }
            }
        }
    }

    func remind(_ id: String, _ execution: SequenceExecution, waited: TimeInterval) {
        guard let request = writeApproval(triggeredID: id) else { return }
        var data: JSONValue = .object(["project": .string(execution.project), "stage": .string(execution.stage), "service": .string(execution.service)])
        data["waitedSeconds"] = .number(waited.rounded())
        recordAside([KeptnEvent(
            id: ids.next(), source: "shipyardd", type: ApprovalVote.reminderType, time: Timestamps.format(Date()), context: execution.context,
            triggeredid: id, gitcommitid: execution.commit, data: data)])
        logger.info("approval reminder", metadata: ["context": "\(execution.context)", "stage": "\(execution.stage)", "waited": "\(Int(waited))s"])
        desk.tell("reminder", request, decision: nil, waited: waited, notify: notify)
    }

    /// The requests that waited in the socket while the daemon was down have been answered:
    /// expiries that fell due meanwhile are judged now.
    func serving() {
        if desk.servingSince == nil { desk.servingSince = Date() }
    }

    func downtimeAnswered() async {
        guard !desk.downtimeJudged else { return }
        desk.downtimeJudged = true
        await approvalDeadlines()
    }

    /// "approved: production je-deployment for helloservice started".
    static func whatHappensNext(decision: String, execution: SequenceExecution, effects: [EngineEffect]) -> String {
        var next: [String] = []
        for case .record(let event) in effects {
            guard event.shkeptncontext == execution.context, let kind = event.kind else { continue }
            let stage = event.data["stage"]?.string ?? execution.stage
            let service = event.data["service"]?.string ?? execution.service
            switch kind {
            case .task(let name, "triggered"):
                next.append("\(stage) \(name) for \(service) started")
            case .sequence(let stage, let name, "finished"):
                next.append("\(stage).\(name) for \(service) finished \(event.data["result"]?.string ?? "")")
            case .sequence(let stage, let name, "triggered"):
                next.append("\(stage).\(name) for \(service) triggered")
            default:
                continue
            }
        }
        return "\(decision): " + (next.isEmpty ? "\(execution.stage).\(execution.sequence) for \(execution.service) goes on" : next.joined(separator: "; "))
    }
}
