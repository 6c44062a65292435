import Foundation

/// Debian's PostgreSQL server, run for the tests as the `postgres` user on a loopback port with
/// its data in a temporary folder (a cluster of the test's own, never the machine's): password
/// authentication (scram) for the `shipyard` role, commit timestamps on for the checker. It dies
/// with the test process (parent-death signal), so a crashed run leaves no server behind.
public final class PostgresServer: @unchecked Sendable {
    public let port: Int
    public let directory: String
    public let password = "pw-\(UUID().uuidString.prefix(8))"
    public let passwordFile: String
    private let lock = NSLock()
    private var process: Subprocess
    public let socketDirectory: String
    let command: [String]

    public static var binaries: String? {
        let root = "/usr/lib/postgresql"
        let versions = ((try? FileManager.default.contentsOfDirectory(atPath: root)) ?? []).compactMap(Int.init).sorted()
        return versions.last.map { "\(root)/\($0)/bin" }
    }

    public static var isInstalled: Bool { binaries != nil && passwdEntry("postgres") != nil }

    /// One server per test process, each test in databases of its own.
    public static let shared: Result<PostgresServer, ProcessFailure> = {
        do { return .success(try PostgresServer()) } catch let error as ProcessFailure { return .failure(error) } catch {
            return .failure(ProcessFailure(description: "\(error)"))
        }
    }()

    /// `listen`: addresses besides loopback it takes connections on (a `NetworkNamespace`'s
    /// `hostAddress`), from 198.18.0.0/15 only.
    public init(extraSettings: [String] = [], listen: [String] = []) throws {
        guard let bin = Self.binaries, let account = passwdEntry("postgres") else {
            throw ProcessFailure(description: "PostgreSQL is not installed (make test-deps installs Debian's postgresql)")
        }
        Self.removeLeftovers()
        directory = try makeTemporaryDirectory("shipyard-pg")
        socketDirectory = directory + "/run"
        let data = directory + "/data"
        passwordFile = directory + "/password"
        try writeFile(passwordFile, Data((password + "\n").utf8), mode: 0o644)
        try FileManager.default.createDirectory(atPath: socketDirectory, withIntermediateDirectories: true)
        for path in [directory, socketDirectory, passwordFile] {
            guard chown(path, account.uid, account.gid) == 0 else {
                throw ProcessFailure(description: "cannot give \(path) to postgres: \(String(cString: strerror(errno)))")
            }
        }
        let asPostgres = ["--reuid=postgres", "--regid=postgres", "--init-groups", "--pdeathsig", "KILL", "--"]
        _ = try Run.checked("/usr/bin/setpriv", asPostgres + [
            bin + "/initdb", "-D", data, "-U", "shipyard", "--pwfile=\(passwordFile)", "--auth=scram-sha-256", "-E", "UTF8", "--locale=C", "--no-sync",
        ])
        if !listen.isEmpty {
            let hba = try FileHandle(forWritingTo: URL(fileURLWithPath: data + "/pg_hba.conf"))
            try hba.seekToEnd()
            try hba.write(contentsOf: Data("host all all 198.18.0.0/15 scram-sha-256\n".utf8))
            try hba.close()
        }
        command = asPostgres + [
            bin + "/postgres", "-D", data, "-k", socketDirectory, "-c", "listen_addresses=" + (["127.0.0.1"] + listen).joined(separator: ","),
            "-c", "track_commit_timestamp=on", "-c", "fsync=off", "-c", "max_connections=200",
        ] + extraSettings.flatMap { ["-c", $0] }
        var failures: [String] = []
        for _ in 0..<8 {
            let port = freePort()
            if let server = try Self.start(command, port: port, log: directory + "/server.log") {
                process = server
                self.port = port
                return
            }
            failures.append((try? String(contentsOfFile: directory + "/server.log", encoding: .utf8)) ?? "postgres did not start")
        }
        throw ProcessFailure(description: failures.joined(separator: "\n"))
    }

    static func start(_ command: [String], port: Int, log path: String) throws -> Subprocess? {
        let log = open(path, O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC, 0o644)
        defer { close(log) }
        let server = try LastingThread.shared.run {
            try Subprocess("/usr/bin/setpriv", command + ["-p", "\(port)"], stdout: log, stderr: log)
        }
        if BackgroundServer.waitUntilListening(server, port: port) { return server }
        server.kill9()
        return nil
    }

