public import Foundation
#if canImport(FoundationNetworking)
import FoundationNetworking
#endif

/// A plain HTTP client for tests: one request at a time, redirects not followed (a test sees the
/// 303), no cookie jar (the test carries its cookies, as a forger would choose not to).
public struct HTTPClient: Sendable {
    public struct Reply: Sendable {
        public var status: Int
        public var headers: [String: String]
        public var body: String

        public func header(_ name: String) -> String? {
            headers.first { $0.key.lowercased() == name.lowercased() }?.value
        }

        /// `name=value` of a Set-Cookie, the attributes dropped.
        public var cookie: String? {
            header("Set-Cookie")?.split(separator: ";").first.map(String.init)
        }

        public var json: Any? { try? JSONSerialization.jsonObject(with: Data(body.utf8)) }
    }

    public let base: String

    public init(base: String) {
        self.base = base.hasSuffix("/") ? String(base.dropLast()) : base
    }

    public func get(_ path: String, headers: [String: String] = [:]) throws -> Reply {
        try request("GET", path, headers: headers)
    }

    public func post(_ path: String, form: [String: String], headers: [String: String] = [:]) throws -> Reply {
        let body = form.map { "\(Self.encode($0.key))=\(Self.encode($0.value))" }.joined(separator: "&")
        var all = headers
        all["Content-Type"] = "application/x-www-form-urlencoded"
        return try request("POST", path, headers: all, body: Data(body.utf8))
    }

    public func post(_ path: String, json: String, headers: [String: String] = [:]) throws -> Reply {
        var all = headers
        all["Content-Type"] = "application/json"
        return try request("POST", path, headers: all, body: Data(json.utf8))
    }

    public static func encode(_ text: String) -> String {
        text.addingPercentEncoding(withAllowedCharacters: .alphanumerics.union(CharacterSet(charactersIn: "-._~"))) ?? ""
    }

    public static func basic(_ user: String, _ password: String) -> String {
        "Basic " + Data("\(user):\(password)".utf8).base64EncodedString()
    }

    public func request(_ method: String, _ path: String, headers: [String: String] = [:], body: Data? = nil) throws -> Reply {
        guard let url = URL(string: base + path) else { throw ProcessFailure(description: "bad URL \(base + path)") }
        var request = URLRequest(url: url, timeoutInterval: 30)
        request.httpMethod = method
        request.httpShouldHandleCookies = false
        for (name, value) in headers { request.setValue(value, forHTTPHeaderField: name) }
        request.httpBody = body
        let delegate = NoRedirects()
        let configuration = URLSessionConfiguration.ephemeral
        configuration.httpCookieStorage = nil
        let session = URLSession(configuration: configuration, delegate: delegate, delegateQueue: nil)
        defer { session.invalidateAndCancel() }
        session.dataTask(with: request).resume()
        guard delegate.done.wait(timeout: .now() + 35) == .success else { throw ProcessFailure(description: "\(method) \(path): no answer") }
        return try delegate.reply(method: method, path: path)
    }

    private final class NoRedirects: NSObject, URLSessionDataDelegate, @unchecked Sendable {
        let done = DispatchSemaphore(value: 0)
        private let lock = NSLock()
        private var response: HTTPURLResponse?
        private var data = Data()
        private var error: (any Error)?

        func reply(method: String, path: String) throws -> Reply {
            try lock.withLock {
                if let error { throw ProcessFailure(description: "\(method) \(path): \(error)") }
                guard let response else { throw ProcessFailure(description: "\(method) \(path): no response") }
                var headers: [String: String] = [:]
                for (key, value) in response.allHeaderFields { headers["\(key)"] = "\(value)" }
                return Reply(status: response.statusCode, headers: headers, body: String(decoding: data, as: UTF8.self))
            }
        }

        func urlSession(
            _ session: URLSession, dataTask: URLSessionDataTask, didReceive response: URLResponse,
            completionHandler: @escaping (URLSession.ResponseDisposition) -> Void
        ) {
            lock.withLock { self.response = response as? HTTPURLResponse }
            completionHandler(.allow)
        }

        func urlSession(_ session: URLSession, dataTask: URLSessionDataTask, didReceive data: Data) {
            lock.withLock { self.data.append(data) }
        }

        func urlSession(
            _ session: URLSession, task: URLSessionTask, willPerformHTTPRedirection response: HTTPURLResponse, newRequest request: URLRequest,
            completionHandler: @escaping (URLRequest?) -> Void
        ) {
            lock.withLock { self.response = response }
            completionHandler(nil)
        }

        func urlSession(_ session: URLSession, task: URLSessionTask, didCompleteWithError error: (any Error)?) {
            lock.withLock { self.error = error }
            done.signal()
        }
    }
}
