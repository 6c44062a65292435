public import Foundation

/// Writes files so that a reader, or the daemon after `kill -9`, sees either the old or the
/// new content, never a mix: a temporary file in the same directory, fsync, rename, fsync the
/// directory.
public enum AtomicFile {
    public struct Failure: Error, CustomStringConvertible {
        public var description: String

        public init(description: String) {
            self.description = description
        }
    }

    /// `durable: false` skips the fsyncs, for files that are refreshed often and cost nothing to
    /// lose (the rename still keeps readers from seeing a torn file).
    public static func write(_ data: Data, to path: String, mode: mode_t = 0o640, durable: Bool = true) throws {
        let directory = (path as NSString).deletingLastPathComponent
        let temporary = directory + "/.\((path as NSString).lastPathComponent).\(getpid()).\(UInt32.random(in: 0...UInt32.max)).tmp"
        let fd = open(temporary, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, mode)
        guard fd >= 0 else { throw Failure(description: "cannot create \(temporary): \(String(cString: strerror(errno)))") }
        _ = fchmod(fd, mode)  // exactly this mode, whatever the umask
        var ok = data.withUnsafeBytes { buffer -> Bool in
            var offset = 0
            while offset < buffer.count {
                let n = Foundation.write(fd, buffer.baseAddress! + offset, buffer.count - offset)
                if n < 0 {
                    if errno == EINTR { continue }
                    return false
                }
                offset += n
            }
            return true
        }
        if ok, durable { ok = fsync(fd) == 0 }
        let writeError = errno
        close(fd)
        guard ok, rename(temporary, path) == 0 else {
            let reason = String(cString: strerror(ok ? errno : writeError))
            unlink(temporary)
            throw Failure(description: "cannot write \(path): \(reason)")
        }
        if durable { syncDirectory(directory) }
    }

    public static func syncDirectory(_ path: String) {
        let fd = open(path, O_RDONLY | O_DIRECTORY | O_CLOEXEC)
        guard fd >= 0 else { return }
        fsync(fd)
        close(fd)
    }
}
