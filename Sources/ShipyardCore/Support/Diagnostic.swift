/// One finding about a file a person wrote: where, how bad, and what to do.
public struct Diagnostic: Sendable, Hashable, CustomStringConvertible {
    public enum Severity: String, Sendable, Hashable, Codable {
        case error, warning
    }

    public var severity: Severity
    public var message: String
    public var mark: SourceMark

    public init(_ severity: Severity, _ message: String, at mark: SourceMark) {
        self.severity = severity
        self.message = message
        self.mark = mark
    }

    public var description: String { "\(mark): \(severity.rawValue): \(message)" }

    /// `FILE:LINE:COLUMN: error: MESSAGE`, the format compilers use and editors understand.
    public func formatted(file: String) -> String { "\(file):\(description)" }
}

/// Collects diagnostics while a file is checked, and hands them back in file order.
public struct DiagnosticLog: Sendable {
    public private(set) var items: [Diagnostic] = []

    public init() {}

    public mutating func error(_ message: String, at mark: SourceMark) {
        items.append(Diagnostic(.error, message, at: mark))
    }

    public mutating func warning(_ message: String, at mark: SourceMark) {
        items.append(Diagnostic(.warning, message, at: mark))
    }

    public var hasErrors: Bool { items.contains { $0.severity == .error } }

    /// Sorted by position; findings at the same place keep the order they were made in.
    public var sorted: [Diagnostic] {
        items.enumerated()
            .sorted { ($0.element.mark, $0.offset) < ($1.element.mark, $1.offset) }
            .map(\.element)
    }
}
