import Foundation
import ShipyardCore
import ShipyardGit

/// One poll of one project, run start to finish on a dedicated thread: list the remote's refs,
/// and only when the branch moved, fetch it and read the shipyard from the new commit.
struct PollJob: Sendable {
    let project: DaemonConfig.Project
    let mirror: Mirror
    /// The tip the previous successful poll processed.
    let lastCommit: ObjectID?
    /// The blob of the shipyard now loaded, to skip re-parsing an unchanged file.
    let loadedBlob: ObjectID?

    enum Outcome: Sendable {
        case unchanged(ObjectID)
        case fetched(commit: ObjectID, file: FileOutcome, mirrorRecreated: Bool)
        case failed(String)
    }

    enum FileOutcome: Sendable {
        case sameBlob(ObjectID)
        case valid(Shipyard, blob: ObjectID, warnings: [Diagnostic])
        case invalid(blob: ObjectID, errors: [Diagnostic])
        case missing
        case notAFile(String)
        case tooLarge(Int)
    }

    func run(cancel: CancelToken) -> Outcome {
        let access: RemoteAccess
        do {
            access = try Self.access(for: project)
        } catch {
            return .failed("\(error)")
        }
        let tip: BranchTip
        do {
            if let local = LocalUpstream.path(of: project.upstream) {
                tip = try LocalUpstream.branchTip(local, branch: project.branch)
            } else {
                tip = try lsRemoteBranch(access, branch: project.branch, cancel: cancel)
            }
        } catch {
            return .failed(error.message)
        }
        let commit: ObjectID
        switch tip {
        case .commit(let id): commit = id
        case .emptyRepository:
            return .failed("the upstream repository is empty; push a commit with \(project.shipyardPath) to \(project.branch)")
        case .missing(let others):
            let list = others.isEmpty ? "it has no branches" : "it has \(others.prefix(10).joined(separator: ", "))"
            return .failed("branch \(project.branch) does not exist upstream (\(list))")
        }
        if commit == lastCommit { return .unchanged(commit) }
        return fetch(access, tip: commit, cancel: cancel, retryOnCorruption: true)
    }

    private func fetch(_ access: RemoteAccess, tip: ObjectID, cancel: CancelToken, retryOnCorruption: Bool) -> Outcome {
        do {
            let recreated = try mirror.prepare()
            // In a child process: libgit2's fetch leaks, and a child is killed cleanly on timeout.
            let fetched = try FetchProcess.run(project: project, mirror: mirror, tip: tip, cancel: cancel)
            let file = try readShipyard(at: fetched)
            return .fetched(commit: fetched, file: file, mirrorRecreated: recreated)
        } catch where error.kind == .other && retryOnCorruption && !cancel.isCancelled {
            // A fetch cut on the way, or a full disk, leaves a sound mirror: keep it (commits no
            // longer upstream stay in it for the sequences pinned to them).
            if mirror.isReadable(branch: project.branch) { return .failed(error.message) }
            // The mirror itself is damaged (a torn object after a crash): build a new one beside it
            // and replace the old only once the new one is complete.
            let fresh = Mirror(path: mirror.path + ".new")
            try? FileManager.default.removeItem(atPath: fresh.path)
            let rebuilt = PollJob(project: project, mirror: fresh, lastCommit: nil, loadedBlob: loadedBlob)
            guard case .fetched(let commit, let file, _) = rebuilt.fetch(access, tip: tip, cancel: cancel, retryOnCorruption: false) else {
                try? FileManager.default.removeItem(atPath: fresh.path)
                return .failed(error.message)
            }
            let old = mirror.path + ".old"
            try? FileManager.default.removeItem(atPath: old)
            guard rename(mirror.path, old) == 0, rename(fresh.path, mirror.path) == 0 else {
                return .failed("cannot replace the damaged mirror at \(mirror.path): \(String(cString: strerror(errno)))")
            }
            try? FileManager.default.removeItem(atPath: old)
            return .fetched(commit: commit, file: file, mirrorRecreated: true)
        } catch {
            return .failed(error.message)
        }
    }

    private func readShipyard(at commit: ObjectID) throws(GitError) -> FileOutcome {
        switch try mirror.file(at: commit, path: project.shipyardPath, limit: YAMLParser.Limits().maxBytes) {
        case .missing: return .missing
        case .notAFile(let what): return .notAFile(what)
        case .tooLarge(let size): return .tooLarge(size)
        case .blob(let id, let bytes):
            if id == loadedBlob { return .sameBlob(id) }
            let document = ShipyardLoader.load(bytes)
            if let shipyard = document.shipyard {
                return .valid(shipyard, blob: id, warnings: document.warnings)
            }
            return .invalid(blob: id, errors: document.errors)
        }
    }

    struct AccessError: Error, CustomStringConvertible {
        var description: String
    }

    /// Credentials are read from their files at every poll, so a rotated token or a fixed
    /// known_hosts file takes effect without a restart. Their content never reaches a log.
    static func access(for project: DaemonConfig.Project) throws -> RemoteAccess {
        var access = RemoteAccess(url: project.upstream)
        guard let credentials = project.credentials else { return access }
        access.username = credentials.username
        access.sshKey = credentials.sshKey
        if let file = credentials.passwordFile {
            guard let data = FileManager.default.contents(atPath: file) else {
                throw AccessError(description: "cannot read credentials.passwordFile \(file): \(Self.reason(file))")
            }
            var password = String(decoding: data, as: UTF8.self)
            while password.last?.isNewline == true { password.removeLast() }
            access.password = password
        }
        if let key = credentials.sshKey, !FileManager.default.isReadableFile(atPath: key) {
            throw AccessError(description: "cannot read credentials.sshKey \(key): \(Self.reason(key))")
        }
        if let file = credentials.knownHosts {
            do {
                access.knownHosts = try KnownHosts(contentsOf: file)
            } catch {
                throw AccessError(description: "cannot read credentials.knownHosts \(file): \(Self.reason(file))")
            }
        }
        return access
    }

    private static func reason(_ path: String) -> String {
        FileManager.default.fileExists(atPath: path) ? "permission denied" : "no such file"
    }
}