    /// Stops the server (fast shutdown: sessions end, as in `systemctl restart postgresql`) and
    /// starts it again on the same port after `pause` seconds.
    public func restart(pause: Double = 0) throws {
        try lock.withLock {
            process.signal(SIGINT)
            for _ in 0..<200 where process.isRunning { usleep(50_000) }
            if process.isRunning { process.kill9() }
            Thread.sleep(forTimeInterval: pause)
            guard let server = try Self.start(command, port: port, log: directory + "/server.log") else {
                throw ProcessFailure(description: "postgres did not start again on \(port)")
            }
            process = server
        }
    }

    /// The shared server dies with its test process, and its folder stays: the folders of
    /// servers no longer running, made more than ten minutes ago, go (never one in use).
    static func removeLeftovers() {
        let temporary = FileManager.default.temporaryDirectory.path
        for name in (try? FileManager.default.contentsOfDirectory(atPath: temporary)) ?? [] where name.hasPrefix("shipyard-pg.") {
            let path = temporary + "/" + name
            guard let attributes = try? FileManager.default.attributesOfItem(atPath: path),
                let modified = attributes[.modificationDate] as? Date, modified < Date().addingTimeInterval(-600)
            else { continue }
            let pid = (try? String(contentsOfFile: path + "/data/postmaster.pid", encoding: .utf8))?.split(separator: "\n").first.flatMap { Int32($0) }
            if let pid, kill(pid, 0) == 0 || errno == EPERM { continue }
            try? FileManager.default.removeItem(atPath: path)
        }
    }

    deinit {
        lock.withLock { process.kill9() }
        try? FileManager.default.removeItem(atPath: directory)
    }

    /// The server's pid (the postmaster).
    public var pid: Int32 { lock.withLock { process.pid } }

    public func url(database: String = "postgres", host: String = "127.0.0.1") -> String {
        "postgresql://shipyard@\(host):\(port)/\(database)"
    }

    /// Runs SQL with psql as the `shipyard` role; its output, rows unaligned, `|` between columns.
    @discardableResult
    public func psql(_ sql: String, database: String = "postgres") throws -> String {
        try Run.checked("/usr/bin/psql", ["-X", "-q", "-A", "-t", "-v", "ON_ERROR_STOP=1", "-d", url(database: database), "-c", sql],
                        environment: ["PGPASSWORD": password, "PGCONNECT_TIMEOUT": "5"]).trimmingCharacters(in: .whitespacesAndNewlines)
    }

    /// A new empty database for one test.
    public func database() throws -> String {
        let name = "t_" + UUID().uuidString.replacingOccurrences(of: "-", with: "").prefix(16).lowercased()
        try psql("CREATE DATABASE \(name)")
        return name
    }
}

/// The record's invariants under failover, in SQL: run on the database after a test, it
/// returns `gaps|epochs going back|late writes`, all 0 when the fence held.
public enum PostgresChecker {
    public static let violations = """
        SELECT
          (SELECT coalesce(max(position) - min(position) + 1 - count(*), 0) FROM events),
          (SELECT count(*) FROM (SELECT epoch, lag(epoch) OVER (ORDER BY position) AS before FROM events) AS e WHERE epoch < before),
          (SELECT count(*) FROM events AS e JOIN lease_history AS h ON h.epoch > e.epoch
             WHERE pg_xact_commit_timestamp(e.xmin) > pg_xact_commit_timestamp(h.xmin))
        """
}

/// A thread that lasts as long as the test process, to start children on: a child's parent-death
/// signal fires when the *thread* that started it ends, and the test pool's threads come and go.
public final class LastingThread: @unchecked Sendable {
    public static let shared = LastingThread()
    private let lock = NSCondition()
    private var work: [() -> Void] = []

    private init() {
        let thread = Thread { [self] in
            while true {
                lock.lock()
                while work.isEmpty { lock.wait() }
                let next = work.removeFirst()
                lock.unlock()
                next()
            }
        }
        thread.name = "test-spawner"
        thread.start()
    }

    /// Runs `body` on the lasting thread and returns what it returned.
    public func run<T>(_ body: @escaping () throws -> T) throws -> T {
        let done = DispatchSemaphore(value: 0)
        var result: Result<T, any Error>?
        lock.lock()
        work.append {
            result = Result { try body() }
            done.signal()
        }
        lock.signal()
        lock.unlock()
        done.wait()
        return try result!.get()
    }
}
