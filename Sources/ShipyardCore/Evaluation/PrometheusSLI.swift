public import Foundation

/// Why a Prometheus query gave no SLI value; the texts are prometheus-service's.
public struct PrometheusSLIError: Error, Sendable, Equatable, CustomStringConvertible {
    public var message: String

    public init(_ message: String) {
        self.message = message
    }

    public var description: String { message }
}

/// keptn-contrib/prometheus-service's query side (`utils/prometheus/prometheus.go`), pure: the
/// placeholders in an sli.yaml query, and the one-sample rule for the instant query's answer.
public enum PrometheusSLI {
    /// The longest query sent, placeholders expanded.
    public static let maxQueryBytes = 16 << 10

    /// Replaces the placeholders of prometheus-service's `replaceQueryParameters`: each filter as
    /// `$key` and `$KEY` (quotes removed from the value, as there), `$PROJECT`, `$STAGE`, `$SERVICE`,
    /// `$DEPLOYMENT`, each label as `$LABEL.<key>`, and `$DURATION_SECONDS` (`ceil(end − start)`
    /// seconds + "s"). A filter shadows a built-in name, as prometheus-service's order makes it.
    ///
    /// Where prometheus-service is unsafe, this is not:
    /// - One pass over the query as written: a value is never searched for placeholders again, so
    ///   filters that name each other cannot expand exponentially (Go replaced one name after the
    ///   other over the whole text, in random order), and the longest name wins at each `$`.
    /// - A value is put in as PromQL reads it where it lands: inside a `"…"` or `'…'` string it is
    ///   escaped as a string literal's content; inside a `` `…` `` string a backtick is refused;
    ///   outside strings only a plain token (letters, digits, `_`, `:`, `.`) is allowed. A label
    ///   such as `x"}[1m]) or vector(0) #` can no longer rewrite the query.
    /// - The result is at most `maxQueryBytes`.
    public static func expand(
        _ query: String, project: String, stage: String, service: String, deployment: String,
        filters: [String: String], labels: [String: String], start: Date, end: Date
    ) throws(PrometheusSLIError) -> String {
        var values: [String: (value: String, origin: String)] = [:]
        let builtIn = ["PROJECT": project, "STAGE": stage, "SERVICE": service, "DEPLOYMENT": deployment, "DURATION_SECONDS": durationSeconds(start: start, end: end)]
        for (name, value) in builtIn { values[name] = (value, "$" + name) }
        for (key, value) in labels where !key.isEmpty { values["LABEL." + key] = (value, "the label \(key)") }
        for (key, raw) in filters where !key.isEmpty {
            let value = raw.replacingOccurrences(of: "'", with: "").replacingOccurrences(of: "\"", with: "")
            values[key.uppercased()] = (value, "the filter \(key)")
            values[key] = (value, "the filter \(key)")
        }
        let names = values.keys.sorted { ($0.utf8.count, $0) > ($1.utf8.count, $1) }

        enum Context { case code, double, single, backtick, comment }
        var context = Context.code
        // The string being read is a regular expression (after `=~` or `!~`): a value in it is
        // matched literally, its metacharacters quoted as Go's regexp.QuoteMeta does.
        var regex = false
        let bytes = Array(query.utf8)
        var out: [UInt8] = []
        out.reserveCapacity(bytes.count)
        var i = 0
        func fits(_ more: Int) throws(PrometheusSLIError) {
            guard out.count + more <= maxQueryBytes else {
                throw PrometheusSLIError("the query is longer than \(ByteCount.format(maxQueryBytes)) once its placeholders are expanded; it is not sent")
            }
        }
        while i < bytes.count {
            let byte = bytes[i]
            if byte == UInt8(ascii: "$"), let name = names.first(where: { bytes[(i + 1)...].starts(with: $0.utf8) }), let entry = values[name] {
                let value = regex && context != .code && context != .comment ? Self.quoteMeta(entry.value) : entry.value
                let text = try literal(value, in: context, origin: entry.origin)
                try fits(text.count)
                out.append(contentsOf: text)
                i += 1 + name.utf8.count
                continue
            }
            switch (context, byte) {
            case (.code, UInt8(ascii: "\"")), (.code, UInt8(ascii: "'")), (.code, UInt8(ascii: "`")):
                context = byte == UInt8(ascii: "\"") ? .double : byte == UInt8(ascii: "'") ? .single : .backtick
                let before = out.reversed().drop { $0 == UInt8(ascii: " ") || $0 == UInt8(ascii: "\t") }.prefix(2)
                regex = Array(before) == [UInt8(ascii: "~"), UInt8(ascii: "=")] || Array(before) == [UInt8(ascii: "~"), UInt8(ascii: "!")]
            case (.code, UInt8(ascii: "#")): context = .comment
            case (.double, UInt8(ascii: "\"")), (.single, UInt8(ascii: "'")), (.backtick, UInt8(ascii: "`")), (.comment, 0x0A): context = .code
            case (.double, UInt8(ascii: "\\")), (.single, UInt8(ascii: "\\")):
                // An escape of the query's own: its next byte is part of the string.
                if i + 1 < bytes.count {
                    try fits(2)
                    out.append(contentsOf: bytes[i...(i + 1)])
                    i += 2
                    continue
                }
            default: break
            }
            try fits(1)
            out.append(byte)
            i += 1
        }
        return String(decoding: out, as: UTF8.self)

        func literal(_ value: String, in context: Context, origin: String) throws(PrometheusSLIError) -> [UInt8] {
            switch context {
            case .double, .single:
                let quote: UInt8 = context == .double ? UInt8(ascii: "\"") : UInt8(ascii: "'")
                var text: [UInt8] = []
                for byte in value.utf8 {
                    switch byte {
                    case quote, UInt8(ascii: "\\"): text += [UInt8(ascii: "\\"), byte]
                    case 0x0A: text += Array("\\n".utf8)
                    case 0x0D: text += Array("\\r".utf8)
                    case 0x09: text += Array("\\t".utf8)
                    case 0..<0x20, 0x7F: text += Array(String(format: "\\x%02x", byte).utf8)
                    default: text.append(byte)
                    }
                }
                return text
            case .backtick:
                guard !value.utf8.contains(UInt8(ascii: "`")) else {
                    throw PrometheusSLIError("\(origin) holds a backtick, which cannot be put inside the query's `…` string; the query is not sent")
                }
                return Array(value.utf8)
            case .comment:
                return value.utf8.map { $0 < 0x20 || $0 == 0x7F ? UInt8(ascii: " ") : $0 }
            case .code:
                guard value.utf8.allSatisfy({ isPlain($0) }) else {
                    throw PrometheusSLIError(
                        "\(origin) is \"\(Untrusted.printable(value, limit: 60))\", which is not a plain name or number and is outside quotes in the query; "
                            + "put the placeholder inside quotes (e.g. {env=\"$LABEL.env\"}) so that it is read as a string; the query is not sent")
                }
                return Array(value.utf8)
            }
        }

        func isPlain(_ byte: UInt8) -> Bool {
            switch byte {
            case UInt8(ascii: "a")...UInt8(ascii: "z"), UInt8(ascii: "A")...UInt8(ascii: "Z"), UInt8(ascii: "0")...UInt8(ascii: "9"),
                UInt8(ascii: "_"), UInt8(ascii: ":"), UInt8(ascii: "."):
                return true
            default: return false
            }
        }
    }

