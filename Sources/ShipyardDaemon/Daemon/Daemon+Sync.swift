import Synchronization
import Foundation
import ShipyardCore

/// `sync`: the project watchers poll now, and the answer waits for every project named.
extension Daemon {
    /// Polls now, and answers once every project named has answered.
    func sync(_ request: CommandRequest) async -> CommandOutcome {
        let targets: [ProjectWatcher]
        if let name = request.project {
            guard let watcher = watchers[name] else {
                let known = config.projects.map(\.name).joined(separator: ", ")
                return CommandOutcome(id: request.id, ok: false, message: "no project \"\(name)\" (projects: \(known))")
            }
            targets = [watcher]
        } else {
            targets = Array(watchers.values)
        }
        guard !targets.isEmpty else { return CommandOutcome(id: request.id, ok: true, message: "no projects are configured") }
        let parts = await withCheckedContinuation { (continuation: CheckedContinuation<[CommandOutcome.Partial], Never>) in
            let collector = SyncCollector(expected: targets.count) { continuation.resume(returning: $0) }
            for watcher in targets {
                watcher.syncNow(honourBackoff: true) { partial in collector.add(partial) }
            }
        }
        return CommandOutcome(id: request.id, ok: parts.allSatisfy(\.ok), message: parts.map(\.message).sorted().joined(separator: "\n"))
    }
}

/// Gathers the answers of several projects to one `sync` request.
private final class SyncCollector: Sendable {
    private let expected: Int
    private let done: @Sendable ([CommandOutcome.Partial]) -> Void
    private let parts = Mutex<[CommandOutcome.Partial]>([])

    init(expected: Int, done: @escaping @Sendable ([CommandOutcome.Partial]) -> Void) {
        self.expected = expected
        self.done = done
    }

    func add(_ part: CommandOutcome.Partial) {
        let all: [CommandOutcome.Partial]? = parts.withLock { parts in
            parts.append(part)
            return parts.count == expected ? parts : nil
        }
        if let all { done(all) }
    }
}
