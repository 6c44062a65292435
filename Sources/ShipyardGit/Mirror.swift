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

    private func withRepository<T>(_ body: (OpaquePointer) throws(GitError) -> T) throws(GitError) -> T {
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
            return ObjectID(oid)
        }
    }

    /// The tip of a branch as last fetched, without touching the network.
    public func tip(branch: String) -> ObjectID? {
        try? withRepository { repo throws(GitError) in
            var oid = git_oid()
            try GitError.check(git_reference_name_to_id(&oid, repo, "refs/heads/\(branch)"), "no \(branch)")
            return ObjectID(oid)
        }
    }

    /// Reads a file from a commit's tree without a checkout.
    public func file(at commit: ObjectID, path filePath: String, limit: Int = 4 << 20) throws(GitError) -> File {
        try withRepository { repo throws(GitError) in
            guard var oid = commit.raw else { throw GitError(.other, "\(commit) is not an object id") }
            var commitObject: OpaquePointer?
            try GitError.check(git_commit_lookup(&commitObject, repo, &oid), "commit \(commit.short) is not in the mirror")
            defer { git_commit_free(commitObject) }
            var tree: OpaquePointer?
            try GitError.check(git_commit_tree(&tree, commitObject), "cannot read the tree of \(commit.short)")
            defer { git_tree_free(tree) }
            var entry: OpaquePointer?
            let found = git_tree_entry_bypath(&entry, tree, filePath)
            if found == GIT_ENOTFOUND.rawValue {
                git_error_clear()
                return .missing
            }
            try GitError.check(found, "cannot look up \(filePath) in \(commit.short)")
            defer { git_tree_entry_free(entry) }
            let mode = git_tree_entry_filemode(entry)
            if mode == GIT_FILEMODE_LINK { return .notAFile("a symbolic link") }
            guard git_tree_entry_type(entry) == GIT_OBJECT_BLOB else { return .notAFile("a directory") }
            guard let blobID = git_tree_entry_id(entry) else { return .missing }
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
    /// Writes the tree of `commit` into `directory` (which must not exist yet), as files only:
    /// no `.git`, so a task sees exactly what the commit holds. The caller publishes it (the
    /// daemon renames a complete export into place, so a half-written one is never used).
    public func export(_ commit: ObjectID, to directory: String) throws(GitError) {
        guard mkdir(directory, 0o700) == 0 else {
            throw GitError(.other, "cannot create \(directory): \(String(cString: strerror(errno)))")
        }
        try withRepository { repo throws(GitError) in
            guard var oid = commit.raw else { throw GitError(.other, "\(commit) is not an object id") }
            var object: OpaquePointer?
            try GitError.check(git_commit_lookup(&object, repo, &oid), "commit \(commit.short) is not in the mirror")
            defer { git_commit_free(object) }
            // The mirror's index is never updated (nor written, nor locked): concurrent exports of
            // one mirror would otherwise fail with "the index is locked".
            var options = git_checkout_options()
            git_checkout_options_init(&options, UInt32(GIT_CHECKOUT_OPTIONS_VERSION))
            options.checkout_strategy = GIT_CHECKOUT_FORCE.rawValue | GIT_CHECKOUT_DONT_UPDATE_INDEX.rawValue
            let code = directory.withCString { path -> Int32 in
                options.target_directory = path
                return git_checkout_tree(repo, object, &options)
            }
            try GitError.check(code, "cannot export \(commit.short)")
        }
    }
}
