import Foundation

/// Reads a file a person named on the command line, with errors that say what went wrong.
enum InputFile {
    struct Failure: Error, CustomStringConvertible {
        var description: String
    }

    /// Reads at most `limit` bytes; a larger file is refused rather than read whole.
    static func read(_ path: String, limit: Int) throws -> [UInt8] {
        if path == "-" {
            let data = FileHandle.standardInput.readData(ofLength: limit + 1)
            guard data.count <= limit else {
                throw Failure(description: "standard input is larger than \(limit) bytes; a shipyard is far smaller")
            }
            return Array(data)
        }
        var isDirectory: ObjCBool = false
        guard FileManager.default.fileExists(atPath: path, isDirectory: &isDirectory) else {
            throw Failure(description: "cannot read: no such file")
        }
        guard !isDirectory.boolValue else {
            throw Failure(description: "cannot read: it is a directory; name the shipyard file inside it")
        }
        guard let handle = FileHandle(forReadingAtPath: path) else {
            throw Failure(description: "cannot read: permission denied")
        }
        defer { try? handle.close() }
        let data = try handle.read(upToCount: limit + 1) ?? Data()
        guard data.count <= limit else {
            throw Failure(description: "the file is larger than \(limit) bytes; a shipyard is far smaller")
        }
        return Array(data)
    }
}
