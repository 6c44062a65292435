import CGit2
import Foundation

/// A bare repository under the state directory that holds what was fetched of one branch.
/// Every call opens and frees its own libgit2 handles, so a `Mirror` can be used from any
/// thread, one call at a time.
public struct Mirror: Sendable {
    public let path: String

    public init(path: String) {
        self.path = path
    }

    /// What `shipyardPath` is at a commit.
    public enum File: Sendable, Equatable {
        case blob(id: ObjectID, bytes: [UInt8])
        case missing
        case notAFile(String)
        case tooLarge(Int)
    }

    /// Opens the mirror, creating it when absent and re-creating it when it is unreadable.
    /// Returns whether it had to be re-created, so the caller can say so.
    @discardableResult
    public func prepare() throws(GitError) -> Bool {
        Git.initialize()
        var repo: OpaquePointer?
        if FileManager.default.fileExists(atPath: path) {
            if git_repository_open_bare(&repo, path) == 0 {
                git_repository_free(repo)
                return false
            }
            git_error_clear()
            do {
                try FileManager.default.removeItem(atPath: path)
            } catch {
                throw GitError(.other, "the mirror at \(path) is unreadable and cannot be removed: \(error.localizedDescription)")
            }
            try create()
            return true
        }
        try create()
        return false
    }

    private func create() throws(GitError) {
        try? FileManager.default.createDirectory(
            atPath: (path as NSString).deletingLastPathComponent, withIntermediateDirectories: true)
        var repo: OpaquePointer?
        try GitError.check(git_repository_init(&repo, path, 1), "cannot create the mirror at \(path)")
        git_repository_free(repo)
    }

    func withRepository<T>(_ body: (OpaquePointer) throws(GitError) -> T) throws(GitError) -> T {
        Git.initialize()
        var repo: OpaquePointer?
        try GitError.check(git_repository_open_bare(&repo, path), "cannot open the mirror at \(path)")
        defer { git_repository_free(repo) }
        return try body(repo!)
    }

    /// Fetches one branch (force-pushes included) and returns its new tip in the mirror.
    public func fetch(_ access: RemoteAccess, branch: String, cancel: CancelToken = CancelToken()) throws(GitError) -> ObjectID {
        try withRepository { repo throws(GitError) in
            let context = CallbackContext(access: access, cancel: cancel)
            var remote: OpaquePointer?
            try GitError.check(git_remote_create_anonymous(&remote, repo, access.url), "cannot use upstream \(access.redactedURL)")
            defer { git_remote_free(remote) }
            var options = git_fetch_options()
            git_fetch_options_init(&options, UInt32(GIT_FETCH_OPTIONS_VERSION))
            options.callbacks = context.callbacks()
            options.update_fetchhead = 0
            options.download_tags = GIT_REMOTE_DOWNLOAD_TAGS_NONE
            options.prune = GIT_FETCH_NO_PRUNE
            let ref = "refs/heads/\(branch)"
            let refspec = strdup("+\(ref):\(ref)")
            defer { free(refspec) }
            var strings: [UnsafeMutablePointer<CChar>?] = [refspec]
            let fetched = strings.withUnsafeMutableBufferPointer { buffer in
                var array = git_strarray(strings: buffer.baseAddress, count: 1)
                return git_remote_fetch(remote, &array, &options, "shipyardd: fetch \(branch)")
            }
            if fetched < 0 {
                throw context.translate(GitError.last(fetched, "cannot fetch \(branch) from \(access.redactedURL)"))
            }
            var oid = git_oid()
            try GitError.check(git_reference_name_to_id(&oid, repo, ref), "the fetch did not bring \(ref)")
            var object: OpaquePointer?
            try GitError.check(git_object_lookup(&object, repo, &oid, GIT_OBJECT_ANY), "the fetch did not bring \(ref)'s object")
            let type = git_object_type(object)
            git_object_free(object)
            guard type == GIT_OBJECT_COMMIT else {
                let name = git_object_type2string(type).map { String(cString: $0) } ?? "non-commit"
                throw GitError(.other, "\(ref) upstream points at a \(name) (\(ObjectID(oid).short)), not a commit: push a commit to \(branch)")
            }
            return ObjectID(oid)
        }
    }

