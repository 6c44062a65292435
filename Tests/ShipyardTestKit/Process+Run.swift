public import Foundation

/// Runs a program to completion and captures what it prints. Both pipes are drained before the
/// wait, so a chatty child can never block on a full pipe.
public struct ProcessOutput: Sendable {
    public var status: Int32
    public var stdout: String
    public var stderr: String
}

public struct ProcessFailure: Error, CustomStringConvertible {
    public var description: String

    public init(description: String) {
        self.description = description
    }
}

public enum Run {
    @discardableResult
    public static func capture(
        _ executable: String, _ arguments: [String], stdin: Data? = nil, environment: [String: String] = [:],
        directory: String? = nil
    ) throws -> ProcessOutput {
        var outPipe: [Int32] = [0, 0], errPipe: [Int32] = [0, 0], inPipe: [Int32] = [0, 0]
        guard pipe(&outPipe) == 0, pipe(&errPipe) == 0, pipe(&inPipe) == 0 else {
            throw ProcessFailure(description: "cannot create pipes")
        }
        for fd in outPipe + errPipe + inPipe { _ = fcntl(fd, F_SETFD, FD_CLOEXEC) }
        // posix_spawn's chdir action is a GNU extension Swift does not see: env -C does it.
        let (program, argv) = directory.map { ("/usr/bin/env", ["-C", $0, executable] + arguments) } ?? (executable, arguments)
        let child: Subprocess
        do {
            child = try Subprocess(
                program, argv, environment: environment, stdin: inPipe[0], stdout: outPipe[1], stderr: errPipe[1])
        } catch {
            [outPipe[0], outPipe[1], errPipe[0], errPipe[1], inPipe[0], inPipe[1]].forEach { close($0) }
            throw error
        }
        close(outPipe[1])
        close(errPipe[1])
        close(inPipe[0])
        let writer = FileHandle(fileDescriptor: inPipe[1], closeOnDealloc: true)
        let input = stdin ?? Data()
        let feeder = Thread {
            writer.write(input)
            try? writer.close()
        }
        feeder.start()
        // Read both pipes to the end before waiting, so a chatty child never blocks on a full pipe.
        let errBox = ErrBox()
        let errReader = FileHandle(fileDescriptor: errPipe[0], closeOnDealloc: true)
        let done = DispatchSemaphore(value: 0)
        let reader = Thread {
            errBox.set(errReader.readDataToEndOfFile())
            done.signal()
        }
        reader.start()
        let outData = FileHandle(fileDescriptor: outPipe[0], closeOnDealloc: true).readDataToEndOfFile()
        done.wait()
        let status = child.wait()
        return ProcessOutput(
            status: status, stdout: String(decoding: outData, as: UTF8.self),
            stderr: String(decoding: errBox.get(), as: UTF8.self))
    }

    /// Runs a command that must succeed; throws with its output otherwise.
    @discardableResult
    public static func checked(_ executable: String, _ arguments: [String], environment: [String: String] = [:], directory: String? = nil) throws -> String {
        let output = try capture(executable, arguments, environment: environment, directory: directory)
        guard output.status == 0 else {
            throw ProcessFailure(description: "\(executable) \(arguments.joined(separator: " ")) exited \(output.status): \(output.stderr)\(output.stdout)")
        }
        return output.stdout
    }

    private final class ErrBox: @unchecked Sendable {
        private var data = Data()
        private let lock = NSLock()
        func set(_ d: Data) { lock.lock(); data = d; lock.unlock() }
        func get() -> Data { lock.lock(); defer { lock.unlock() }; return data }
    }
}

/// A new folder of our own in the temporary folder (mkdtemp: never one someone else made first).
public func makeTemporaryDirectory(_ prefix: String) throws -> String {
    var template = Array((FileManager.default.temporaryDirectory.path + "/\(prefix).XXXXXX").utf8CString)
    guard let made = mkdtemp(&template) else { throw POSIXError(POSIXErrorCode(rawValue: errno) ?? .EIO) }
    // mkdtemp makes it 0700; tests share it with the daemon's user and task programs.
    chmod(made, 0o755)
    return String(cString: made)
}

/// A temporary folder that is removed when the test is done with it.
public final class TemporaryDirectory: Sendable {
    public let path: String
    public var url: URL { URL(fileURLWithPath: path) }

    public init() throws {
        path = try makeTemporaryDirectory("shipyard-test")
    }

    deinit {
        try? FileManager.default.removeItem(atPath: path)
    }

    @discardableResult
    public func write(_ name: String, _ text: String, mode: Int? = nil) throws -> String {
        let file = path + "/" + name
        try FileManager.default.createDirectory(atPath: (file as NSString).deletingLastPathComponent, withIntermediateDirectories: true)
        try writeFile(file, Data(text.utf8), mode: mode ?? 0o644)
        return file
    }
}

/// Writes a file through a descriptor opened with `O_CLOEXEC` and closed before returning. Tests
/// run in parallel and start child processes at any moment: a child that inherited a descriptor
/// still open for writing would keep an executable "busy" (ETXTBSY) for as long as it lives.
/// Write every file a test may later execute with this, never with `Data.write(to:)`.
public func writeFile(_ path: String, _ data: Data, mode: Int = 0o644) throws {
    let fd = open(path, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, mode_t(mode))
    guard fd >= 0 else { throw ProcessFailure(description: "cannot create \(path): \(String(cString: strerror(errno)))") }
    defer { close(fd) }
    let written = data.withUnsafeBytes { write(fd, $0.baseAddress, $0.count) }
    guard written == data.count else { throw ProcessFailure(description: "cannot write \(path): \(String(cString: strerror(errno)))") }
    // The mode given to open is masked by the umask; an executable must be executable whatever it is.
    guard fchmod(fd, mode_t(mode)) == 0 else { throw ProcessFailure(description: "cannot chmod \(path)") }
}

/// Waits, in bounded steps, until a condition holds. Returns false when it never did.
public func eventually(timeout: Duration = .seconds(20), every step: Duration = .milliseconds(50), _ condition: () throws -> Bool) async rethrows -> Bool {
    let deadline = ContinuousClock.now + timeout
    while ContinuousClock.now < deadline {
        if try condition() { return true }
        try? await Task.sleep(for: step)
    }
    return try condition()
}

/// A TCP port on loopback that was free a moment ago.
public func freePort() -> Int {
    let fd = socket(AF_INET, Int32(SOCK_STREAM.rawValue), 0)
    defer { close(fd) }
    var address = sockaddr_in()
    address.sin_family = sa_family_t(AF_INET)
    address.sin_addr.s_addr = inet_addr("127.0.0.1")
    address.sin_port = 0
    var length = socklen_t(MemoryLayout<sockaddr_in>.size)
    _ = withUnsafePointer(to: &address) { $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { bind(fd, $0, length) } }
    _ = withUnsafeMutablePointer(to: &address) { $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { getsockname(fd, $0, &length) } }
    return Int(UInt16(bigEndian: address.sin_port))
}
