import CCurl
import Foundation
import ShipyardCore

/// One webhook request, sent the way a daemon that holds secrets must send it: the host name is
/// resolved once, every address checked against the deny list (loopback, link-local and cloud
/// metadata addresses, this host's own, multicast), and the connection pinned to the address
/// checked (CURLOPT_RESOLVE), so a second DNS answer cannot point it elsewhere. Only http and
/// https; no proxy from the environment; a timeout for the whole exchange; at most
/// `maxResponseBytes` read; redirects only when both the host config and the file allow them,
/// each target checked again. Blocking: run it on a thread of its own.
struct OutboundHTTP: Sendable {
    struct Request: Sendable {
        var method: String
        var url: String
        var headers: [(String, String)]
        var body: [UInt8]?
        var followRedirects = false
    }

    struct Limits: Sendable {
        var timeout: Duration
        var maxResponseBytes: Int
        var allow: [DaemonConfig.CIDR]
        var caFile: String?
    }

    struct Response: Sendable {
        /// 0 when no response came.
        var status = 0
        var body: [UInt8] = []
        var truncated = false
        /// Why no response came: refused before sending, or the transport failed.
        var failure: String?
        /// Refused by the address checks (never sent).
        var refused = false
        var timedOut = false
        /// Where it was sent, last (after redirects).
        var address: String?
        /// A redirect's Location header.
        var locationHeader: String?
    }

    var limits: Limits

    static let maxRedirects = 5

    func send(_ request: Request) -> Response {
        var request = request
        var response = Response()
        let deadline = ContinuousClock.now + limits.timeout
        for hop in 0...Self.maxRedirects {
            let remaining = deadline - ContinuousClock.now
            guard remaining > .milliseconds(1) else {
                response.failure = "timed out after \(GoDuration.format(limits.timeout))"
                response.timedOut = true
                return response
            }
            response = once(request, timeout: remaining)
            guard request.followRedirects, [301, 302, 303, 307, 308].contains(response.status), let location = response.location(from: request.url) else {
                return response
            }
            if hop == Self.maxRedirects {
                response.failure = "more than \(Self.maxRedirects) redirects"
                return response
            }
            // curl's -L: a 303, or a 301/302 after a POST, continues as a GET without a body.
            if response.status == 303 || ([301, 302].contains(response.status) && request.method == "POST") {
                request.method = "GET"
                request.body = nil
            }
            let from = URLComponents(string: request.url)
            let to = URLComponents(string: location)
            if from?.scheme?.lowercased() == "https", to?.scheme?.lowercased() != "https" {
                response.failure = "redirected from https to \(to?.scheme ?? "?"):, which is not followed"
                return response
            }
            // Another origin gets none of the headers the file set (tokens travel in them), as
            // curl drops Authorization and cookies: only what describes the body.
            if from?.scheme?.lowercased() != to?.scheme?.lowercased() || from?.host?.lowercased() != to?.host?.lowercased() || from?.port != to?.port {
                request.headers = request.headers.filter { ["content-type", "accept"].contains($0.0.lowercased()) }
            }
            request.url = location
        }
        return response
    }

    /// The target, checked: scheme, host, port and every address it resolves to.
    struct Target {
        var host: String
        var port: Int
        /// Every address the name has, each checked.
        var addresses: [String]
    }

    static func target(_ url: String, allow: [DaemonConfig.CIDR]) -> Result<Target, OutboundFailure> {
        guard let components = URLComponents(string: url), let scheme = components.scheme?.lowercased() else {
            return .failure(OutboundFailure("\"\(url)\" is not a URL"))
        }
        guard scheme == "http" || scheme == "https" else {
            return .failure(OutboundFailure("only http and https URLs are called, not \(scheme):"))
        }
        guard var host = components.host, !host.isEmpty else { return .failure(OutboundFailure("the URL names no host")) }
        if host.hasPrefix("["), host.hasSuffix("]") { host = String(host.dropFirst().dropLast()) }
        guard host.unicodeScalars.allSatisfy({ $0.isASCII && $0.value > 0x20 && $0 != "%" && $0 != "\\" }) else {
            return .failure(OutboundFailure("the URL's host must be written in ASCII (an international name in its xn-- form), without % or \\"))
        }
        let port = components.port ?? (scheme == "https" ? 443 : 80)
        guard (1...65535).contains(port) else { return .failure(OutboundFailure("port \(port) is not a port")) }
        let addresses: [String]
        switch AddressPolicy.resolve(host) {
        case .success(let found): addresses = found
        case .failure(let failure): return .failure(failure)
        }
        for address in addresses {
            if let reason = AddressPolicy.denied(address, allow: allow) {
                return .failure(OutboundFailure(
                    "\(host) resolves to \(address), \(reason); webhooks may not call it unless webhooks.allow in the host config lists it", refused: true))
            }
        }
        return .success(Target(host: host, port: port, addresses: addresses))
    }

