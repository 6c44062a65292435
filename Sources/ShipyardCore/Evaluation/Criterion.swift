/// One SLO criterion such as `"<=800"`, `"<=+10%"` or `">=-5"`, read exactly as Keptn's
/// lighthouse-service reads it (`parseCriteriaString` in
/// keptn/keptn lighthouse-service/event_handler/evaluate_sli_handler.go).
///
/// - Spaces are removed anywhere in the string.
/// - The operators are `<=`, `<`, `=`, `>=` and `>`; there is no `!=`.
/// - A trailing `%` makes the criterion relative to the previous results, as an increase unless a
///   `-` follows the operator: `"<=10%"` means `"<=+10%"` (keptn#1498).
/// - A leading `+` or `-` without `%` is a relative change by an absolute amount.
/// - Anything else is a fixed threshold.
struct Criterion: Sendable, Equatable {
    var op: String
    var value: Double
    var checkPercentage = false
    var isComparison = false
    var checkIncrease = false

    /// Keptn's `^([<|<=|=|>|>=]{1,2})([+|-]{0,1}\d*\.?\d*)([%]{0,1})` is a character class: one or
    /// two of `<`, `|`, `=`, `>` at the start; the rest is only checked by the number parse.
    static func parse(_ written: String) throws(CriterionError) -> Criterion {
        var text = Substring(written.filter { $0 != " " })
        let prefix = text.prefix(2).prefix { "<|=>".contains($0) }
        guard !prefix.isEmpty else { throw .invalid }
        var criterion = Criterion(op: "", value: 0)
        for op in ["<=", "<", "=", ">=", ">"] where text.hasPrefix(op) {
            criterion.op = op
            text = text.dropFirst(op.count)
            break
        }
        if text.hasSuffix("%") {
            criterion.checkPercentage = true
            criterion.isComparison = true  // keptn#1498: a criterion with '%' is always a comparison
            criterion.checkIncrease = true
            text = text.dropLast()
        }
        if text.hasPrefix("-") {
            criterion.isComparison = true
            criterion.checkIncrease = false
            text = text.dropFirst()
        } else if text.hasPrefix("+") {
            criterion.isComparison = true
            criterion.checkIncrease = true
            text = text.dropFirst()
        }
        guard let number = GoFloat.parse(String(text)) else { throw .targetValue }
        criterion.value = number
        return criterion
    }

    /// The threshold the value is compared with: the written number, or for a relative criterion
    /// the aggregate of previous values changed by it (Keptn's `evaluateComparison`).
    func target(aggregate: Double) -> Double {
        guard isComparison else { return value }
        switch (checkPercentage, checkIncrease) {
        case (true, true): return (aggregate * (100.0 + value)) / 100.0
        case (true, false): return (aggregate * (100.0 - value)) / 100.0
        case (false, true): return aggregate + value
        case (false, false): return aggregate - value
        }
    }
}

/// Why a criterion string cannot be read; the texts are Keptn's.
enum CriterionError: Error, Sendable, Equatable, CustomStringConvertible {
    case invalid
    case targetValue
    case noOperator

    var description: String {
        switch self {
        case .invalid: return "invalid criteria string"
        case .targetValue: return "could not parse criteria target value"
        case .noOperator: return "no operator set"
        }
    }
}

/// Keptn's aggregation of previous values (`aggregateValues`, `calculateAverage`,
/// `calculatePercentile`).
enum SLOAggregate {
    static let functions = ["avg", "p50", "p90", "p95"]

    /// The aggregate of the previous successful values, or nil when there are none (Keptn's
    /// "skip": a relative criterion is then satisfied, with target value 0). An unknown function
    /// yields 0 as in Keptn; `SLOFile` and `Lighthouse.evaluate` refuse one before it gets here.
    static func of(_ values: [Double], function: String) -> Double? {
        guard !values.isEmpty else { return nil }
        switch function {
        case "avg": return average(values)
        case "p50": return percentile(values, 0.5)
        case "p90": return percentile(values, 0.9)
        case "p95": return percentile(values, 0.95)
        default: return 0
        }
    }

    static func average(_ values: [Double]) -> Double {
        guard !values.isEmpty else { return 0 }
        var sum = 0.0
        for value in values { sum += value }
        return sum / Double(values.count)
    }

    /// Rank `p·(n+1)` on the sorted values, interpolated between neighbours and clamped to the
    /// smallest and largest value.
    static func percentile(_ values: [Double], _ p: Double) -> Double {
        guard !values.isEmpty else { return 0 }
        let sorted = values.sorted()
        let size = sorted.count
        let pos = p * Double(size + 1)
        if pos < 1.0 { return sorted[0] }
        if pos >= Double(size) { return sorted[size - 1] }
        let lower = sorted[Int(pos) - 1]
        let upper = sorted[Int(pos)]
        return lower + (pos - pos.rounded(.down)) * (upper - lower)
    }
}

/// Go's `strconv.ParseFloat` and `fmt`'s `%v` for float64, so numbers in messages read as in Keptn.
enum GoFloat {
    /// A decimal or hexadecimal float, `Inf`/`NaN` in any case, with an optional sign.
    static func parse(_ text: String) -> Double? {
        guard !text.isEmpty else { return nil }
        guard text.allSatisfy({ $0.isASCII && !$0.isWhitespace }) else { return nil }
        return Double(text)
    }

    /// `%v` (`%g` with the shortest representation): exponent form when the decimal exponent is
    /// below -4 or at least 6, so 1234567 prints as 1.234567e+06 and 74 as 74.
    static func format(_ x: Double) -> String {
        if x.isNaN { return "NaN" }
        if x.isInfinite { return x < 0 ? "-Inf" : "+Inf" }
        if x == 0 { return x.sign == .minus ? "-0" : "0" }
        let sign = x < 0 ? "-" : ""
        // Swift's description is also the shortest representation that reads back exactly.
        let text = "\(abs(x))"
        var mantissa = Substring(text)
        var exponent = 0
        if let e = text.firstIndex(where: { $0 == "e" || $0 == "E" }) {
            mantissa = text[..<e]
            exponent = Int(text[text.index(after: e)...]) ?? 0
        }
        let parts = mantissa.split(separator: ".", omittingEmptySubsequences: false)
        let integer = parts.first.map(String.init) ?? ""
        let fraction = parts.count > 1 ? String(parts[1]) : ""
        var digits = Array(integer + fraction)
        var point = integer.count + exponent
        while digits.first == "0" {
            digits.removeFirst()
            point -= 1
        }
        while digits.last == "0" { digits.removeLast() }
        if digits.isEmpty { return "0" }
        let exp = point - 1
        if exp < -4 || exp >= 6 {
            var out = sign + String(digits[0])
            if digits.count > 1 { out += "." + String(digits[1...]) }
            let magnitude = abs(exp)
            out += (exp < 0 ? "e-" : "e+") + (magnitude < 10 ? "0" : "") + String(magnitude)
            return out
        }
        if point <= 0 {
            return sign + "0." + String(repeating: "0", count: -point) + String(digits)
        }
        if point >= digits.count {
            return sign + String(digits) + String(repeating: "0", count: point - digits.count)
        }
        return sign + String(digits[..<point]) + "." + String(digits[point...])
    }
}
