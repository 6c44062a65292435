import Foundation
import GRDB
import ShipyardCore

/// The upgrade from the journal of earlier releases (`<state>/journal/events.jsonl`, one
/// CloudEvent per line) to the store. It is crash-safe: the database is built under another
/// name and renamed into place only once complete, and the journal is then renamed to
/// `events.jsonl.imported` and kept. A kill at any point leaves either no database (the
/// import is done again) or a complete one that says which journal it came from.
public enum JournalImport {
    public struct Report: Sendable {
        public var events: Int
        public var sequences: Int
        public var seconds: Double
        /// A torn or unreadable last line that was left out, as the journal's own start did.
        public var dropped: String?
        public var keptAs: String
    }

    static let importedKey = "imported-journal"

    /// Fault injection for the crash tests (`SHIPYARD_FAULT_KILL_IMPORT`): SIGKILL this process
    /// after this many batches were written (`batch:N`), or once the database is in place and
    /// before the journal is renamed (`renamed`).
    private static func fault(_ point: String) {
        if ProcessInfo.processInfo.environment["SHIPYARD_FAULT_KILL_IMPORT"] == point { kill(getpid(), SIGKILL) }
    }

    /// Imports the journal when there is one to import; nil when there is none. `progress` is
    /// told the number of events imported so far after each batch (systemd's start timeout is
    /// extended with it: a long import must not be killed and begun again forever).
    public static func run(
        journal: String, into database: String, batch: Int = 5000, progress: (Int) -> Void = { _ in }
    ) throws -> Report? {
        var info = stat()
        guard stat(journal, &info) == 0 else { return nil }
        let signature = "\(info.st_size) bytes, modified \(info.st_mtim.tv_sec)"
        let keptAs = journal + ".imported"
        if FileManager.default.fileExists(atPath: database) {
            // A crash came after the database was complete and before the journal was renamed.
            let imported = try SQLiteStore(writingAt: database).meta(importedKey)
            guard imported == signature else {
                throw StoreError(
                    "both the old journal \(journal) and the event record \(database) exist, and the record was not made from this journal"
                        + (imported.map { " (it was made from one of \($0))" } ?? "")
                        + ": move the journal aside if it was put back by hand, or the record if the journal is the one to keep")
            }
            try rename(journal, to: keptAs)
            return Report(events: 0, sequences: 0, seconds: 0, dropped: nil, keptAs: keptAs)
        }

        let start = Date()
        let building = database + ".importing"
        for leftover in [building, building + "-wal", building + "-shm", building + "-journal"] { unlink(leftover) }
        var configuration = Configuration()
        configuration.prepareDatabase { db in
            try db.execute(sql: "PRAGMA auto_vacuum = INCREMENTAL")
            // Durability comes from the rename once complete: until then, a crash means starting over.
            try db.execute(sql: "PRAGMA journal_mode = OFF")
            try db.execute(sql: "PRAGMA synchronous = OFF")
        }
        var counts = (events: 0, sequences: 0)
        var dropped: String?
        do {
            try SQLiteStore.createPrivately(building)
            let queue = try DatabaseQueue(path: building, configuration: configuration)
            try SQLiteStore.migrator.migrate(queue)
            var engine = Engine()
            var events: [KeptnEvent] = []
            var bodies: [String] = []
            var batches = 0
            func flush() throws {
                let changes = engine.takeChanges()
                try queue.write { db in
                    try SQLiteStore.insert(events, bodies: bodies, db)
                    try SQLiteStore.upsert(changes, db)
                }
                counts.events += events.count
                batches += 1
                progress(counts.events)
                fault("batch:\(batches)")
                events.removeAll(keepingCapacity: true)
                bodies.removeAll(keepingCapacity: true)
            }
            let decoder = JSONDecoder()
            dropped = try JournalLines.read(journal) { line, number, isLast in
                let event: KeptnEvent
                do {
                    event = try decoder.decode(KeptnEvent.self, from: line)
                } catch {
                    if isLast { return "left out the unreadable last line \(number)" }
                    throw StoreError("\(journal):\(number): unreadable event in the middle of the journal (\(error)); nothing was imported: repair or remove that line, then start shipyardd again")
                }
                // A batch ends before any event but a follow-on stage's trigger, which belongs
                // with the end of the stage before it (the engine would forget the context's
                // origin in between).
                if events.count >= batch, !isFollowOn(event) { try flush() }
                engine.replay(event)
                events.append(event)
                bodies.append(String(decoding: line, as: UTF8.self))
                return nil
            }
            try flush()
            try queue.write { db in
                counts.sequences = try Int.fetchOne(db, sql: "SELECT count(*) FROM sequences") ?? 0
                try db.execute(sql: "INSERT INTO meta (key, value) VALUES (?, ?)", arguments: [importedKey, signature])
            }
            try queue.close()
        } catch let error as DatabaseError {
            unlink(building)
            throw StoreError("cannot import \(journal) into \(database): \(SQLiteStore.explain(error, path: building))")
        } catch {
            unlink(building)
            throw error
        }
        try syncFile(building)
        try rename(building, to: database)
        fault("renamed")
        try rename(journal, to: keptAs)
        return Report(events: counts.events, sequences: counts.sequences, seconds: Date().timeIntervalSince(start), dropped: dropped, keptAs: keptAs)
    }

