import Foundation
import ShipyardCore
import ShipyardTestKit
import Testing

@testable import ShipyardDaemon

@Suite struct TaskProcessTests {
    func process(_ dir: TemporaryDirectory, _ command: [String], timeout: Duration = .seconds(30)) -> TaskProcess {
        TaskProcess(
            triggered: KeptnEvent(id: "t1", type: "sh.keptn.event.je-test.triggered", time: "", context: "c1", data: .object([:])),
            command: command, timeout: timeout, project: "p", stage: "qa", service: "s", sequence: "delivery", task: "je-test",
            attempt: 1, worktree: dir.path, runDirectory: dir.path + "/run", logFile: dir.path + "/logs/qa-je-test.log")
    }

    @Test func outputBeyondTheCapIsDroppedWithANote() throws {
        let dir = try TemporaryDirectory()
        let outcome = process(dir, ["/bin/sh", "-c", "head -c 12000000 /dev/zero | tr '\\\\0' x"]).run(cancel: TaskCancel())
        #expect(outcome.result == .pass)
        let size = try FileManager.default.attributesOfItem(atPath: dir.path + "/logs/qa-je-test.log")[.size] as? Int ?? 0
        #expect(size > TaskProcess.maxLogBytes && size < TaskProcess.maxLogBytes + 1000)
        let tail = try String(contentsOfFile: dir.path + "/logs/qa-je-test.log", encoding: .utf8).suffix(300)
        #expect(tail.contains("output truncated at 10485760 bytes"))
    }

    @Test func theResultFileDecidesAndBadOnesAreErrors() throws {
        let dir = try TemporaryDirectory()
        let warning = process(dir, ["/bin/sh", "-c", #"echo '{"result":"warning","message":"slow","data":{"x":1}}' > "$SHIPYARD_RESULT""#]).run(cancel: TaskCancel())
        #expect(warning == TaskProcess.Outcome(result: .warning, status: .succeeded, message: "slow", data: .object(["x": .number(1)])))
        let bad = process(dir, ["/bin/sh", "-c", #"echo 'not json' > "$SHIPYARD_RESULT""#]).run(cancel: TaskCancel())
        #expect(bad.status == .errored)
        #expect(bad.message.contains("not a JSON object"))
        let wrong = process(dir, ["/bin/sh", "-c", #"echo '{"result":"ok"}' > "$SHIPYARD_RESULT""#]).run(cancel: TaskCancel())
        #expect(wrong.message == "je-test wrote result \"ok\"; use pass, warning or fail")
        let missing = process(dir, [dir.path + "/nope"]).run(cancel: TaskCancel())
        #expect(missing.message == "cannot start \(dir.path)/nope: No such file or directory")
        let signal = process(dir, ["/bin/sh", "-c", "kill -9 $$"]).run(cancel: TaskCancel())
        #expect(signal.message == "je-test was killed by signal 9")
    }

    @Test func cancellingTerminatesTheGroup() throws {
        let dir = try TemporaryDirectory()
        let cancel = TaskCancel()
        let thread = Thread {
            Thread.sleep(forTimeInterval: 0.5)
            cancel.cancel()
        }
        thread.start()
        let outcome = process(dir, ["/bin/sleep", "30"]).run(cancel: cancel)
        #expect(outcome == TaskProcess.Outcome(result: .fail, status: .aborted, message: "je-test aborted"))
    }

    /// ETXTBSY, reproduced: a descriptor open for writing on the program makes exec fail. The
    /// runner tries again while it lasts, and says so in the task's log.
    @Test func aProgramOpenForWritingIsStartedOnceTheWriterCloses() throws {
        let dir = try TemporaryDirectory()
        let program = try dir.write("tasks/deploy", "#!/bin/sh\necho deployed\n", mode: 0o755)
        let writer = open(program, O_WRONLY | O_CLOEXEC)
        try #require(writer >= 0)
        var task = process(dir, [program])
        task.busyRetryDelays = Array(repeating: 0.05, count: 1200)  // up to 60 s: the writer closes long before
        let runner = task
        // The runner blocks: it gets a thread of its own, and so does this test's waiting, so that
        // neither depends on Swift's cooperative pool, which other tests keep busy.
        let box = OutcomeBox()
        let thread = Thread { box.set(runner.run(cancel: TaskCancel())) }
        thread.start()
        let log = dir.path + "/logs/qa-je-test.log"
        var retried = false
        for _ in 0..<1200 where !retried {
            retried = ((try? String(contentsOfFile: log, encoding: .utf8)) ?? "").contains("Text file busy (open for writing by another process); trying again")
            if !retried { usleep(50_000) }
        }
        close(writer)
        #expect(retried)
        let outcome = box.wait(seconds: 120)
        #expect(outcome == TaskProcess.Outcome(result: .pass, status: .succeeded, message: ""))
        let text = try String(contentsOfFile: log, encoding: .utf8)
        #expect(text.contains("deployed\n"))
        #expect(text.contains("started on try "))
    }

    @Test func aProgramThatStaysBusyFailsTheTaskClearly() throws {
        let dir = try TemporaryDirectory()
        let program = try dir.write("tasks/deploy", "#!/bin/sh\necho deployed\n", mode: 0o755)
        let writer = open(program, O_WRONLY | O_CLOEXEC)
        try #require(writer >= 0)
        defer { close(writer) }
        var task = process(dir, [program])
        task.busyRetryDelays = [0.01, 0.02, 0.03]
        let outcome = task.run(cancel: TaskCancel())
        #expect(outcome.result == .fail)
        #expect(outcome.status == .errored)
        #expect(outcome.message == "cannot start \(program): Text file busy after 4 tries over 60ms: another process keeps it open for writing")
        let log = try String(contentsOfFile: dir.path + "/logs/qa-je-test.log", encoding: .utf8)
        #expect(log.components(separatedBy: "trying again").count == 4)
        #expect(!log.contains("deployed"))
    }
}

/// One value handed from a thread to a waiting test.
final class OutcomeBox: @unchecked Sendable {
    private let condition = NSCondition()
    private var value: TaskProcess.Outcome?

    func set(_ outcome: TaskProcess.Outcome) {
        condition.lock()
        value = outcome
        condition.broadcast()
        condition.unlock()
    }

    func wait(seconds: Double) -> TaskProcess.Outcome? {
        condition.lock()
        defer { condition.unlock() }
        let deadline = Date().addingTimeInterval(seconds)
        while value == nil, condition.wait(until: deadline) {}
        return value
    }
}
