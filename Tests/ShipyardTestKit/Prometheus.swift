import Foundation

/// A small exporter on loopback: serves `/metrics` from a file the test rewrites, so that a real
/// Prometheus scrapes what the test decides.
public final class MetricsExporter: BackgroundServer, @unchecked Sendable {
    static let script = #"""
        import sys
        from http.server import ThreadingHTTPServer, BaseHTTPRequestHandler
        path, port = sys.argv[1], int(sys.argv[2])

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *args):
                pass
            def do_GET(self):
                if self.path != "/metrics":
                    self.send_response(404)
                    self.send_header("Content-Length", "0")
                    self.end_headers()
                    return
                with open(path, "rb") as f:
                    body = f.read()
                self.send_response(200)
                self.send_header("Content-Type", "text/plain; version=0.0.4")
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

        ThreadingHTTPServer(("127.0.0.1", port), Handler).serve_forever()
        """#

    public let metricsFile: String

    public init(scratch: String, metrics: String) throws {
        metricsFile = scratch + "/metrics.txt"
        try writeFile(metricsFile, Data(metrics.utf8))
        let script = scratch + "/exporter.py"
        try writeFile(script, Data(Self.script.utf8))
        let python = try HTTPGitServer.python()
        let file = metricsFile
        try super.init(log: scratch + "/exporter.log") { port in (python, [script, file, "\(port)"]) }
    }

    /// Replaces what the next scrape sees.
    public func set(_ metrics: String) throws {
        try writeFile(metricsFile + ".tmp", Data(metrics.utf8))
        rename(metricsFile + ".tmp", metricsFile)
    }
}

/// Debian's `prometheus` on a loopback port, scraping `targets` every second, its data in a
/// temporary folder.
public final class PrometheusServer: BackgroundServer, @unchecked Sendable {
    public static let binary = "/usr/bin/prometheus"
    public static var isInstalled: Bool { FileManager.default.isExecutableFile(atPath: binary) }

    /// `basicAuth`: (user, bcrypt hash) that every request must present.
    public let basicAuth: (user: String, password: String)?

    public init(scratch: String, job: String, targets: [String], basicAuth: (user: String, password: String, bcrypt: String)? = nil) throws {
        self.basicAuth = basicAuth.map { ($0.user, $0.password) }
        var web: [String] = []
        if let basicAuth {
            let file = scratch + "/web.yml"
            try writeFile(file, Data("basic_auth_users:\n  \(basicAuth.user): \(basicAuth.bcrypt)\n".utf8))
            web = ["--web.config.file=\(file)"]
        }
        let config = scratch + "/prometheus.yml"
        try writeFile(config, Data("""
            global:
              scrape_interval: 1s
              evaluation_interval: 1s
            scrape_configs:
              - job_name: \(job)
                static_configs:
                  - targets: [\(targets.map { "\"\($0)\"" }.joined(separator: ", "))]

            """.utf8))
        let data = scratch + "/prometheus-data"
        try super.init(log: scratch + "/prometheus.log") { port in
            (Self.binary, [
                "--config.file=\(config)", "--storage.tsdb.path=\(data)", "--web.listen-address=127.0.0.1:\(port)", "--log.level=warn",
            ] + web)
        }
    }

    public var url: String { "http://127.0.0.1:\(port)" }

    /// The value of an instant query now, when it has exactly one sample.
    public func query(_ expression: String) -> Double? {
        var components = URLComponents(string: url + "/api/v1/query")!
        components.queryItems = [URLQueryItem(name: "query", value: expression)]
        let get = """
            import base64, sys, urllib.request
            request = urllib.request.Request(sys.argv[1])
            if len(sys.argv) > 2:
                request.add_header("Authorization", "Basic " + base64.b64encode(sys.argv[2].encode()).decode())
            sys.stdout.write(urllib.request.urlopen(request, timeout=5).read().decode())
            """
        let credentials = basicAuth.map { ["\($0.user):\($0.password)"] } ?? []
        guard let python = try? HTTPGitServer.python(), let out = try? Run.checked(python, ["-c", get, components.url!.absoluteString] + credentials),
            let json = try? JSONSerialization.jsonObject(with: Data(out.utf8)) as? [String: Any],
            let data = json["data"] as? [String: Any], let result = data["result"] as? [[String: Any]], result.count == 1,
            let value = result[0]["value"] as? [Any], value.count == 2, let text = value[1] as? String
        else { return nil }
        return Double(text)
    }
}
