import Foundation
import ShipyardCore
import ShipyardTestKit
import Testing

@testable import ShipyardDaemon

@Suite struct StateDirectoryTests {
    /// A state directory others may write to is refused with the command that fixes it; a
    /// second daemon on the same state is refused, naming the first.
    @Test func whatOthersCanWriteIsRefusedAndOneDaemonHoldsTheState() throws {
        let dir = try TemporaryDirectory()
        let state = StateDirectory(dir.path + "/state")
        let (notes, lock) = try state.prepare()
        #expect(notes.isEmpty)
        #expect(throws: StateDirectory.Refusal.self) { try state.prepare() }
        do {
            _ = try state.prepare()
        } catch {
            #expect("\(error)".contains("another shipyardd (pid \(getpid())) is running with the state directory \(state.root)"))
        }
        close(lock)
        chmod(state.root, 0o2770)
        do {
            _ = try state.prepare()
            Issue.record("a group-writable state directory was taken")
        } catch {
            #expect("\(error)".contains("may be written by its group"), "\(error)")
            #expect("\(error)".contains("sudo chmod go-w \(state.root)"))
        }
    }

    /// A record its group could read (an earlier release) is copied to new private files, so
    /// that no descriptor opened before reaches them; the spool of that release is removed.
    @Test func anEarlierReleasesRecordAndSpoolAreConverted() throws {
        let dir = try TemporaryDirectory()
        let state = StateDirectory(dir.path + "/state")
        try FileManager.default.createDirectory(atPath: state.root + "/requests", withIntermediateDirectories: true)
        try writeFile(state.root + "/requests/a.json", Data("{}".utf8))
        try writeFile(state.storeFile, Data("not really a database".utf8), mode: 0o640)
        let held = open(state.storeFile, O_RDONLY)
        defer { close(held) }
        var before = stat()
        fstat(held, &before)
        let (notes, lock) = try state.prepare()
        defer { close(lock) }
        #expect(notes.contains { $0.contains("is now private to shipyardd (mode 0600)") }, "\(notes)")
        #expect(notes.contains { $0.contains("1 request(s) still waiting in it were not applied") }, "\(notes)")
        var after = stat()
        #expect(stat(state.storeFile, &after) == 0 && after.st_mode & 0o777 == 0o600 && after.st_ino != before.st_ino)
        #expect(try String(contentsOfFile: state.storeFile, encoding: .utf8) == "not really a database")
        #expect(!FileManager.default.fileExists(atPath: state.root + "/requests"))
    }

    /// The CLI's reader of the daemon's answers: a length, chunks, or the end of the connection.
    @Test func answersAreReadWhole() throws {
        let length = Data("HTTP/1.1 200 OK\r\nContent-Length: 5\r\nShipyard-More: true\r\n\r\nhello".utf8)
        let parsed = try #require(try LocalAPIClient.parse(length, complete: false))
        #expect(parsed.status == 200 && parsed.body == Data("hello".utf8) && parsed.headers["shipyard-more"] == "true")
        #expect(try LocalAPIClient.parse(length.dropLast(), complete: false) == nil)
        let chunked = Data("HTTP/1.1 409 Conflict\r\nTransfer-Encoding: chunked\r\n\r\n3\r\nabc\r\n2\r\nde\r\n0\r\n\r\n".utf8)
        #expect(try LocalAPIClient.parse(chunked, complete: false)?.body == Data("abcde".utf8))
        #expect(try LocalAPIClient.parse(chunked.prefix(40), complete: false) == nil)
        #expect(throws: LocalAPIClient.Failure.self) { try LocalAPIClient.parse(Data("garbage".utf8), complete: true) }
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
        // Control and invisible format characters (an escape sequence, a right-to-left override).
        for (path, code) in [("ship\\u001b[2Jyard.yaml", "U+001B"), ("a\\u202Elmay.yaml", "U+202E"), ("a\\tb.yaml", "U+0009")] {
            let errors = ConfigLoader.load("projects:\n  - name: p\n    upstream: file:///r\n    shipyardPath: \"\(path)\"\n").diagnostics
            #expect(errors.contains { $0.message.hasPrefix("shipyardPath holds the character \(code), a control or invisible format character") }, "\(path): \(errors)")
        }
        #expect(ConfigLoader.load("projects:\n  - name: p\n    upstream: file:///r\n    shipyardPath: \"déploiement/shipyard.yaml\"\n").diagnostics.isEmpty)
    }
}
