import Foundation
import ShipyardTestKit
import Testing

/// A real systemd: a minimal Debian booted with systemd-nspawn (Tests/system/boot.sh), Shipyard
/// installed in it as README says, then used by operators (Tests/system/scenario.sh): a member
/// triggers and approves, a non-member is refused, a task writes where the documented drop-in
/// opens, reload works and fails on a refused config, restart and SIGKILL keep a pending approval,
/// and the daemon's journal has no warning the scenario did not provoke.
@Suite(.serialized) struct SystemBootTests {
    static var canBoot: Bool {
        getuid() == 0 && FileManager.default.isExecutableFile(atPath: "/usr/bin/systemd-nspawn")
            && FileManager.default.isExecutableFile(atPath: "/usr/sbin/debootstrap")
    }

    @Test(.enabled(if: canBoot, "needs root, systemd-nspawn and debootstrap (make test installs them)"), .timeLimit(.minutes(15)))
    func readmeInstallationUnderARealSystemd() throws {
        try Self.scenario("boot.sh", steps: 29)
    }

    /// Runs a script of Tests/system that prints "ok …"/"FAIL …" lines and "done": it passed,
    /// and ran at least `steps` steps (a step that silently vanished would not be a pass).
    static func scenario(_ script: String, _ arguments: [String] = [], steps: Int) throws {
        let path = Repository.root.appendingPathComponent("Tests/system/" + script).path
        let run = try Run.capture("/bin/bash", [path] + arguments)
        let lines = run.stdout.split(separator: "\n").map(String.init)
        let failed = lines.filter { $0.hasPrefix("FAIL") }
        #expect(run.status == 0, "\(run.stdout)\(run.stderr)")
        #expect(failed.isEmpty, "\(failed.joined(separator: "\n"))")
        #expect(lines.contains("done"), "\(run.stdout)")
        #expect(lines.filter { $0.hasPrefix("ok ") }.count >= steps, "\(run.stdout)")
    }

    /// The package `make deb` built (make test builds it before the tests run).
    static var package: String? {
        let root = Repository.root.path
        let names = ((try? FileManager.default.contentsOfDirectory(atPath: root)) ?? []).filter { $0.hasPrefix("shipyard_") && $0.hasSuffix(".deb") }
        return names.sorted().last.map { root + "/" + $0 }
    }

    /// `apt install ./shipyard_….deb` as Debian's users do it, in a root without the Swift
    /// toolchain (Tests/system/package.sh): files where the unit and README say, the user and
    /// state made, the example config a conffile, remove keeps state and config, purge deletes.
    @Test(.enabled(if: canBoot && package != nil, "needs root, systemd-nspawn, debootstrap and the package (make test builds it)"), .timeLimit(.minutes(10)))
    func theDebianPackageInstallsRemovesAndPurges() throws {
        try Self.scenario("package.sh", [try #require(Self.package)], steps: 26)
    }

    /// The package's maintainer scripts under a booted systemd (Tests/system/package-boot.sh):
    /// without a config the daemon stays off, with one it is enabled and started, an upgrade
    /// restarts it, remove stops it and keeps config and record, purge deletes them.
    @Test(.enabled(if: canBoot && package != nil, "needs root, systemd-nspawn, debootstrap and the package (make test builds it)"), .timeLimit(.minutes(10)))
    func thePackageStartsOnlyWithAConfigAndRestartsOnUpgrade() throws {
        try Self.scenario("package-boot.sh", [try #require(Self.package)], steps: 14)
    }

    /// Debian's package checker: no error and no warning, and no tag silenced.
    @Test(.enabled(if: package != nil && FileManager.default.isExecutableFile(atPath: "/usr/bin/lintian"), "needs lintian and the package (make test has both)"))
    func lintianFindsNoErrorOrWarning() throws {
        let deb = try #require(Self.package)
        let run = try Run.capture("/usr/bin/lintian", ["--fail-on", "error,warning", deb])
        #expect(run.status == 0, "\(run.stdout)\(run.stderr)")
        #expect(!run.stdout.contains("E: ") && !run.stdout.contains("W: "), "\(run.stdout)")
    }

    /// The release binaries need nothing of the Swift toolchain: run with its library folder
    /// hidden under an empty tmpfs, in a private mount namespace, where the debug build cannot start.
    @Test(.enabled(if: getuid() == 0 && FileManager.default.isExecutableFile(atPath: Repository.root.path + "/.build/release/shipyardd"),
                   "needs root (unshare -m) and the release build (make test builds it)"))
    func theReleaseBinariesRunWithoutTheSwiftToolchain() throws {
        let repo = Repository.root.path
        // Where the debug build finds the Swift runtime.
        let ldd = try Run.capture("/usr/bin/ldd", [repo + "/.build/debug/shipyardd"])
        let runtime = try #require(ldd.stdout.split(separator: "\n").first { $0.contains("libswiftCore.so") }?
            .split(separator: " ").first { $0.hasPrefix("/") }.map { ($0 as NSString).deletingLastPathComponent })
        let script = """
            mount -t tmpfs tmpfs \(runtime) || exit 90
            if \(repo)/.build/debug/shipyardd --version >/dev/null 2>&1; then echo "the debug build still starts"; exit 91; fi
            \(repo)/.build/release/shipyardd --version || exit 92
            config=$(mktemp) && printf 'projects:\\n  - name: demo\\n    upstream: file:///srv/demo.git\\n' > "$config" || exit 93
            \(repo)/.build/release/shipyardd --check-config "$config" || exit 93
            rm -f "$config"
            \(repo)/.build/release/shipyardctl lint \(repo)/examples/demo/shipyard.yaml || exit 94
            """
        let run = try Run.capture("/usr/bin/unshare", ["--mount", "--propagation", "private", "/bin/sh", "-c", script])
        #expect(run.status == 0, "\(run.stdout)\(run.stderr)")
        #expect(run.stdout.hasPrefix("0.1.0\n"), "\(run.stdout)")
        // And they name no Swift library at all.
        for binary in ["shipyardd", "shipyardctl"] {
            let needed = try Run.capture("/usr/bin/readelf", ["-d", repo + "/.build/release/" + binary]).stdout
                .split(separator: "\n").filter { $0.contains("(NEEDED)") }
            #expect(!needed.isEmpty)
            #expect(!needed.contains { $0.contains("swift") || $0.contains("Foundation") || $0.contains("dispatch") || $0.contains("BlocksRuntime") },
                    "\(binary): \(needed)")
        }
    }
}
