import CSupport
import Foundation
import ShipyardCore
import ShipyardGit

/// A fetch into a project's mirror, run in a short-lived child process (`shipyardd
/// --fetch-child`). libgit2 1.5's fetch keeps about 88 KB per call that it never frees
/// (measured: 36 → 63 MB over 300 fetches that downloaded nothing), which a daemon that runs for
/// years cannot afford; a child returns everything to the system when it exits. It is also the
/// cleanest way to give up on a fetch: the child is killed, no thread is left blocked.
///
/// The parent hands the child the project on standard input (paths only; the child reads the
/// credential files itself) and reads one JSON line back.
public enum FetchProcess {
    struct Input: Codable {
        var url: String
        var branch: String
        var mirror: String
        var tip: String
        var username: String?
        var passwordFile: String?
        var sshKey: String?
        var knownHosts: String?
    }

    struct Output: Codable {
        var tip: String?
        var error: String?
        var kind: String?

        /// The tip the child answered with, or its error as the parent's.
        func tip(_ what: String) throws(GitError) -> ObjectID {
            if let tip { return ObjectID(hex: tip) }
            throw GitError(GitError.Kind(rawValue: kind ?? "") ?? .other, error ?? "\(what) failed")
        }
    }

    /// Runs the fetch in a child and returns the mirror's new tip. Blocks: call it from a poll's
    /// own thread. `cancel` kills the child.
    static func run(project: DaemonConfig.Project, mirror: Mirror, tip: ObjectID, cancel: CancelToken) throws(GitError) -> ObjectID {
        let input = Input(
            url: project.upstream, branch: project.branch, mirror: mirror.path, tip: tip.hex, username: project.credentials?.username,
            passwordFile: project.credentials?.passwordFile, sshKey: project.credentials?.sshKey, knownHosts: project.credentials?.knownHosts)
        // What a fetch killed earlier (at a timeout, or with the daemon) left behind goes first.
        mirror.removeLeftovers()
        let answer: Output = try ChildProcess.run("--fetch-child", input, cancel: cancel)
        return try answer.tip("the fetch")
    }

    /// Writes the tree of `commit` into `directory` in a child process: a blob is inflated whole
    /// by libgit2, so a 1 GiB file costs a gigabyte of memory, which the child returns when it ends.
    static func export(mirror: Mirror, commit: ObjectID, to directory: String) throws(GitError) {
        let answer: Output = try ChildProcess.run(
            "--export-child", ExportInput(mirror: mirror.path, commit: commit.hex, directory: directory), cancel: CancelToken(), timeout: .seconds(1800))
        _ = try answer.tip("the export")
    }

    struct ExportInput: Codable {
        var mirror: String
        var commit: String
        var directory: String
    }

    /// The export child's side.
    public static func exportChild() -> Int32 {
        ChildProcess.serve { (input: ExportInput) throws(GitError) -> Output in
            try Mirror(path: input.mirror).export(ObjectID(hex: input.commit), to: input.directory)
            return Output(tip: input.commit)
        }
    }

    /// The fetch child's side: reads the input, fetches, prints one JSON line, exits.
    public static func child() -> Int32 {
        ChildProcess.serve { (input: Input) throws(GitError) -> Output in
            let project = DaemonConfig.Project(
                name: "fetch", upstream: input.url, branch: input.branch,
                credentials: DaemonConfig.Credentials(
                    username: input.username, passwordFile: input.passwordFile, sshKey: input.sshKey, knownHosts: input.knownHosts))
            let mirror = Mirror(path: input.mirror)
            let tip: ObjectID
            if let local = LocalUpstream.path(of: input.url) {
                try LocalUpstream.fetch(local, branch: input.branch, tip: ObjectID(hex: input.tip), into: mirror)
                tip = ObjectID(hex: input.tip)
            } else {
                let access: RemoteAccess
                do {
                    access = try PollJob.access(for: project)
                } catch {
                    throw GitError(.other, "\(error)")
                }
                tip = try mirror.fetch(access, branch: input.branch)
            }
            return Output(tip: tip.hex)
        }
    }

    /// The mirror's packs merged into one (`Mirror.repackIfNeeded`), in a child of its own with
    /// its own deadline: a 1 GiB mirror takes longer than a poll may, and a repack killed with the
    /// poll left gigabytes behind each time. Leftovers of an earlier killed one go first.
    static func repack(mirror: Mirror, cancel: CancelToken, timeout: Duration) throws(GitError) -> Int {
        mirror.removeLeftovers()
        let answer: Output = try ChildProcess.run("--repack-child", RepackInput(mirror: mirror.path), cancel: cancel, timeout: timeout)
        // A repack that failed or was killed leaves its temporary pack: the next fetch or repack
        // removes it (`removeLeftovers`), never while another writes into the mirror.
        return Int(try answer.tip("the repack").hex) ?? 0
    }

    struct RepackInput: Codable {
        var mirror: String
    }

    /// The repack child's side.
    public static func repackChild() -> Int32 {
        ChildProcess.serve { (input: RepackInput) throws(GitError) -> Output in
            Output(tip: String(try Mirror(path: input.mirror).repackIfNeeded()))
        }
    }
}

/// One job of the daemon's in a child process (`shipyardd --fetch-child` and the like): a JSON
/// object on its standard input, one JSON line on its standard output.
enum ChildProcess {
    /// The daemon's pid, in the child's environment.
    static let parentVariable = "SHIPYARD_PARENT_PID"

    /// The most memory (RLIMIT_DATA) a fetch, export or repack child may use.
    static let memoryLimit = 1 << 30
    static let memoryHint =
        "a fetch, export or repack may use \(ByteCount.format(memoryLimit)), and libgit2 holds a whole file of the repository in memory to copy (from a file:// upstream) or export it; "
        + "keep files that large out of the repository"