    /// A value matched literally inside a regular expression: RE2's metacharacters quoted with a
    /// backslash, as Go's `regexp.QuoteMeta` does.
    static func quoteMeta(_ value: String) -> String {
        var out = ""
        for character in value {
            if #"\.+*?()|[]{}^$"#.contains(character) { out.append("\\") }
            out.append(character)
        }
        return out
    }

    /// `$DURATION_SECONDS`: `ceil(end − start)` in whole seconds, with an "s".
    public static func durationSeconds(start: Date, end: Date) -> String {
        let seconds = end.timeIntervalSince(start).rounded(.up)
        return String(Int64(seconds)) + "s"
    }

    /// Reads a Prometheus HTTP API `/api/v1/query` response body. Exactly one sample gives its
    /// value; no sample is "query did not return any values", several "query did return multiple
    /// values" (prometheus-service's texts), a value that is not a finite number "query did not
    /// return valid values", and an API error its `errorType: error` text.
    ///
    /// Difference from prometheus-service: an infinite value (`+Inf`) is refused like NaN; Go's
    /// check only catches NaN, and an infinite SLI would pass or fail every criterion.
    public static func value(fromResponse body: [UInt8]) -> Result<Double, PrometheusSLIError> {
        guard let response = try? JSONDecoder().decode(JSONValue.self, from: Data(body)), response.object != nil else {
            let preview = String(decoding: body.prefix(200), as: UTF8.self)
            return .failure(PrometheusSLIError("unable to query prometheus api: the response is not JSON: \(preview)"))
        }
        if response["status"]?.string == "error" {
            let type = response["errorType"]?.string ?? "error"
            let text = response["error"]?.string ?? "unknown error"
            return .failure(PrometheusSLIError("unable to query prometheus api: \(type): \(text)"))
        }
        guard response["status"]?.string == "success", let data = response["data"] else {
            return .failure(PrometheusSLIError("unable to query prometheus api: the response has no status \"success\" and no data"))
        }
        let resultType = data["resultType"]?.string ?? "nothing"
        guard resultType == "vector", case .array(let samples)? = data["result"] else {
            return .failure(PrometheusSLIError("prometheus api response is not a Vector: \(resultType)"))
        }
        if samples.isEmpty { return .failure(PrometheusSLIError("query did not return any values")) }
        if samples.count > 1 { return .failure(PrometheusSLIError("query did return multiple values")) }
        guard case .array(let pair)? = samples[0]["value"], pair.count == 2 else {
            return .failure(PrometheusSLIError("query did not return valid values"))
        }
        let number: Double?
        switch pair[1] {
        case .string(let text): number = GoFloat.parse(text)
        case .number(let n): number = n
        default: number = nil
        }
        guard let number, number.isFinite else {
            return .failure(PrometheusSLIError("query did not return valid values"))
        }
        return .success(number)
    }
}
