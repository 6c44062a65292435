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
    /// Replaces the placeholders as prometheus-service's `replaceQueryParameters` does, in its
    /// order: each filter as `$key` and `$KEY` (quotes removed from the value), then `$PROJECT`,
    /// `$STAGE`, `$SERVICE`, `$DEPLOYMENT`, each label as `$LABEL.<key>`, and `$DURATION_SECONDS`
    /// (`ceil(end − start)` seconds + "s").
    ///
    /// Go iterates the filters and labels in random order; here the longer key goes first, so
    /// `$env` never eats the start of `$environment`.
    public static func expand(
        _ query: String, project: String, stage: String, service: String, deployment: String,
        filters: [String: String], labels: [String: String], start: Date, end: Date
    ) -> String {
        var query = query
        for key in ordered(filters.keys) {
            let value = (filters[key] ?? "").replacingOccurrences(of: "'", with: "").replacingOccurrences(of: "\"", with: "")
            query = query.replacingOccurrences(of: "$" + key, with: value)
            query = query.replacingOccurrences(of: "$" + key.uppercased(), with: value)
        }
        query = query.replacingOccurrences(of: "$PROJECT", with: project)
        query = query.replacingOccurrences(of: "$STAGE", with: stage)
        query = query.replacingOccurrences(of: "$SERVICE", with: service)
        query = query.replacingOccurrences(of: "$DEPLOYMENT", with: deployment)
        for key in ordered(labels.keys) {
            query = query.replacingOccurrences(of: "$LABEL." + key, with: labels[key] ?? "")
        }
        return query.replacingOccurrences(of: "$DURATION_SECONDS", with: durationSeconds(start: start, end: end))
    }

    /// `$DURATION_SECONDS`: `ceil(end − start)` in whole seconds, with an "s".
    public static func durationSeconds(start: Date, end: Date) -> String {
        let seconds = end.timeIntervalSince(start).rounded(.up)
        return String(Int64(seconds)) + "s"
    }

    private static func ordered(_ keys: Dictionary<String, String>.Keys) -> [String] {
        keys.filter { !$0.isEmpty }.sorted { ($0.count, $0) > ($1.count, $1) }
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
