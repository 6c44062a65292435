import Foundation
import Hummingbird
import HTTPTypes
import Logging
import NIOCore
import ShipyardCore
import ShipyardDaemon

/// Who is asking: the kernel's caller over the local socket (unless a configured proxy), a
/// session's signed-in user, or a trusted proxy's header; and what that viewer may see and do.
extension Site {
    // MARK: Who is asking

    struct Identity {
        var user: String?
        var token: String?
        var session: Sessions.Session?
        /// A session made for this request: its cookie goes with the response.
        var newToken: String?
        /// Over the local socket: the caller the kernel named.
        var local: Caller?
        /// The change feed's version when the request came, before anything was read for it.
        var version: UInt64 = 0
    }

    static func cookies(_ request: Request) -> [String: String] {
        var result: [String: String] = [:]
        for header in request.headers[values: .cookie] {
            for part in header.split(separator: ";") {
                let pair = part.split(separator: "=", maxSplits: 1)
                guard pair.count == 2 else { continue }
                result[pair[0].trimmingCharacters(in: .whitespaces)] = String(pair[1]).trimmingCharacters(in: .whitespaces)
            }
        }
        return result
    }

    var auth: DaemonConfig.HTTP.Auth? { http?.auth }

    /// Over the local socket, a peer that is a configured proxy (`trustedProxies: [user:www-data]`)
    /// passes on web users; every other peer is the user the kernel names.
    func isProxy(_ peer: PeerCredentials) -> Bool {
        // Root is never a proxy: every shipyardctl root runs would be believed as its header says.
        guard peer.uid != 0, peer.uid != geteuid() else { return false }
        return http?.proxyUsers.contains { entry in
            if entry.hasPrefix("uid:") { return UInt32(entry.dropFirst(4)) == peer.uid }
            if entry.hasPrefix("user:") { return Accounts.uid(of: String(entry.dropFirst(5))) == peer.uid }
            return false
        } ?? false
    }

    /// The caller the kernel names, for a request over the local socket from anyone but a
    /// configured proxy: whatever the request says (a proxy header, a cookie), it is them.
    func localCaller(_ context: WebContext) -> Caller? {
        guard let peer = context.peer, !isProxy(peer) else { return nil }
        return Caller(uid: peer.uid)
    }

    /// The proxy's header, when the request came from a trusted proxy: an address of
    /// `trustedProxies` over TCP, a proxy user of it over the local socket.
    func proxyUser(_ request: Request, context: WebContext) -> String? {
        guard case .proxy(let header, let trusted)? = auth, let name = HTTPField.Name(header) else { return nil }
        let fromTrusted: Bool
        if let peer = context.peer {
            fromTrusted = isProxy(peer)
        } else if let address = context.remoteAddress?.ipAddress {
            fromTrusted = trusted.contains { $0.contains(address) }
        } else {
            fromTrusted = false
        }
        guard fromTrusted, let value = request.headers[name]?.trimmingCharacters(in: .whitespaces), !value.isEmpty, value.count <= 128,
            // No `:`: no account has one, and `role:NAME` is an API token's role, never a person.
            value.unicodeScalars.allSatisfy({ $0.value > 0x20 && $0.value < 0x7F && $0 != ":" })
        else { return nil }
        return value
    }

    /// Who this is: over the local socket the user the kernel names (unless a proxy); else the
    /// session's user (login), or the proxy's header. A session is made for a page view that has
    /// none (its CSRF token guards the forms).
    func identify(_ request: Request, context: WebContext, makeSession: Bool) -> Identity {
        let token = Self.cookies(request)[Self.cookie]
        var identity = Identity()
        identity.version = daemon.feed.version
        if let session = sessions.session(token) {
            identity.token = token
            identity.session = session
        } else if makeSession, request.headers[HTTPField.Name("X-Shipyard-Refresh")!] == nil,
            request.headers[HTTPField.Name("Sec-Fetch-Mode")!].map({ $0 == "navigate" }) ?? true
        {
            // A page opened, not a page's own refresh: a refresh that made a cookie would replace
            // the one a form on screen (the sign-in form) was made for.
            let (fresh, session) = sessions.create()
            identity.token = fresh
            identity.newToken = fresh
            identity.session = session
        }
        if let caller = localCaller(context) {
            identity.user = caller.user
            identity.local = caller
            return identity
        }
        switch auth {
        case .htpasswd?:
            identity.user = identity.session?.user
            // The line the session was made from must still be there, unchanged: removing a user
            // or changing their password signs out every session they had, at its next request.
            if let user = identity.user, let token = identity.token, passwords?.hash(of: user) != identity.session?.credential {
                identity.user = nil
                identity.session?.user = nil
                if sessions.signOut(token) != nil {
                    let why = passwords?.hash(of: user) == nil ? "their htpasswd entry was removed" : "their password was changed"
                    daemon.log.notice("web: a session of \(Untrusted.printable(user, limit: 64)) ended: \(why)")
                }
            }
        case .proxy?: identity.user = proxyUser(request, context: context)
        case nil: identity.user = nil
        }
        return identity
    }

    func viewer(_ identity: Identity) async -> Viewer {
        var mayDecide = false
        var mayControl = false
        var rights: DecisionRights?
        if let user = identity.user {
            let granted = await daemon.commands.rights(user: user, groups: Caller.groupNames(user: user))
            mayDecide = granted.any
            mayControl = granted.mayControl && (auth != nil || identity.local != nil)
            rights = granted
        }
        var loginForm = false
        if identity.local == nil, case .htpasswd? = auth { loginForm = true }
        var viewer = Viewer(user: identity.user, csrf: identity.session?.csrf, mayDecide: mayDecide, rights: rights, authConfigured: auth != nil || identity.local != nil, loginForm: loginForm)
        viewer.mayControl = mayControl
        return viewer
    }
}
