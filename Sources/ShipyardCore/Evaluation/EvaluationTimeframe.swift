public import Foundation

/// Why no evaluation timeframe could be worked out; the texts are Keptn's where it has one.
public struct TimeframeError: Error, Sendable, Equatable, CustomStringConvertible {
    public var message: String

    public init(_ message: String) {
        self.message = message
    }

    public var description: String { message }
}

/// The timeframe an evaluation measures (lighthouse-service `getEvaluationTimestamps`, go-utils
/// `timeutils.GetStartEndTime`). The first rule that applies wins:
/// 1. `data.evaluation`: `start` + `end`, or `timeframe` (a Go duration) with or without `start`.
///    A timeframe alone is measured back from the evaluation.triggered event's time, not from
///    the clock (keptn#4094), which keeps replays deterministic.
/// 2. `data.test.start` + `data.test.end`, as a test task reports them.
/// 3. `fallback`: the preceding task's start and finish. Keptn fails here ("evaluation.triggered
///    event does not contain evaluation timeframe"); Shipyard measures the task before instead.
///
/// Differences from Keptn: an `end` without `start` is an error even without a `timeframe`
/// (Keptn then silently ignores `data.evaluation` and falls through to rule 2 or fails), and
/// `data.test` times must be readable (Keptn forwards them unread). A `start` alone is ignored,
/// as in Keptn.
public enum EvaluationTimeframe {
    /// - Parameters:
    ///   - data: the evaluation.triggered data (`data.evaluation.{start,end,timeframe}`,
    ///     `data.test.{start,end}`).
    ///   - eventTime: the evaluation.triggered event's time.
    ///   - fallback: the preceding task's start and finish, used when neither `data.evaluation`
    ///     nor `data.test` gives a timeframe.
    public static func resolve(
        data: JSONValue, eventTime: Date, fallback: (start: Date, end: Date)?
    ) -> Result<(start: Date, end: Date), TimeframeError> {
        do throws(TimeframeError) {
            let evaluation = data["evaluation"]
            let start = try text(evaluation?["start"], "evaluation.start")
            let end = try text(evaluation?["end"], "evaluation.end")
            let timeframe = try text(evaluation?["timeframe"], "evaluation.timeframe")
            if (start != nil && end != nil) || timeframe != nil || end != nil {
                return .success(try window(start: start, end: end, timeframe: timeframe, now: eventTime))
            }
            let test = data["test"]
            if let testStart = try text(test?["start"], "test.start"), let testEnd = try text(test?["end"], "test.end") {
                return .success((try timestamp(testStart, "test.start"), try timestamp(testEnd, "test.end")))
            }
            if let fallback {
                return .success(fallback)
            }
            throw TimeframeError("evaluation.triggered event does not contain evaluation timeframe")
        } catch {
            return .failure(error)
        }
    }

    /// go-utils `GetStartEndTime`, with `now` being the event's time.
    static func window(start: String?, end: String?, timeframe: String?, now: Date) throws(TimeframeError) -> (start: Date, end: Date) {
        if start != nil, end == nil, timeframe == nil {
            throw TimeframeError("no timeframe or end date provided")
        }
        if end != nil, timeframe != nil {
            throw TimeframeError("'end' and 'timeframe' are mutually exclusive")
        }
        if end != nil, start == nil {
            throw TimeframeError("start date is required when using an end date")
        }
        let seconds: Double
        do {
            seconds = Double(try GoDuration.nanoseconds(timeframe ?? "5m")) / 1e9
        } catch {
            throw TimeframeError("could not parse provided timeframe: \(error)")
        }
        var from = now.addingTimeInterval(-seconds)
        var to = now
        if let start { from = try timestamp(start, "evaluation.start") }
        if let end { to = try timestamp(end, "evaluation.end") }
        if start != nil, end == nil, timeframe != nil {
            to = from.addingTimeInterval(seconds)
        }
        if to.timeIntervalSince(from) / 60 < 1 {
            throw TimeframeError("end date must be at least 1 minute after start date")
        }
        return (from, to)
    }