    private func once(_ request: Request, timeout: Duration) -> Response {
        var response = Response()
        let target: Target
        switch Self.target(request.url, allow: limits.allow) {
        case .success(let found): target = found
        case .failure(let failure):
            response.failure = failure.message
            response.refused = failure.refused
            return response
        }
        response.address = target.addresses[0]
        Self.globalInit
        guard let curl = curl_easy_init() else {
            response.failure = "libcurl could not start a request"
            return response
        }
        // Everything libcurl may still point at lives until curl_easy_cleanup, which runs first.
        let collector = Collector(limit: limits.maxResponseBytes)
        let context = Unmanaged.passRetained(collector)
        let errorBuffer = UnsafeMutablePointer<CChar>.allocate(capacity: Int(CURL_ERROR_SIZE) + 1)
        errorBuffer.initialize(repeating: 0, count: Int(CURL_ERROR_SIZE) + 1)
        // The checked addresses, NUL-separated, for the socket check.
        var allowedBytes = Array(target.addresses.joined(separator: "\u{0}").utf8CString)
        allowedBytes.append(0)
        let allowedList = UnsafeMutablePointer<CChar>.allocate(capacity: allowedBytes.count)
        allowedList.initialize(from: allowedBytes, count: allowedBytes.count)
        var headers: UnsafeMutablePointer<curl_slist>?
        // The pinned addresses: this name and port resolve to them and nothing else.
        let pinned = target.addresses.map { $0.contains(":") ? "[\($0)]" : $0 }.joined(separator: ",")
        let resolve: UnsafeMutablePointer<curl_slist>? = curl_slist_append(nil, "\(target.host):\(target.port):\(pinned)")
        defer {
            curl_easy_cleanup(curl)
            curl_slist_free_all(headers)
            curl_slist_free_all(resolve)
            allowedList.deallocate()
            errorBuffer.deallocate()
            context.release()
        }
        // libcurl copies string options (CURLOPT_URL and the rest) when they are set.
        func text(_ option: CURLoption, _ value: String) { _ = shipyard_curl_set_string(curl, option, value) }
        _ = shipyard_curl_set_slist(curl, CURLOPT_RESOLVE, resolve)
        _ = shipyard_curl_pin(curl, allowedList)
        _ = shipyard_curl_set_pointer(curl, CURLOPT_ERRORBUFFER, errorBuffer)
        text(CURLOPT_URL, request.url)
        text(CURLOPT_PROTOCOLS_STR, "http,https")
        text(CURLOPT_REDIR_PROTOCOLS_STR, "http,https")
        text(CURLOPT_NOPROXY, "*")
        text(CURLOPT_USERAGENT, "shipyardd-webhook")
        if let ca = limits.caFile {
            // Besides the system's: the file, and the system's folder of trusted certificates.
            text(CURLOPT_CAINFO, ca)
            if FileManager.default.fileExists(atPath: "/etc/ssl/certs") { text(CURLOPT_CAPATH, "/etc/ssl/certs") }
        }
        _ = shipyard_curl_set_long(curl, CURLOPT_NOSIGNAL, 1)
        _ = shipyard_curl_set_long(curl, CURLOPT_FOLLOWLOCATION, 0)
        _ = shipyard_curl_set_long(curl, CURLOPT_TIMEOUT_MS, max(1, Int(timeout.seconds * 1000)))
        _ = shipyard_curl_set_long(curl, CURLOPT_CONNECTTIMEOUT_MS, max(1, Int(min(timeout.seconds, 10) * 1000)))
        _ = shipyard_curl_set_long(curl, CURLOPT_SSL_VERIFYPEER, 1)
        _ = shipyard_curl_set_long(curl, CURLOPT_SSL_VERIFYHOST, 2)
        if request.method == "HEAD" {
            _ = shipyard_curl_set_long(curl, CURLOPT_NOBODY, 1)
        } else {
            text(CURLOPT_CUSTOMREQUEST, request.method)
        }
        if let body = request.body {
            _ = shipyard_curl_set_long(curl, CURLOPT_POSTFIELDSIZE, body.count)
            // COPYPOSTFIELDS: libcurl keeps its own copy, so the buffer may go.
            var copy = body + [0]
            copy.withUnsafeMutableBytes { _ = shipyard_curl_set_pointer(curl, CURLOPT_COPYPOSTFIELDS, $0.baseAddress) }
        }
        for (name, value) in request.headers { headers = curl_slist_append(headers, "\(name): \(value)") }
        // No 100-continue pause before a body.
        headers = curl_slist_append(headers, "Expect:")
        _ = shipyard_curl_set_slist(curl, CURLOPT_HTTPHEADER, headers)
        _ = shipyard_curl_set_write(curl, { data, size, count, context in
            let collector = Unmanaged<Collector>.fromOpaque(context!).takeUnretainedValue()
            return collector.take(data, size * count)
        }, context.toOpaque())
        _ = shipyard_curl_set_write_header(curl, { data, size, count, context in
            let collector = Unmanaged<Collector>.fromOpaque(context!).takeUnretainedValue()
            collector.header(data, size * count)
            return size * count
        }, context.toOpaque())
        let code = curl_easy_perform(curl)
        var status = 0
        _ = shipyard_curl_get_long(curl, CURLINFO_RESPONSE_CODE, &status)
        response.status = status
        response.body = collector.bytes
        response.truncated = collector.truncated
        response.locationHeader = collector.location
        switch code {
        case CURLE_OK:
            break
        case CURLE_WRITE_ERROR where collector.truncated:
            // The limit was reached: the status and the first bytes are what counts.
            break
        case CURLE_OPERATION_TIMEDOUT:
            response.timedOut = true
            response.failure = "timed out after \(GoDuration.format(limits.timeout))\(status > 0 ? " (status \(status) came, the body did not end)" : "")"
        case CURLE_COULDNT_CONNECT:
            let detail = String(cString: errorBuffer)
            response.failure = detail.isEmpty ? "could not connect to \(target.addresses.joined(separator: ", "))" : detail
        default:
            let detail = String(cString: errorBuffer)
            response.failure = detail.isEmpty ? String(cString: curl_easy_strerror(code)) : detail
        }
        return response
    }

