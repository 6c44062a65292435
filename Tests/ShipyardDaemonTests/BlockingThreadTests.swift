import Foundation
import ShipyardGit
import ShipyardTestKit
import Synchronization
import Testing

@testable import ShipyardDaemon

@Suite struct BlockingThreadTests {
    let pool = BlockingPool(name: "test", size: 2)

    @Test func aSilentRemoteTimesOutAndItsThreadIsInterruptedFree() async throws {
        let server = try SilentServer()
        let token = CancelToken()
        let finished = Atomic<Bool>(false)
        let access = RemoteAccess(url: "git://127.0.0.1:\(server.port)/x.git")
        let result = await pool.run(
            timeout: .milliseconds(300), cancel: token,
            { Result { () throws(GitError) in try lsRemoteBranch(access, branch: "main", cancel: token) } },
            finished: { finished.store(true, ordering: .relaxed) })
        #expect(result == nil)
        #expect(token.isCancelled)
        // SIGUSR2 breaks the blocked recv(); the thread must end instead of leaking.
        #expect(await eventually(timeout: .seconds(10)) { finished.load(ordering: .relaxed) })
    }

    @Test func fastWorkReturnsItsValue() async {
        let value = await pool.run(timeout: .seconds(10), cancel: CancelToken(), { 42 })
        #expect(value == 42)
    }

    /// However much work comes, the pool runs it on at most its size of threads; work that is
    /// stuck holds one of them, and the rest of the work goes on meanwhile.
    @Test func thePoolBoundsItsThreadsAndAStuckJobHoldsOnlyOne() async throws {
        let pool = BlockingPool(name: "bounded", size: 3)
        final class Gauge: Sendable {
            let running = Atomic<Int>(0)
            let most = Atomic<Int>(0)
            let gate = DispatchSemaphore(value: 0)
        }
        let gauge = Gauge()
        // Stuck until the test lets it go, however long the rest takes on a loaded machine.
        async let stuck = pool.run(timeout: .seconds(600), cancel: CancelToken(), {
            gauge.gate.wait()
            return -1
        })
        // The stuck work is queued first (the queue is first come, first served).
        #expect(await eventually(timeout: .seconds(10), every: .milliseconds(1)) { pool.threadCount == 1 })
        let done = await withTaskGroup(of: Int?.self) { group in
            for i in 0..<200 {
                group.addTask {
                    await pool.run(timeout: .seconds(600), cancel: CancelToken(), {
                        let now = gauge.running.add(1, ordering: .relaxed).newValue
                        gauge.most.max(now, ordering: .relaxed)
                        usleep(2000)
                        gauge.running.subtract(1, ordering: .relaxed)
                        return i
                    })
                }
            }
            var values: [Int] = []
            for await value in group { if let value { values.append(value) } }
            return values
        }
        #expect(done.sorted() == Array(0..<200))
        #expect(gauge.most.load(ordering: .relaxed) <= 2, "one thread is stuck, at most two serve the rest")
        #expect(pool.threadCount <= 3)
        gauge.gate.signal()
        #expect(await stuck == -1)
    }
}