    /// A non-empty string field; absent, null and "" are all "not given", as in Go.
    private static func text(_ value: JSONValue?, _ what: String) throws(TimeframeError) -> String? {
        switch value {
        case nil, .null?: return nil
        case .string(let s)?: return s.isEmpty ? nil : s
        case let other?: throw TimeframeError("data.\(what) must be a string, not \(other.compactDescription)")
        }
    }

    private static func timestamp(_ text: String, _ what: String) throws(TimeframeError) -> Date {
        guard let date = KeptnTime.parse(text) else {
            throw TimeframeError(
                "could not parse data.\(what) \"\(text)\"; write it like 2024-05-01T10:00:00.000Z (RFC 3339)")
        }
        return date
    }
}

/// go-utils `timeutils.ParseTimestamp`: `2006-01-02T15:04:05.000Z`, RFC 3339, or
/// `2006-01-02T15:04:05` (read as UTC); like Go, any fraction of a second is accepted.
/// Keptn's three time formats (`…T15:04:05.000Z`, RFC 3339, `…T15:04:05`): what an evaluation's
/// `start` and `end` may be written as; the CLI and the daemon check them with this too.
public enum KeptnTime {
    public static func parse(_ text: String) -> Date? {
        let chars = Array(text.utf8)
        var i = 0
        func number(_ count: Int) -> Int? {
            guard i + count <= chars.count else { return nil }
            var value = 0
            for c in chars[i..<(i + count)] {
                guard c >= 48, c <= 57 else { return nil }
                value = value * 10 + Int(c - 48)
            }
            i += count
            return value
        }
        func expect(_ c: UInt8) -> Bool {
            guard i < chars.count, chars[i] == c else { return false }
            i += 1
            return true
        }
        guard let year = number(4), expect(45), let month = number(2), expect(45), let day = number(2),
            expect(84), let hour = number(2), expect(58), let minute = number(2), expect(58), let second = number(2)
        else { return nil }
        var fraction = 0.0
        if i < chars.count, chars[i] == 46 {  // "."
            i += 1
            var scale = 0.1
            var digits = 0
            while i < chars.count, chars[i] >= 48, chars[i] <= 57 {
                fraction += Double(chars[i] - 48) * scale
                scale /= 10
                digits += 1
                i += 1
            }
            guard digits > 0 else { return nil }
        }
        var offset = 0
        if i < chars.count {
            if chars[i] == 90 {  // "Z"
                i += 1
            } else if chars[i] == 43 || chars[i] == 45 {  // "+" / "-"
                let sign = chars[i] == 45 ? -1 : 1
                i += 1
                guard let hours = number(2), expect(58), let minutes = number(2), hours < 24, minutes < 60 else { return nil }
                offset = sign * (hours * 3600 + minutes * 60)
            } else {
                return nil
            }
        }
        guard i == chars.count else { return nil }
        guard (1...12).contains(month), day >= 1, day <= daysIn(month: month, year: year), hour < 24, minute < 60,
            second < 60
        else { return nil }
        let days = daysFromCivil(year: year, month: month, day: day)
        let seconds = Double(days * 86400 + hour * 3600 + minute * 60 + second - offset) + fraction
        return Date(timeIntervalSince1970: seconds)
    }

    private static func daysIn(month: Int, year: Int) -> Int {
        switch month {
        case 2: return (year % 4 == 0 && year % 100 != 0) || year % 400 == 0 ? 29 : 28
        case 4, 6, 9, 11: return 30
        default: return 31
        }
    }

    /// Days since 1970-01-01 in the proleptic Gregorian calendar (H. Hinnant's algorithm).
    private static func daysFromCivil(year: Int, month: Int, day: Int) -> Int {
        let y = month <= 2 ? year - 1 : year
        let era = (y >= 0 ? y : y - 399) / 400
        let yoe = y - era * 400
        let mp = (month + 9) % 12
        let doy = (153 * mp + 2) / 5 + day - 1
        let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy
        return era * 146097 + doe - 719468
    }
}
