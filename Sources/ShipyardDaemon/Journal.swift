import Foundation
public import ShipyardCore

/// The durable record: one CloudEvent per line in `<state>/journal/events.jsonl`, appended and
/// fsynced before anything acts on it. A line torn by a crash mid-write is the only damage a
/// `kill -9` can do; it is detected and dropped on the next start.
public final class Journal {
    public let path: String
    private var fd: Int32 = -1
    private let encoder: JSONEncoder

    public struct Loaded {
        public var events: [KeptnEvent]
        /// Set when a torn or unreadable last line was dropped.
        public var dropped: String?
    }

    public init(directory: String) {
        path = directory + "/events.jsonl"
        encoder = JSONEncoder()
        encoder.outputFormatting = [.sortedKeys, .withoutEscapingSlashes]
    }

    deinit {
        if fd >= 0 { close(fd) }
    }

    /// Reads every event, truncating a torn last line away, and opens the file for appending.
    public func open() throws -> Loaded {
        try FileManager.default.createDirectory(atPath: (path as NSString).deletingLastPathComponent, withIntermediateDirectories: true)
        let loaded = try Self.read(path, repair: true)
        fd = Foundation.open(path, O_WRONLY | O_APPEND | O_CREAT | O_CLOEXEC, 0o640)
        guard fd >= 0 else { throw AtomicFile.Failure(description: "cannot open \(path): \(String(cString: strerror(errno)))") }
        return loaded
    }

    /// Reads the journal without changing it (the CLI's view).
    public static func read(directory: String) throws -> Loaded {
        try read(directory + "/events.jsonl", repair: false)
    }

    private static func read(_ path: String, repair: Bool) throws -> Loaded {
        guard let data = FileManager.default.contents(atPath: path) else { return Loaded(events: []) }
        let decoder = JSONDecoder()
        var events: [KeptnEvent] = []
        events.reserveCapacity(data.count / 600)
        var dropped: String?
        var goodEnd = 0
        var lineStart = data.startIndex
        var lineNumber = 0
        // Slices of `data` share its storage: the journal is never copied while it is read.
        while lineStart < data.endIndex {
            lineNumber += 1
            guard let newline = data[lineStart...].firstIndex(of: 0x0A) else {
                dropped = "dropped a torn last line (\(data.endIndex - lineStart) bytes without a newline) at line \(lineNumber)"
                break
            }
            let line = data[lineStart..<newline]
            if !line.isEmpty {
                do {
                    events.append(try decoder.decode(KeptnEvent.self, from: line))
                } catch {
                    if newline + 1 >= data.endIndex {
                        dropped = "dropped an unreadable last line \(lineNumber)"
                        break
                    }
                    throw AtomicFile.Failure(description: "\(path):\(lineNumber): unreadable event in the middle of the journal: \(error)")
                }
            }
            lineStart = newline + 1
            goodEnd = lineStart - data.startIndex
        }
        if dropped != nil, repair {
            truncate(path, off_t(goodEnd))
        }
        return Loaded(events: events, dropped: dropped)
    }

    /// Appends events as one write and one fsync: all of them are durable when this returns.
    /// When the write or the sync fails (a full disk), what was written of them is cut off again,
    /// so the record never keeps a torn line or events nothing acted on.
    public func append(_ events: [KeptnEvent]) throws {
        guard !events.isEmpty else { return }
        let before = lseek(fd, 0, SEEK_END)
        do {
            try write(events)
        } catch {
            if before >= 0 { _ = ftruncate(fd, before) }
            throw error
        }
    }

    private func write(_ events: [KeptnEvent]) throws {
        var buffer = Data()
        for event in events {
            buffer.append(try encoder.encode(event))
            buffer.append(0x0A)
        }
        try buffer.withUnsafeBytes { raw in
            var offset = 0
            while offset < raw.count {
                let n = Foundation.write(fd, raw.baseAddress! + offset, raw.count - offset)
                if n < 0 {
                    if errno == EINTR { continue }
                    throw AtomicFile.Failure(description: "cannot append to \(path): \(String(cString: strerror(errno)))")
                }
                offset += n
            }
        }
        guard fdatasync(fd) == 0 else {
            throw AtomicFile.Failure(description: "cannot sync \(path): \(String(cString: strerror(errno)))")
        }
    }
}
