import Foundation

/// The local API's listening socket: handed over by systemd (`shipyardd.socket`, socket
/// activation), or made by the daemon itself at `<state>/shipyardd.sock`.
public struct ListeningSocket: Sendable {
    public let fd: Int32
    public let path: String
    /// systemd made it (requests queue in the kernel while the daemon restarts).
    public let activated: Bool

    /// systemd's `LISTEN_FDS`/`LISTEN_PID` (sd_listen_fds): the first socket passed to this
    /// process, if it is a listening unix stream socket. The variables are cleared so that no
    /// child takes them for its own, and the descriptor is closed on exec so that no task inherits it.
    public static func inherited(environment: [String: String]) throws -> ListeningSocket? {
        guard let count = environment["LISTEN_FDS"].flatMap(Int32.init), count >= 1,
            environment["LISTEN_PID"].flatMap(pid_t.init) == getpid()
        else { return nil }
        unsetenv("LISTEN_FDS")
        unsetenv("LISTEN_PID")
        unsetenv("LISTEN_FDNAMES")
        let fd: Int32 = 3
        for extra in 1..<count { close(fd + extra) }
        _ = fcntl(fd, F_SETFD, FD_CLOEXEC)
        var listening: Int32 = 0
        var domain: Int32 = 0
        var size = socklen_t(MemoryLayout<Int32>.size)
        guard getsockopt(fd, SOL_SOCKET, SO_ACCEPTCONN, &listening, &size) == 0, listening == 1 else {
            throw StateDirectory.Refusal(description: "the socket systemd passed (LISTEN_FDS) is not a listening socket; check shipyardd.socket (ListenStream=\(LocalAPI.systemSocket))")
        }
        size = socklen_t(MemoryLayout<Int32>.size)
        guard getsockopt(fd, SOL_SOCKET, SO_DOMAIN, &domain, &size) == 0, domain == AF_UNIX else {
            throw StateDirectory.Refusal(description: "the socket systemd passed (LISTEN_FDS) is not a unix socket; shipyardd.socket must have ListenStream=\(LocalAPI.systemSocket)")
        }
        var address = sockaddr_un()
        var length = socklen_t(MemoryLayout<sockaddr_un>.size)
        let path = withUnsafeMutablePointer(to: &address) { pointer -> String in
            guard pointer.withMemoryRebound(to: sockaddr.self, capacity: 1, { getsockname(fd, $0, &length) }) == 0 else { return "" }
            return withUnsafeBytes(of: &pointer.pointee.sun_path) { String(decoding: $0.prefix { $0 != 0 }, as: UTF8.self) }
        }
        return ListeningSocket(fd: fd, path: path.isEmpty ? LocalAPI.systemSocket : path, activated: true)
    }

    /// Makes the socket at `path` (mode 0660, the state directory's group): a socket left by a
    /// daemon that died is replaced, one a live daemon answers on is not (the state lock has
    /// already refused a second daemon on the same state; this guards a shared path).
    public static func bind(path: String) throws -> ListeningSocket {
        var address = sockaddr_un()
        address.sun_family = sa_family_t(AF_UNIX)
        let bytes = Array(path.utf8)
        guard bytes.count < MemoryLayout.size(ofValue: address.sun_path) else {
            throw StateDirectory.Refusal(description: "the socket path \(path) is longer than a unix socket path may be (107 bytes): choose a shorter stateDirectory")
        }
        withUnsafeMutableBytes(of: &address.sun_path) { $0.copyBytes(from: bytes + [0]) }
        var info = stat()
        if lstat(path, &info) == 0 {
            guard info.st_mode & S_IFMT == S_IFSOCK, info.st_uid == geteuid() else {
                throw StateDirectory.Refusal(description: "\(path) exists and is not shipyardd's socket: move it aside (sudo mv \(path) \(path).suspect) and start again")
            }
            if (try? LocalAPIClient(path: path).get("/healthz", timeout: .seconds(2))) != nil {
                throw StateDirectory.Refusal(description: "another shipyardd answers on \(path); stop it first")
            }
            unlink(path)
        }
        let fd = socket(AF_UNIX, Int32(SOCK_STREAM.rawValue) | Int32(SOCK_CLOEXEC.rawValue), 0)
        guard fd >= 0 else { throw StateDirectory.Refusal(description: "cannot make a socket: \(String(cString: strerror(errno)))") }
        let bound = withUnsafePointer(to: &address) {
            $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { Foundation.bind(fd, $0, socklen_t(MemoryLayout<sockaddr_un>.size)) }
        }
        guard bound == 0 else {
            let reason = String(cString: strerror(errno))
            close(fd)
            throw StateDirectory.Refusal(description: "cannot listen on \(path): \(reason)")
        }
        // The umask made it 0750 at most: nobody could connect before this.
        chmod(path, 0o660)
        guard listen(fd, 512) == 0 else {
            let reason = String(cString: strerror(errno))
            close(fd)
            throw StateDirectory.Refusal(description: "cannot listen on \(path): \(reason)")
        }
        return ListeningSocket(fd: fd, path: path, activated: false)
    }
}
