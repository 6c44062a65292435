public import Foundation
public import Logging
import ShipyardCore

/// Log lines for people: under systemd (`JOURNAL_STREAM` set) each line starts with its syslog
/// priority (`<3>`), which journald turns into the entry's level and `journalctl -p` filters on;
/// elsewhere each line starts with a UTC timestamp and the level.
public struct DaemonLogHandler: LogHandler {
    public var logLevel: Logger.Level = .info
    public var metadata: Logger.Metadata = [:]
    private let label: String
    private let journal: Bool

    public init(label: String, journal: Bool) {
        self.label = label
        self.journal = journal
    }

    /// Chooses the format from the environment, as the daemon does at start.
    public static func bootstrap(environment: [String: String] = ProcessInfo.processInfo.environment, level: Logger.Level = .info) {
        let journal = environment["JOURNAL_STREAM"] != nil
        LoggingSystem.bootstrap { label in
            var handler = DaemonLogHandler(label: label, journal: journal)
            handler.logLevel = level
            return handler
        }
    }

    public subscript(metadataKey key: String) -> Logger.Metadata.Value? {
        get { metadata[key] }
        set { metadata[key] = newValue }
    }

    public func log(event: LogEvent) {
        var fields = metadata
        if let extra = event.metadata { fields.merge(extra) { $1 } }
        var line = journal
            ? "<\(Self.priority(event.level))>"
            : "\(Timestamp.string(Date())) \(event.level.rawValue.uppercased()) "
        // Everything is escaped: a name from a request file or a repository can neither start a
        // new line (a forged entry, a journald priority) nor carry terminal escapes.
        if let project = fields.removeValue(forKey: "project") { line += "[\(Untrusted.printable("\(project)"))] " }
        line += Untrusted.printable("\(event.message)", limit: 4096)
        for (key, value) in fields.sorted(by: { $0.key < $1.key }) {
            let text = Untrusted.printable("\(value)", limit: 1024)
            line += text.contains(" ") || text.contains("\"") ? " \(key)=\"\(text.replacingOccurrences(of: "\"", with: "\\\""))\"" : " \(key)=\(text)"
        }
        line += "\n"
        FileHandle.standardError.write(Data(line.utf8))
    }

    static func priority(_ level: Logger.Level) -> Int {
        switch level {
        case .trace, .debug: return 7
        case .info: return 6
        case .notice: return 5
        case .warning: return 4
        case .error: return 3
        case .critical: return 2
        }
    }
}
