import Foundation
import ShipyardGit
import Synchronization

/// `<state>/worktrees/<commit>/`: the repository at a commit, as tasks see it. An export is made
/// in a hidden folder of its own (unique per attempt), made read-only there, and renamed into
/// place, so a task only ever sees a complete export; concurrent exports of one commit never
/// touch each other's files, and the loser of the race removes its own copy.
final class Worktrees: Sendable {
    let root: String
    /// What each published export was when it was sealed, kept in the daemon's memory only: a task
    /// runs as the daemon's user and can touch any file, so a seal it could reach it could renew.
    private let seals = Mutex<[String: Seal]>([:])

    /// When an export was made read-only, and which folder it was (a folder swapped in by a task
    /// has another inode).
    struct Seal: Sendable {
        var time: timespec
        var device: UInt
        var inode: UInt
    }

    init(root: String) {
        self.root = root
    }

    static let partialPrefix = ".partial-"
    /// Linux's O_PATH, which Swift's Glibc module does not export.
    static let pathOnly: Int32 = 0o10000000

    func path(commit: String) -> String { root + "/" + commit }

    /// Seal files of releases that kept the seal on disk; removed at start.
    static let sealPrefix = ".sealed-"
    static let tamperedPrefix = ".tampered-"

    /// The export of `commit`, made now if it is not there yet. Returns a message on failure.
    /// Tasks run as the daemon's user and could make a shared export writable again: an export
    /// any entry of which changed after it was sealed is set aside, and the task gets a new one
    /// (`tampered` says so). An export this run of the daemon did not seal (one left by the run
    /// before) is made again.
    func ensure(mirror: Mirror, commit: String?, tampered: (String) -> Void = { _ in }) -> String? {
        guard let commit else { return "the sequence has no commit to export" }
        guard Self.isCommitName(commit) else { return "\(commit) is not a commit id" }
        let final = path(commit: commit)
        if Self.isDirectory(final) {
            let judged = seals.withLock { $0[commit] }
            guard let changed = changedSinceSealed(commit) else { return nil }
            // Set aside only what was judged: another task of this commit may have published a
            // fresh export meanwhile, which is good.
            let aside = root + "/" + (changed == Self.unsealed ? Self.removingPrefix : Self.tamperedPrefix) + commit + "-" + UUID().uuidString.lowercased()
            let moved = seals.withLock { seals -> Bool in
                guard seals[commit]?.inode == judged?.inode else { return false }
                seals[commit] = nil
                return rename(final, aside) == 0
            }
            guard moved else { return Self.isDirectory(final) ? nil : ensure(mirror: mirror, commit: commit, tampered: tampered) }
            if changed == Self.unsealed {
                // Left by the daemon's previous run: no task of this run is in it.
                Thread { Self.removeTree(aside) }.start()
            } else {
                // Renamed, not removed: a task of the same commit may still be running in it.
                // What was set aside goes at the next start.
                tampered("the export of \(commit.prefix(12)) was changed after it was made (\(changed)); a task got a fresh one")
            }
        }
        let temporary = root + "/" + Self.partialPrefix + commit + "-" + UUID().uuidString.lowercased()
        do {
            try FileManager.default.createDirectory(atPath: root, withIntermediateDirectories: true)
            try FetchProcess.export(mirror: mirror, commit: ObjectID(hex: commit), to: temporary)
        } catch {
            Self.removeTree(temporary)
            return "cannot export the repository at \(commit.prefix(12)): \(error)"
        }
        // Sealed before it is published: every entry's ctime is at most the seal's time.
        var newest = Self.makeReadOnly(temporary)
        var now = timespec()
        clock_gettime(CLOCK_REALTIME_COARSE, &now)
        if (now.tv_sec, now.tv_nsec) > (newest.tv_sec, newest.tv_nsec) { newest = now }
        var folder = stat()
        guard lstat(temporary, &folder) == 0 else {
            Self.removeTree(temporary)
            return "cannot seal the export of \(commit.prefix(12)): \(String(cString: strerror(errno)))"
        }
        let seal = Seal(time: newest, device: UInt(folder.st_dev), inode: UInt(folder.st_ino))
        let failure: String? = seals.withLock { seals in
            guard rename(temporary, final) == 0 else { return String(cString: strerror(errno)) }
            seals[commit] = seal
            return nil
        }
        if let failure {
            Self.removeTree(temporary)
            // Another task of the same commit published its export first: that one is complete.
            if Self.isDirectory(final) { return nil }
            return "cannot move the export of \(commit.prefix(12)) into place: \(failure)"
        }
        return nil
    }

