import Foundation
#if canImport(FoundationNetworking)
import FoundationNetworking
#endif
import ShipyardCore

/// Keptn's `get-sli.triggered` data: what an SLI provider is asked for.
struct SLIRequest: Sendable, Encodable {
    var sliProvider: String
    var project: String
    var stage: String
    var service: String
    var start: String
    var end: String
    var indicators: [String]
    var customFilters: [String: String]
    var labels: [String: String]
    /// The queries of the SLI files found for this stage and service, when any were.
    var queries: [String: String]?

    var startDate: Date { Timestamps.parse(start) ?? Date(timeIntervalSince1970: 0) }
    var endDate: Date { Timestamps.parse(end) ?? Date(timeIntervalSince1970: 0) }
}

/// What a provider answered: the values, or why it could not give them.
struct SLIAnswer: Sendable {
    var values: [SLIResult]
    /// No usable answer (the program exited non-zero, was killed, timed out, printed no JSON; a
    /// Prometheus that cannot be reached): Keptn's provider that ends `errored`, so the
    /// evaluation is errored with the provider's own message, and nothing is scored.
    var failure: String?
    /// The provider answered `"result": "fail"` (as prometheus-service does when queries fail):
    /// its values are still scored, as Keptn does, and the evaluation fails with its message
    /// (unlike Keptn, `evaluation.result` fails too, keptn#6096).
    var reportedFail: String?
    var message: String?

    static func failed(_ message: String) -> SLIAnswer { SLIAnswer(values: [], failure: message) }
}

/// `sliProvider: {command: [...], timeout: 1m}`: a local program, no shell. It reads the request
/// as JSON on standard input and prints `{"indicatorValues": [{metric, value, success, message}]}`
/// (Keptn's `get-sli.finished` data) on standard output; its standard error goes to the task log.
struct CommandSLIProvider: Sendable {
    var executor: DaemonConfig.TaskExecutor
    /// The largest answer read.
    static let maxOutput = 1 << 20

    func fetch(_ request: SLIRequest, triggered: KeptnEvent, sequence: String, runDirectory: String, logFile: String, home: String?, cancel: TaskCancel) -> SLIAnswer {
        let program = executor.command[0]
        let inputPath = runDirectory + "/get-sli.json"
        let outputPath = runDirectory + "/get-sli.out"
        do {
            try FileManager.default.createDirectory(atPath: runDirectory, withIntermediateDirectories: true)
            try AtomicFile.write(try JSON.encode(request, pretty: true), to: inputPath, mode: 0o640)
        } catch {
            return .failed("cannot write the SLI provider's input: \(error)")
        }
        let process = TaskProcess(
            triggered: triggered, command: executor.command, timeout: executor.timeout, project: request.project, stage: request.stage,
            service: request.service, sequence: sequence, task: "sli-provider", attempt: 1, worktree: runDirectory,
            runDirectory: runDirectory, home: home, logFile: logFile, input: inputPath, output: outputPath)
        let ended = process.run(cancel: cancel)
        defer { unlink(outputPath) }
        guard ended.status == .succeeded else {
            // What went wrong, then the provider's own word on it: the message it printed, or
            // else the last line of its standard error; the log once.
            var how = ended.message.replacingOccurrences(of: "sli-provider ", with: "")
            if let cut = how.range(of: "; its output is in ") { how = String(how[..<cut.lowerBound]) }
            let said = Self.parse(outputPath: outputPath, program: program, logFile: logFile).message.flatMap { $0.isEmpty ? nil : $0 }
                ?? Self.lastLine(of: logFile)
            return .failed("the SLI provider \(program) \(how)\(said.map { ": \(Untrusted.printable($0, limit: 500))" } ?? "") (log: \(logFile))")
        }
        return Self.parse(outputPath: outputPath, program: program, logFile: logFile)
    }