    static let globalInit: Void = { _ = curl_global_init(Int(CURL_GLOBAL_DEFAULT)) }()

    /// The response's body and headers as they arrive, up to the limit.
    final class Collector: @unchecked Sendable {
        let limit: Int
        var bytes: [UInt8] = []
        var truncated = false
        var location: String?

        init(limit: Int) { self.limit = limit }

        func take(_ data: UnsafeMutablePointer<CChar>?, _ count: Int) -> Int {
            guard let data, count > 0 else { return 0 }
            let room = limit - bytes.count
            let kept = min(room, count)
            data.withMemoryRebound(to: UInt8.self, capacity: count) { bytes.append(contentsOf: UnsafeBufferPointer(start: $0, count: kept)) }
            if kept < count {
                truncated = true
                return 0  // stops the transfer
            }
            return count
        }

        func header(_ data: UnsafeMutablePointer<CChar>?, _ count: Int) {
            guard let data, count > 0 else { return }
            let line = data.withMemoryRebound(to: UInt8.self, capacity: count) { String(decoding: UnsafeBufferPointer(start: $0, count: count), as: UTF8.self) }
            if line.lowercased().hasPrefix("http/") { location = nil }  // a new response (after 100 Continue)
            if line.lowercased().hasPrefix("location:") {
                location = String(line.dropFirst("location:".count)).trimmingCharacters(in: .whitespacesAndNewlines)
            }
        }
    }
}

extension OutboundHTTP.Response {
    /// A redirect's target, resolved against the URL that answered.
    func location(from url: String) -> String? {
        guard let locationHeader, let base = URL(string: url), let target = URL(string: locationHeader, relativeTo: base) else { return nil }
        return target.absoluteString
    }
}

struct OutboundFailure: Error {
    var message: String
    var refused = false
    init(_ message: String, refused: Bool = false) {
        self.message = message
        self.refused = refused
    }
}

