import Foundation
import Hummingbird
import HTTPTypes
import Logging
import NIOCore
import ShipyardCore
import ShipyardDaemon

/// Responses with the security headers, cookies, redirects kept on this site, forms, and the
/// Host and cross-site checks.
extension Site {
    // MARK: Responses

    static let securityHeaders: [(HTTPField.Name, String)] = [
        (.contentSecurityPolicy, "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self'; connect-src 'self'; form-action 'self'; frame-ancestors 'none'; base-uri 'none'"),
        (HTTPField.Name("X-Content-Type-Options")!, "nosniff"),
        (HTTPField.Name("X-Frame-Options")!, "DENY"),
        (HTTPField.Name("Referrer-Policy")!, "same-origin"),
        (.cacheControl, "no-store"),
    ]

    func response(_ status: HTTPResponse.Status = .ok, type: String, body: String, identity: Identity? = nil, extra: [(HTTPField.Name, String)] = []) -> Response {
        response(status, type: type, body: ByteBuffer(string: body), identity: identity, extra: extra)
    }

    func response(_ status: HTTPResponse.Status = .ok, type: String, body: ByteBuffer, identity: Identity? = nil, extra: [(HTTPField.Name, String)] = []) -> Response {
        var headers = HTTPFields()
        headers[.contentType] = type
        for (name, value) in Self.securityHeaders + extra { headers[name] = value }
        if let token = identity?.newToken {
            headers.append(HTTPField(name: .setCookie, value: cookie(token)))
        }
        return Response(status: status, headers: headers, body: .init(byteBuffer: body))
    }

    func cookie(_ token: String, expire: Bool = false) -> String {
        var value = "\(Self.cookie)=\(token); Path=/; HttpOnly; SameSite=Strict"
        if http?.secureCookies == true { value += "; Secure" }
        if expire { value += "; Max-Age=0" }
        return value
    }

    /// A page, marked with the version of the record it was read at: its live stream says the
    /// version when it connects, and the page refreshes if something changed in between.
    func page(_ html: String, identity: Identity, status: HTTPResponse.Status = .ok) -> Response {
        var marked = html
        if let main = marked.range(of: "<main id=\"main\">") {
            marked.replaceSubrange(main, with: "<main id=\"main\" data-version=\"\(identity.version)\">")
        }
        return response(status, type: "text/html; charset=utf-8", body: marked, identity: identity)
    }

    func json(_ value: some Encodable, status: HTTPResponse.Status = .ok, extra: [(HTTPField.Name, String)] = []) -> Response {
        let body = (try? JSON.encode(value)).map { String(decoding: $0, as: UTF8.self) } ?? "null"
        return response(status, type: "application/json", body: body, extra: extra)
    }

    /// `GET /api/v1/sequences`: `true` when older sequences were left out.
    static let moreHeader = HTTPField.Name("Shipyard-More")!
    /// `GET /api/v1/events`: the position of the last event given (the next page's `after`).
    static let positionHeader = HTTPField.Name("Shipyard-Position")!

    struct Message: Encodable {
        var ok: Bool
        var message: String
        var context: String?
        var warnings: [String]?
    }

    func refusal(_ message: String, status: HTTPResponse.Status = .forbidden) -> Response {
        json(Message(ok: false, message: message), status: status)
    }

    func redirect(_ location: String, identity: Identity? = nil, extra: [(HTTPField.Name, String)] = []) -> Response {
        var headers = HTTPFields()
        headers[.location] = location
        for (name, value) in Self.securityHeaders + extra { headers[name] = value }
        if let token = identity?.newToken { headers.append(HTTPField(name: .setCookie, value: cookie(token))) }
        return Response(status: .seeOther, headers: headers)
    }

    /// A page-relative location to go back to: only a path of this site.
    static func safeBack(_ path: String?) -> String {
        guard let path, path.hasPrefix("/"), !path.hasPrefix("//"), !path.contains("\\"), path.count < 300,
            path.unicodeScalars.allSatisfy({ $0.value > 0x20 && $0.value < 0x7F })
        else { return "/approvals" }
        return path
    }

    static func form(_ body: String) -> [String: String] {
        var fields: [String: String] = [:]
        for pair in body.split(separator: "&") {
            let parts = pair.split(separator: "=", maxSplits: 1, omittingEmptySubsequences: false)
            func decode(_ s: Substring) -> String { s.replacingOccurrences(of: "+", with: " ").removingPercentEncoding ?? "" }
            guard let key = parts.first, !key.isEmpty else { continue }
            fields[decode(key)] = parts.count > 1 ? decode(parts[1]) : ""
        }
        return fields
    }

    /// Compares tokens in constant time.
    static func same(_ a: String?, _ b: String?) -> Bool {
        guard let a, let b, a.utf8.count == b.utf8.count, !a.isEmpty else { return false }
        var difference: UInt8 = 0
        for (x, y) in zip(a.utf8, b.utf8) { difference |= x ^ y }
        return difference == 0
    }

    /// The names this site answers to: the listen address, `localhost` on a loopback one, and
    /// publicURL's host. Anything else is refused, so that a page whose name was rebound to this
    /// address (DNS rebinding) cannot read or act through a browser on this host.
    static func allowedHosts(_ http: DaemonConfig.HTTP) -> Set<String> {
        var hosts: Set<String> = []
        if case .tcp(let host, let port) = http.listen {
            let name = host.contains(":") ? "[\(host)]" : host
            hosts.insert("\(name):\(port)")
            if host == "127.0.0.1" || host == "::1" { hosts.insert("localhost:\(port)") }
        }
        if let url = http.publicURL.flatMap(URL.init(string:)), let host = url.host {
            hosts.insert(host)
            if let port = url.port { hosts.insert("\(host):\(port)") }
        }
        return hosts
    }

    /// Whether the request names this site (always over the local socket: the proxy in front
    /// decides what names reach it, and no browser connects to it by itself).
    func hostAllowed(_ request: Request, context: WebContext, port: Int?) -> Bool {
        if context.local { return true }
        guard let authority = request.head.authority?.lowercased() else { return false }
        if allowed.contains(authority) { return true }
        // With port 0 in the config, the port is the one the server was given.
        if let port, case .tcp(let host, _)? = http?.listen {
            let name = host.contains(":") ? "[\(host)]" : host
            if authority == "\(name):\(port)" || ((host == "127.0.0.1" || host == "::1") && authority == "localhost:\(port)") { return true }
        }
        return false
    }

    /// A browser sends Origin with a POST: one that is not this site is refused whatever else the
    /// request holds (the cookie is SameSite=Strict as well).
    static func crossSite(_ request: Request) -> Bool {
        guard let origin = request.headers[.origin] else { return false }
        guard let host = request.head.authority else { return true }
        guard let url = URL(string: origin), let originHost = url.host else { return true }
        let originAuthority = url.port.map { "\(originHost):\($0)" } ?? originHost
        return originAuthority != host && originHost != host
    }
}
