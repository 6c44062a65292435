public import Foundation
public import ShipyardCore

/// The host's users and groups, looked up with the reentrant calls: the local API, the web view and
/// the orchestrator ask at the same time, and getpwnam's static buffer is not for sharing.
public enum Accounts {
    private static func buffer(_ size: Int) -> [CChar] { [CChar](repeating: 0, count: max(size, 16384)) }

    public static func name(uid: uid_t) -> String? {
        if case .found(let name) = lookup(uid: uid) { return name }
        return nil
    }

    /// A uid's account, telling "no such entry" from a lookup that failed.
    public static func lookup(uid: uid_t) -> AccountLookup {
        var entry = passwd()
        var result: UnsafeMutablePointer<passwd>?
        var storage = buffer(sysconf(Int32(_SC_GETPW_R_SIZE_MAX)))
        let rc = getpwuid_r(uid, &entry, &storage, storage.count, &result)
        if rc == 0, result != nil, let name = entry.pw_name { return .found(String(cString: name)) }
        // getpwuid_r returns 0 with no result, or ENOENT/ESRCH/EBADF/EPERM, when there is no entry.
        if rc == 0 || [ENOENT, ESRCH, EBADF, EPERM].contains(rc) { return .none }
        return .failed(String(cString: strerror(rc)))
    }

    /// The uid and primary group of a user of this host.
    private static func account(_ user: String) -> (uid: uid_t, gid: gid_t)? {
        var entry = passwd()
        var result: UnsafeMutablePointer<passwd>?
        var storage = buffer(sysconf(Int32(_SC_GETPW_R_SIZE_MAX)))
        guard getpwnam_r(user, &entry, &storage, storage.count, &result) == 0, result != nil else { return nil }
        return (entry.pw_uid, entry.pw_gid)
    }

    /// The uid of a user of this host.
    public static func uid(of user: String) -> uid_t? { account(user)?.uid }

    /// The user's primary group, when the host has such a user.
    public static func primaryGroup(of user: String) -> gid_t? { account(user)?.gid }

    public static func groupName(_ gid: gid_t) -> String? {
        var entry = group()
        var result: UnsafeMutablePointer<group>?
        var storage = buffer(sysconf(Int32(_SC_GETGR_R_SIZE_MAX)))
        guard getgrgid_r(gid, &entry, &storage, storage.count, &result) == 0, result != nil, let name = entry.gr_name else { return nil }
        return String(cString: name)
    }

    /// Every group of a user (getgrouplist is thread-safe).
    public static func groups(of user: String, primary: gid_t) -> Set<String> {
        var count: Int32 = 64
        var groups = [gid_t](repeating: 0, count: Int(count))
        if getgrouplist(user, primary, &groups, &count) < 0 {
            groups = [gid_t](repeating: 0, count: Int(count))
            _ = getgrouplist(user, primary, &groups, &count)
        }
        return Set(groups.prefix(Int(max(0, count))).compactMap(groupName))
    }
}
