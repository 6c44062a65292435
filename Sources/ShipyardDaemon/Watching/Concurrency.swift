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

    /// Runs `work` on a pool thread. Exactly one of `timedOut` (when `timeout`, counted from
    /// when a thread takes the work, passes first; the token is cancelled and the thread is
    /// interrupted until the work ends) and an in-time `completed` happens; `completed` is
    /// always called on the work's thread when it ends, with whether it ended in time.
    func start<T: Sendable>(
        timeout: Duration, cancel: CancelToken, _ work: @escaping @Sendable () -> T,
        timedOut: @escaping @Sendable () -> Void, completed: @escaping @Sendable (T, _ inTime: Bool) -> Void
    ) {
        submit { [self] in
            let decided = Decided()
            let slot = Slot(deadline: ContinuousClock.now + timeout, thread: pthread_self()) {
                guard decided.claim() else { return }
                cancel.cancel()
                timedOut()
            }
            watch(slot)
            let value = work()
            unwatch(slot)
            completed(value, decided.claim())
        }
    }

    /// Returns the work's value, or nil when `timeout` passed first. `finished` is called on the
    /// work's thread when work that timed out really ends.
    func run<T: Sendable>(
        timeout: Duration, cancel: CancelToken, _ work: @escaping @Sendable () -> T, finished: @escaping @Sendable () -> Void = {}
    ) async -> T? {
        let once = ResumeOnce<T?>()
        return await withCheckedContinuation { continuation in
            once.set(continuation)
            start(timeout: timeout, cancel: cancel, work, timedOut: { once.resume(nil) }) { value, inTime in
                if inTime { once.resume(value) } else { finished() }
            }
        }
    }

    // MARK: Timeouts

    /// Whoever claims first decides: the timeout or the work's end.
    private final class Decided: Sendable {
        private let flag = Atomic<Bool>(false)
        func claim() -> Bool { !flag.exchange(true, ordering: .acquiringAndReleasing) }
    }

    /// Work running on a thread, with its deadline. Guarded by `watcher`.
    private final class Slot: @unchecked Sendable {
        let deadline: ContinuousClock.Instant
        let thread: pthread_t
        let expire: @Sendable () -> Void
        var expired = false

        init(deadline: ContinuousClock.Instant, thread: pthread_t, expire: @escaping @Sendable () -> Void) {
            self.deadline = deadline
            self.thread = thread
            self.expire = expire
        }
    }

    private let watcher = NSCondition()
    private var slots: [ObjectIdentifier: Slot] = [:]
    private var watching = false
    /// When the timeout thread wakes next (nil: when told).
    private var wakeAt: ContinuousClock.Instant?

    /// One thread for all timeouts: it sleeps until the earliest deadline, and after one passed
    /// it interrupts that work's thread every 100 ms until the work ends. No timer per call.
    private func watch(_ slot: Slot) {
        watcher.lock()
        slots[ObjectIdentifier(slot)] = slot
        if !watching {
            watching = true
            let thread = Thread { [self] in
                _ = shipyard_set_thread_name("\(name)-timeouts")
                watchTimeouts()
            }
            thread.start()
        } else if wakeAt.map({ slot.deadline < $0 }) ?? true {
            watcher.signal()
        }
        watcher.unlock()
    }

    private func unwatch(_ slot: Slot) {
        watcher.lock()
        slots[ObjectIdentifier(slot)] = nil
        watcher.unlock()
    }

    private func watchTimeouts() {
        watcher.lock()
        while true {
            let now = ContinuousClock.now
            var expiring: [Slot] = []
            var next: ContinuousClock.Instant?
            for slot in slots.values {
                if slot.deadline <= now {
                    if !slot.expired {
                        // Expired first, interrupted after: the interrupted call's error must
                        // never pass for the work's own result.
                        slot.expired = true
                        expiring.append(slot)
                    } else {
                        // Still running after its deadline: each signal ends one blocked call.
                        // The slot is removed under this lock, so no signal reaches other work.
                        pthread_kill(slot.thread, Self.interruptSignal)
                    }
                    next = min(next ?? now + .milliseconds(100), now + .milliseconds(100))
                } else {
                    next = min(next ?? slot.deadline, slot.deadline)
                }
            }
            wakeAt = next
            if !expiring.isEmpty {
                watcher.unlock()
                for slot in expiring { slot.expire() }
                watcher.lock()
                continue
            }
            watcher.sleep(until: next)
        }
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

extension NSCondition {
    /// Waits, with the lock held, until signalled or `instant` (nil: until signalled).
    func sleep(until instant: ContinuousClock.Instant?) {
        guard let instant else { return wait() }
        _ = wait(until: Date().addingTimeInterval(max(0, (instant - .now).seconds)))
    }
}

/// One thread that starts every project's polls when they are due: a thousand projects waiting
/// cost a thousand entries in a heap, not a thousand timers, and a due poll goes straight to the
/// poll pool without passing through Swift's executors.
final class PollScheduler: @unchecked Sendable {
    private struct Entry {
        var due: ContinuousClock.Instant
        var fire: @Sendable () -> Void
    }

    private let name: String
    private let condition = NSCondition()
    /// A binary min-heap on `due`.
    private var heap: [Entry] = []
    private var running = false
    private var wakeAt: ContinuousClock.Instant?

    init(name: String) {
        self.name = name
    }

    /// Calls `fire` (on the scheduler's thread: it must only hand work on) once `delay` passed.
    func schedule(after delay: Duration, _ fire: @escaping @Sendable () -> Void) {
        let due = ContinuousClock.now + delay
        condition.lock()
        push(Entry(due: due, fire: fire))
        if !running {
            running = true
            let thread = Thread { [self] in
                _ = shipyard_set_thread_name(name)
                loop()
            }
            thread.start()
        } else if wakeAt.map({ due < $0 }) ?? true {
            condition.signal()
        }
        condition.unlock()
    }

    private func loop() {
        condition.lock()
        while true {
            let now = ContinuousClock.now
            var due: [Entry] = []
            // Polls due within the next 20 ms go now too: one wake-up starts them all.
            while let first = heap.first, first.due <= now + .milliseconds(20) { due.append(pop()) }
            if !due.isEmpty {
                wakeAt = nil
                condition.unlock()
                for entry in due { entry.fire() }
                condition.lock()
                continue
            }
            wakeAt = heap.first?.due
            condition.sleep(until: wakeAt)
        }
    }

    private func push(_ entry: Entry) {
        heap.append(entry)
        var child = heap.count - 1
        while child > 0 {
            let parent = (child - 1) / 2
            guard heap[child].due < heap[parent].due else { break }
            heap.swapAt(child, parent)
            child = parent
        }
    }

    private func pop() -> Entry {
        let top = heap[0]
        let last = heap.removeLast()
        if !heap.isEmpty {
            heap[0] = last
            var parent = 0
            while true {
                let left = 2 * parent + 1, right = left + 1
                var smallest = parent
                if left < heap.count, heap[left].due < heap[smallest].due { smallest = left }
                if right < heap.count, heap[right].due < heap[smallest].due { smallest = right }
                if smallest == parent { break }
                heap.swapAt(parent, smallest)
                parent = smallest
            }
        }
        return top
    }
}