    /// Whether the mirror itself is sound: it opens, and the branch's last fetched commit and
    /// its tree can be read. A fetch that failed on a sound mirror failed on the way (a cut
    /// connection, a full disk), and the mirror is kept.
    public func isReadable(branch: String) -> Bool {
        (try? withRepository { repo throws(GitError) -> Bool in
            var oid = git_oid()
            guard git_reference_name_to_id(&oid, repo, "refs/heads/\(branch)") == 0 else {
                git_error_clear()
                return true  // nothing fetched yet
            }
            var commit: OpaquePointer?
            try GitError.check(git_commit_lookup(&commit, repo, &oid), "unreadable tip")
            defer { git_commit_free(commit) }
            var tree: OpaquePointer?
            try GitError.check(git_commit_tree(&tree, commit), "unreadable tree")
            git_tree_free(tree)
            return true
        }) ?? false
    }

    /// The tip of a branch as last fetched, without touching the network.
    public func tip(branch: String) -> ObjectID? {
        try? withRepository { repo throws(GitError) in
            var oid = git_oid()
            try GitError.check(git_reference_name_to_id(&oid, repo, "refs/heads/\(branch)"), "no \(branch)")
            return ObjectID(oid)
        }
    }

    /// What `file(at:path:)` says a symbolic link is.
    public static let symbolicLink = "a symbolic link"
    /// What `file(at:path:)` says a submodule (a gitlink) is.
    public static let submodule = "a submodule"

    /// Reads a file from a commit's tree without a checkout.
    /// The root tree of a commit, for `body` (with the open repository).
    func withTree<T>(_ commit: ObjectID, _ body: (OpaquePointer, OpaquePointer?) throws(GitError) -> T) throws(GitError) -> T {
        try withRepository { repo throws(GitError) in
            guard var oid = commit.raw else { throw GitError(.other, "\(commit) is not an object id") }
            var commitObject: OpaquePointer?
            try GitError.check(git_commit_lookup(&commitObject, repo, &oid), "commit \(commit.short) is not in the mirror")
            defer { git_commit_free(commitObject) }
            var tree: OpaquePointer?
            try GitError.check(git_commit_tree(&tree, commitObject), "cannot read the tree of \(commit.short)")
            defer { git_tree_free(tree) }
            return try body(repo, tree)
        }
    }

    public func file(at commit: ObjectID, path filePath: String, limit: Int = 4 << 20) throws(GitError) -> File {
        try withTree(commit) { repo, tree throws(GitError) in
            var entry: OpaquePointer?
            let found = git_tree_entry_bypath(&entry, tree, filePath)
            if found == GIT_ENOTFOUND.rawValue {
                git_error_clear()
                return .missing
            }
            try GitError.check(found, "cannot look up \(filePath) in \(commit.short)")
            defer { git_tree_entry_free(entry) }
            let mode = git_tree_entry_filemode(entry)
            if mode == GIT_FILEMODE_LINK { return .notAFile(Self.symbolicLink) }
            if mode == GIT_FILEMODE_COMMIT { return .notAFile(Self.submodule) }
            guard git_tree_entry_type(entry) == GIT_OBJECT_BLOB else { return .notAFile("a directory") }
            guard let blobID = git_tree_entry_id(entry) else { return .missing }
            // The size from the object's header first: a huge blob is never inflated.
            var odb: OpaquePointer?
            try GitError.check(git_repository_odb(&odb, repo), "cannot open the mirror's objects")
            defer { git_odb_free(odb) }
            var length = 0
            var type = GIT_OBJECT_ANY
            try GitError.check(git_odb_read_header(&length, &type, odb, blobID), "cannot read \(filePath) in \(commit.short)")
            if length > limit { return .tooLarge(length) }
            var blob: OpaquePointer?
            try GitError.check(git_blob_lookup(&blob, repo, blobID), "cannot read \(filePath) in \(commit.short)")
            defer { git_blob_free(blob) }
            let size = Int(git_blob_rawsize(blob))
            if size > limit { return .tooLarge(size) }
            let bytes = size == 0 ? [] : Array(UnsafeRawBufferPointer(start: git_blob_rawcontent(blob), count: size))
            return .blob(id: ObjectID(blobID.pointee), bytes: bytes)
        }
    }
}

extension Mirror {
    /// One entry of a folder at a commit.
    public struct Entry: Sendable, Equatable {
        public enum Kind: Sendable, Equatable { case file, folder, other }
        public var name: String
        public var kind: Kind
    }

