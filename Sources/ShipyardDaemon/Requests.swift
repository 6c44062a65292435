import CSupport
public import Foundation
public import ShipyardCore

/// A request the CLI drops into `<state>/requests/` for the daemon.
public struct SpoolRequest: Codable, Sendable, Equatable {
    public enum Kind: String, Codable, Sendable {
        case sync, trigger, pause, resume, abort, event, approve, reject
        /// Marks an evaluation so that later evaluations no longer compare with it.
        case invalidate
    }

    /// trigger: Keptn's `data.evaluation`, the timeframe an evaluation scores.
    public struct EvaluationWindow: Codable, Sendable, Equatable {
        public var timeframe: String?
        public var start: String?
        public var end: String?

        public init(timeframe: String? = nil, start: String? = nil, end: String? = nil) {
            self.timeframe = timeframe
            self.start = start
            self.end = end
        }
    }

    public var id: String
    public var kind: Kind
    /// sync (optional), trigger.
    public var project: String?
    /// trigger.
    public var sequence: String?
    public var service: String?
    public var stage: String?
    public var image: String?
    public var labels: [String: String]?
    public var evaluation: EvaluationWindow?
    /// pause, resume, abort.
    public var context: String?
    /// event: a Keptn CloudEvent (`shipyardctl send event`).
    public var event: KeptnEvent?
    /// invalidate: the evaluation's id (its `.triggered` or `.finished` event) or a unique prefix.
    public var evaluationID: String?
    /// approve, reject: the approval's id or a unique prefix of it, and why.
    public var approval: String?
    public var reason: String?

    public init(id: String = SpoolRequest.newID(), kind: Kind, project: String? = nil) {
        self.id = id
        self.kind = kind
        self.project = project
    }

    public static func newID() -> String {
        UUID().uuidString.lowercased()
    }

    /// Ids are also file names: only what `newID` makes is accepted.
    public static func isValidID(_ id: String) -> Bool {
        id.count <= 64 && !id.isEmpty && id.unicodeScalars.allSatisfy { ("a"..."z").contains($0) || ("0"..."9").contains($0) || $0 == "-" }
    }
}

/// The daemon's answer to a request, written to `<state>/outcomes/<id>.json`.
public struct SpoolOutcome: Codable, Sendable, Equatable {
    public var id: String
    public var ok: Bool
    public var message: String
    /// trigger: the new sequence's context id.
    public var context: String?
    /// The uid of the request file's owner this answers.
    public var requester: UInt32?

    public init(id: String, ok: Bool, message: String, context: String? = nil) {
        self.id = id
        self.ok = ok
        self.message = message
        self.context = context
    }
}

/// The daemon's side of the spool: takes request files safely, whoever wrote them.
struct RequestSpool: Sendable {
    let state: StateDirectory
    static let maxRequestBytes = 64 * 1024

    struct Taken {
        var file: String
        var request: SpoolRequest?
        var requester: uid_t
        /// Why the request was refused, when it was.
        var refusal: String?
        /// The file's identity, so that `remove` never removes a file put in its place since.
        var device: UInt64 = 0
        var inode: UInt64 = 0
    }

    /// What one look at the spool found: requests to take, and what was swept away.
    struct Scan {
        /// Request files, one user's after another's in turn (each user's oldest first), so that
        /// a flood from one user never delays another's request by more than one turn.
        var requests: [String] = []
        /// Entries that are not requests and were removed (or, for a folder the daemon cannot
        /// empty, moved aside under a hidden name): "name (owner uid)".
        var swept: [(name: String, owner: uid_t, what: String)] = []
        /// More entries wait than one scan handles: scan again.
        var more = false
    }

