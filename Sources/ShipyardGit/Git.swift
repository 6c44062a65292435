import CGit2
import Foundation

/// Process-wide libgit2 setup, done once before the first call.
public enum Git {
    private static let setup: Void = {
        git_libgit2_init()
        // libgit2's object cache defaults to 256 MB; the daemon reads a handful of small objects.
        _ = shipyard_git_set_cache_max_size(4 << 20)
        // The daemon's behaviour must not depend on whoever's ~/.gitconfig or /etc/gitconfig: an
        // empty search path, where libgit2 finds no file at all. (A folder in the shared /tmp, as
        // before, could be made first by another user, who could then stop every fetch or
        // redirect it with url.insteadOf.)
        _ = shipyard_git_isolate_config("")
        // libgit2 refuses a local repository owned by another user (git's safe.directory), which
        // guards a person's shell against hooks and config planted in someone else's working
        // copy. The daemon runs no hooks and reads no repository config: a file:// upstream is a
        // remote it fetches objects from, and its mirror is its own. So the check only ever
        // stopped a file:// upstream owned by the repository's maintainers, not the daemon.
        _ = shipyard_git_set_owner_validation(0)
    }()

    public static func initialize() {
        _ = setup
    }

    /// libgit2's version and whether it was built with HTTPS and SSH, for `--version` and logs.
    public static var libraryDescription: String {
        initialize()
        var major: Int32 = 0, minor: Int32 = 0, patch: Int32 = 0
        git_libgit2_version(&major, &minor, &patch)
        let features = git_libgit2_features()
        var parts = ["libgit2 \(major).\(minor).\(patch)"]
        if features & Int32(GIT_FEATURE_HTTPS.rawValue) != 0 { parts.append("https") }
        if features & Int32(GIT_FEATURE_SSH.rawValue) != 0 { parts.append("ssh") }
        return parts.joined(separator: " ")
    }
}

/// A Git object id as 40 hexadecimal digits.
public struct ObjectID: Hashable, Sendable, Codable, CustomStringConvertible {
    public var hex: String

    public init(hex: String) {
        self.hex = hex
    }

    init(_ oid: git_oid) {
        var copy = oid
        var buffer = [CChar](repeating: 0, count: 41)
        git_oid_fmt(&buffer, &copy)
        hex = String(decoding: buffer.prefix(40).map { UInt8(bitPattern: $0) }, as: UTF8.self)
    }

    var raw: git_oid? {
        var oid = git_oid()
        return git_oid_fromstr(&oid, hex) == 0 ? oid : nil
    }

    public var short: String { String(hex.prefix(12)) }
    public var description: String { hex }

    public init(from decoder: any Decoder) throws {
        hex = try decoder.singleValueContainer().decode(String.self)
    }

    public func encode(to encoder: any Encoder) throws {
        var container = encoder.singleValueContainer()
        try container.encode(hex)
    }
}
