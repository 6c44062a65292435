import CGit2

/// A failed libgit2 call, with libgit2's own message read on the thread that failed.
public struct GitError: Error, Sendable, CustomStringConvertible {
    public enum Kind: String, Sendable, Equatable {
        case notFound, authentication, certificate, cancelled, other
    }

    public var kind: Kind
    public var message: String
    public var code: Int32

    public init(_ kind: Kind, _ message: String, code: Int32 = -1) {
        self.kind = kind
        self.message = message
        self.code = code
    }

    public var description: String { message }

    /// Turns a libgit2 return code into a thrown error. Must run on the thread that made the call,
    /// right after it: `git_error_last()` is thread-local.
    @inline(__always)
    static func check(_ code: Int32, _ what: @autoclosure () -> String) throws(GitError) {
        guard code < 0 else { return }
        throw last(code, what())
    }

    static func last(_ code: Int32, _ what: String) -> GitError {
        var detail = ""
        if let error = git_error_last(), let text = error.pointee.message {
            detail = String(cString: text)
        }
        git_error_clear()
        let kind: Kind
        switch code {
        case GIT_ENOTFOUND.rawValue: kind = .notFound
        case GIT_EAUTH.rawValue: kind = .authentication
        case GIT_ECERTIFICATE.rawValue: kind = .certificate
        case GIT_EUSER.rawValue: kind = .cancelled
        default: kind = .other
        }
        return GitError(kind, detail.isEmpty ? what : "\(what): \(detail)", code: code)
    }
}