    /// The last line a program wrote to a log file (its last 4 KiB), leaving out the daemon's own
    /// notes ("[shipyardd …] …").
    static func lastLine(of path: String) -> String? {
        guard let handle = FileHandle(forReadingAtPath: path) else { return nil }
        defer { try? handle.close() }
        let size = (try? handle.seekToEnd()) ?? 0
        try? handle.seek(toOffset: size > 4096 ? size - 4096 : 0)
        let tail = String(decoding: handle.readDataToEndOfFile(), as: UTF8.self)
        return tail.split(separator: "\n").last { !$0.trimmingCharacters(in: .whitespaces).isEmpty && !$0.hasPrefix("[shipyardd ") }.map(String.init)
    }

    static func parse(outputPath: String, program: String, logFile: String) -> SLIAnswer {
        var info = stat()
        guard stat(outputPath, &info) == 0 else { return .failed("the SLI provider \(program) printed nothing") }
        guard Int(info.st_size) <= maxOutput else {
            return .failed("the SLI provider \(program) printed \(info.st_size) bytes; at most \(maxOutput) are read")
        }
        guard let bytes = FileManager.default.contents(atPath: outputPath), !bytes.isEmpty else {
            return .failed("the SLI provider \(program) printed nothing; it must print {\"indicatorValues\": [{\"metric\", \"value\", \"success\", \"message\"}]}")
        }
        let value: JSONValue
        do {
            value = try JSON.decode(JSONValue.self, from: bytes)
        } catch {
            return .failed("the SLI provider \(program) printed something that is not JSON (\(Untrusted.printable(String(decoding: bytes.prefix(120), as: UTF8.self), limit: 120))); it must print {\"indicatorValues\": [...]}")
        }
        guard value.object != nil else {
            return .failed("the SLI provider \(program) printed \(value.compactDescription.prefix(80)), not a JSON object with indicatorValues")
        }
        // `"result": "fail"`: the values that came with it are still scored (Keptn).
        let reportedFail = value["result"]?.string == "fail"
            ? (value["message"]?.string).flatMap { $0.isEmpty ? nil : $0 } ?? "the SLI provider \(program) reported fail" : nil
        guard let items = value["indicatorValues"]?.array else {
            if let reportedFail { return SLIAnswer(values: [], reportedFail: reportedFail, message: value["message"]?.string) }
            return SLIAnswer(values: [], failure: "the SLI provider \(program) printed no indicatorValues list", message: value["message"]?.string)
        }
        var values: [SLIResult] = []
        for (index, item) in items.enumerated() {
            guard let metric = item["metric"]?.string, !metric.isEmpty else {
                return .failed("the SLI provider \(program): indicatorValues[\(index)] has no metric")
            }
            let success = item["success"]?.bool ?? false
            var number = 0.0
            switch item["value"] {
            case .number(let n)?: number = n
            case .string(let text)?:
                guard let parsed = Double(text) else {
                    return .failed("the SLI provider \(program): the value of \(metric) is \"\(Untrusted.printable(text, limit: 40))\", not a number")
                }
                number = parsed
            case nil, .null?:
                if success { return .failed("the SLI provider \(program): \(metric) has success true but no value") }
            default:
                return .failed("the SLI provider \(program): the value of \(metric) is not a number")
            }
            guard number.isFinite else { return .failed("the SLI provider \(program): the value of \(metric) is not a finite number") }
            values.append(SLIResult(metric: metric, value: number, success: success, message: item["message"]?.string))
        }
        return SLIAnswer(values: values, failure: nil, reportedFail: reportedFail, message: value["message"]?.string)
    }
}

/// `sliProvider: {prometheus: {url: …}}`: Keptn prometheus-service's way, built in. Each
/// indicator's query from the SLI files (placeholders expanded) is an instant query at the
/// timeframe's end through Prometheus's HTTP API. A query without exactly one finite sample fails
/// that indicator; a server that cannot be reached, answers with an error status or does not
/// answer within the timeout fails the whole evaluation.
struct PrometheusSLIProvider: Sendable {
    var settings: DaemonConfig.Prometheus

