import Foundation
import ShipyardTestKit
import Testing

@Suite struct InstallTests {
    @Test func installFilesProducesTheTreeAndUninstallRemovesIt() throws {
        let root = try TemporaryDirectory()
        let make = ["-C", Repository.root.path, "DESTDIR=\(root.path)", "PREFIX=/usr", "CONFIGURATION=debug"]
        let install = try Run.capture("/usr/bin/make", make + ["install-files"])
        #expect(install.status == 0, "\(install.stderr)")
        for file in [
            "usr/bin/shipyardd", "usr/bin/shipyardctl", "usr/lib/systemd/system/shipyardd.service",
            "usr/lib/sysusers.d/shipyardd.conf", "usr/lib/tmpfiles.d/shipyardd.conf", "etc/shipyardd/config.yaml.example",
            "usr/share/bash-completion/completions/shipyardctl", "usr/share/zsh/site-functions/_shipyardctl",
            "usr/share/fish/vendor_completions.d/shipyardctl.fish", "usr/share/bash-completion/completions/shipyardd",
        ] {
            #expect(FileManager.default.fileExists(atPath: root.path + "/" + file), "\(file) missing")
        }
        let unit = try String(contentsOfFile: root.path + "/usr/lib/systemd/system/shipyardd.service", encoding: .utf8)
        #expect(unit.contains("ExecStart=/usr/bin/shipyardd --config /etc/shipyardd/config.yaml"))
        #expect(try String(contentsOfFile: root.path + "/usr/share/bash-completion/completions/shipyardctl", encoding: .utf8).contains("approve"))

        // The installed binaries run; the example config is valid but for what this host lacks
        // (the token and the task programs it names), all said in one pass.
        #expect(try Run.capture(root.path + "/usr/bin/shipyardctl", ["--version"]).stdout == "0.1.0\n")
        let example = root.path + "/etc/shipyardd/config.yaml.example"
        let check = try Run.capture(root.path + "/usr/bin/shipyardd", ["--check-config", example])
        #expect(check.status == 1)
        let errors = check.stderr.split(separator: "\n").filter { $0.contains(": error: ") }.map { $0.replacingOccurrences(of: example, with: "FILE") }
        #expect(errors == [
            "FILE:20:21: error: passwordFile /etc/shipyardd/fulltour.token does not exist",
            "FILE:44:15: error: task \"je-deployment\": the program /usr/local/libexec/fulltour/deploy does not exist",
            "FILE:47:15: error: task \"je-test\": the program /usr/local/libexec/fulltour/test does not exist",
        ], "\(check.stderr)")
        for page in ["usr/share/man/man8/shipyardd.8", "usr/share/man/man5/shipyardd.yaml.5", "usr/share/man/man1/shipyardctl.1", "usr/share/doc/shipyard/README.md"] {
            #expect(FileManager.default.fileExists(atPath: root.path + "/" + page), "\(page) missing")
        }

        let uninstall = try Run.capture("/usr/bin/make", make + ["uninstall"])
        #expect(uninstall.status == 0)
        let left = FileManager.default.enumerator(atPath: root.path)?.compactMap { $0 as? String }.filter {
            var isDirectory: ObjCBool = false
            return FileManager.default.fileExists(atPath: root.path + "/" + $0, isDirectory: &isDirectory) && !isDirectory.boolValue
        } ?? []
        #expect(left.isEmpty, "\(left)")
    }
}
