import ArgumentParser
import Foundation
import ShipyardDaemon

struct Sync: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Ask the daemon to poll the upstream now, and print what it found.")

    @OptionGroup var options: StateOptions

    @Option(name: .shortAndLong, help: "Only this project (default: all).")
    var project: String?

    @Option(help: "Seconds to wait for the daemon's answer.")
    var timeout: Int = 10

    func run() async throws {
        try await Self.failing {
            let client = SpoolClient(state: options.state)
            let request = SpoolRequest(kind: .sync, project: project)
            do {
                try client.submit(request)
            } catch {
                throw CLIError("\(error)")
            }
            guard let outcome = await client.waitForOutcome(request.id, timeout: .seconds(timeout)) else {
                throw CLIError("no answer from shipyardd within \(timeout)s; is it running? (systemctl status shipyardd)")
            }
            guard outcome.ok else { throw CLIError(outcome.message) }
            print(outcome.message)
        }
    }
}