    /// The entries of a folder at a commit ("" is the root), at most `limit`, in Git's order;
    /// nil when the path is not a folder there. Symbolic links and submodules are `other`.
    public func entries(at commit: ObjectID, path folder: String, limit: Int = 10_000) throws(GitError) -> [Entry]? {
        try withTree(commit) { repo, root throws(GitError) in
            var tree = root
            var subtree: OpaquePointer?
            defer { if subtree != nil { git_tree_free(subtree) } }
            if !folder.isEmpty {
                var entry: OpaquePointer?
                guard git_tree_entry_bypath(&entry, root, folder) == 0 else {
                    git_error_clear()
                    return nil
                }
                defer { git_tree_entry_free(entry) }
                guard git_tree_entry_filemode(entry) == GIT_FILEMODE_TREE, let id = git_tree_entry_id(entry) else { return nil }
                try GitError.check(git_tree_lookup(&subtree, repo, id), "cannot read \(folder) in \(commit.short)")
                tree = subtree
            }
            var result: [Entry] = []
            for index in 0..<min(git_tree_entrycount(tree), limit) {
                guard let entry = git_tree_entry_byindex(tree, index), let name = git_tree_entry_name(entry) else { continue }
                let mode = git_tree_entry_filemode(entry)
                let kind: Entry.Kind = mode == GIT_FILEMODE_TREE ? .folder : (mode == GIT_FILEMODE_BLOB || mode == GIT_FILEMODE_BLOB_EXECUTABLE) ? .file : .other
                result.append(Entry(name: String(cString: name), kind: kind))
            }
            return result
        }
    }

    /// Writes the tree of `commit` into `directory` (which must not exist yet) exactly as the
    /// commit holds it: each blob's bytes as they are (no `.gitattributes` filter, no line-ending
    /// or `$Id$` conversion), executables 0750 and other files 0640, symbolic links as links, and
    /// a submodule (gitlink) as an empty folder, as `git archive` does. No `.git`. Entries a tree
    /// should never hold (`.`, `..`, `.git`, a `/`, a duplicate) fail the export rather than be
    /// skipped. The caller publishes it (the daemon renames a complete export into place).
    public func export(_ commit: ObjectID, to directory: String) throws(GitError) {
        guard mkdir(directory, 0o700) == 0 else {
            throw GitError(.other, "cannot create \(directory): \(String(cString: strerror(errno)))")
        }
        let top = open(directory, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC)
        guard top >= 0 else { throw GitError(.other, "cannot open \(directory): \(String(cString: strerror(errno)))") }
        defer { close(top) }
        try withRepository { repo throws(GitError) in
            guard var oid = commit.raw else { throw GitError(.other, "\(commit) is not an object id") }
            var object: OpaquePointer?
            try GitError.check(git_commit_lookup(&object, repo, &oid), "commit \(commit.short) is not in the mirror")
            defer { git_commit_free(object) }
            var tree: OpaquePointer?
            try GitError.check(git_commit_tree(&tree, object), "cannot read the tree of \(commit.short)")
            defer { git_tree_free(tree) }
            try Self.write(tree!, repo: repo, into: top, at: directory, depth: 0)
        }
        fchmod(top, 0o750)
    }

