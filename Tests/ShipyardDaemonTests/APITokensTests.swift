import Foundation
import ShipyardCore
import ShipyardDaemon
import Testing

/// The API token file: what each line may be, who a token acts as, and that the file keeps the
/// token's SHA-256 as `sha256sum` prints it (so an existing Keptn token can be carried over).
struct APITokensTests {
    @Test func linesNameAUserOrARoleByTheTokensHash() throws {
        let (alice, aliceLine) = APITokens.make(for: .user("alice"))
        let (ci, ciLine) = APITokens.make(for: .role("ci"))
        #expect(alice.count == 64 && alice != ci)
        let text = "# tokens\n\n\(aliceLine)   # alice's laptop\n\t\(ciLine)\nsha256:12 user:bob\nsha256:\(String(repeating: "A", count: 64)) user:\nsha256:\(String(repeating: "b", count: 64)) group:ops\n\(aliceLine.replacingOccurrences(of: "user:alice", with: "role:x"))\n"
        let (tokens, problems) = APITokens.parse(text, path: "/etc/shipyardd/api-tokens")
        #expect(tokens.count == 2)
        #expect(tokens.principal(of: alice) == .user("alice"))
        #expect(tokens.principal(of: ci) == .role("ci"))
        #expect(tokens.principal(of: String(alice.dropLast()) + "x") == nil)
        #expect(tokens.principal(of: "") == nil)
        #expect(problems == [
            "/etc/shipyardd/api-tokens:5: \"sha256:12\" is not sha256: and 64 hex digits; the file holds the token's SHA-256, never the token (shipyardctl api-token new prints the line)",
            "/etc/shipyardd/api-tokens:6: \"user:\" names no one: write user:NAME (an account of this host) or role:NAME (a program, e.g. role:job-executor)",
            "/etc/shipyardd/api-tokens:7: \"group:ops\" names no one: write user:NAME (an account of this host) or role:NAME (a program, e.g. role:job-executor)",
            "/etc/shipyardd/api-tokens:8: the same token as line 3; one token acts as one user or role",
        ], "\(problems)")
    }

    @Test func theHashIsWhatSha256sumPrints() throws {
        let line = APITokens.line(token: "keptn-secret-token-1234", principal: .role("ci"))
        #expect(line == "sha256:" + SHA256.hex(Array("keptn-secret-token-1234".utf8)) + " role:ci")
        let output = Pipe()
        let process = Process()
        process.executableURL = URL(fileURLWithPath: "/bin/sh")
        process.arguments = ["-c", "printf %s keptn-secret-token-1234 | sha256sum"]
        process.standardOutput = output
        try process.run()
        process.waitUntilExit()
        let printed = String(decoding: output.fileHandleForReading.readDataToEndOfFile(), as: UTF8.self)
        #expect(process.terminationStatus == 0 && printed.count >= 64, "\(printed)")
        #expect(line.hasPrefix("sha256:" + printed.prefix(64)))
    }

    /// Roles are admitted only by `roles`, never by a user or group of the same name.
    @Test func aRoleIsAdmittedOnlyByRoles() {
        let list = Approvers(users: ["ci"], groups: ["ci"], roles: ["job-executor"])
        #expect(!list.admits(user: "role:ci", groups: []))
        #expect(list.admits(user: "role:job-executor", groups: []))
        #expect(!list.admits(user: "job-executor", groups: []))
        #expect(list.admits(user: "ci", groups: []))
    }
}