    /// Entries that are not requests (folders, fifos, files without `.json`, hidden files left
    /// for more than a minute) are removed or moved aside once; at most `limit` of them per scan.
    /// At most `perUser` requests of each user are taken per scan, so that a request arriving
    /// during one user's flood waits for one short round, not for the flood.
    func scan(limit: Int = 500, perUser: Int = 32, now: Date = Date()) -> Scan {
        var scan = Scan()
        var byOwner: [uid_t: [(String, Double)]] = [:]
        var swept = 0
        for name in (try? FileManager.default.contentsOfDirectory(atPath: state.requests)) ?? [] {
            let path = state.requests + "/" + name
            var info = stat()
            guard lstat(path, &info) == 0 else { continue }
            let type = info.st_mode & S_IFMT
            let mtime = Double(info.st_mtim.tv_sec) + Double(info.st_mtim.tv_nsec) / 1e9
            // ctime, which no one can set back or ahead (touch can the mtime).
            let ctime = Double(info.st_ctim.tv_sec) + Double(info.st_ctim.tv_nsec) / 1e9
            if name.hasPrefix(".") {
                // The CLI's hidden temporary files live for milliseconds; a folder the daemon
                // moved aside is left to an administrator (a file by that name is not).
                if name.hasPrefix(Self.asidePrefix), type == S_IFDIR { continue }
                guard now.timeIntervalSince1970 - ctime > 60 else { continue }
            } else if name.hasSuffix(".json"), type == S_IFREG || type == S_IFLNK {
                byOwner[info.st_uid, default: []].append((name, mtime))
                continue
            }
            guard swept < limit else {
                scan.more = true
                continue
            }
            swept += 1
            scan.swept.append((name, info.st_uid, sweep(path, type: type)))
        }
        var queues = byOwner.values.map { Array($0.sorted { ($0.1, $0.0) < ($1.1, $1.0) }.map(\.0).prefix(perUser)) }
        if byOwner.values.contains(where: { $0.count > perUser }) { scan.more = true }
        queues.sort { ($0.first ?? "") < ($1.first ?? "") }
        var index = 0
        while !queues.isEmpty {
            var next: [[String]] = []
            for queue in queues {
                scan.requests.append(queue[index])
                if queue.count > index + 1 { next.append(queue) }
            }
            queues = next
            index += 1
        }
        return scan
    }

    static let asidePrefix = ".not-a-request-"

    /// Removes one entry that is not a request; a folder the daemon cannot empty is renamed to a
    /// hidden name (the spool's owner may rename anything in it) and left for an administrator.
    private func sweep(_ path: String, type: mode_t) -> String {
        switch type {
        case S_IFDIR:
            if rmdir(path) == 0 { return "an empty folder, removed" }
            if geteuid() == 0 {
                Worktrees.removeTree(path)
                if !FileManager.default.fileExists(atPath: path) { return "a folder, removed" }
            }
            let aside = state.requests + "/" + Self.asidePrefix + SpoolRequest.newID()
            return rename(path, aside) == 0 ? "a folder, moved aside as \((aside as NSString).lastPathComponent) (remove it as root)" : "a folder that cannot be moved"
        default:
            return unlink(path) == 0 ? "not a request file, removed" : "not a request file, and it cannot be removed"
        }
    }

    /// Reads one request; a refused one is removed at once, an accepted one by `remove` once it
    /// has been handled (so a request the daemon died handling is handled again at the next start,
    /// where its id makes it apply once). Links are never followed, only regular files with a single
    /// link are read, and the requester is the file's owner, never a name inside the file.
    func take(_ name: String) -> Taken {
        let taken = readRequest(name)
        if taken.request == nil { unlink(state.requests + "/" + name) }
        return taken
    }

    /// Removes a handled request's file, unless another file took its name meanwhile.
    func remove(_ taken: Taken) {
        let path = state.requests + "/" + taken.file
        var info = stat()
        guard lstat(path, &info) == 0, UInt64(info.st_dev) == taken.device, UInt64(info.st_ino) == taken.inode else { return }
        unlink(path)
    }

