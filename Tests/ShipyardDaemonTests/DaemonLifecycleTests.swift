import Foundation
import Logging
import ShipyardTestKit
import Testing

@testable import ShipyardDaemon

/// The daemon's services in their ServiceGroup, in this process (its umask and signals left alone,
/// or every later test's files would be the daemon's group's only): a stop at
/// any point of the start is a clean stop, and a started daemon stops in order.
@Suite struct DaemonLifecycleTests {
    func daemon(in dir: TemporaryDirectory) -> Daemon {
        let config = DaemonConfig(stateDirectory: dir.path + "/state", projects: [], tasks: [:], approvers: nil, notify: nil)
        return Daemon(config: config, configPath: nil, environment: [:], logger: Logger(label: "lifecycle-test"))
    }

    /// A stop asked for before the start (systemd's stop during the first instant): every service
    /// still waiting for the one before it stops alone, in order, and run() returns without an
    /// error (a service ending out of order would make the group throw).
    @Test func aStopBeforeTheStartIsACleanStop() async throws {
        let dir = try TemporaryDirectory()
        let daemon = daemon(in: dir)
        await daemon.shutdown()
        try await daemon.run(ownsProcess: false)
        #expect(await !daemon.isReady)
    }

    /// Two services wait for one milestone (the status service and the orchestrator both wait for
    /// the watchers): the one told to stop stops waiting alone; the other goes on once it is
    /// reached (had it stopped too, it would end out of order and the group would throw).
    @Test func aServiceToldToStopStopsWaitingAloneAndTheOthersWaitOn() async {
        let milestone = Milestone()
        let first = Task { await milestone.wait() }
        let second = Task { await milestone.wait() }
        first.cancel()
        #expect(await first.value == false)
        milestone.reach()
        #expect(await second.value == true)
        #expect(await milestone.wait() == true)
    }

    @Test func aStartedDaemonIsReadyAndStopsInOrder() async throws {
        let dir = try TemporaryDirectory()
        let daemon = daemon(in: dir)
        let running = Task { try await daemon.run(ownsProcess: false) }
        var ready = false
        for _ in 0..<600 where !ready {
            ready = await daemon.isReady
            if !ready { try await Task.sleep(for: .milliseconds(50)) }
        }
        #expect(ready)
        await daemon.shutdown()
        try await running.value
        #expect(await !daemon.isReady)
        // The status service stops last: status.json is there, written after everything else stopped.
        #expect(FileManager.default.fileExists(atPath: dir.path + "/state/status.json"))
    }
}
