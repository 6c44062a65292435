import CGit2
import Foundation
import Synchronization

/// Where an upstream is and how to authenticate to it, for one poll. The password has already been
/// read from its file for this poll, so a rotated token is picked up without a restart.
public struct RemoteAccess: Sendable {
    public var url: String
    public var username: String?
    public var password: String?
    public var sshKey: String?
    public var knownHosts: KnownHosts?

    public init(url: String, username: String? = nil, password: String? = nil, sshKey: String? = nil, knownHosts: KnownHosts? = nil) {
        self.url = url
        self.username = username
        self.password = password
        self.sshKey = sshKey
        self.knownHosts = knownHosts
    }

    /// The URL without any password written into it, for logs and status.
    public var redactedURL: String { Self.redact(url) }

    /// The URL as logs, status, pages and errors show it: no credential written into it. Over
    /// http(s) and git:// anything before `@` is a credential (a token is often sent as the user
    /// name), so it goes whole; over ssh the user name (`git@`) stays and only a password goes.
    /// A query parameter whose name says it holds a secret (`private_token`, `access_token`,
    /// `password`, `key`, `sig`, …) keeps its name, not its value.
    public static func redact(_ url: String) -> String {
        var text = url
        if let query = text.firstIndex(of: "?") {
            let head = text[..<query]
            let parameters = text[text.index(after: query)...].split(separator: "&", omittingEmptySubsequences: false).map { parameter -> String in
                guard let equals = parameter.firstIndex(of: "=") else { return String(parameter) }
                let name = parameter[..<equals]
                return isSecretParameter(String(name)) ? name + "=***" : String(parameter)
            }
            text = head + "?" + parameters.joined(separator: "&")
        }
        guard let scheme = text.range(of: "://") else { return text }
        let authorityEnd = text[scheme.upperBound...].firstIndex { $0 == "/" || $0 == "?" || $0 == "#" } ?? text.endIndex
        guard let at = text[scheme.upperBound..<authorityEnd].lastIndex(of: "@") else { return text }
        let userInfo = text[scheme.upperBound..<at]
        if text.hasPrefix("ssh://") {
            guard let colon = userInfo.firstIndex(of: ":") else { return text }
            return String(text[..<colon]) + ":***" + String(text[at...])
        }
        return String(text[..<scheme.upperBound]) + "***" + String(text[at...])
    }

    /// Whether a URL's query parameter of this name carries a secret.
    public static func isSecretParameter(_ name: String) -> Bool {
        let lowered = (name.removingPercentEncoding ?? name).lowercased()
        return ["token", "pass", "secret", "key", "auth", "sig", "cred", "session"].contains { lowered.contains($0) }
    }

    /// Whether the URL itself holds a credential that `redact` hides: a user name over http(s)
    /// or git://, a password anywhere, or a secret query parameter.
    public static func holdsCredential(_ url: String) -> Bool {
        redact(url) != url
    }

    /// The port named in an ssh URL (`ssh://git@host:2222/repo.git`), when there is one.
    var sshPort: Int? {
        guard let components = URLComponents(string: url), components.scheme == "ssh" else { return nil }
        return components.port
    }
}

/// Lets another thread ask a running libgit2 call to give up at its next callback.
public final class CancelToken: Sendable {
    private let flag = Atomic<Bool>(false)

    public init() {}

    public func cancel() { flag.store(true, ordering: .relaxed) }
    public var isCancelled: Bool { flag.load(ordering: .relaxed) }
}

/// What a remote advertises for the branch we watch.
public enum BranchTip: Sendable, Equatable {
    case commit(ObjectID)
    /// The branch does not exist; the remote has these branches instead.
    case missing(others: [String])
    /// The repository has no refs at all.
    case emptyRepository
}

/// State shared with libgit2's C callbacks through their payload pointer, used on one thread only.
final class CallbackContext {
    let access: RemoteAccess
    let cancel: CancelToken
    var credentialAttempts = 0
    /// A message of ours that explains a callback's refusal better than libgit2's would.
    var failure: GitError?

