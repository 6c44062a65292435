import Foundation

/// A bare upstream repository and a work tree that pushes to it, driven by the git CLI, so that
/// tests change the upstream exactly as a person would.
public final class UpstreamRepository: Sendable {
    public let bare: String
    public let work: String
    public static let git = "/usr/bin/git"

    static let environment = [
        "GIT_AUTHOR_NAME": "Test", "GIT_AUTHOR_EMAIL": "test@example.invalid",
        "GIT_COMMITTER_NAME": "Test", "GIT_COMMITTER_EMAIL": "test@example.invalid",
        "GIT_CONFIG_NOSYSTEM": "1", "HOME": "/nonexistent",
    ]

    /// Creates `<dir>/<name>.git` (bare, default branch main) and `<dir>/<name>-work`.
    public init(in directory: String, name: String = "upstream") throws {
        bare = directory + "/\(name).git"
        work = directory + "/\(name)-work"
        try Self.git(["init", "-q", "--bare", "-b", "main", bare])
        try Self.git(["config", "http.receivepack", "true"], in: bare)
        try Self.git(["init", "-q", "-b", "main", work])
        try Self.git(["remote", "add", "origin", bare], in: work)
    }

    public var fileURL: String { "file://" + bare }

    @discardableResult
    static func git(_ arguments: [String], in directory: String? = nil) throws -> String {
        try Run.checked(git, arguments, environment: environment, directory: directory)
    }

    @discardableResult
    public func git(_ arguments: String...) throws -> String {
        try Self.git(arguments, in: work)
    }

    /// Writes files, commits them on the current branch and pushes; returns the new commit id.
    @discardableResult
    public func commit(_ files: [String: String], message: String = "change", branch: String = "main", push: Bool = true) throws -> String {
        for (name, text) in files {
            let path = work + "/" + name
            try FileManager.default.createDirectory(atPath: (path as NSString).deletingLastPathComponent, withIntermediateDirectories: true)
            try writeFile(path, Data(text.utf8))
        }
        if !files.isEmpty { try Self.git(["add", "--"] + files.keys.sorted(), in: work) }
        try git("commit", "-q", "--allow-empty", "-m", message)
        if push { try git("push", "-q", "origin", "HEAD:refs/heads/\(branch)") }
        return try head()
    }

    public func head() throws -> String {
        try git("rev-parse", "HEAD").trimmingCharacters(in: .whitespacesAndNewlines)
    }

    /// Rewrites history: resets to the parent, commits something else, force-pushes.
    @discardableResult
    public func forcePush(_ files: [String: String], message: String = "rewritten") throws -> String {
        try git("reset", "-q", "--hard", "HEAD~1")
        try commit(files, message: message, push: false)
        try git("push", "-q", "--force", "origin", "HEAD:refs/heads/main")
        return try head()
    }

    public func deleteBranch(_ branch: String = "main") throws {
        try Self.git(["update-ref", "-d", "refs/heads/\(branch)"], in: bare)
    }

    public func restoreBranch(_ branch: String = "main", to commit: String) throws {
        try Self.git(["update-ref", "refs/heads/\(branch)", commit], in: bare)
    }
}
