public import Foundation
import ShipyardCore

/// Who sends a command, as the command layer judges it: the uid the kernel names at the other
/// end of the local socket (`shipyardctl`, a page opened through a local proxy's own socket),
/// or a web user a sign-in or a trusted proxy named. The name, groups and uid are the host's
/// accounts as they are when the request comes; nothing a request says about itself counts.
public struct Caller: Sendable {
    /// How the caller was named.
    public enum Channel: String, Sendable {
        /// The kernel named the uid (SO_PEERCRED on the local socket).
        case cli
        /// A web sign-in (htpasswd) or a trusted proxy's header named the user.
        case web
        /// A Keptn API token (`x-token`) named the user (`user:NAME`) or a role (`role:NAME`).
        case api
    }

    /// The kernel's uid (cli), or the host's account of a web user's name (nil when it has none).
    public var uid: uid_t?
    public var user: String
    public var groups: Set<String>
    public var via: Channel
    /// The standby that took the request and handed it to this leader (a shared record); nil for
    /// this host's own callers. A uid names a person only on its own host.
    public var host: String?
    /// A forwarded caller: whether its own host counted it an administrator (root, or that
    /// host's daemon user). Never judged here: the same uid may be someone else on this host.
    var forwardedAdministrator: Bool?

    /// The caller the kernel names at the other end of the local socket.
    public init(uid: uid_t) {
        self.uid = uid
        user = Self.userName(uid)
        groups = Self.groupNames(uid)
        via = .cli
    }

    /// A web user (signed in, or named by a trusted proxy): their groups and uid are the host's
    /// account of that name, when it has one.
    public static func web(user: String) -> Caller {
        Caller(uid: Accounts.uid(of: user), user: user, groups: groupNames(user: user), via: .web)
    }

    /// The caller an API token names: a user of this host (their uid and groups as they are
    /// now), or a role (`role:NAME`: no account, no group; the config's lists admit it by `roles`).
    public static func api(_ principal: APITokens.Principal) -> Caller {
        switch principal {
        case .user(let name): return Caller(uid: Accounts.uid(of: name), user: name, groups: groupNames(user: name), via: .api)
        case .role(let name): return Caller(uid: nil, user: Approvers.rolePrefix + name, groups: [], via: .api)
        }
    }

    /// Whose share of the request rate this is: a uid the kernel named, or an API token's name.
    var limitKey: String { via == .api ? "api \(user)" : "uid \(uid.map(String.init) ?? user)" }

    /// A role's token: a program, never a person.
    public var isRole: Bool { via == .api && user.hasPrefix(Approvers.rolePrefix) }

    init(uid: uid_t?, user: String, groups: Set<String>, via: Channel) {
        self.uid = uid
        self.user = user
        self.groups = groups
        self.via = via
    }

    /// Root and the daemon's own user, named by the kernel: they can change the state directly
    /// anyway, so the config's lists do not apply to them (approvals excepted: those always name
    /// a person). A web user never is one, whatever their name.
    var isAdministrator: Bool {
        if let forwardedAdministrator { return via == .cli && forwardedAdministrator }
        guard via == .cli, let uid else { return false }
        return uid == 0 || uid == geteuid()
    }

    /// "alice (uid 1001)", or "alice" for a web user without an account here.
    var described: String { "\(user)\(uid.map { " (uid \($0))" } ?? "")" }

    static func userName(_ uid: uid_t) -> String {
        Accounts.name(uid: uid) ?? "uid \(uid)"
    }

    static func groupNames(_ uid: uid_t) -> Set<String> {
        guard let name = Accounts.name(uid: uid), let primary = Accounts.primaryGroup(of: name) else { return [] }
        return Accounts.groups(of: name, primary: primary)
    }

    /// The groups of a user named by the web (a login or a proxy's header), from the host's
    /// group database; none when the host has no such user.
    public static func groupNames(user: String) -> Set<String> {
        guard let primary = Accounts.primaryGroup(of: user) else { return [] }
        return Accounts.groups(of: user, primary: primary)
    }
}
