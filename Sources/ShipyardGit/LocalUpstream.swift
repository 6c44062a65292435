import CGit2
import Foundation

/// A `file://` upstream, read directly. libgit2's local transport lists every ref and packs the
/// objects of all of them on each fetch, whatever the refspec: one large branch beside `main`
/// was copied again at every push to `main`. Here only the watched branch's ref is read, and a
/// fetch packs just the commits (and their trees and blobs) the mirror does not have yet.
public enum LocalUpstream {
    /// The repository path of a `file://` URL, or nil for any other URL.
    public static func path(of url: String) -> String? {
        guard url.hasPrefix("file://") else { return nil }
        let path = String(url.dropFirst("file://".count))
        return path.hasPrefix("/") ? path : nil
    }

    private static func withRepository<T>(_ path: String, _ body: (OpaquePointer) throws(GitError) -> T) throws(GitError) -> T {
        Git.initialize()
        var repo: OpaquePointer?
        let flags = GIT_REPOSITORY_OPEN_NO_SEARCH.rawValue
        let opened = git_repository_open_ext(&repo, path, flags, nil)
        if opened < 0 {
            throw GitError.last(opened, "cannot reach file://\(path): not a repository")
        }
        defer { git_repository_free(repo) }
        return try body(repo!)
    }

    /// Where the branch points, read from the upstream's own ref (a quiet poll costs one ref
    /// lookup, however many other branches there are).
    public static func branchTip(_ path: String, branch: String) throws(GitError) -> BranchTip {
        try withRepository(path) { repo throws(GitError) -> BranchTip in
            var oid = git_oid()
            let found = git_reference_name_to_id(&oid, repo, "refs/heads/\(branch)")
            if found == 0 {
                // A branch pointing at a tag object or a tree is not a commit to run.
                var object: OpaquePointer?
                guard git_object_lookup(&object, repo, &oid, GIT_OBJECT_COMMIT) == 0 else {
                    git_error_clear()
                    throw GitError(.other, "refs/heads/\(branch) in file://\(path) does not point at a commit")
                }
                git_object_free(object)
                return .commit(ObjectID(oid))
            }
            git_error_clear()
            var others: [String] = []
            var iterator: OpaquePointer?
            if git_reference_iterator_glob_new(&iterator, repo, "refs/heads/*") == 0 {
                defer { git_reference_iterator_free(iterator) }
                var name: UnsafePointer<CChar>?
                while others.count < 10, git_reference_next_name(&name, iterator) == 0, let name {
                    others.append(String(String(cString: name).dropFirst("refs/heads/".count)))
                }
            }
            git_error_clear()
            // As over the network: no branch at all is an empty repository.
            return others.isEmpty ? .emptyRepository : .missing(others: others.sorted())
        }
    }

    /// Copies what `tip` needs and the mirror lacks into the mirror, as one pack, then points the
    /// mirror's branch at it.
    public static func fetch(_ path: String, branch: String, tip: ObjectID, into mirror: Mirror) throws(GitError) {
        guard var tipOID = tip.raw else { throw GitError(.other, "\(tip) is not an object id") }
        let ref = "refs/heads/\(branch)"
        try mirror.withRepository { target throws(GitError) in
            var odb: OpaquePointer?
            try GitError.check(git_repository_odb(&odb, target), "cannot open the mirror's objects")
            defer { git_odb_free(odb) }
            if git_odb_exists(odb, &tipOID) == 0 {
                try withRepository(path) { source throws(GitError) in
                    var walk: OpaquePointer?
                    try GitError.check(git_revwalk_new(&walk, source), "cannot walk file://\(path)")
                    defer { git_revwalk_free(walk) }
                    try GitError.check(git_revwalk_push(walk, &tipOID), "cannot read \(tip.short) in file://\(path)")
                    // What the mirror already has (its branch, as far as upstream still knows it) is not sent again.
                    var have = git_oid()
                    if git_reference_name_to_id(&have, target, ref) == 0 {
                        var object: OpaquePointer?
                        if git_object_lookup(&object, source, &have, GIT_OBJECT_COMMIT) == 0 {
                            git_object_free(object)
                            _ = git_revwalk_hide(walk, &have)
                        }
                    }
                    git_error_clear()
                    var builder: OpaquePointer?
                    try GitError.check(git_packbuilder_new(&builder, source), "cannot pack file://\(path)")
                    defer { git_packbuilder_free(builder) }
                    if FileManager.default.fileExists(atPath: path + "/shallow") || FileManager.default.fileExists(atPath: path + "/.git/shallow") {
                        // A shallow clone lacks the parents a walk would read: the tip's commit and
                        // tree are all a delivery needs.
                        try GitError.check(git_packbuilder_insert_commit(builder, &tipOID), "cannot pack \(tip.short) from file://\(path)")
                    } else {
                        try GitError.check(git_packbuilder_insert_walk(builder, walk), "cannot pack \(tip.short) from file://\(path)")
                    }
                    var writer: UnsafeMutablePointer<git_odb_writepack>?
                    try GitError.check(git_odb_write_pack(&writer, odb, nil, nil), "cannot write a pack into the mirror")
                    defer { writer?.pointee.free(writer) }
                    var stats = git_indexer_progress()
                    let sent = withUnsafeMutablePointer(to: &stats) { statsPointer in
                        var sink = PackSink(writer: writer!, stats: statsPointer)
                        return withUnsafeMutablePointer(to: &sink) { sinkPointer in
                            git_packbuilder_foreach(builder, { data, size, payload in
                                let sink = payload!.assumingMemoryBound(to: PackSink.self).pointee
                                return sink.writer.pointee.append(sink.writer, data, size, sink.stats)
                            }, sinkPointer)
                        }
                    }
                    try GitError.check(sent, "cannot copy \(tip.short) from file://\(path) into the mirror")
                    try GitError.check(writer!.pointee.commit(writer, &stats), "cannot store the pack of \(tip.short) in the mirror")
                }
            }
            var reference: OpaquePointer?
            try GitError.check(git_reference_create(&reference, target, ref, &tipOID, 1, "shipyardd: fetch \(branch)"), "cannot move \(ref) in the mirror")
            git_reference_free(reference)
        }
    }