    init(access: RemoteAccess, cancel: CancelToken) {
        self.access = access
        self.cancel = cancel
    }

    func callbacks() -> git_remote_callbacks {
        var callbacks = git_remote_callbacks()
        git_remote_init_callbacks(&callbacks, UInt32(GIT_REMOTE_CALLBACKS_VERSION))
        callbacks.credentials = credentialCallback
        callbacks.certificate_check = certificateCallback
        callbacks.transfer_progress = progressCallback
        callbacks.sideband_progress = sidebandCallback
        callbacks.payload = Unmanaged.passUnretained(self).toOpaque()
        return callbacks
    }

    /// Rethrows a libgit2 failure as our own clearer message when a callback left one.
    func translate(_ error: GitError) -> GitError {
        if let failure { return failure }
        if cancel.isCancelled { return GitError(.cancelled, "the poll was cancelled: the remote took too long") }
        return error
    }

    static func from(_ payload: UnsafeMutableRawPointer?) -> CallbackContext? {
        payload.map { Unmanaged<CallbackContext>.fromOpaque($0).takeUnretainedValue() }
    }
}

private let credentialCallback: git_credential_acquire_cb = { out, _, usernameFromURL, allowed, payload in
    guard let context = CallbackContext.from(payload), let out else { return -1 }
    context.credentialAttempts += 1
    let access = context.access
    let user = access.username ?? usernameFromURL.map { String(cString: $0) }
    // libgit2 asks again for as long as authentication fails: answer once per method, then stop.
    if context.credentialAttempts > 2 {
        context.failure = GitError(
            .authentication,
            "the upstream refused the credentials; check credentials.username and the password or key file")
        return GIT_EAUTH.rawValue
    }
    if allowed & GIT_CREDENTIAL_SSH_KEY.rawValue != 0, let key = access.sshKey, let user {
        return git_credential_ssh_key_new(out, user, nil, key, nil)
    }
    if allowed & GIT_CREDENTIAL_USERPASS_PLAINTEXT.rawValue != 0, let password = access.password {
        if context.credentialAttempts > 1 {
            context.failure = GitError(
                .authentication, "the upstream refused the username and password (check credentials.passwordFile)")
            return GIT_EAUTH.rawValue
        }
        return git_credential_userpass_plaintext_new(out, user ?? "", password)
    }
    if allowed & GIT_CREDENTIAL_USERNAME.rawValue != 0, let user {
        return git_credential_username_new(out, user)
    }
    context.failure = GitError(
        .authentication,
        access.url.hasPrefix("ssh://")
            ? "the upstream asks for an ssh key; set credentials.sshKey (and credentials.knownHosts)"
            : "the upstream asks for credentials; set credentials.username and credentials.passwordFile")
    return GIT_EAUTH.rawValue
}

