import Foundation
import ShipyardCore
import ShipyardTestKit
import Testing

@testable import ShipyardDaemon

@Suite struct JournalTests {
    func event(_ id: String) -> KeptnEvent {
        KeptnEvent(id: id, type: "sh.keptn.event.qa.delivery.triggered", time: "2026-11-24T20:00:00.000Z", context: "c", data: .object(["project": .string("p")]))
    }

    @Test func appendsAndReadsBack() throws {
        let dir = try TemporaryDirectory()
        let journal = Journal(directory: dir.path)
        #expect(try journal.open().events.isEmpty)
        try journal.append([event("a"), event("b")])
        try journal.append([event("c")])
        let read = try Journal.read(directory: dir.path)
        #expect(read.events.map(\.id) == ["a", "b", "c"])
        #expect(read.dropped == nil)
    }

    @Test func aTornLastLineIsDroppedAndTruncatedAway() throws {
        let dir = try TemporaryDirectory()
        let first = Journal(directory: dir.path)
        _ = try first.open()
        try first.append([event("a"), event("b")])
        let handle = try #require(FileHandle(forWritingAtPath: first.path))
        try handle.seekToEnd()
        try handle.write(contentsOf: Data(#"{"id":"c","type":"sh.keptn"#.utf8))
        try handle.close()

        #expect(try Journal.read(directory: dir.path).dropped?.contains("torn last line") == true)
        let second = Journal(directory: dir.path)
        let loaded = try second.open()
        #expect(loaded.events.map(\.id) == ["a", "b"])
        #expect(loaded.dropped?.contains("torn last line") == true)
        try second.append([event("d")])
        let again = try Journal.read(directory: dir.path)
        #expect(again.events.map(\.id) == ["a", "b", "d"])
        #expect(again.dropped == nil)
    }

    @Test func damageInTheMiddleIsAnErrorNotSilence() throws {
        let dir = try TemporaryDirectory()
        try dir.write("events.jsonl", "{broken}\n" + String(decoding: try JSON.encode(event("a")), as: UTF8.self) + "\n")
        #expect(throws: AtomicFile.Failure.self) { try Journal.read(directory: dir.path) }
    }
}
