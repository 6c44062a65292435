import Foundation
import ShipyardTestKit

/// Runs the project's built executables as a user would, and captures what they print.
enum Command {
    /// The folder holding the built products: next to the test bundle, or `SHIPYARD_BIN_DIR`.
    static let binDirectory: String = {
        if let dir = ProcessInfo.processInfo.environment["SHIPYARD_BIN_DIR"] { return dir }
        var dir = URL(fileURLWithPath: "/proc/self/exe").resolvingSymlinksInPath().deletingLastPathComponent()
        // On Linux the test runner is `<bin>/<package>PackageTests.xctest`; elsewhere a bundle.
        while !FileManager.default.fileExists(atPath: dir.appendingPathComponent("shipyardctl").path), dir.path != "/" {
            dir = dir.deletingLastPathComponent()
        }
        return dir.path
    }()

    static func path(_ tool: String) -> String { binDirectory + "/" + tool }

    static func run(_ tool: String, _ arguments: [String], stdin: Data? = nil, environment: [String: String] = [:]) throws -> ProcessOutput {
        try Run.capture(path(tool), arguments, stdin: stdin, environment: environment)
    }
}

enum Repository {
    static let root: URL = URL(fileURLWithPath: #filePath)
        .deletingLastPathComponent()
        .deletingLastPathComponent()
        .deletingLastPathComponent()
}
