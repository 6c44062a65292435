import Synchronization
import ServiceLifecycle

/// A moment in the daemon's start that a later service waits for: the record is read only once
/// the watchers know each project's shipyard, the local API serves only once the record is read.
/// A service told to stop (or cancelled) while it waits stops waiting: `wait()` says false.
final class Milestone: Sendable {
    private struct State {
        var reached = false
        var abandoned = false
        var waiters: [CheckedContinuation<Bool, Never>] = []
    }

    private let state = Mutex(State())

    func reach() {
        let waiters = state.withLock { state in
            state.reached = true
            defer { state.waiters = [] }
            return state.waiters
        }
        for waiter in waiters { waiter.resume(returning: true) }
    }

    /// True once the milestone is reached; false when the waiting service is told to shut down
    /// (or its group is cancelled) first.
    func wait() async -> Bool {
        await withTaskCancellationOrGracefulShutdownHandler {
            await withCheckedContinuation { continuation in
                let answer: Bool? = state.withLock { state in
                    if state.reached { return true }
                    if state.abandoned { return false }
                    state.waiters.append(continuation)
                    return nil
                }
                if let answer { continuation.resume(returning: answer) }
            }
        } onCancelOrGracefulShutdown: {
            self.abandon()
        }
    }

    private func abandon() {
        let waiters = state.withLock { state in
            state.abandoned = true
            defer { state.waiters = [] }
            return state.reached ? [] : state.waiters
        }
        for waiter in waiters { waiter.resume(returning: false) }
    }
}