/// Which addresses a webhook may reach.
enum AddressPolicy {
    /// Every address of a host name (or the literal address itself).
    static func resolve(_ host: String) -> Result<[String], OutboundFailure> {
        var hints = addrinfo()
        hints.ai_socktype = Int32(SOCK_STREAM.rawValue)
        hints.ai_family = AF_UNSPEC
        var list: UnsafeMutablePointer<addrinfo>?
        let rc = getaddrinfo(host, nil, &hints, &list)
        guard rc == 0, let list else {
            return .failure(OutboundFailure("\(host) does not resolve: \(String(cString: gai_strerror(rc)))"))
        }
        defer { freeaddrinfo(list) }
        var addresses: [String] = []
        var node: UnsafeMutablePointer<addrinfo>? = list
        while let current = node {
            if let text = numeric(current.pointee.ai_addr), !addresses.contains(text) { addresses.append(text) }
            node = current.pointee.ai_next
        }
        guard !addresses.isEmpty else { return .failure(OutboundFailure("\(host) resolves to no address")) }
        return .success(addresses)
    }

    static func numeric(_ address: UnsafeMutablePointer<sockaddr>?) -> String? {
        guard let address else { return nil }
        var buffer = [CChar](repeating: 0, count: Int(INET6_ADDRSTRLEN) + 1)
        switch Int32(address.pointee.sa_family) {
        case AF_INET:
            return address.withMemoryRebound(to: sockaddr_in.self, capacity: 1) { v4 in
                var a = v4.pointee.sin_addr
                return inet_ntop(AF_INET, &a, &buffer, socklen_t(buffer.count)).map { _ in text(buffer) }
            }
        case AF_INET6:
            return address.withMemoryRebound(to: sockaddr_in6.self, capacity: 1) { v6 in
                var a = v6.pointee.sin6_addr
                return inet_ntop(AF_INET6, &a, &buffer, socklen_t(buffer.count)).map { _ in text(buffer) }
            }
        default:
            return nil
        }
    }

    private static func text(_ buffer: [CChar]) -> String {
        String(decoding: buffer.prefix { $0 != 0 }.map { UInt8(bitPattern: $0) }, as: UTF8.self)
    }

    static let deniedRanges: [(String, String)] = [
        ("0.0.0.0/8", "the unspecified network"), ("127.0.0.0/8", "a loopback address"), ("169.254.0.0/16", "a link-local address (cloud metadata lives there)"),
        ("100.100.100.200/32", "a cloud metadata address"), ("224.0.0.0/4", "a multicast address"), ("255.255.255.255/32", "the broadcast address"),
        ("::/128", "the unspecified address"), ("::1/128", "a loopback address"), ("fe80::/10", "a link-local address"), ("ff00::/8", "a multicast address"),
        ("fd00:ec2::254/128", "a cloud metadata address"),
    ]
    static let denied: [(DaemonConfig.CIDR, String)] = deniedRanges.map { (DaemonConfig.CIDR($0.0)!, $0.1) }

    /// Why the address is refused, or nil. The config's `allow` wins over every rule.
    static func denied(_ address: String, allow: [DaemonConfig.CIDR]) -> String? {
        var candidates = [address]
        // NAT64 (64:ff9b::/96) carries an IPv4 address: judged as that address too.
        if let bytes = DaemonConfig.CIDR.bytes(address), bytes.count == 16, bytes[0..<12] == [0, 0x64, 0xff, 0x9b, 0, 0, 0, 0, 0, 0, 0, 0] {
            candidates.append(bytes[12...].map(String.init).joined(separator: "."))
        }
        if allow.contains(where: { cidr in candidates.contains { cidr.contains($0) } }) { return nil }
        for candidate in candidates {
            if let rule = denied.first(where: { $0.0.contains(candidate) }) { return rule.1 }
            guard let own = ownAddresses() else {
                // Closed when it cannot be told: the address may be this host's.
                return "perhaps an address of this host, which cannot be listed (getifaddrs: \(String(cString: strerror(errno))); a systemd unit needs AF_NETLINK in RestrictAddressFamilies=)"
            }
            if own.contains(where: { DaemonConfig.CIDR.bytes($0) == DaemonConfig.CIDR.bytes(candidate) }) { return "an address of this host" }
        }
        return nil
    }

    /// This host's own addresses (every interface's); nil when they cannot be listed.
    static func ownAddresses() -> [String]? {
        var list: UnsafeMutablePointer<ifaddrs>?
        guard getifaddrs(&list) == 0, let list else { return nil }
        defer { freeifaddrs(list) }
        var addresses: [String] = []
        var node: UnsafeMutablePointer<ifaddrs>? = list
        while let current = node {
            if let text = numeric(current.pointee.ifa_addr) { addresses.append(text) }
            node = current.pointee.ifa_next
        }
        return addresses
    }
}