    func fetch(_ request: SLIRequest, deployment: String, cancel: TaskCancel) -> SLIAnswer {
        let queries = request.queries ?? [:]
        var authorization: String?
        do {
            authorization = try credentials()
        } catch {
            return .failed("\(error)")
        }
        let deadline = Date().addingTimeInterval(settings.timeout.seconds)
        var values: [SLIResult] = []
        for indicator in request.indicators {
            if cancel.isCancelled { return .failed("the evaluation was aborted") }
            guard let query = queries[indicator] else {
                values.append(SLIResult(metric: indicator, value: 0, success: false, message: "no query for \(indicator) in the SLI files"))
                continue
            }
            let expanded: String
            do {
                expanded = try PrometheusSLI.expand(
                    query, project: request.project, stage: request.stage, service: request.service, deployment: deployment,
                    filters: request.customFilters, labels: request.labels, start: request.startDate, end: request.endDate)
            } catch {
                // That indicator fails (and with it its objectives); the others are still measured.
                values.append(SLIResult(metric: indicator, value: 0, success: false, message: error.message))
                continue
            }
            let remaining = deadline.timeIntervalSinceNow
            guard remaining > 0 else {
                return .failed("Prometheus at \(settings.url) did not answer all queries within \(GoDuration.format(settings.timeout)) (sliProvider.prometheus.timeout)")
            }
            switch get(expanded, at: request.endDate, authorization: authorization, timeout: remaining) {
            case .unreachable(let message):
                return .failed(message)
            case .answered(let status, let body):
                switch PrometheusSLI.value(fromResponse: body) {
                case .success(let value):
                    values.append(SLIResult(metric: indicator, value: value, success: true, message: nil))
                case .failure(let error):
                    if status == 401 || status == 403 {
                        return .failed("Prometheus at \(settings.url) refused the credentials (HTTP \(status)); check sliProvider.prometheus.username, passwordFile or bearerTokenFile")
                    }
                    if !(200..<300).contains(status), status != 400, status != 422 {
                        return .failed("Prometheus at \(settings.url) answered HTTP \(status): \(error.message)")
                    }
                    values.append(SLIResult(metric: indicator, value: 0, success: false, message: "\(error.message) (query: \(Untrusted.printable(expanded, limit: 1000)))"))
                }
            }
        }
        return SLIAnswer(values: values, failure: nil)
    }

    private enum Response {
        case answered(Int, [UInt8])
        case unreachable(String)
    }

    private func get(_ query: String, at end: Date, authorization: String?, timeout: TimeInterval) -> Response {
        let configuration = URLSessionConfiguration.ephemeral
        configuration.timeoutIntervalForRequest = timeout
        configuration.timeoutIntervalForResource = timeout
        configuration.urlCache = nil
        configuration.httpCookieStorage = nil
        guard var components = URLComponents(string: settings.url + "/api/v1/query") else {
            return .unreachable("sliProvider.prometheus.url \(settings.url) is not a URL")
        }
        components.queryItems = [URLQueryItem(name: "query", value: query), URLQueryItem(name: "time", value: String(format: "%.3f", end.timeIntervalSince1970))]
        // URLComponents leaves '+' as it is, which a server reads as a space.
        components.percentEncodedQuery = components.percentEncodedQuery?.replacingOccurrences(of: "+", with: "%2B")
        guard let url = components.url else { return .unreachable("cannot build the query URL for \(settings.url)") }
        var request = URLRequest(url: url, timeoutInterval: timeout)
        request.setValue("application/json", forHTTPHeaderField: "Accept")
        if let authorization { request.setValue(authorization, forHTTPHeaderField: "Authorization") }
        let fetch = BoundedFetch(limit: Self.maxResponse)
        let session = URLSession(configuration: configuration, delegate: fetch, delegateQueue: nil)
        defer { session.invalidateAndCancel() }
        let task = session.dataTask(with: request)
        task.resume()
        if fetch.done.wait(timeout: .now() + timeout + 1) == .timedOut {
            task.cancel()
            return .unreachable("Prometheus at \(settings.url) did not answer within \(GoDuration.format(settings.timeout)) (sliProvider.prometheus.timeout)")
        }
        let (status, body, tooLarge, error) = fetch.result
        if tooLarge {
            return .unreachable("Prometheus at \(settings.url) answered with more than \(Self.maxResponse >> 20) MiB for one query; an SLI query must give one sample")
        }
        if (300..<400).contains(status) {
            return .unreachable("Prometheus at \(settings.url) answered with a redirect (HTTP \(status)), which is not followed (credentials stay with the configured URL); give the final URL")
        }
        if let error { return .unreachable("Prometheus at \(settings.url) cannot be reached: \(error)") }
        return .answered(status, body)
    }

