import Foundation
import ServiceLifecycle
import UnixSignals

// The daemon's long-running parts, each a swift-service-lifecycle `Service` in one
// `ServiceGroup` (Daemon.run): they start in this order, each once the one before reached its
// milestone, and stop in the reverse order, each once the one after it has stopped:
//
//   status       status.json every 15 s when quiet polls moved it; the last write at the exit
//   watchers     the state's lock, the local API's socket, one watcher per project (polls)
//   orchestrator the record (and an earlier release's journal), then the sequences; at the
//                stop, running tasks get stopGracePeriod
//   frontend     the local API on its socket and the web view (on a standby of a shared
//                record, as soon as it stands by); at the stop, the requests under way are
//                answered (3 s at most)
//   systemd      READY=1, SIGHUP's reload, the watchdog; at the stop, STOPPING=1 first
//
// SIGTERM and SIGINT are the group's: a stop during the start (a long import) is a stop too.

/// Milestones of the start, in order.
struct StartMilestones: Sendable {
    let watching = Milestone()
    let recordRead = Milestone()
    /// The local API may start: the record is read, or (a shared record) this host stands by.
    let answering = Milestone()
    let serving = Milestone()
}

/// `status.json`: written when something changes (`Daemon.scheduleStatusWrite`), every 15 s when
/// only quiet polls moved its times, and once more at the very end of a stop.
struct StatusService: Service {
    let daemon: Daemon
    let milestones: StartMilestones

    func run() async throws {
        guard await milestones.watching.wait() else { return }
        while !Task.isShuttingDownGracefully, !Task.isCancelled {
            try? await cancelWhenGracefulShutdown { try await Task.sleep(for: .seconds(15)) }
            if daemon.board.isDirty { await daemon.publishStatus() }
        }
        await daemon.publishStatus()
    }
}

/// The state directory's lock, the local API's socket, and one watcher per project; at the stop,
/// polls under way end (a stuck one at its pollTimeout) before the exit.
struct WatcherService: Service {
    let daemon: Daemon
    let milestones: StartMilestones

    func run() async throws {
        try await daemon.prepare()
        milestones.watching.reach()
        try? await gracefulShutdown()
        await daemon.stopWatchers()
    }
}

/// The record and the sequences: reads the record (importing an earlier release's journal
/// first), carries on with what was running; at the stop, running tasks get their grace period.
struct OrchestratorService: Service {
    let daemon: Daemon
    let milestones: StartMilestones

    func run() async throws {
        guard await milestones.watching.wait() else { return }
        // False: told to stop while standing by for the lease of a shared record.
        let answering = milestones.answering
        guard try await daemon.startOrchestrator(answering: { answering.reach() }) else { return }
        milestones.recordRead.reach()
        milestones.answering.reach()
        try? await gracefulShutdown()
        await daemon.stopOrchestrator()
    }
}

/// The local API (and the web view when the config has `http:`); at the stop, the socket stops
/// taking connections and the requests under way are answered.
struct FrontendService: Service {
    let daemon: Daemon
    let milestones: StartMilestones

    func run() async throws {
        guard await milestones.answering.wait() else { return }
        await daemon.startFrontend()
        milestones.serving.reach()
        try? await gracefulShutdown()
        await daemon.stopFrontend()
    }
}

/// What systemd is told and asks: READY=1 once requests are taken, SIGHUP's reload, the
/// watchdog; the first to hear of a stop (STOPPING=1, nothing new is taken).
struct SystemdService: Service {
    let daemon: Daemon
    let milestones: StartMilestones

    func run() async throws {
        if await milestones.serving.wait() {
            let reloads = await daemon.handlingSignals ? UnixSignalsSequence(trapping: .sighup) : nil
            await withTaskGroup(of: Void.self) { group in
                if let reloads {
                    group.addTask {
                        for await _ in reloads {
                            // Reloads take turns in the daemon; a SIGHUP during one asks for one more.
                            Task { await daemon.reload() }
                        }
                    }
                }
                await daemon.becomeReady()
                group.addTask { await daemon.runWatchdog() }
                try? await gracefulShutdown()
                group.cancelAll()
            }
        }
        // A start that failed (the group cancelled) is no stop: shipyardd exits with its error.
        if !Task.isCancelled { await daemon.beginStop() }
    }
}