    /// Writes a tree's entries into the folder open as `folder` (`path` only names it in
    /// messages). Every entry is made relative to its folder's descriptor under the exact bytes of
    /// its name, as Git keeps them: a name that is not UTF-8 reaches tasks unchanged, and two such
    /// names never fold into one.
    private static func write(_ tree: OpaquePointer, repo: OpaquePointer, into folder: Int32, at path: String, depth: Int) throws(GitError) {
        guard depth < 256 else { throw GitError(.other, "the tree is nested more than 256 folders deep at \(path)") }
        for index in 0..<git_tree_entrycount(tree) {
            guard let entry = git_tree_entry_byindex(tree, index), let name = git_tree_entry_name(entry) else { continue }
            let bytes = Array(UnsafeBufferPointer(start: UnsafeRawPointer(name).assumingMemoryBound(to: UInt8.self), count: strlen(name)))
            let entryPath = path + "/" + shown(bytes)
            guard !bytes.isEmpty, bytes != Array(".".utf8), bytes != Array("..".utf8), bytes.map({ (0x41...0x5A).contains($0) ? $0 | 0x20 : $0 }) != Array(".git".utf8),
                !bytes.contains(UInt8(ascii: "/"))
            else {
                throw GitError(.other, "the tree holds an entry named \"\(shown(bytes))\" in \(path), which no checkout may write")
            }
            guard let id = git_tree_entry_id(entry) else { continue }
            switch git_tree_entry_filemode(entry) {
            case GIT_FILEMODE_TREE:
                guard mkdirat(folder, name, 0o700) == 0 else { throw fileError("cannot create the folder", entryPath) }
                let child = openat(folder, name, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC)
                guard child >= 0 else { throw fileError("cannot open the folder", entryPath) }
                defer { close(child) }
                var subtree: OpaquePointer?
                try GitError.check(git_tree_lookup(&subtree, repo, id), "cannot read the tree at \(entryPath)")
                defer { git_tree_free(subtree) }
                try write(subtree!, repo: repo, into: child, at: entryPath, depth: depth + 1)
                fchmod(child, 0o750)
            case GIT_FILEMODE_COMMIT:
                // A submodule: its commit lives in another repository. An empty folder, as git archive writes.
                guard mkdirat(folder, name, 0o750) == 0 else { throw fileError("cannot create the folder", entryPath) }
            case GIT_FILEMODE_LINK:
                // The target's exact bytes, too.
                let target = try blobBytes(repo, id, path: entryPath)
                guard !target.isEmpty, !target.contains(0) else { throw GitError(.other, "the symbolic link \(entryPath) has no usable target") }
                let made = (target + [0]).withUnsafeBufferPointer { buffer in
                    buffer.withMemoryRebound(to: CChar.self) { symlinkat($0.baseAddress!, folder, name) }
                }
                guard made == 0 else { throw fileError("cannot create the link", entryPath) }
            case GIT_FILEMODE_BLOB, GIT_FILEMODE_BLOB_EXECUTABLE:
                // Group-readable, nothing for others, as everything in the state directory.
                let mode: mode_t = git_tree_entry_filemode(entry) == GIT_FILEMODE_BLOB_EXECUTABLE ? 0o750 : 0o640
                let fd = openat(folder, name, O_WRONLY | O_CREAT | O_EXCL | O_NOFOLLOW | O_CLOEXEC, 0o600)
                guard fd >= 0 else { throw fileError("cannot create", entryPath) }
                defer { close(fd) }
                try withBlob(repo, id, path: entryPath) { bytes throws(GitError) in
                    var offset = 0
                    while offset < bytes.count {
                        let n = Foundation.write(fd, bytes.baseAddress! + offset, bytes.count - offset)
                        if n < 0 {
                            if errno == EINTR { continue }
                            throw fileError("cannot write", entryPath)
                        }
                        offset += n
                    }
                }
                guard fchmod(fd, mode) == 0 else { throw fileError("cannot set the mode of", entryPath) }
            default:
                throw GitError(.other, "the tree holds \(entryPath) with an unknown mode")
            }
        }
    }

    /// A name as messages show it: UTF-8 as it is, any other byte as `\xHH`.
    public static func shown(_ bytes: [UInt8]) -> String {
        var text = ""
        var rest = bytes[...]
        while !rest.isEmpty {
            var iterator = rest.makeIterator()
            var decoder = UTF8()
            switch decoder.decode(&iterator) {
            case .scalarValue(let scalar) where scalar.value >= 0x20 && scalar.value != 0x7F:
                text.unicodeScalars.append(scalar)
                rest = rest.dropFirst(String(scalar).utf8.count)
            default:
                text += "\\x" + String(rest.first!, radix: 16, uppercase: false).leftPadded(to: 2)
                rest = rest.dropFirst()
            }
        }
        return text
    }

    private static func fileError(_ what: String, _ path: String) -> GitError {
        GitError(.other, "\(what) \(path): \(String(cString: strerror(errno)))")
    }

    private static func blobBytes(_ repo: OpaquePointer, _ id: UnsafePointer<git_oid>, path: String) throws(GitError) -> [UInt8] {
        var bytes: [UInt8] = []
        try withBlob(repo, id, path: path) { buffer throws(GitError) in bytes = Array(buffer) }
        return bytes
    }

    private static func withBlob(
        _ repo: OpaquePointer, _ id: UnsafePointer<git_oid>, path: String, _ body: (UnsafeRawBufferPointer) throws(GitError) -> Void
    ) throws(GitError) {
        var blob: OpaquePointer?
        try GitError.check(git_blob_lookup(&blob, repo, id), "cannot read \(path) from the mirror")
        defer { git_blob_free(blob) }
        let size = Int(git_blob_rawsize(blob))
        guard size > 0, let content = git_blob_rawcontent(blob) else { return }
        try body(UnsafeRawBufferPointer(start: content, count: size))
    }
}

extension String {
    fileprivate func leftPadded(to width: Int) -> String {
        count >= width ? self : String(repeating: "0", count: width - count) + self
    }
}