    static func run<Input: Encodable, Output: Decodable>(
        _ flag: String, _ input: Input, cancel: CancelToken, timeout: Duration = .seconds(3600)
    ) throws(GitError) -> Output {
        let deadline = ContinuousClock.now + timeout
        guard let request = try? JSON.encode(input) else { throw GitError(.other, "cannot describe the job for \(flag)") }
        var toChild: [Int32] = [0, 0], fromChild: [Int32] = [0, 0]
        // Close-on-exec from the start: a task spawned meanwhile by another thread must not hold
        // the child's input open.
        guard shipyard_pipe_cloexec(&toChild) == 0 else { throw GitError(.other, "cannot create pipes for \(flag)") }
        guard shipyard_pipe_cloexec(&fromChild) == 0 else {
            close(toChild[0])
            close(toChild[1])
            throw GitError(.other, "cannot create pipes for \(flag)")
        }
        // The running binary itself, even once an upgrade replaced the file (its name then ends in
        // " (deleted)").
        let executable = "/proc/self/exe"
        let arguments: [String] = ["shipyardd", flag]
        let argv = arguments.map { strdup($0) } + [nil]
        var environment = ProcessInfo.processInfo.environment.filter { ["PATH", "LANG", "HOME", "SSL_CERT_FILE", "SSL_CERT_DIR"].contains($0.key) }
        environment[Self.parentVariable] = String(getpid())
        let envp = environment.map { strdup("\($0.key)=\($0.value)") } + [nil]
        defer {
            argv.forEach { free($0) }
            envp.forEach { free($0) }
        }
        var pid: pid_t = 0
        let spawned = shipyard_spawn_task(&pid, executable, argv, envp, nil, toChild[0], fromChild[1])
        close(toChild[0])
        close(fromChild[1])
        guard spawned == 0 else {
            close(toChild[1])
            close(fromChild[0])
            throw GitError(.other, "cannot start \(flag): \(String(cString: strerror(spawned)))")
        }
        _ = request.withUnsafeBytes { write(toChild[1], $0.baseAddress, $0.count) }
        close(toChild[1])
        let reader = fromChild[0]
        defer { close(reader) }
        _ = fcntl(reader, F_SETFL, fcntl(reader, F_GETFL) | O_NONBLOCK)
        var output = Data()
        var buffer = [UInt8](repeating: 0, count: 4096)
        var status: Int32 = 0
        var killed = false
        func drain() {
            while true {
                let n = read(reader, &buffer, buffer.count)
                guard n > 0 else { return }
                if output.count < 1 << 20 { output.append(contentsOf: buffer[0..<n]) }
            }
        }
        while true {
            var poller = pollfd(fd: reader, events: Int16(POLLIN), revents: 0)
            _ = poll(&poller, 1, 50)
            drain()
            if waitpid(pid, &status, WNOHANG) == pid { break }
            if (cancel.isCancelled || ContinuousClock.now > deadline), !killed {
                kill(-pid, SIGKILL)
                killed = true
            }
        }
        drain()  // what the child wrote just before it exited
        if killed { throw GitError(.cancelled, cancel.isCancelled ? "the poll was cancelled: the remote took too long" : "\(flag) took longer than \(GoDuration.format(timeout)) and was stopped") }
        let lastLine = output.split(separator: 0x0A).last.map { Data($0) } ?? Data()
        guard let answer = try? JSON.decode(Output.self, from: lastLine) else {
            let signal = status & 0x7F
            let memory = " (it may have run out of memory: " + memoryHint + ")"
            throw GitError(
                .other,
                signal != 0 ? "\(flag) was killed by signal \(signal)" + (signal == SIGKILL ? "" : memory) : "\(flag) ended without an answer (exit \((status >> 8) & 0xFF))" + memory)
        }
        return answer
    }

    /// The child's side: decodes the input, runs the job, prints its answer (or the error) as
    /// one JSON line; exit 0 when the job succeeded.
    static func serve<Input: Decodable>(_ job: (Input) throws(GitError) -> FetchProcess.Output) -> Int32 {
        // A daemon killed outright (SIGKILL, the OOM killer) takes its children with it: none
        // is left writing into a mirror that the next daemon uses.
        if let parent = ProcessInfo.processInfo.environment[parentVariable].flatMap({ pid_t($0) }), shipyard_die_with_parent(parent) != 0 {
            return 1
        }
        // libgit2 inflates a whole blob to export it, or to pack it from a file:// upstream: a
        // pushed file of many gigabytes (zeros compress to nothing) must fail this child, not
        // take the host's memory.
        var limit = rlimit(rlim_cur: rlim_t(memoryLimit), rlim_max: rlim_t(memoryLimit))
        _ = setrlimit(Int32(RLIMIT_DATA.rawValue), &limit)
        let data = FileHandle.standardInput.readDataToEndOfFile()
        let output: FetchProcess.Output
        if let input = try? JSON.decode(Input.self, from: data) {
            do {
                output = try job(input)
            } catch {
                let hint = error.message.lowercased().contains("out of memory") ? " (" + memoryHint + ")" : ""
                output = FetchProcess.Output(error: error.message + hint, kind: error.kind.rawValue)
            }
        } else {
            output = FetchProcess.Output(error: "unreadable request")
        }
        let line = (try? JSON.encode(output)).map { String(decoding: $0, as: UTF8.self) } ?? #"{"error":"cannot encode the answer"}"#
        FileHandle.standardOutput.write(Data((line + "\n").utf8))
        return output.tip == nil ? 1 : 0
    }
}