    /// The Authorization header, read from the secret's file at each evaluation (a rotated secret
    /// needs no reload).
    private func credentials() throws -> String? {
        if let path = settings.bearerTokenFile {
            return "Bearer " + (try secret(path, what: "bearerTokenFile"))
        }
        if let path = settings.passwordFile, let user = settings.username {
            let password = try secret(path, what: "passwordFile")
            return "Basic " + Data("\(user):\(password)".utf8).base64EncodedString()
        }
        return nil
    }

    private func secret(_ path: String, what: String) throws -> String {
        guard let data = FileManager.default.contents(atPath: path) else {
            throw EngineError("cannot read sliProvider.prometheus.\(what) \(path): \(String(cString: strerror(errno)))")
        }
        var text = String(decoding: data.prefix(4096), as: UTF8.self)
        while text.hasSuffix("\n") || text.hasSuffix("\r") { text.removeLast() }
        return text
    }

    /// The most of one query's answer that is read: a query from the repository that matches
    /// every series must not exhaust the daemon's memory.
    static let maxResponse = 4 << 20

    /// One request's answer, read as it arrives: cancelled past `limit`, redirects not followed.
    private final class BoundedFetch: NSObject, URLSessionDataDelegate, @unchecked Sendable {
        let limit: Int
        let done = DispatchSemaphore(value: 0)
        private let lock = NSLock()
        private var status = 0
        private var body = Data()
        private var tooLarge = false
        private var error: String?

        init(limit: Int) {
            self.limit = limit
        }

        var result: (status: Int, body: [UInt8], tooLarge: Bool, error: String?) {
            lock.withLock { (status, Array(body), tooLarge, error) }
        }

        func urlSession(
            _ session: URLSession, dataTask: URLSessionDataTask, didReceive response: URLResponse,
            completionHandler: @escaping (URLSession.ResponseDisposition) -> Void
        ) {
            let large = response.expectedContentLength > Int64(limit)
            lock.withLock {
                status = (response as? HTTPURLResponse)?.statusCode ?? 0
                if large { tooLarge = true }
            }
            completionHandler(large ? .cancel : .allow)
        }

        func urlSession(_ session: URLSession, dataTask: URLSessionDataTask, didReceive data: Data) {
            let over = lock.withLock { () -> Bool in
                guard !tooLarge else { return true }
                body.append(data)
                if body.count > limit {
                    tooLarge = true
                    body = Data()
                }
                return tooLarge
            }
            if over { dataTask.cancel() }
        }

        func urlSession(
            _ session: URLSession, task: URLSessionTask, willPerformHTTPRedirection response: HTTPURLResponse, newRequest request: URLRequest,
            completionHandler: @escaping (URLRequest?) -> Void
        ) {
            lock.withLock { status = response.statusCode }
            completionHandler(nil)
        }

        func urlSession(_ session: URLSession, task: URLSessionTask, didCompleteWithError error: (any Error)?) {
            lock.withLock {
                if let error, !tooLarge { self.error = error.localizedDescription }
            }
            done.signal()
        }
    }
}