private let certificateCallback: git_transport_certificate_check_cb = { cert, valid, host, payload in
    guard let context = CallbackContext.from(payload), let cert else { return -1 }
    guard cert.pointee.cert_type == GIT_CERT_HOSTKEY_LIBSSH2 else {
        // TLS: libgit2 has checked the chain against the system's CAs; keep its verdict.
        if valid != 0 { return 0 }
        context.failure = GitError(.certificate, "the upstream's TLS certificate is not trusted by this host")
        return GIT_ECERTIFICATE.rawValue
    }
    let hostName = host.map { String(cString: $0) } ?? "?"
    let hostkey = UnsafeRawPointer(cert).assumingMemoryBound(to: git_cert_hostkey.self).pointee
    let fingerprint = hostkey.type.rawValue & GIT_CERT_SSH_SHA256.rawValue != 0
        ? "SHA256:" + withUnsafeBytes(of: hostkey.hash_sha256) { Data($0).base64EncodedString() }.replacingOccurrences(of: "=", with: "")
        : "unknown fingerprint"
    guard hostkey.type.rawValue & GIT_CERT_SSH_RAW.rawValue != 0, let raw = hostkey.hostkey else {
        context.failure = GitError(.certificate, "libgit2 did not hand over \(hostName)'s host key, so it cannot be checked")
        return GIT_ECERTIFICATE.rawValue
    }
    let key = Array(UnsafeRawBufferPointer(start: raw, count: hostkey.hostkey_len))
    guard let knownHosts = context.access.knownHosts else {
        context.failure = GitError(.certificate, "no credentials.knownHosts file is configured, so \(hostName)'s host key (\(fingerprint)) cannot be trusted")
        return GIT_ECERTIFICATE.rawValue
    }
    let port = context.access.sshPort
    let scan = "ssh-keyscan\(port.map { " -p \($0)" } ?? "") \(hostName)"
    switch knownHosts.verdict(host: hostName, port: port, key: key) {
    case .trusted:
        return 0
    case .unknown:
        context.failure = GitError(.certificate, "unknown host key for \(hostName) (\(fingerprint)); if it is right, add it to the knownHosts file (\(scan))")
    case .changed:
        context.failure = GitError(.certificate, "the host key of \(hostName) has CHANGED (now \(fingerprint)); refusing to connect. If the change is expected, replace its line in the knownHosts file")
    case .revoked:
        context.failure = GitError(.certificate, "the host key of \(hostName) (\(fingerprint)) is marked @revoked in the knownHosts file")
    }
    return GIT_ECERTIFICATE.rawValue
}

private let progressCallback: git_indexer_progress_cb = { _, payload in
    (CallbackContext.from(payload)?.cancel.isCancelled ?? false) ? -1 : 0
}

private let sidebandCallback: git_transport_message_cb = { _, _, payload in
    (CallbackContext.from(payload)?.cancel.isCancelled ?? false) ? -1 : 0
}

/// Asks a remote for its refs and returns the tip of one branch: the whole of a no-change poll.
/// Uses a detached remote, so no repository is opened and nothing is written.
public func lsRemoteBranch(_ access: RemoteAccess, branch: String, cancel: CancelToken = CancelToken()) throws(GitError) -> BranchTip {
    Git.initialize()
    let context = CallbackContext(access: access, cancel: cancel)
    var remote: OpaquePointer?
    try GitError.check(git_remote_create_detached(&remote, access.url), "cannot use upstream \(access.redactedURL)")
    defer { git_remote_free(remote) }
    var callbacks = context.callbacks()
    let connected = git_remote_connect(remote, GIT_DIRECTION_FETCH, &callbacks, nil, nil)
    if connected < 0 {
        var error = context.translate(GitError.last(connected, "cannot reach \(access.redactedURL)"))
        if error.message.contains("pkt-line") {
            // The server answered, in a way libgit2 1.5 cannot read: a shallow repository sends
            // "shallow" lines it does not know.
            error = GitError(
                .other,
                "cannot read the refs of \(access.redactedURL): \(error.message.split(separator: ":").last.map { String($0).trimmingCharacters(in: .whitespaces) } ?? ""); "
                    + "is the upstream a shallow clone? libgit2 1.5 cannot fetch from one: point the daemon at a full repository")
        }
        throw error
    }
    defer { git_remote_disconnect(remote) }
    var heads: UnsafeMutablePointer<UnsafePointer<git_remote_head>?>?
    var count = 0
    let listed = git_remote_ls(&heads, &count, remote)
    if listed < 0 { throw context.translate(GitError.last(listed, "cannot list the refs of \(access.redactedURL)")) }
    let wanted = "refs/heads/\(branch)"
    var branches: [String] = []
    for i in 0..<count {
        guard let head = heads?[i]?.pointee, let cName = head.name else { continue }
        let name = String(cString: cName)
        if name == wanted { return .commit(ObjectID(head.oid)) }
        if name.hasPrefix("refs/heads/") { branches.append(String(name.dropFirst("refs/heads/".count))) }
    }
    return count == 0 ? .emptyRepository : .missing(others: branches.sorted())
}
