import Synchronization
import ServiceLifecycle

/// A moment in the daemon's start that later services wait for: the record is read only once
/// the watchers know each project's shipyard, the local API serves only once the record is read.
/// A service told to stop (or cancelled) while it waits stops waiting, alone: `wait()` says false
/// to it, and the milestone's other waiters wait on.
final class Milestone: Sendable {
    private struct State {
        var reached = false
        var next = 0
        var waiters: [Int: CheckedContinuation<Bool, Never>] = [:]
        /// Waits whose service was told to stop before they were registered.
        var abandoned: Set<Int> = []
    }

    private let state = Mutex(State())

    func reach() {
        let waiters = state.withLock { state in
            state.reached = true
            defer { state.waiters = [:] }
            return Array(state.waiters.values)
        }
        for waiter in waiters { waiter.resume(returning: true) }
    }

    /// True once the milestone is reached; false when the waiting service is told to shut down
    /// (or its group is cancelled) first.
    func wait() async -> Bool {
        let id = state.withLock { state in
            defer { state.next += 1 }
            return state.next
        }
        return await withTaskCancellationOrGracefulShutdownHandler {
            await withCheckedContinuation { continuation in
                let answer: Bool? = state.withLock { state in
                    if state.reached { return true }
                    if state.abandoned.remove(id) != nil { return false }
                    state.waiters[id] = continuation
                    return nil
                }
                if let answer { continuation.resume(returning: answer) }
            }
        } onCancelOrGracefulShutdown: {
            let waiter = self.state.withLock { state -> CheckedContinuation<Bool, Never>? in
                if state.reached { return nil }
                if let waiter = state.waiters.removeValue(forKey: id) { return waiter }
                state.abandoned.insert(id)
                return nil
            }
            waiter?.resume(returning: false)
        }
    }
}
