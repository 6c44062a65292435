import Foundation

/// A server process the test started; stopped (with its children) when the value goes away.
///
/// A port chosen before the server binds it can be taken meanwhile (by another test's server, or
/// as the local port of an outgoing connection). So the server is started on a fresh port until
/// the listening socket on that port is one of its own descriptors: a port that accepts
/// connections but belongs to someone else never passes for ours.
public class BackgroundServer: @unchecked Sendable {
    let process: Subprocess
    public let port: Int

    /// `reserved`: run on that port, which the caller holds (a server restarted where it was).
    init(
        log: String? = nil, environment: [String: String] = [:], reserved: RefusingPort? = nil,
        command: (Int) throws -> (executable: String, arguments: [String])
    ) throws {
        var failures: [String] = []
        for _ in 0..<(reserved == nil ? 8 : 1) {
            let port = reserved?.port ?? freePort()
            let (executable, arguments) = try command(port)
            let sink = open(log ?? "/dev/null", O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0o644)
            defer { close(sink) }
            let process = try Subprocess(executable, arguments, environment: environment, stdout: sink, stderr: sink)
            if Self.waitUntilListening(process, port: port) {
                self.process = process
                self.port = port
                return
            }
            process.kill9()
            failures.append("\(executable) did not listen on 127.0.0.1:\(port)\(log.map { ": " + ((try? String(contentsOfFile: $0, encoding: .utf8)) ?? "") } ?? "")")
        }
        throw ProcessFailure(description: failures.joined(separator: "\n"))
    }

    deinit { stop() }

    public func stop() {
        process.kill9()
    }

    /// Waits (at most ten seconds) until `process` itself listens on the port; false as soon as it
    /// exits (the port was taken) or when it never does.
    static func waitUntilListening(_ process: Subprocess, port: Int) -> Bool {
        for _ in 0..<200 {
            if let inode = listeningSocketInode(port: port), ownsSocket(process.pid, inode: inode) { return true }
            if !process.isRunning { return false }
            usleep(50_000)
        }
        return false
    }

    /// The inode of the socket listening on 127.0.0.1:port (or 0.0.0.0:port), from /proc/net/tcp.
    static func listeningSocketInode(port: Int) -> String? {
        guard let table = try? String(contentsOfFile: "/proc/net/tcp", encoding: .utf8) else { return nil }
        let wanted = [String(format: "0100007F:%04X", port), String(format: "00000000:%04X", port)]
        for line in table.split(separator: "\n").dropFirst() {
            let fields = line.split(separator: " ")
            // sl local_address rem_address st tx_queue:rx_queue tr:tm->when retrnsmt uid timeout inode
            guard fields.count > 9, wanted.contains(String(fields[1])), fields[3] == "0A" else { continue }
            return String(fields[9])
        }
        return nil
    }

    static func ownsSocket(_ pid: pid_t, inode: String) -> Bool {
        let dir = "/proc/\(pid)/fd"
        let target = "socket:[\(inode)]"
        for fd in (try? FileManager.default.contentsOfDirectory(atPath: dir)) ?? [] {
            if (try? FileManager.default.destinationOfSymbolicLink(atPath: dir + "/" + fd)) == target { return true }
        }
        return false
    }
}

/// A loopback TCP port held bound but not listening: connections to it are refused, and no other
/// process can take it while the value lives, except a server started on it with `SO_REUSEADDR`
/// (git daemon's `--reuseaddr`). For tests of an unreachable remote, or of a server that stops and
/// comes back on the same port.
public final class RefusingPort: Sendable {
    public let port: Int
    private let fd: Int32

    public init() throws {
        (fd, port) = try boundLoopbackSocket()
    }

    deinit { close(fd) }
}

/// `git daemon` serving every repository under a folder over git:// on loopback.
public final class GitDaemonServer: BackgroundServer, @unchecked Sendable {
    /// `port`: serve on a port the test holds, so that a stopped server can come back where it was.
    public init(root: String, port: RefusingPort? = nil) throws {
        try super.init(reserved: port) { port in
            ("/usr/lib/git-core/git-daemon",
             ["--reuseaddr", "--listen=127.0.0.1", "--port=\(port)", "--base-path=\(root)", "--export-all", "--informative-errors", root])
        }
    }

    public func url(_ repository: String) -> String { "git://127.0.0.1:\(port)/\(repository)" }
}

