import Foundation

/// A webhook receiver on loopback (Python's http.server), optionally over TLS with a certificate
/// from a local CA, that records every request it gets as a JSON line and answers by path:
/// `/ok…` 200 with a JSON body, `/fail…` 500 with a text body, `/flaky/NAME` 500 the first time
/// and 200 after, `/hang…` nothing for two minutes, `/hangonce/NAME` that the first time, 200 after, `/redirect` 302 to `/ok`, `/redirectto?to=URL` 302 to URL, `/big` 200 with
/// 4 MiB of body; anything else 200.
public final class HookServer: BackgroundServer, @unchecked Sendable {
    static let script = #"""
        import json, ssl, sys, threading, time
        from http.server import ThreadingHTTPServer, BaseHTTPRequestHandler
        port, log = int(sys.argv[1]), sys.argv[2]
        cert = sys.argv[3] if len(sys.argv) > 4 else None
        key = sys.argv[4] if len(sys.argv) > 4 else None
        lock = threading.Lock()
        seen = set()

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"
            def log_message(self, *args):
                pass
            def handle_any(self):
                length = int(self.headers.get("Content-Length") or 0)
                body = self.rfile.read(length) if length else b""
                with lock:
                    with open(log, "a") as f:
                        f.write(json.dumps({"method": self.command, "path": self.path, "headers": dict(self.headers.items()),
                                            "body": body.decode("utf-8", "replace")}) + "\n")
                path = self.path
                if path.startswith("/hangonce/"):
                    with lock:
                        first = path not in seen
                        seen.add(path)
                    if first:
                        time.sleep(120)
                    return self.answer(200, b'{"second": true}')
                if path.startswith("/hang"):
                    time.sleep(120)
                    return self.answer(200, b"late")
                if path.startswith("/fail"):
                    return self.answer(500, b"build broke: no runner available")
                if path.startswith("/flaky/"):
                    with lock:
                        first = path not in seen
                        seen.add(path)
                    return self.answer(500 if first else 200, b"flaky")
                if path.startswith("/redirectto?to="):
                    from urllib.parse import unquote
                    self.send_response(302)
                    self.send_header("Location", unquote(path[len("/redirectto?to="):]))
                    self.send_header("Content-Length", "0")
                    self.end_headers()
                    return
                if path.startswith("/redirect"):
                    self.send_response(302)
                    self.send_header("Location", "/ok")
                    self.send_header("Content-Length", "0")
                    self.end_headers()
                    return
                if path.startswith("/big"):
                    return self.answer(200, b"x" * (4 << 20))
                return self.answer(200, b'{"ok": true, "run": 42}')
            def answer(self, status, body):
                self.send_response(status)
                self.send_header("Content-Type", "application/json" if body.startswith(b"{") else "text/plain")
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                try:
                    self.wfile.write(body)
                except OSError:
                    pass
            do_GET = do_POST = do_PUT = do_DELETE = do_PATCH = handle_any
            def do_HEAD(self):
                self.handle_any()

        server = ThreadingHTTPServer(("127.0.0.1", port), Handler)
        server.daemon_threads = True
        if cert:
            context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
            context.load_cert_chain(cert, key)
            server.socket = context.wrap_socket(server.socket, server_side=True)
        server.serve_forever()
        """#

    public let requestLog: String
    public let tls: Bool

    /// `certificate`: a certificate and key (e.g. from `LocalCA`) to serve https.
    public init(scratch: String, name: String = "hooks", certificate: (cert: String, key: String)? = nil) throws {
        let script = scratch + "/hook-server.py"
        try writeFile(script, Data(Self.script.utf8))
        let log = scratch + "/\(name)-requests.jsonl"
        requestLog = log
        tls = certificate != nil
        let python = try HTTPGitServer.python()
        try super.init(log: scratch + "/\(name)-server.log") { port in
            (python, [script, "\(port)", log] + (certificate.map { [$0.cert, $0.key] } ?? []))
        }
    }

    public func url(_ path: String) -> String { "\(tls ? "https" : "http")://127.0.0.1:\(port)\(path)" }

    /// The requests received so far.
    public var requests: [[String: Any]] {
        guard let text = try? String(contentsOfFile: requestLog, encoding: .utf8) else { return [] }
        return text.split(separator: "\n").compactMap { try? JSONSerialization.jsonObject(with: Data($0.utf8)) as? [String: Any] }
    }
}

/// A certificate authority made for one test, and a server certificate it signed for 127.0.0.1.
public struct LocalCA: Sendable {
    public let caFile: String
    public let cert: String
    public let key: String

    public init(in directory: String) throws {
        caFile = directory + "/ca.pem"
        cert = directory + "/server.pem"
        key = directory + "/server.key"
        let caKey = directory + "/ca.key"
        let csr = directory + "/server.csr"
        let ext = directory + "/server.ext"
        try writeFile(ext, Data("subjectAltName=IP:127.0.0.1,DNS:localhost\nbasicConstraints=CA:FALSE\n".utf8))
        _ = try Run.checked("/usr/bin/openssl", ["req", "-x509", "-newkey", "rsa:2048", "-nodes", "-keyout", caKey, "-out", caFile, "-subj", "/CN=shipyard test CA", "-days", "2"])
        _ = try Run.checked("/usr/bin/openssl", ["req", "-newkey", "rsa:2048", "-nodes", "-keyout", key, "-out", csr, "-subj", "/CN=127.0.0.1"])
        _ = try Run.checked("/usr/bin/openssl", ["x509", "-req", "-in", csr, "-CA", caFile, "-CAkey", caKey, "-CAcreateserial", "-out", cert, "-days", "2", "-extfile", ext])
    }
}