    private func readRequest(_ name: String) -> Taken {
        let path = state.requests + "/" + name
        let fd = open(path, O_RDONLY | O_NOFOLLOW | O_NONBLOCK | O_CLOEXEC)
        guard fd >= 0 else {
            let reason = errno == ELOOP ? "it is a symbolic link" : String(cString: strerror(errno))
            // Who put it there: the link's (or the file's) own owner.
            var info = stat()
            let owner = lstat(path, &info) == 0 ? info.st_uid : uid_t.max
            return Taken(file: name, requester: owner, refusal: "request \(name) refused: \(reason)")
        }
        defer { close(fd) }
        var info = stat()
        guard fstat(fd, &info) == 0 else {
            return Taken(file: name, requester: uid_t.max, refusal: "request \(name) refused: cannot stat it")
        }
        let requester = info.st_uid
        guard info.st_mode & S_IFMT == S_IFREG else {
            return Taken(file: name, requester: requester, refusal: "request \(name) refused: not a regular file")
        }
        guard info.st_nlink == 1 else {
            return Taken(file: name, requester: requester, refusal: "request \(name) refused: it has other hard links")
        }
        guard info.st_size <= Self.maxRequestBytes else {
            return Taken(file: name, requester: requester, refusal: "request \(name) refused: larger than \(Self.maxRequestBytes) bytes")
        }
        var data = Data(count: Int(info.st_size))
        let count = data.withUnsafeMutableBytes { read(fd, $0.baseAddress, $0.count) }
        guard count == Int(info.st_size) else {
            return Taken(file: name, requester: requester, refusal: "request \(name) refused: cannot read it")
        }
        do {
            let request = try JSON.decode(SpoolRequest.self, from: data)
            guard SpoolRequest.isValidID(request.id), name == request.id + ".json" else {
                return Taken(file: name, requester: requester, refusal: "request \(name) refused: its id does not match its file name")
            }
            return Taken(file: name, request: request, requester: requester, device: UInt64(info.st_dev), inode: UInt64(info.st_ino))
        } catch {
            return Taken(file: name, requester: requester, refusal: "request \(name) refused: not a valid request (\(error))")
        }
    }

    /// Writes the answer to `requester`'s request: `outcomes/<uid>-<id>.json`. The uid comes from
    /// the request file's owner, so another user re-submitting the same id gets an answer of their
    /// own and never replaces this one.
    func answer(_ outcome: SpoolOutcome, to requester: uid_t) throws {
        guard SpoolRequest.isValidID(outcome.id), requester != uid_t.max else { return }
        var outcome = outcome
        outcome.requester = requester
        try AtomicFile.write(try JSON.encode(outcome), to: state.outcome(id: outcome.id, requester: requester), mode: 0o640, durable: false)
    }

    /// Answers are read within milliseconds by the CLI that waits for them (it polls every 20 ms),
    /// and the CLI cannot remove the daemon's files: the daemon removes them after 15 seconds.
    func pruneOutcomes(olderThan age: TimeInterval = 15) {
        let fm = FileManager.default
        let cutoff = Date().addingTimeInterval(-age)
        for name in (try? fm.contentsOfDirectory(atPath: state.outcomes)) ?? [] {
            let path = state.outcomes + "/" + name
            if let date = (try? fm.attributesOfItem(atPath: path))?[.modificationDate] as? Date, date < cutoff {
                unlink(path)
            }
        }
    }
}

/// The CLI's side of the spool.
public struct SpoolClient: Sendable {
    public let state: StateDirectory

    public init(state: StateDirectory) {
        self.state = state
    }

    public struct Failure: Error, CustomStringConvertible {
        public var description: String
    }

