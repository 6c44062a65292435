import Foundation
import ShipyardGit

/// `<state>/worktrees/<commit>/`: the repository at a commit, as tasks see it. An export is made
/// in a hidden folder of its own (unique per attempt), made read-only there, and renamed into
/// place, so a task only ever sees a complete export; concurrent exports of one commit never
/// touch each other's files, and the loser of the race removes its own copy.
struct Worktrees: Sendable {
    let root: String

    static let partialPrefix = ".partial-"
    /// Linux's O_PATH, which Swift's Glibc module does not export.
    static let pathOnly: Int32 = 0o10000000

    func path(commit: String) -> String { root + "/" + commit }

    /// Where the time an export was sealed (made read-only) is kept: the file's mtime.
    func sealPath(commit: String) -> String { root + "/" + Self.sealPrefix + commit }
    static let sealPrefix = ".sealed-"
    static let tamperedPrefix = ".tampered-"

    /// The export of `commit`, made now if it is not there yet. Returns a message on failure.
    /// Tasks run as the daemon's user and could make a shared export writable again: an export
    /// any entry of which changed after it was sealed is set aside, and the task gets a new one
    /// (`tampered` says so).
    func ensure(mirror: Mirror, commit: String?, tampered: (String) -> Void = { _ in }) -> String? {
        guard let commit else { return "the sequence has no commit to export" }
        guard Self.isCommitName(commit) else { return "\(commit) is not a commit id" }
        let final = path(commit: commit)
        if Self.isDirectory(final) {
            guard let changed = changedSinceSealed(commit) else { return nil }
            tampered("the export of \(commit.prefix(12)) was changed after it was made (\(changed)); a task got a fresh one")
            // Renamed, not removed: a task of the same commit may still be running in it. What
            // was set aside goes at the next start.
            unlink(sealPath(commit: commit))
            _ = rename(final, root + "/" + Self.tamperedPrefix + commit + "-" + UUID().uuidString.lowercased())
        }
        let temporary = root + "/" + Self.partialPrefix + commit + "-" + UUID().uuidString.lowercased()
        do {
            try FileManager.default.createDirectory(atPath: root, withIntermediateDirectories: true)
            try FetchProcess.export(mirror: mirror, commit: ObjectID(hex: commit), to: temporary)
        } catch {
            Self.removeTree(temporary)
            return "cannot export the repository at \(commit.prefix(12)): \(error)"
        }
        Self.makeReadOnly(temporary)
        // Sealed before it is published: every entry's ctime is at most the seal's mtime.
        let seal = open(sealPath(commit: commit), O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0o640)
        if seal >= 0 { close(seal) }
        if rename(temporary, final) != 0 {
            let reason = String(cString: strerror(errno))
            Self.removeTree(temporary)
            // Another task of the same commit published its export first: that one is complete.
            if Self.isDirectory(final) { return nil }
            return "cannot move the export of \(commit.prefix(12)) into place: \(reason)"
        }
        return nil
    }

    /// The first entry of the export whose metadata changed after the seal (chmod, a write, a new
    /// file), or nil. An export without a seal (from an older release) counts as changed.
    func changedSinceSealed(_ commit: String) -> String? {
        var seal = stat()
        guard stat(sealPath(commit: commit), &seal) == 0 else { return "it has no seal" }
        let sealed = Double(seal.st_mtim.tv_sec) + Double(seal.st_mtim.tv_nsec) / 1e9
        let final = path(commit: commit)
        func changed(_ path: String) -> Bool {
            var info = stat()
            guard lstat(path, &info) == 0 else { return true }
            return Double(info.st_ctim.tv_sec) + Double(info.st_ctim.tv_nsec) / 1e9 > sealed
        }
        // The folder itself was renamed into place after the seal (which changes its ctime): judge
        // it by its mode, which nothing but a chmod changes.
        var top = stat()
        guard lstat(final, &top) == 0 else { return "the folder itself" }
        if top.st_mode & 0o222 != 0 { return "the folder itself was made writable" }
        let walker = FileManager.default.enumerator(atPath: final)
        while let name = walker?.nextObject() as? String {
            if changed(final + "/" + name) { return name }
        }
        return nil
    }

    /// Out of the way at once (a rename), removed on a thread of its own.
    private func setAside(_ commit: String) {
        unlink(sealPath(commit: commit))
        let doomed = root + "/" + Self.removingPrefix + commit + "-" + UUID().uuidString.lowercased()
        if rename(path(commit: commit), doomed) == 0 { Thread { Self.removeTree(doomed) }.start() }
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
            || (name.hasPrefix(Self.sealPrefix) && !Self.isDirectory(path(commit: String(name.dropFirst(Self.sealPrefix.count))))) {
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
    /// their mode means nothing, and chmod would follow them).
    static func makeReadOnly(_ path: String) {
        let fm = FileManager.default
        for file in fm.enumerator(atPath: path)?.compactMap({ $0 as? String }) ?? [] {
            let full = path + "/" + file
            var info = stat()
            guard lstat(full, &info) == 0, info.st_mode & S_IFMT != S_IFLNK else { continue }
            chmod(full, info.st_mode & ~0o222)
        }
        var info = stat()
        if lstat(path, &info) == 0, info.st_mode & S_IFMT == S_IFDIR { chmod(path, info.st_mode & ~0o222) }
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
        removeEntry(name, in: parentFD, depth: 0)
    }

    private static func removeEntry(_ name: String, in directory: Int32, depth: Int) {
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

    private static func entries(of fd: Int32) -> [String] {
        let copy = dup(fd)
        guard copy >= 0, let stream = fdopendir(copy) else {
            if copy >= 0 { close(copy) }
            return []
        }
        defer { closedir(stream) }
        var names: [String] = []
        while let entry = readdir(stream) {
            let name = withUnsafePointer(to: entry.pointee.d_name) { pointer in
                pointer.withMemoryRebound(to: CChar.self, capacity: Int(NAME_MAX) + 1) { String(cString: $0) }
            }
            if name != "." && name != ".." { names.append(name) }
        }
        return names
    }
}
