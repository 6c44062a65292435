import Foundation
import ShipyardCore
import ShipyardDaemon
import ShipyardTestKit
import Synchronization
import Testing

/// The tutorial in a real headless Chromium (Debian's chromium and chromium-driver, driven by
/// python3-selenium): pages that update themselves, a sign-in, Approve and Reject with a reason.
@Suite(.serialized) struct WebBrowserTests {
    static var available: Bool {
        FileManager.default.isExecutableFile(atPath: "/usr/bin/chromium") && FileManager.default.isExecutableFile(atPath: "/usr/bin/chromedriver")
            && FileManager.default.fileExists(atPath: "/usr/lib/python3/dist-packages/selenium")
    }

    @Test(.enabled(if: available, "chromium, chromium-driver or python3-selenium is not installed (make test installs them)"))
    func theTutorialInABrowser() async throws {
        let (world, secrets) = try WebTests.approverWorld(seconds: "gate")
        defer { withExtendedLifetime(secrets) {} }
        #expect(await world.ready())
        let web = try await WebTests().web(world)
        let shots = ProcessInfo.processInfo.environment["SHIPYARD_SCREENSHOTS"] ?? world.dir.path
        let script = Repository.root.appendingPathComponent("Tests/browser/webflow.py").path
        let result = try Run.capture(
            "/usr/bin/python3", [script, web.base, Command.path("shipyardctl"), world.daemon.state, world.dir.path + "/go", shots],
            environment: ["HOME": world.dir.path, "PATH": "/usr/bin:/bin"])
        #expect(result.status == 0, "\(result.stdout)\n\(result.stderr)")
        #expect(result.stdout.hasSuffix("done\n"), "\(result.stdout)")
    }
}
