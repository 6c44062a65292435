import ShipyardGit
import ShipyardTestKit
import Synchronization
import Testing

@testable import ShipyardDaemon

@Suite struct BlockingThreadTests {
    @Test func aSilentRemoteTimesOutAndItsThreadIsInterruptedFree() async throws {
        let server = try SilentServer()
        let token = CancelToken()
        let finished = Atomic<Bool>(false)
        let access = RemoteAccess(url: "git://127.0.0.1:\(server.port)/x.git")
        let result = await BlockingThread.run(
            name: "silent", timeout: .milliseconds(300), cancel: token,
            { Result { () throws(GitError) in try lsRemoteBranch(access, branch: "main", cancel: token) } },
            finished: { finished.store(true, ordering: .relaxed) })
        #expect(result == nil)
        #expect(token.isCancelled)
        // SIGUSR2 breaks the blocked recv(); the thread must end instead of leaking.
        #expect(await eventually(timeout: .seconds(10)) { finished.load(ordering: .relaxed) })
    }

    @Test func fastWorkReturnsItsValue() async {
        let value = await BlockingThread.run(name: "fast", timeout: .seconds(10), cancel: CancelToken(), { 42 })
        #expect(value == 42)
    }

    @Test func aDoorbellCutsASleepShort() async {
        let bell = Doorbell()
        bell.ring()
        #expect(await bell.wait(for: .seconds(30)) == true)
        #expect(await bell.wait(for: .milliseconds(10)) == false)
        async let rung = bell.wait(for: .seconds(30))
        try? await Task.sleep(for: .milliseconds(50))
        bell.ring()
        #expect(await rung == true)
    }
}
