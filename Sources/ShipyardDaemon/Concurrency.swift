import CSupport
import Foundation
import ShipyardGit
import Synchronization

/// Runs blocking work (libgit2 network calls) on a bounded pool of threads, never on Swift's
/// cooperative pool and never a thread per call, and gives up waiting after a timeout. libgit2
/// 1.5 has no network timeout: a remote that accepts a connection and then says nothing would
/// block forever, so on timeout the work's `CancelToken` is set and the thread running it is
/// interrupted with SIGUSR2 (which makes a blocked socket call return EINTR) until the work
/// ends and the thread is free for the next. A stuck remote therefore holds one thread for at
/// most its timeout; the others go on serving every other project.
final class BlockingPool: @unchecked Sendable {
    static let interruptSignal = SIGUSR2

    /// Installs a no-op SIGUSR2 handler without SA_RESTART, so the signal interrupts system calls
    /// instead of killing the process. Called once.
    static let installInterruptHandler: Void = {
        var action = sigaction()
        action.__sigaction_handler.sa_handler = { _ in }
        sigemptyset(&action.sa_mask)
        action.sa_flags = 0
        sigaction(interruptSignal, &action, nil)
    }()

    /// The pool's size for this machine when the config does not say: enough that a few stuck
    /// remotes leave room for the rest, few enough to stay cheap.
    static var defaultSize: Int { min(64, max(4, 4 * ProcessInfo.processInfo.activeProcessorCount)) }

    let name: String
    private let condition = NSCondition()
    private var queue: [@Sendable () -> Void] = []
    private var head = 0
    private var threads = 0
    private var idle = 0
    private var limit: Int

    init(name: String, size: Int) {
        self.name = name
        limit = max(1, size)
        _ = Self.installInterruptHandler
    }

    /// The most threads the pool may have; a smaller size takes effect as threads go idle.
    var size: Int {
        get { condition.withLock { limit } }
        set { condition.withLock { limit = max(1, newValue) } }
    }

    /// How many threads the pool has started and not ended.
    var threadCount: Int { condition.withLock { threads } }

    private func submit(_ job: @escaping @Sendable () -> Void) {
        condition.lock()
        queue.append(job)
        if idle > 0 {
            condition.signal()
        } else if threads < limit {
            threads += 1
            let number = threads
            let label = "\(name)-\(number)"
            let thread = Thread { [self] in
                // Seen in top -H and /proc/PID/task/*/comm (at most 15 bytes).
                _ = shipyard_set_thread_name(label)
                work()
            }
            thread.name = label
            thread.stackSize = 1 << 20
            thread.start()
        }
        condition.unlock()
    }

    private func work() {
        // Threads inherit the spawner's mask, and Swift's pool threads block every signal.
        var interrupt = sigset_t()
        sigemptyset(&interrupt)
        sigaddset(&interrupt, Self.interruptSignal)
        pthread_sigmask(SIG_UNBLOCK, &interrupt, nil)
        while true {
            condition.lock()
            while head == queue.count {
                if threads > limit {
                    threads -= 1
                    condition.unlock()
                    return
                }
                idle += 1
                // An idle thread ends after a minute without work.
                let woken = condition.wait(until: Date().addingTimeInterval(60))
                idle -= 1
                if !woken, head == queue.count {
                    threads -= 1
                    condition.unlock()
                    return
                }
            }
            let job = queue[head]
            head += 1
            if head > 1024, head * 2 > queue.count {
                queue.removeFirst(head)
                head = 0
            }
            condition.unlock()
            job()
        }
    }

    /// Returns the work's value, or nil when `timeout` (counted from when a thread takes the
    /// work) passed first. `finished` is called on the work's thread once it really ends.
    func run<T: Sendable>(
        timeout: Duration, cancel: CancelToken, _ work: @escaping @Sendable () -> T, finished: @escaping @Sendable () -> Void = {}
    ) async -> T? {
        let call = Call<T>()
        return await withCheckedContinuation { continuation in
            call.once.set(continuation)
            submit {
                call.running.withLock { $0 = pthread_self() }
                let watchdog = Task {
                    do { try await Task.sleep(for: timeout) } catch { return }
                    guard call.once.resume(nil) else { return }
                    cancel.cancel()
                    // Keep interrupting until the work notices; each signal ends one blocked call.
                    for _ in 0..<600 {
                        let alive = call.running.withLock { thread -> Bool in
                            guard let thread else { return false }
                            pthread_kill(thread, Self.interruptSignal)
                            return true
                        }
                        if !alive { return }
                        try? await Task.sleep(for: .milliseconds(100))
                    }
                }
                let value = work()
                call.running.withLock { $0 = nil }
                watchdog.cancel()
                call.once.resume(value)
                finished()
            }
        }
    }

    private final class Call<T: Sendable>: Sendable {
        let once = ResumeOnce<T?>()
        let running = Mutex<pthread_t?>(nil)
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
