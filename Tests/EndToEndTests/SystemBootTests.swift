import Foundation
import ShipyardTestKit
import Testing

/// A real systemd: a minimal Debian booted with systemd-nspawn (Tests/system/boot.sh), Shipyard
/// installed in it as README says, then used by operators (Tests/system/scenario.sh): a member
/// triggers and approves, a non-member is refused, a task writes where the documented drop-in
/// opens, reload works and fails on a refused config, restart and SIGKILL keep a pending approval,
/// and the daemon's journal has no warning the scenario did not provoke.
@Suite struct SystemBootTests {
    static var canBoot: Bool {
        getuid() == 0 && FileManager.default.isExecutableFile(atPath: "/usr/bin/systemd-nspawn")
            && FileManager.default.isExecutableFile(atPath: "/usr/sbin/debootstrap")
    }

    @Test(.enabled(if: canBoot, "needs root, systemd-nspawn and debootstrap (make test installs them)"), .timeLimit(.minutes(15)))
    func readmeInstallationUnderARealSystemd() throws {
        let script = Repository.root.appendingPathComponent("Tests/system/boot.sh").path
        let run = try Run.capture("/bin/bash", [script])
        let lines = run.stdout.split(separator: "\n").map(String.init)
        let failed = lines.filter { $0.hasPrefix("FAIL") }
        #expect(run.status == 0, "\(run.stdout)\(run.stderr)")
        #expect(failed.isEmpty, "\(failed.joined(separator: "\n"))")
        #expect(lines.contains("done"), "\(run.stdout)")
        // The scenario ran every step (a step that silently vanished would not be a pass).
        #expect(lines.filter { $0.hasPrefix("ok ") }.count >= 29, "\(run.stdout)")
    }
}
