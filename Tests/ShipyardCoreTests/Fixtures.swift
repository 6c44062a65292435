import Foundation

enum Fixtures {
    /// The repository's top folder, found from this file's path.
    static let repository: URL = URL(fileURLWithPath: #filePath)
        .deletingLastPathComponent()
        .deletingLastPathComponent()
        .deletingLastPathComponent()

    /// `shared/corpus`, which sits beside the checkout (`SHIPYARD_CORPUS` overrides it).
    static var corpus: URL {
        if let path = ProcessInfo.processInfo.environment["SHIPYARD_CORPUS"] {
            return URL(fileURLWithPath: path)
        }
        return repository.deletingLastPathComponent().appendingPathComponent("shared/corpus")
    }
}