    static let unsealed = "it was not sealed by this run of the daemon"

    /// The first entry of the export whose metadata changed after the seal (chmod, a write, a new
    /// file), or nil. An export this run did not seal counts as changed (`unsealed`).
    func changedSinceSealed(_ commit: String) -> String? {
        guard let seal = seals.withLock({ $0[commit] }) else { return Self.unsealed }
        let final = path(commit: commit)
        // The folder itself was renamed into place after the seal (which changes its ctime): judge
        // it by its inode and its mode, which nothing but a chmod changes.
        var top = stat()
        guard lstat(final, &top) == 0 else { return "the folder itself" }
        guard UInt(top.st_dev) == seal.device, UInt(top.st_ino) == seal.inode else { return "the folder itself was replaced" }
        if top.st_mode & 0o222 != 0 { return "the folder itself was made writable" }
        let fd = open(final, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC)
        guard fd >= 0 else { return "the folder itself cannot be read" }
        defer { close(fd) }
        var changed: String?
        Self.walk(fd, path: "") { _, path, info in
            if (info.st_ctim.tv_sec, info.st_ctim.tv_nsec) > (seal.time.tv_sec, seal.time.tv_nsec) {
                changed = path
                return false
            }
            return true
        }
        return changed
    }

    /// Out of the way at once (a rename), removed on a thread of its own.
    private func setAside(_ commit: String) {
        let doomed = root + "/" + Self.removingPrefix + commit + "-" + UUID().uuidString.lowercased()
        let moved = seals.withLock { seals in
            seals[commit] = nil
            return rename(path(commit: commit), doomed) == 0
        }
        if moved { Thread { Self.removeTree(doomed) }.start() }
    }

    /// Removes the exports no active sequence needs, and nothing else: exports still being
    /// written (hidden) are left to their writer. Returns the exports that could not be removed.
    @discardableResult
    func prune(keeping needed: Set<String>) -> [String] {
        var left: [String] = []
        for name in (try? FileManager.default.contentsOfDirectory(atPath: root)) ?? []
        where Self.isCommitName(name) && !needed.contains(name) {
            // A 100,000-file export takes seconds to delete: the orchestrator must not wait for it.
            setAside(name)
            if FileManager.default.fileExists(atPath: root + "/" + name) { left.append(root + "/" + name) }
        }
        return left
    }

    static let removingPrefix = ".removing-"

    /// At start nothing is being exported: half-written exports of a previous run go.
    func removeAbandonedExports() {
        for name in (try? FileManager.default.contentsOfDirectory(atPath: root)) ?? []
        where name.hasPrefix(Self.partialPrefix) || name.hasPrefix(Self.removingPrefix) || name.hasPrefix(Self.tamperedPrefix)
            || name.hasPrefix(Self.sealPrefix) {
            Self.removeTree(root + "/" + name)
        }
    }

    static func isCommitName(_ name: String) -> Bool {
        (name.count == 40 || name.count == 64) && name.unicodeScalars.allSatisfy { ("0"..."9").contains($0) || ("a"..."f").contains($0) }
    }

    static func isDirectory(_ path: String) -> Bool {
        var info = stat()
        return lstat(path, &info) == 0 && info.st_mode & S_IFMT == S_IFDIR
    }

    /// Takes the write bits off every file and folder of a fresh export (links are left alone:
    /// their mode means nothing, and chmod would follow them). Returns the newest ctime it left.
    @discardableResult
    static func makeReadOnly(_ path: String) -> timespec {
        var newest = timespec()
        func note(_ info: stat) {
            if (info.st_ctim.tv_sec, info.st_ctim.tv_nsec) > (newest.tv_sec, newest.tv_nsec) { newest = info.st_ctim }
        }
        let fd = open(path, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC)
        guard fd >= 0 else { return newest }
        defer { close(fd) }
        walk(fd, path: "") { folder, _, info in
            guard info.st_mode & S_IFMT != S_IFLNK else { return true }
            // Through the entry's own descriptor, never by a name a task could swap.
            let entry = openat(folder.fd, folder.name, pathOnly | O_NOFOLLOW | O_CLOEXEC)
            guard entry >= 0 else { return true }
            defer { close(entry) }
            _ = chmod("/proc/self/fd/\(entry)", info.st_mode & ~0o222)
            var after = stat()
            if fstat(entry, &after) == 0 { note(after) }
            return true
        }
        var top = stat()
        if fstat(fd, &top) == 0 {
            _ = fchmod(fd, top.st_mode & ~0o222)
            if fstat(fd, &top) == 0 { note(top) }
        }
        return newest
    }