/// `git http-backend` behind a small HTTP server that demands basic auth; the password is read
/// from a file at every request so a test can change it.
public final class HTTPGitServer: BackgroundServer, @unchecked Sendable {
    static let script = #"""
        import base64, subprocess, sys
        from http.server import ThreadingHTTPServer, BaseHTTPRequestHandler
        root, user, password_file, port = sys.argv[1], sys.argv[2], sys.argv[3], int(sys.argv[4])

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *args):
                pass
            def do_GET(self):
                self.cgi()
            def do_POST(self):
                self.cgi()
            def body(self):
                if self.headers.get("Transfer-Encoding", "").lower() == "chunked":
                    data = b""
                    while True:
                        size = int(self.rfile.readline().strip().split(b";")[0], 16)
                        if size == 0:
                            self.rfile.readline()
                            return data
                        data += self.rfile.read(size)
                        self.rfile.readline()
                length = int(self.headers.get("Content-Length") or 0)
                return self.rfile.read(length) if length else b""
            def cgi(self):
                body = self.body()
                with open(password_file) as f:
                    expected = f.read().strip()
                token = base64.b64encode(f"{user}:{expected}".encode()).decode()
                if self.headers.get("Authorization", "") != "Basic " + token:
                    self.send_response(401)
                    self.send_header("WWW-Authenticate", 'Basic realm="git"')
                    self.send_header("Content-Length", "0")
                    self.end_headers()
                    return
                path, _, query = self.path.partition("?")
                env = {"GIT_PROJECT_ROOT": root, "GIT_HTTP_EXPORT_ALL": "1", "PATH_INFO": path,
                       "QUERY_STRING": query, "REQUEST_METHOD": self.command, "REMOTE_USER": user,
                       "CONTENT_TYPE": self.headers.get("Content-Type", ""), "CONTENT_LENGTH": str(len(body)),
                       "PATH": "/usr/bin:/bin"}
                out = subprocess.run(["git", "http-backend"], input=body, env=env, capture_output=True).stdout
                sep = b"\r\n\r\n" if b"\r\n\r\n" in out else b"\n\n"
                head, _, content = out.partition(sep)
                status, headers = 200, []
                for line in head.replace(b"\r\n", b"\n").split(b"\n"):
                    key, _, value = line.decode().partition(":")
                    if key.lower() == "status":
                        status = int(value.strip().split()[0])
                    elif key:
                        headers.append((key, value.strip()))
                self.send_response(status)
                for key, value in headers:
                    self.send_header(key, value)
                self.send_header("Content-Length", str(len(content)))
                self.end_headers()
                self.wfile.write(content)

        ThreadingHTTPServer(("127.0.0.1", port), Handler).serve_forever()
        """#

    public init(root: String, user: String, passwordFile: String, scratch: String) throws {
        let script = scratch + "/git-http-server.py"
        try writeFile(script, Data(Self.script.utf8))
        let python = try Self.python()
        try super.init(log: scratch + "/http-server.log") { port in (python, [script, root, user, passwordFile, "\(port)"]) }
    }

    public func url(_ repository: String) -> String { "http://127.0.0.1:\(port)/\(repository)" }

    static func python() throws -> String {
        for candidate in ["/usr/bin/python3", "/usr/local/bin/python3"] where FileManager.default.isExecutableFile(atPath: candidate) {
            return candidate
        }
        let found = try Run.checked("/bin/sh", ["-c", "command -v python3"]).trimmingCharacters(in: .whitespacesAndNewlines)
        return found
    }
}

/// `sshd` on a high loopback port with a throwaway host key; the current user logs in with a
/// throwaway client key and runs git's upload-pack.
public final class SSHServer: BackgroundServer, @unchecked Sendable {
    public let clientKey: String
    public let hostPublicKey: String
    public let user: String

    public init(scratch: String) throws {
        let dir = scratch + "/sshd"
        try FileManager.default.createDirectory(atPath: dir, withIntermediateDirectories: true)
        try FileManager.default.createDirectory(atPath: "/run/sshd", withIntermediateDirectories: true)
        for key in ["host_key", "client_key"] {
            try Run.checked("/usr/bin/ssh-keygen", ["-q", "-t", "ed25519", "-N", "", "-C", "test", "-f", dir + "/" + key])
        }
        try FileManager.default.copyItem(atPath: dir + "/client_key.pub", toPath: dir + "/authorized_keys")
        clientKey = dir + "/client_key"
        hostPublicKey = try String(contentsOfFile: dir + "/host_key.pub", encoding: .utf8)
            .split(separator: " ").prefix(2).joined(separator: " ")
        let user = try Run.checked("/usr/bin/id", ["-un"]).trimmingCharacters(in: .whitespacesAndNewlines)
        self.user = user
        try super.init(log: dir + "/sshd.log") { port in
            let config = """
                Port \(port)
                ListenAddress 127.0.0.1
                HostKey \(dir)/host_key
                AuthorizedKeysFile \(dir)/authorized_keys
                PidFile \(dir)/sshd.pid
                StrictModes no
                UsePAM no
                PasswordAuthentication no
                KbdInteractiveAuthentication no
                PubkeyAuthentication yes
                PermitRootLogin prohibit-password
                AllowUsers \(user)
                LogLevel VERBOSE

                """
            try writeFile(dir + "/sshd_config", Data(config.utf8))
            return ("/usr/sbin/sshd", ["-D", "-e", "-f", dir + "/sshd_config"])
        }
    }

    public func url(_ path: String) -> String { "ssh://\(user)@127.0.0.1:\(port)\(path)" }

    /// A known_hosts line that trusts this server.
    public var knownHostsLine: String { "[127.0.0.1]:\(port) \(hostPublicKey)\n" }

    public static var isAvailable: Bool { FileManager.default.isExecutableFile(atPath: "/usr/sbin/sshd") }
}

/// Accepts TCP connections (the kernel completes them) and never says a word: the remote that
/// hangs a libgit2 call forever.
public final class SilentServer: Sendable {
    public let port: Int
    private let fd: Int32

    public init() throws {
        (fd, port) = try boundLoopbackSocket()
        guard listen(fd, 64) == 0 else { throw ProcessFailure(description: "cannot listen on loopback") }
    }

    deinit { close(fd) }
}

/// A TCP socket bound to a port of the kernel's choosing on 127.0.0.1, with `SO_REUSEADDR`.
private func boundLoopbackSocket() throws -> (fd: Int32, port: Int) {
    let fd = socket(AF_INET, Int32(SOCK_STREAM.rawValue), 0)
    var one: Int32 = 1
    setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, socklen_t(MemoryLayout<Int32>.size))
    var address = sockaddr_in()
    address.sin_family = sa_family_t(AF_INET)
    address.sin_addr.s_addr = inet_addr("127.0.0.1")
    address.sin_port = 0
    var length = socklen_t(MemoryLayout<sockaddr_in>.size)
    let bound = withUnsafePointer(to: &address) { $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { bind(fd, $0, length) } }
    guard bound == 0 else {
        close(fd)
        throw ProcessFailure(description: "cannot bind a loopback port")
    }
    _ = withUnsafeMutablePointer(to: &address) { $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { getsockname(fd, $0, &length) } }
    return (fd, Int(UInt16(bigEndian: address.sin_port)))
}

/// A TCP relay on loopback to another port that cuts every connection once it has relayed
/// `limit` bytes from the server: a fetch cut mid-pack. `limit` can change between connections.
public final class CuttingProxy: @unchecked Sendable {
    public let port: Int
    private let listener: Int32
    private let target: Int
    private let lock = NSLock()
    private var limitValue = Int.max
    private var stallsValue = false
    private var releasedValue = false

    public var limit: Int {
        get { lock.lock(); defer { lock.unlock() }; return limitValue }
        set { lock.lock(); limitValue = newValue; lock.unlock() }
    }

    /// Past `limit`, hold the connection open and silent instead of cutting it (a server that
    /// stopped sending mid-pack), until `release()` or the proxy goes.
    public var stalls: Bool {
        get { lock.lock(); defer { lock.unlock() }; return stallsValue }
        set { lock.lock(); stallsValue = newValue; lock.unlock() }
    }

    public func release() {
        lock.lock()
        releasedValue = true
        lock.unlock()
    }

    var released: Bool {
        lock.lock()
        defer { lock.unlock() }
        return releasedValue
    }

    public init(to target: Int) throws {
        self.target = target
        (listener, port) = try boundLoopbackSocket()
        guard listen(listener, 16) == 0 else { throw ProcessFailure(description: "cannot listen on loopback") }
        Thread { [unowned self] in self.accepting() }.start()
    }

    deinit {
        shutdown(listener, Int32(SHUT_RDWR))
        close(listener)
    }

    private func accepting() {
        while true {
            let client = accept(listener, nil, nil)
            guard client >= 0 else { return }
            let server = socket(AF_INET, Int32(SOCK_STREAM.rawValue), 0)
            var address = sockaddr_in()
            address.sin_family = sa_family_t(AF_INET)
            address.sin_addr.s_addr = inet_addr("127.0.0.1")
            address.sin_port = in_port_t(UInt16(target).bigEndian)
            let connected = withUnsafePointer(to: &address) {
                $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { connect(server, $0, socklen_t(MemoryLayout<sockaddr_in>.size)) }
            }
            guard connected == 0 else {
                close(client)
                close(server)
                continue
            }
            let limit = self.limit
            let stalls = self.stalls
            // client → server without a limit; server → client cut (or held) after `limit` bytes.
            Thread { Self.relay(from: client, to: server, limit: .max) }.start()
            Thread { [weak self] in
                Self.relay(from: server, to: client, limit: limit) {
                    // Held for at most ten minutes, whatever the test does.
                    for _ in 0..<12_000 where stalls && self?.released == false { usleep(50_000) }
                }
            }.start()
        }
    }

    private static func relay(from source: Int32, to destination: Int32, limit: Int, atLimit: () -> Void = {}) {
        var buffer = [UInt8](repeating: 0, count: 16384)
        var sent = 0
        while sent < limit {
            let n = read(source, &buffer, min(buffer.count, limit - sent))
            guard n > 0 else { break }
            guard write(destination, buffer, n) == n else { break }
            sent += n
        }
        if sent >= limit { atLimit() }
        shutdown(source, Int32(SHUT_RDWR))
        shutdown(destination, Int32(SHUT_RDWR))
    }
}