    private static func isFollowOn(_ event: KeptnEvent) -> Bool {
        guard case .sequence(_, _, "triggered")? = event.kind else { return false }
        return event.source == "shipyardd"
    }

    private static func syncFile(_ path: String) throws {
        let fd = open(path, O_RDONLY | O_CLOEXEC)
        guard fd >= 0 else { throw StoreError("cannot open \(path): \(String(cString: strerror(errno)))") }
        defer { close(fd) }
        guard fsync(fd) == 0 else { throw StoreError("cannot sync \(path): \(String(cString: strerror(errno)))") }
    }

    private static func rename(_ from: String, to: String) throws {
        guard Foundation.rename(from, to) == 0 else {
            throw StoreError("cannot rename \(from) to \(to): \(String(cString: strerror(errno)))")
        }
        AtomicFile.syncDirectory((to as NSString).deletingLastPathComponent)
    }
}

/// Reads a file of lines in bounded memory, whatever its size.
enum JournalLines {
    /// Calls `line` with each non-empty line (without its newline), its number, and whether it
    /// is the last; a last line without a newline (torn by a crash) is left out. Returns what
    /// was left out, if anything (`line` may return a note to leave it out).
    static func read(_ path: String, chunk: Int = 4 << 20, _ line: (Data, Int, Bool) throws -> String?) throws -> String? {
        guard let handle = FileHandle(forReadingAtPath: path) else {
            throw StoreError("cannot read \(path): \(String(cString: strerror(errno)))")
        }
        defer { try? handle.close() }
        var buffer = Data()
        var number = 0
        var ended = false
        var pending: Data?
        var note: String?
        while !ended {
            let more = try handle.read(upToCount: chunk) ?? Data()
            if more.isEmpty { ended = true } else { buffer.append(more) }
            var start = buffer.startIndex
            while let newline = buffer[start...].firstIndex(of: 0x0A) {
                let text = buffer[start..<newline]
                start = newline + 1
                guard !text.isEmpty else { continue }
                // One line behind, so that the last one is known as such.
                if let previous = pending {
                    number += 1
                    note = try line(previous, number, false)
                }
                pending = Data(text)
            }
            buffer = Data(buffer[start...])
            if ended {
                let torn = !buffer.isEmpty
                if let previous = pending {
                    number += 1
                    note = try line(previous, number, !torn)
                }
                if torn {
                    note = "left out a torn last line \(number + 1) (\(buffer.count) bytes without a newline)"
                }
            }
        }
        return note
    }
}