    /// One entry met by `walk`: its folder's descriptor and its exact name.
    struct Entry {
        var fd: Int32
        var name: [CChar]
    }

    /// Visits every entry under the folder open as `fd`, depth first, by the exact bytes of each
    /// name (not every name is UTF-8), without following links; `visit` gets the entry, its path
    /// for messages and its `lstat`, and returns false to stop.
    @discardableResult
    static func walk(_ fd: Int32, path: String, depth: Int = 0, _ visit: (Entry, String, stat) -> Bool) -> Bool {
        guard depth < 512 else { return true }
        for name in entries(of: fd) {
            var info = stat()
            guard fstatat(fd, name, &info, AT_SYMLINK_NOFOLLOW) == 0 else { continue }
            let shown = (path.isEmpty ? "" : path + "/") + Mirror.shown(Array(name.map { UInt8(bitPattern: $0) }.dropLast()))
            guard visit(Entry(fd: fd, name: name), shown, info) else { return false }
            if info.st_mode & S_IFMT == S_IFDIR {
                let child = openat(fd, name, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC)
                guard child >= 0 else { continue }
                defer { close(child) }
                guard walk(child, path: shown, depth: depth + 1, visit) else { return false }
            }
        }
        return true
    }

    /// Removes a tree without following a symbolic link anywhere in it: each folder is opened with
    /// `O_NOFOLLOW` and made writable through its descriptor, and entries are removed relative to
    /// their folder's descriptor. A committed `link -> /etc/shadow` is unlinked, never chmodded.
    static func removeTree(_ path: String) {
        let parent = (path as NSString).deletingLastPathComponent
        let name = (path as NSString).lastPathComponent
        let parentFD = open(parent.isEmpty ? "." : parent, O_RDONLY | O_DIRECTORY | O_CLOEXEC)
        guard parentFD >= 0 else { return }
        defer { close(parentFD) }
        removeEntry(Array(name.utf8CString), in: parentFD, depth: 0)
    }

    private static func removeEntry(_ name: [CChar], in directory: Int32, depth: Int) {
        if unlinkat(directory, name, 0) == 0 || errno == ENOENT { return }
        // One descriptor is open per level: deeper than this, what is left stays (and is reported).
        guard errno == EISDIR || errno == EPERM, depth < 512 else { return }
        var fd = openat(directory, name, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC)
        if fd < 0, errno == EACCES {
            // A folder a task made unreadable: make it ours again through an O_PATH descriptor,
            // which never follows a link and needs no permission on the folder itself.
            let path = openat(directory, name, Self.pathOnly | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC)
            if path >= 0 {
                _ = chmod("/proc/self/fd/\(path)", 0o700)
                close(path)
                fd = openat(directory, name, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC)
            }
        }
        guard fd >= 0 else { return }
        _ = fchmod(fd, 0o700)
        for child in entries(of: fd) {
            removeEntry(child, in: fd, depth: depth + 1)
        }
        close(fd)
        _ = unlinkat(directory, name, AT_REMOVEDIR)
    }

    /// The names in a folder, each as its exact bytes with the terminating zero.
    private static func entries(of fd: Int32) -> [[CChar]] {
        let copy = dup(fd)
        guard copy >= 0, let stream = fdopendir(copy) else {
            if copy >= 0 { close(copy) }
            return []
        }
        defer { closedir(stream) }
        var names: [[CChar]] = []
        while let entry = readdir(stream) {
            let name = withUnsafePointer(to: entry.pointee.d_name) { pointer in
                pointer.withMemoryRebound(to: CChar.self, capacity: Int(NAME_MAX) + 1) { Array(UnsafeBufferPointer(start: $0, count: strlen($0) + 1)) }
            }
            if name != [0x2E, 0] && name != [0x2E, 0x2E, 0] { names.append(name) }
        }
        return names
    }
}
