import Foundation
import ShipyardCore
import ShipyardTestKit
import Testing

@testable import ShipyardDaemon

@Suite struct SpoolTests {
    func spool() throws -> (TemporaryDirectory, StateDirectory) {
        let dir = try TemporaryDirectory()
        let state = StateDirectory(dir.path + "/state")
        try state.prepare()
        return (dir, state)
    }

    /// Somebody who saw an id cannot block that request by taking its name first: the CLI
    /// publishes under a new id, and never replaces a file that is there.
    @Test func aTakenNameIsRetriedUnderANewIDAndNeverReplaced() throws {
        let (dir, state) = try spool()
        defer { withExtendedLifetime(dir) {} }
        let planted = state.requests + "/taken-1.json"
        try writeFile(planted, Data("planted".utf8))
        var request = SpoolRequest(id: "taken-1", kind: .sync)
        request.project = "p"
        let published = try SpoolClient(state: state).submit(request)
        #expect(published.id != "taken-1")
        #expect(try String(contentsOfFile: planted, encoding: .utf8) == "planted")
        let names = try FileManager.default.contentsOfDirectory(atPath: state.requests).sorted()
        #expect(names == ["\(published.id).json", "taken-1.json"].sorted())
        // An id the user chose is reported as taken rather than changed.
        #expect(throws: SpoolClient.Failure.self) { try SpoolClient(state: state).submit(request, fixedID: true) }
    }

    @Test func requestsAreTakenOneUserAfterAnotherAndJunkIsSwept() throws {
        let (dir, state) = try spool()
        defer { withExtendedLifetime(dir) {} }
        for i in 0..<40 { try writeFile(state.requests + "/a\(i).json", Data("{}".utf8)) }
        try FileManager.default.createDirectory(atPath: state.requests + "/dir.json", withIntermediateDirectories: false)
        try writeFile(state.requests + "/notes.txt", Data("x".utf8))
        let scan = RequestSpool(state: state).scan(perUser: 32)
        #expect(scan.requests.count == 32)
        #expect(scan.more)
        #expect(Set(scan.swept.map(\.name)) == ["dir.json", "notes.txt"])
        #expect(!FileManager.default.fileExists(atPath: state.requests + "/dir.json"))
        #expect(!FileManager.default.fileExists(atPath: state.requests + "/notes.txt"))
    }

    @Test func logsAndTablesShowControlCharactersEscaped() {
        #expect(Untrusted.printable("a\nb\u{1b}[8mc\u{202e}d\r") == "a\\nb\\x1b[8mc\\u{202e}d\\r")
        #expect(Untrusted.printable(String(repeating: "x", count: 10), limit: 4) == "xxxx…")
    }

    @Test(arguments: [
        ("ghcr.io/podtato-head/podtatoserver:v0.1.1", true),
        ("nginx", true), ("library/nginx:1.25", true), ("localhost:5000/app", true),
        ("registry.example.com:5000/team/app:v1@sha256:" + String(repeating: "a", count: 64), true),
        ("[::1]:5000/app:dev", true), ("app@sha256:" + String(repeating: "0", count: 64), true),
        ("", false), ("App", false), ("app:v1\u{1b}[8m", false), ("app:", false), ("app::v1", false),
        ("a..b/c", false), ("-app", false), ("app:v1 hidden", false), ("app@sha256:abc", false),
    ])
    func imageReferences(reference: String, valid: Bool) {
        #expect(Untrusted.isImageReference(reference) == valid, "\(reference)")
    }

    @Test func secretsReadableByMoreThanTheirOwnerAreAWarning() throws {
        let dir = try TemporaryDirectory()
        let token = try dir.write("token", "secret\n", mode: 0o640)
        let config = """
            projects:
              - name: p
                upstream: https://git.example.com/p.git
                credentials:
                  username: deploy
                  passwordFile: \(token)
            """
        let warnings = ConfigLoader.load(config).diagnostics.map(\.description)
        #expect(warnings.count == 1)
        #expect(warnings.first?.contains("passwordFile \(token) is readable by more than its owner") == true, "\(warnings)")
        chmod(token, 0o400)
        #expect(ConfigLoader.load(config).diagnostics.isEmpty)
    }

    /// Pruning removes what no sequence needs, never an export still being written.
    @Test func pruningLeavesExportsInProgressAlone() async throws {
        let dir = try TemporaryDirectory()
        let worktrees = Worktrees(root: dir.path + "/worktrees")
        let commit = String(repeating: "a", count: 40), other = String(repeating: "b", count: 40)
        for name in [commit, other, Worktrees.partialPrefix + commit + "-x"] {
            try FileManager.default.createDirectory(atPath: worktrees.root + "/" + name + "/sub", withIntermediateDirectories: true)
            try writeFile(worktrees.root + "/" + name + "/sub/file", Data("x".utf8))
        }
        #expect(worktrees.prune(keeping: [other]).isEmpty)
        #expect(await eventually {
            ((try? FileManager.default.contentsOfDirectory(atPath: worktrees.root)) ?? []).sorted() == [Worktrees.partialPrefix + commit + "-x", other]
        })
    }

    @Test func aShipyardPathMustNameAFileInTheRepository() {
        for path in ["./shipyard.yaml", "a/./b.yaml", "../x.yaml", "/etc/x", "a//b", "x\u{0}.yaml"] {
            let errors = ConfigLoader.load("projects:\n  - name: p\n    upstream: file:///r\n    shipyardPath: \"\(path.replacingOccurrences(of: "\u{0}", with: "\\0"))\"\n").diagnostics
            #expect(errors.contains { $0.message.hasPrefix("shipyardPath must be a path inside the repository") }, "\(path): \(errors)")
        }
    }
}