    /// Publishes the request and returns it as published. The file is written under a hidden
    /// random name (nothing in it reveals the request's id), given the spool's group (so the
    /// daemon can read it even where the spool lacks its setgid bit) and mode 0640, then renamed
    /// to `<id>.json` without ever replacing a file someone else put there: a taken name is tried
    /// again under a new id (unless the caller chose the id, which is then reported as taken).
    public func submit(_ request: SpoolRequest, fixedID: Bool = false) throws -> SpoolRequest {
        var spool = stat()
        guard stat(state.requests, &spool) == 0, spool.st_mode & S_IFMT == S_IFDIR else {
            throw Failure(description: "no request spool at \(state.requests): is shipyardd running with state directory \(state.root)? (--state-dir or SHIPYARD_STATE_DIR)")
        }
        var request = request
        for _ in 0..<8 {
            let temporary = state.requests + "/.tmp-" + SpoolRequest.newID()
            let fd = open(temporary, O_WRONLY | O_CREAT | O_EXCL | O_NOFOLLOW | O_CLOEXEC, 0o600)
            guard fd >= 0 else {
                throw Failure(description: "cannot write a request into \(state.requests): \(String(cString: strerror(errno)))")
            }
            defer { unlink(temporary) }
            let data = try JSON.encode(request)
            let written = data.withUnsafeBytes { Foundation.write(fd, $0.baseAddress, $0.count) }
            _ = fchown(fd, uid_t.max, spool.st_gid)  // a member may give its file the daemon's group
            let moded = fchmod(fd, 0o640)
            close(fd)
            guard written == data.count, moded == 0 else {
                throw Failure(description: "cannot write a request into \(state.requests): \(String(cString: strerror(errno)))")
            }
            // Not link(2): the daemon refuses a file with two links, and would see one between
            // the link and the removal of the temporary name.
            if shipyard_rename_noreplace(temporary, state.requests + "/\(request.id).json") == 0 { return request }
            guard errno == EEXIST else {
                throw Failure(description: "cannot publish a request in \(state.requests): \(String(cString: strerror(errno)))")
            }
            if fixedID { throw Failure(description: "a request with the id \(request.id) is already waiting in \(state.requests)") }
            request.id = SpoolRequest.newID()
        }
        throw Failure(description: "cannot publish a request in \(state.requests): every name tried was taken")
    }

    /// Waits for the daemon's answer; nil when none came in time. An answer older than `since`
    /// answered an earlier request with the same id (a retry), not this one.
    public func waitForOutcome(_ id: String, timeout: Duration, since: Date = .distantPast) async -> SpoolOutcome? {
        let path = state.outcome(id: id, requester: geteuid())
        let deadline = ContinuousClock.now + timeout
        let notBefore = since.timeIntervalSince1970 - 1
        while ContinuousClock.now < deadline {
            var info = stat()
            if stat(path, &info) == 0, Double(info.st_mtim.tv_sec) >= notBefore,
                let data = FileManager.default.contents(atPath: path), let outcome = try? JSON.decode(SpoolOutcome.self, from: data),
                outcome.requester == nil || outcome.requester == geteuid()
            {
                unlink(path)
                return outcome
            }
            try? await Task.sleep(for: .milliseconds(20))
        }
        return nil
    }
}

/// Wakes the daemon when a request lands in the spool (inotify), instead of polling on a timer.
final class SpoolWatcher: Sendable {
    private let fd: Int32
    private let stopPipe: (read: Int32, write: Int32)

    init?(directory: String, onChange: @escaping @Sendable () -> Void) {
        let fd = inotify_init1(Int32(IN_CLOEXEC))
        guard fd >= 0 else { return nil }
        guard inotify_add_watch(fd, directory, UInt32(IN_MOVED_TO | IN_CLOSE_WRITE)) >= 0 else {
            close(fd)
            return nil
        }
        var fds: [Int32] = [0, 0]
        guard pipe(&fds) == 0 else {
            close(fd)
            return nil
        }
        self.fd = fd
        self.stopPipe = (fds[0], fds[1])
        let stopFD = fds[0]
        let thread = Thread {
            var buffer = [UInt8](repeating: 0, count: 8192)
            while true {
                var polls = [pollfd(fd: fd, events: Int16(POLLIN), revents: 0), pollfd(fd: stopFD, events: Int16(POLLIN), revents: 0)]
                let ready = poll(&polls, 2, -1)
                if ready < 0 {
                    if errno == EINTR { continue }
                    return
                }
                if polls[1].revents != 0 { return }
                if read(fd, &buffer, buffer.count) > 0 { onChange() }
            }
        }
        thread.name = "shipyardd-spool"
        thread.start()
    }

    func stop() {
        var byte: UInt8 = 1
        _ = write(stopPipe.write, &byte, 1)
    }
}
