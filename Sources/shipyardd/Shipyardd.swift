import ArgumentParser
import Foundation
import Logging
import ShipyardCore
import ShipyardDaemon
import ShipyardStore
import ShipyardWeb

@main
struct Shipyardd: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "shipyardd",
        abstract: "Run Keptn shipyard sequences from a Git repository on this host.",
        discussion: """
            Runs in the foreground (systemd's Type=notify service, or a terminal). SIGHUP re-reads the \
            config and polls every project at once; SIGTERM and SIGINT stop the daemon.
            """,
        version: Daemon.version
    )

    @Option(name: .long, help: "The config file.")
    var config: String = DaemonConfig.defaultPath

    @Option(name: .customLong("check-config"), help: "Validate a config file, print what is wrong, and exit.")
    var checkConfig: String?

    @Flag(name: .customLong("import-record"), help: ArgumentHelp(
        "Copy this host's SQLite record (in the config's state directory) into the empty shared PostgreSQL record the config names, and exit. Stop every shipyardd that uses that record first."))
    var importRecord = false

    @Flag(name: .long, help: "Log debug messages too.")
    var verbose = false

    @Flag(name: .customLong("fetch-child"), help: .hidden)
    var fetchChild = false

    @Flag(name: .customLong("export-child"), help: .hidden)
    var exportChild = false

    @Flag(name: .customLong("repack-child"), help: .hidden)
    var repackChild = false

    @Option(name: .customLong("reload"), help: ArgumentHelp(
        "Ask the running daemon with this pid to re-read its config, wait for its verdict, and exit 1 if it refused the config (the unit's ExecReload).",
        valueName: "pid"))
    var reloadPID: Int32?

    /// The command line. Swift's runtime takes it from the C runtime's start; under an
    /// LD_PRELOADed library with a constructor of its own (libfaketime, used to run a daemon
    /// with its clock off) it comes back empty, and the config named by `--config` would be
    /// silently ignored: the kernel's copy is read then.
    static func main() async {
        var arguments = Array(CommandLine.arguments.dropFirst())
        if CommandLine.arguments.isEmpty, let line = FileManager.default.contents(atPath: "/proc/self/cmdline") {
            arguments = line.split(separator: 0, omittingEmptySubsequences: false).dropFirst().map { String(decoding: $0, as: UTF8.self) }
            if arguments.last == "" { arguments.removeLast() }
        }
        await main(arguments)
    }

    func run() async throws {
        let environment = ProcessInfo.processInfo.environment
        if fetchChild {
            // One fetch into a mirror, for the daemon (FetchProcess): JSON in, one JSON line out.
            signal(SIGPIPE, SIG_IGN)
            throw ExitCode(FetchProcess.child())
        }
        if exportChild {
            signal(SIGPIPE, SIG_IGN)
            throw ExitCode(FetchProcess.exportChild())
        }
        if repackChild {
            signal(SIGPIPE, SIG_IGN)
            throw ExitCode(FetchProcess.repackChild())
        }
        if let reloadPID {
            try await reload(reloadPID, environment: environment)
            return
        }
        if let checkConfig {
            var (document, ok) = load(checkConfig, environment: environment, host: .errors)
            // The shared record: reached, signed in to, and of a schema this build knows.
            if ok, let postgres = document.config?.postgres {
                do {
                    print(try PostgresStore.check(try postgres.settings(holder: "check")))
                } catch {
                    FileHandle.standardError.write(Data("\(checkConfig): store.postgres: \(error)\n".utf8))
                    ok = false
                }
            }
            if ok, let config = document.config {
                print("\(checkConfig): ok (\(config.projects.count) project\(config.projects.count == 1 ? "" : "s"), \(config.tasks.count) task executor\(config.tasks.count == 1 ? "" : "s"), state in \(config.stateDirectory))")
            }
            throw ExitCode(ok ? 0 : 1)
        }
        if importRecord {
            let (document, ok) = load(config, environment: environment, host: .errors)
            guard ok, let loaded = document.config else { throw ExitCode(1) }
            guard let postgres = loaded.postgres else {
                FileHandle.standardError.write(Data("\(config): no store.postgres: --import-record copies into a shared PostgreSQL record, and this config names none\n".utf8))
                throw ExitCode(1)
            }
            let source = StateDirectory(loaded.stateDirectory).storeFile
            do {
                let settings = try postgres.settings(holder: "import:\(ProcessInfo.processInfo.hostName)/\(getpid())")
                let report = try RecordImport(sqlite: source, settings: settings).run()
                print("copied \(report.events) events, \(report.sequences) sequences (\(report.tasks) tasks) and \(report.evaluations) evaluations from \(source) into the shared record at \(settings.shownURL) (epoch \(report.epoch)); start the daemons")
            } catch {
                FileHandle.standardError.write(Data("shipyardd: --import-record: \(error)\n".utf8))
                throw ExitCode(1)
            }
            return
        }
        // A parent may have started us with signals blocked (a spawn from a Dispatch thread does):
        // SIGTERM and SIGHUP must reach the daemon.
        var all = sigset_t()
        sigfillset(&all)
        pthread_sigmask(SIG_UNBLOCK, &all, nil)
        // A notify program or a task that closes its pipe early must not kill the daemon.
        signal(SIGPIPE, SIG_IGN)
        DaemonLogHandler.bootstrap(environment: environment, level: verbose ? .debug : .info)
        let (document, ok) = load(config, environment: environment)
        guard ok, let loaded = document.config else { throw ExitCode(1) }
        let daemon = Daemon(config: loaded, configPath: config, environment: environment, logger: Logger(label: "shipyardd")) { daemon, socket, http in
            WebServer(daemon: daemon, socket: socket, http: http)
        }
        do {
            try await daemon.run()
        } catch {
            FileHandle.standardError.write(Data("shipyardd: \(error)\n".utf8))
            throw ExitCode(1)
        }
    }

    /// `systemctl reload`: SIGHUP to the daemon, then its verdict from `<state>/reload.json`.
    /// The state directory is the config's, else the unit's `$STATE_DIRECTORY`, else the default.
    private func reload(_ pid: Int32, environment: [String: String]) async throws {
        // As the daemon decides it: the config's stateDirectory, else the unit's. The config may
        // be the very one the daemon is about to refuse: read only its stateDirectory.
        var root = FileManager.default.contents(atPath: config).flatMap { (try? YAMLParser().parse(Array($0)))?["stateDirectory"]?.string }
        if root == nil { root = environment["STATE_DIRECTORY"].flatMap { $0.split(separator: ":").first.map(String.init) } }
        let state = StateDirectory(root ?? DaemonConfig.defaultStateDirectory)
        guard let result = await ReloadResult.request(pid: pid, state: state, timeout: .seconds(60)) else {
            FileHandle.standardError.write(Data("shipyardd: pid \(pid) did not answer the reload within 60s (is it shipyardd, with state in \(state.root)?)\n".utf8))
            throw ExitCode(1)
        }
        if result.ok {
            print(result.message)
        } else {
            FileHandle.standardError.write(Data("shipyardd: \(result.message)\n".utf8))
            throw ExitCode(1)
        }
    }

    /// Reads a config file and prints its findings as FILE:LINE:COLUMN lines on standard error.
    private func load(_ path: String, environment: [String: String], host: HostChecks = .warnings) -> (ConfigDocument, Bool) {
        let probe = open(path, O_RDONLY | O_CLOEXEC)
        let openError = errno
        if probe >= 0 { close(probe) }
        guard probe >= 0, let data = FileManager.default.contents(atPath: path) else {
            let reason = openError == ENOENT ? "no such file" : String(cString: strerror(openError))
            var hint = ""
            if openError == EACCES {
                hint = "; it is readable by root and the shipyard group (run as root, or as a member: sudo usermod -aG shipyard \(String(cString: getpwuid(geteuid()).pointee.pw_name)), then log in again)"
            }
            FileHandle.standardError.write(Data("\(path): error: cannot read the config: \(reason)\(hint)\n".utf8))
            return (ConfigDocument(config: nil, diagnostics: []), false)
        }
        let document = ConfigLoader.load(Array(data), environment: environment, host: host)
        for diagnostic in document.diagnostics {
            FileHandle.standardError.write(Data((diagnostic.formatted(file: path) + "\n").utf8))
        }
        return (document, document.config != nil)
    }
}
