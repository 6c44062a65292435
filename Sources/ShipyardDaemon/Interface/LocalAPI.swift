public import Foundation
import ShipyardCore

/// Where the daemon's local API listens, and how the CLI finds it.
///
/// Under systemd the socket is `/run/shipyardd/shipyardd.sock`, made by `shipyardd.socket` and
/// handed to the daemon (socket activation), so requests queue in the kernel while the daemon
/// restarts. Started by hand, the daemon makes `<state>/shipyardd.sock` itself.
public enum LocalAPI {
    /// The socket `shipyardd.socket` makes.
    public static let systemSocket = "/run/shipyardd/shipyardd.sock"

    /// The socket the CLI talks to: `--socket`, else `SHIPYARD_SOCKET`, else the state
    /// directory's own socket when there is one, else the system's.
    public static func socketPath(explicit: String?, environment: [String: String], state: StateDirectory) -> String {
        if let explicit, !explicit.isEmpty { return explicit }
        if let path = environment["SHIPYARD_SOCKET"], !path.isEmpty { return path }
        var info = stat()
        if lstat(state.socket, &info) == 0, info.st_mode & S_IFMT == S_IFSOCK { return state.socket }
        // A state directory this user may not enter: say so about it, not about another socket.
        if errno == EACCES { return state.socket }
        return systemSocket
    }

    /// The most a request body may hold; a larger one is refused (413) before it is read whole.
    public static let maxBodyBytes = 64 * 1024

    /// Connections one user may hold open at once (root and the daemon's user too): a member who
    /// opens thousands only shuts herself out.
    public static let connectionsPerUser = 64
    /// Connections in all; then new ones are closed at once.
    public static let maxConnections = 512
    /// A connection that sends nothing for this long is closed.
    public static let idleSeconds: Int64 = 30
}

/// The CLI's side of the local API: one HTTP/1.1 request per connection over the unix socket.
/// Blocking, with a deadline; no Foundation networking (it cannot speak over a unix socket).
public struct LocalAPIClient: Sendable {
    public let path: String

    public init(path: String) {
        self.path = path
    }

    public struct Response: Sendable {
        public var status: Int
        /// Header names in lower case.
        public var headers: [String: String]
        public var body: Data
    }

    public enum Failure: Error, Sendable {
        /// Nothing to talk to: the socket is missing (ENOENT), nobody listens (ECONNREFUSED), or
        /// the caller may not open it (EACCES).
        case unreachable(errno: Int32)
        /// Connected, but no whole answer came within the deadline; `sent`: the whole request
        /// had been written (the daemon may still act on it).
        case noAnswer(sent: Bool)
        /// The connection broke or the answer was not HTTP.
        case broken(String)
    }

    public func get(_ target: String, timeout: Duration) throws -> Response {
        try request("GET", target, body: nil, timeout: timeout)
    }

    public func post(_ target: String, json: some Encodable, timeout: Duration) throws -> Response {
        try request("POST", target, body: try JSON.encode(json), timeout: timeout)
    }

