import Foundation
import ShipyardCore

/// The values webhooks name through `envFrom` (`secretRef: {name, key}`): the file KEY in the
/// folder the project's `secrets.NAME` points at. Read at send time, so a rotated secret takes
/// effect at the next request; never recorded, logged or shown (messages mask them).
///
/// Only the daemon may read them: a folder or file that its group or others can read or write is
/// refused (the operators' group reads the state, not the secrets), as is a symbolic link.
enum WebhookSecrets {
    static let maxBytes = 64 << 10

    struct Failure: Error {
        var message: String
    }

    /// Why the folder cannot hold secrets, or nil.
    static func folderProblem(_ path: String) -> String? {
        var info = stat()
        guard lstat(path, &info) == 0 else {
            return errno == ENOENT ? "\(path) does not exist; create it (mode 0700, owned by the daemon's user) with a file per key" : "\(path) cannot be read: \(String(cString: strerror(errno)))"
        }
        guard info.st_mode & S_IFMT == S_IFDIR else { return "\(path) is not a folder (a secret is a folder with a file per key)" }
        return accessProblem(info, path)
    }

    static func accessProblem(_ info: stat, _ path: String) -> String? {
        if info.st_mode & 0o077 != 0 {
            return "\(path) is open to its group or others (mode \(String(info.st_mode & 0o777, radix: 8))); chmod go= \(path): only the daemon may read secrets"
        }
        if info.st_uid != geteuid() {
            return "\(path) belongs to uid \(info.st_uid), not to the daemon's user (uid \(geteuid())); chown it to the daemon's user"
        }
        return nil
    }

    /// The value of `key` in the project's secret `name`: the file's bytes, one trailing newline dropped.
    static func value(project: DaemonConfig.Project, secret name: String, key: String) throws(Failure) -> String {
        guard let folder = project.secrets[name] else {
            throw Failure(message: "the secret \"\(name)\" is not in project \(project.name)'s secrets: in the host config")
        }
        if let problem = folderProblem(folder) { throw Failure(message: "secret \"\(name)\": \(problem)") }
        guard !key.contains("/"), key != ".", key != ".." else { throw Failure(message: "secret \"\(name)\": the key \"\(key)\" is not a file name") }
        let path = folder + "/" + key
        let fd = open(path, O_RDONLY | O_NOFOLLOW | O_CLOEXEC | O_NONBLOCK)
        guard fd >= 0 else {
            let reason = errno == ENOENT ? "has no key \"\(key)\" (no file \(path))" : errno == ELOOP ? "\(path) is a symbolic link; secrets are regular files" : "\(path) cannot be read: \(String(cString: strerror(errno)))"
            throw Failure(message: "secret \"\(name)\" \(reason)")
        }
        defer { close(fd) }
        var info = stat()
        guard fstat(fd, &info) == 0, info.st_mode & S_IFMT == S_IFREG else { throw Failure(message: "secret \"\(name)\": \(path) is not a regular file") }
        if let problem = accessProblem(info, path) { throw Failure(message: "secret \"\(name)\": \(problem)") }
        guard info.st_size <= maxBytes else { throw Failure(message: "secret \"\(name)\": \(path) is larger than \(ByteCount.format(maxBytes))") }
        var bytes = [UInt8](repeating: 0, count: Int(info.st_size))
        let count = bytes.isEmpty ? 0 : read(fd, &bytes, bytes.count)
        guard count == bytes.count else { throw Failure(message: "secret \"\(name)\": \(path) could not be read whole") }
        var text = String(decoding: bytes, as: UTF8.self)
        if text.hasSuffix("\r\n") { text.removeLast() } else if text.hasSuffix("\n") { text.removeLast() }
        guard !text.isEmpty else { throw Failure(message: "secret \"\(name)\": \(path) is empty") }
        return text
    }
}
