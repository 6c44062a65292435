/// Durations written the way Go's `time.ParseDuration` reads them (`90s`, `15m`, `1h30m`,
/// `1.5h`), because that is what Keptn's `triggeredAfter` takes and what operators already know.
public enum GoDuration {
    public enum ParseError: Error, Equatable, CustomStringConvertible {
        case empty
        case missingUnit(String)
        case unknownUnit(String)
        case malformed(String)
        case overflow(String)

        public var description: String {
            switch self {
            case .empty: return "an empty duration"
            case .missingUnit(let s): return "\"\(s)\" has no unit; write it with one, e.g. \"\(s)s\" or \"\(s)m\""
            case .unknownUnit(let u): return "unknown unit \"\(u)\"; use ns, us, ms, s, m or h"
            case .malformed(let s): return "\"\(s)\" is not a duration like \"90s\", \"15m\" or \"1h30m\""
            case .overflow(let s): return "\"\(s)\" is longer than the longest duration (about 292 years)"
            }
        }
    }

    private static let units: [(String, Int64)] = [
        ("ns", 1), ("us", 1_000), ("µs", 1_000), ("μs", 1_000), ("ms", 1_000_000),
        ("s", 1_000_000_000), ("m", 60_000_000_000), ("h", 3_600_000_000_000),
    ]

    /// Parses a duration into nanoseconds. Signs are accepted as Go accepts them.
    public static func nanoseconds(_ text: String) throws(ParseError) -> Int64 {
        var rest = Substring(text)
        guard !rest.isEmpty else { throw .empty }
        var negative = false
        if rest.first == "-" || rest.first == "+" {
            negative = rest.first == "-"
            rest = rest.dropFirst()
        }
        if rest == "0" { return 0 }
        guard !rest.isEmpty else { throw .malformed(text) }
        var total: Double = 0
        var exact: Int64 = 0
        var inexact = false
        while !rest.isEmpty {
            let whole = rest.prefix { $0.isASCIIDigit }
            rest = rest.dropFirst(whole.count)
            var fraction = Substring("")
            if rest.first == "." {
                rest = rest.dropFirst()
                fraction = rest.prefix { $0.isASCIIDigit }
                rest = rest.dropFirst(fraction.count)
            }
            guard !whole.isEmpty || !fraction.isEmpty else { throw .malformed(text) }
            let unitText = rest.prefix { $0.isLetter }
            rest = rest.dropFirst(unitText.count)
            guard !unitText.isEmpty else {
                if rest.isEmpty, fraction.isEmpty, total == 0 { throw .missingUnit(text) }
                throw .malformed(text)
            }
            guard let scale = units.first(where: { $0.0 == unitText })?.1 else {
                throw .unknownUnit(String(unitText))
            }
            let value = Double("\(whole.isEmpty ? "0" : String(whole)).\(fraction.isEmpty ? "0" : String(fraction))") ?? 0
            total += value * Double(scale)
            if fraction.isEmpty, let w = Int64(whole) {
                let (product, overflowA) = w.multipliedReportingOverflow(by: scale)
                let (sum, overflowB) = exact.addingReportingOverflow(product)
                if overflowA || overflowB { throw .overflow(text) }
                exact = sum
            } else {
                inexact = true
            }
            guard total < 9.2e18 else { throw .overflow(text) }
        }
        let result = inexact ? Int64(total.rounded()) : exact
        return negative ? -result : result
    }

    public static func duration(_ text: String) throws(ParseError) -> Duration {
        .nanoseconds(try nanoseconds(text))
    }

    /// Formats a duration the way Go prints one (`1h30m0s`), for messages.
    public static func format(_ duration: Duration) -> String {
        let (seconds, attos) = duration.components
        var nanos = seconds * 1_000_000_000 + attos / 1_000_000_000
        if nanos == 0 { return "0s" }
        var sign = ""
        if nanos < 0 { sign = "-"; nanos = -nanos }
        if nanos < 1_000_000_000 {
            if nanos % 1_000_000 == 0 { return "\(sign)\(nanos / 1_000_000)ms" }
            return "\(sign)\(nanos)ns"
        }
        let hours = nanos / 3_600_000_000_000
        let minutes = nanos / 60_000_000_000 % 60
        let secs = nanos % 60_000_000_000
        var out = sign
        if hours > 0 { out += "\(hours)h" }
        if hours > 0 || minutes > 0 { out += "\(minutes)m" }
        let wholeSeconds = secs / 1_000_000_000
        let fraction = secs % 1_000_000_000
        if fraction == 0 {
            out += "\(wholeSeconds)s"
        } else {
            var digits = String(fraction)
            digits = String(repeating: "0", count: 9 - digits.count) + digits
            while digits.hasSuffix("0") { digits.removeLast() }
            out += "\(wholeSeconds).\(digits)s"
        }
        return out
    }
}