    private struct PackSink {
        var writer: UnsafeMutablePointer<git_odb_writepack>
        var stats: UnsafeMutablePointer<git_indexer_progress>
    }
}

extension Mirror {
    /// Past this many packs the mirror is repacked into one.
    public static let maxPacks = 32

    /// How many packs the mirror holds.
    public var packCount: Int {
        ((try? FileManager.default.contentsOfDirectory(atPath: path + "/objects/pack")) ?? []).filter { $0.hasPrefix("pack-") && $0.hasSuffix(".pack") }.count
    }

    public var needsRepack: Bool { packCount > Self.maxPacks }

    /// Removes what a fetch or a repack that was killed leaves in the mirror: libgit2's temporary
    /// packs and objects (a killed 1 GiB fetch left gigabytes of them for good) and the lock
    /// files that would make every later fetch fail. Call it only while nothing writes to the
    /// mirror (before its poll's fetch or repack starts). Returns the bytes freed.
    @discardableResult
    public func removeLeftovers() -> Int {
        let fm = FileManager.default
        var freed = 0
        func remove(_ file: String) {
            var info = stat()
            guard lstat(file, &info) == 0, info.st_mode & S_IFMT == S_IFREG else { return }
            if unlink(file) == 0 { freed += Int(info.st_size) }
        }
        let objects = path + "/objects"
        for name in (try? fm.contentsOfDirectory(atPath: objects + "/pack")) ?? []
        where name.hasPrefix("pack_git2_") || name.hasPrefix("tmp_") || name.hasSuffix(".lock") {
            remove(objects + "/pack/" + name)
        }
        for name in (try? fm.contentsOfDirectory(atPath: objects)) ?? [] {
            if name.hasPrefix("tmp_") {
                remove(objects + "/" + name)
            } else if name.count == 2, name.allSatisfy(\.isHexDigit) {
                for entry in (try? fm.contentsOfDirectory(atPath: objects + "/" + name)) ?? [] where entry.hasPrefix("tmp_") {
                    remove(objects + "/" + name + "/" + entry)
                }
            }
        }
        for lock in ["packed-refs.lock", "HEAD.lock", "config.lock", "FETCH_HEAD.lock", "shallow.lock"] { remove(path + "/" + lock) }
        if let walker = fm.enumerator(atPath: path + "/refs") {
            while let name = walker.nextObject() as? String {
                if name.hasSuffix(".lock") { remove(path + "/refs/" + name) }
            }
        }
        return freed
    }

    /// Every fetch adds a pack (501 after 500 pushes), and every later read searches them all.
    /// Past `maxPacks`, all of the mirror's objects (reachable or not: a commit no longer
    /// upstream may still be pinned by a sequence) are written into one pack and the others go.
    /// Returns how many packs were merged, or 0.
    @discardableResult
    public func repackIfNeeded(maxPacks: Int = Mirror.maxPacks) throws(GitError) -> Int {
        let directory = path + "/objects/pack"
        guard packCount > maxPacks else { return 0 }
        return try withRepository { repo throws(GitError) -> Int in
            var odb: OpaquePointer?
            try GitError.check(git_repository_odb(&odb, repo), "cannot open the mirror's objects")
            defer { git_odb_free(odb) }
            var builder: OpaquePointer?
            try GitError.check(git_packbuilder_new(&builder, repo), "cannot repack the mirror")
            defer { git_packbuilder_free(builder) }
            let inserted = git_odb_foreach(odb, { id, payload in
                git_packbuilder_insert(OpaquePointer(payload), id, nil)
            }, UnsafeMutableRawPointer(builder))
            try GitError.check(inserted, "cannot list the mirror's objects")
            try GitError.check(git_packbuilder_write(builder, directory, 0, nil, nil), "cannot write the mirror's new pack")
            guard let name = git_packbuilder_name(builder).map({ String(cString: $0) }) else { return 0 }
            let kept = "pack-\(name)"
            // The new pack on disk before the old ones go: a crash in between loses nothing.
            for file in [kept + ".pack", kept + ".idx"] {
                let fd = open(directory + "/" + file, O_RDONLY | O_CLOEXEC)
                guard fd >= 0, fsync(fd) == 0 else {
                    if fd >= 0 { close(fd) }
                    throw GitError(.other, "cannot make the mirror's new pack durable")
                }
                close(fd)
            }
            let dirFD = open(directory, O_RDONLY | O_DIRECTORY | O_CLOEXEC)
            if dirFD >= 0 {
                fsync(dirFD)
                close(dirFD)
            }
            var merged = 0
            for file in (try? FileManager.default.contentsOfDirectory(atPath: directory)) ?? [] where file.hasPrefix("pack-") && !file.hasPrefix(kept) {
                // Readers that have a pack open keep it until they close it (Linux unlink).
                if unlink(directory + "/" + file) == 0, file.hasSuffix(".pack") { merged += 1 }
            }
            return merged
        }
    }
}
