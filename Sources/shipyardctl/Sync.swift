import ArgumentParser
import Foundation
import ShipyardDaemon

struct Sync: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Ask the daemon to poll the upstream now, and print what it found.")

    @OptionGroup var options: StateOptions
    @OptionGroup var request: RequestOptions

    @Option(name: .shortAndLong, help: "Only this project (default: all).")
    var project: String?

    func run() async throws {
        try await Self.failing {
            print(Output.safe(try options.send("/api/v1/sync", body: SyncBody(project: project), timeout: request.timeout).message))
        }
    }
}
