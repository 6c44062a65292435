import Foundation
import ShipyardGit
import Synchronization

/// Runs blocking work (libgit2 network calls) on a thread of its own, never on Swift's
/// cooperative pool, and gives up waiting after a timeout. libgit2 1.5 has no network timeout:
/// a remote that accepts a connection and then says nothing would block forever, so on timeout
/// the work's `CancelToken` is set and its thread is interrupted with SIGUSR2 (which makes a
/// blocked socket call return EINTR) until it finishes.
enum BlockingThread {
    static let interruptSignal = SIGUSR2

    /// Installs a no-op SIGUSR2 handler without SA_RESTART, so the signal interrupts system calls
    /// instead of killing the process. Called once at start-up.
    static let installInterruptHandler: Void = {
        var action = sigaction()
        action.__sigaction_handler.sa_handler = { _ in }
        sigemptyset(&action.sa_mask)
        action.sa_flags = 0
        sigaction(interruptSignal, &action, nil)
    }()

    /// Returns the work's value, or nil when the timeout passed first. `finished` is called on the
    /// work's thread once it really ends, timed out or not.
    static func run<T: Sendable>(
        name: String, timeout: Duration, cancel: CancelToken,
        _ work: @escaping @Sendable () -> T, finished: @escaping @Sendable () -> Void = {}
    ) async -> T? {
        _ = installInterruptHandler
        let call = Call<T>()
        return await withCheckedContinuation { continuation in
            call.once.set(continuation)
            let thread = Thread {
                // Threads inherit the spawner's mask, and Swift's pool threads block every signal.
                var interrupt = sigset_t()
                sigemptyset(&interrupt)
                sigaddset(&interrupt, interruptSignal)
                pthread_sigmask(SIG_UNBLOCK, &interrupt, nil)
                call.running.withLock { $0 = pthread_self() }
                let value = work()
                call.running.withLock { $0 = nil }
                call.timer.withLock { $0?.cancel() }
                call.once.resume(value)
                finished()
            }
            thread.name = name
            thread.stackSize = 1 << 20
            let watchdog = Task {
                do { try await Task.sleep(for: timeout) } catch { return }
                guard call.once.resume(nil) else { return }
                cancel.cancel()
                // Keep interrupting until the thread notices; each signal ends one blocked call.
                for _ in 0..<600 {
                    let alive = call.running.withLock { thread -> Bool in
                        guard let thread else { return false }
                        pthread_kill(thread, interruptSignal)
                        return true
                    }
                    if !alive { return }
                    try? await Task.sleep(for: .milliseconds(100))
                }
            }
            call.timer.withLock { $0 = watchdog }
            thread.start()
        }
    }

    private final class Call<T: Sendable>: Sendable {
        let once = ResumeOnce<T?>()
        let running = Mutex<pthread_t?>(nil)
        let timer = Mutex<Task<Void, Never>?>(nil)
    }
}

/// Resumes a continuation exactly once, whoever comes first.
final class ResumeOnce<T: Sendable>: Sendable {
    private let state = Mutex<(continuation: CheckedContinuation<T, Never>?, done: Bool, early: T?)>((nil, false, nil))

    func set(_ continuation: CheckedContinuation<T, Never>) {
        state.withLock { s in
            if s.done, let value = s.early {
                continuation.resume(returning: value)
            } else {
                s.continuation = continuation
            }
        }
    }

    /// Returns true when this call was the one that resumed.
    @discardableResult
    func resume(_ value: T) -> Bool {
        state.withLock { s in
            guard !s.done else { return false }
            s.done = true
            if let continuation = s.continuation {
                s.continuation = nil
                continuation.resume(returning: value)
            } else {
                s.early = value
            }
            return true
        }
    }
}

/// A sleep that can be cut short: the poll loop waits on it, `shipyardctl sync` rings it.
final class Doorbell: Sendable {
    private struct State {
        var rung = false
        var waiter: CheckedContinuation<Bool, Never>?
        var generation = 0
        var timer: Task<Void, Never>?
    }

    private let state = Mutex(State())

    /// Wakes the current or next waiter.
    func ring() {
        state.withLock { s in
            if let waiter = s.waiter {
                s.waiter = nil
                s.timer?.cancel()
                waiter.resume(returning: true)
            } else {
                s.rung = true
            }
        }
    }

    /// Waits up to `duration`; true when rung, false when the time ran out.
    func wait(for duration: Duration) async -> Bool {
        await withCheckedContinuation { continuation in
            state.withLock { s in
                if s.rung {
                    s.rung = false
                    continuation.resume(returning: true)
                    return
                }
                s.generation += 1
                let generation = s.generation
                s.waiter = continuation
                s.timer = Task { [weak self] in
                    do { try await Task.sleep(for: duration) } catch { return }
                    self?.expire(generation)
                }
            }
        }
    }

    private func expire(_ generation: Int) {
        state.withLock { s in
            guard s.generation == generation, let waiter = s.waiter else { return }
            s.waiter = nil
            waiter.resume(returning: false)
        }
    }
}