    public func request(_ method: String, _ target: String, body: Data?, timeout: Duration) throws -> Response {
        let deadline = ContinuousClock.now + timeout
        let fd = socket(AF_UNIX, Int32(SOCK_STREAM.rawValue) | Int32(SOCK_CLOEXEC.rawValue), 0)
        guard fd >= 0 else { throw Failure.broken("cannot make a socket: \(String(cString: strerror(errno)))") }
        defer { close(fd) }
        var address = sockaddr_un()
        address.sun_family = sa_family_t(AF_UNIX)
        let bytes = Array(path.utf8)
        guard bytes.count < MemoryLayout.size(ofValue: address.sun_path) else { throw Failure.broken("the socket path \(path) is too long") }
        withUnsafeMutableBytes(of: &address.sun_path) { $0.copyBytes(from: bytes + [0]) }
        let connected = withUnsafePointer(to: &address) {
            $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { connect(fd, $0, socklen_t(MemoryLayout<sockaddr_un>.size)) }
        }
        guard connected == 0 else { throw Failure.unreachable(errno: errno) }
        var head = "\(method) \(target) HTTP/1.1\r\nHost: localhost\r\nUser-Agent: shipyardctl\r\nConnection: close\r\n"
        if let body { head += "Content-Type: application/json\r\nContent-Length: \(body.count)\r\n" }
        var message = Data((head + "\r\n").utf8)
        if let body { message.append(body) }
        // Nonblocking from here: every wait is bounded by the deadline.
        _ = fcntl(fd, F_SETFL, fcntl(fd, F_GETFL) | O_NONBLOCK)
        var offset = 0
        while offset < message.count {
            let n = message.withUnsafeBytes { send(fd, $0.baseAddress! + offset, $0.count - offset, Int32(MSG_NOSIGNAL)) }
            if n > 0 {
                offset += n
                continue
            }
            if n < 0, errno == EINTR { continue }
            if n < 0, errno == EAGAIN {
                guard wait(fd, for: Int16(POLLOUT), until: deadline) else { throw Failure.noAnswer(sent: false) }
                continue
            }
            throw Failure.broken("the connection to \(path) broke: \(String(cString: strerror(errno)))")
        }
        var received = Data()
        var buffer = [UInt8](repeating: 0, count: 65536)
        while true {
            if let response = try Self.parse(received, complete: false) { return response }
            let n = recv(fd, &buffer, buffer.count, 0)
            if n > 0 {
                received.append(contentsOf: buffer[0..<n])
                continue
            }
            if n == 0 {
                if let response = try Self.parse(received, complete: true) { return response }
                if received.isEmpty { throw Failure.noAnswer(sent: true) }
                throw Failure.broken("the answer from \(path) was cut off")
            }
            if errno == EINTR { continue }
            if errno == EAGAIN {
                guard wait(fd, for: Int16(POLLIN), until: deadline) else { throw Failure.noAnswer(sent: true) }
                continue
            }
            if errno == ECONNRESET, received.isEmpty { throw Failure.noAnswer(sent: true) }
            throw Failure.broken("the connection to \(path) broke: \(String(cString: strerror(errno)))")
        }
    }

    private func wait(_ fd: Int32, for events: Int16, until deadline: ContinuousClock.Instant) -> Bool {
        while true {
            let left = deadline - ContinuousClock.now
            guard left > .zero else { return false }
            var entry = pollfd(fd: fd, events: events, revents: 0)
            let milliseconds = Int32(min(Double(Int32.max), (left.seconds * 1000).rounded(.up)))
            let ready = poll(&entry, 1, milliseconds)
            if ready > 0 { return true }
            if ready < 0, errno != EINTR { return true }  // let the next call report it
        }
    }

    /// A whole response in `data`, or nil while more is to come. `complete`: the peer closed.
    static func parse(_ data: Data, complete: Bool) throws -> Response? {
        guard let end = data.firstRange(of: Data("\r\n\r\n".utf8)) else {
            if complete, !data.isEmpty { throw Failure.broken("the answer is not HTTP") }
            return nil
        }
        let head = String(decoding: data[..<end.lowerBound], as: UTF8.self).components(separatedBy: "\r\n")
        let statusParts = head.first?.split(separator: " ", maxSplits: 2) ?? []
        guard statusParts.count >= 2, statusParts[0].hasPrefix("HTTP/1."), let status = Int(statusParts[1]) else {
            throw Failure.broken("the answer is not HTTP")
        }
        var headers: [String: String] = [:]
        for line in head.dropFirst() {
            guard let colon = line.firstIndex(of: ":") else { continue }
            headers[line[..<colon].lowercased()] = line[line.index(after: colon)...].trimmingCharacters(in: .whitespaces)
        }
        let rest = data[end.upperBound...]
        if let length = headers["content-length"].flatMap(Int.init) {
            guard rest.count >= length else { return nil }
            return Response(status: status, headers: headers, body: Data(rest.prefix(length)))
        }
        if headers["transfer-encoding"]?.lowercased().contains("chunked") == true {
            var body = Data()
            var index = rest.startIndex
            while true {
                guard let lineEnd = rest[index...].firstRange(of: Data("\r\n".utf8)) else { return nil }
                let sizeText = String(decoding: rest[index..<lineEnd.lowerBound], as: UTF8.self).split(separator: ";").first ?? ""
                guard let size = Int(sizeText.trimmingCharacters(in: .whitespaces), radix: 16) else { throw Failure.broken("a chunk of the answer is malformed") }
                let start = lineEnd.upperBound
                if size == 0 { return Response(status: status, headers: headers, body: body) }
                guard rest.distance(from: start, to: rest.endIndex) >= size + 2 else { return nil }
                let stop = rest.index(start, offsetBy: size)
                body.append(rest[start..<stop])
                index = rest.index(stop, offsetBy: 2)
            }
        }
        return complete ? Response(status: status, headers: headers, body: Data(rest)) : nil
    }
}
