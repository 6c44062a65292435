import Foundation
import Testing

@testable import ShipyardGit

@Suite struct KnownHostsTests {
    // An ed25519 public key blob: string "ssh-ed25519" then 32 key bytes.
    static func blob(_ fill: UInt8) -> [UInt8] {
        [0, 0, 0, 11] + Array("ssh-ed25519".utf8) + [0, 0, 0, 32] + [UInt8](repeating: fill, count: 32)
    }

    static func line(_ host: String, _ fill: UInt8, marker: String = "") -> String {
        (marker.isEmpty ? "" : marker + " ") + "\(host) ssh-ed25519 \(Data(blob(fill)).base64EncodedString()) comment"
    }

    @Test func plainEntriesWithAndWithoutPorts() {
        let hosts = KnownHosts(text: [Self.line("git.example.com", 1), Self.line("[127.0.0.1]:2222", 2), "# comment", "garbage"].joined(separator: "\n"))
        #expect(hosts.verdict(host: "git.example.com", port: nil, key: Self.blob(1)) == .trusted)
        #expect(hosts.verdict(host: "git.example.com", port: 22, key: Self.blob(1)) == .trusted)
        #expect(hosts.verdict(host: "git.example.com", port: nil, key: Self.blob(9)) == .changed)
        #expect(hosts.verdict(host: "127.0.0.1", port: 2222, key: Self.blob(2)) == .trusted)
        #expect(hosts.verdict(host: "127.0.0.1", port: 22, key: Self.blob(2)) == .unknown)
        #expect(hosts.verdict(host: "other.example.com", port: nil, key: Self.blob(1)) == .unknown)
    }

    @Test func hashedEntriesAsSshKeygenWritesThem() {
        // `ssh-keygen -H` hashes the host name with HMAC-SHA1 under a random salt.
        let salt: [UInt8] = Array(0..<20)
        let hash = SHA1.hmac(key: salt, message: Array("git.example.com".utf8))
        let pattern = "|1|\(Data(salt).base64EncodedString())|\(Data(hash).base64EncodedString())"
        let hosts = KnownHosts(text: Self.line(pattern, 3))
        #expect(hosts.verdict(host: "git.example.com", port: nil, key: Self.blob(3)) == .trusted)
        #expect(hosts.verdict(host: "git.example.org", port: nil, key: Self.blob(3)) == .unknown)
    }

    @Test func sha1MatchesKnownVectors() {
        let hex = { (bytes: [UInt8]) in bytes.map { String(format: "%02x", $0) }.joined() }
        #expect(hex(SHA1.hash(Array("abc".utf8))) == "a9993e364706816aba3e25717850c26c9cd0d89d")
        #expect(hex(SHA1.hash([])) == "da39a3ee5e6b4b0d3255bfef95601890afd80709")
        // RFC 2202 test case 2.
        #expect(hex(SHA1.hmac(key: Array("Jefe".utf8), message: Array("what do ya want for nothing?".utf8)))
            == "effcdf6ae5eb2fa2d27416d5f184df9c259a7c79")
    }

    @Test func wildcardsNegationAndRevocation() {
        let hosts = KnownHosts(text: [
            Self.line("*.example.com,!bad.example.com", 4),
            Self.line("revoked.example.com", 5, marker: "@revoked"),
            Self.line("revoked.example.com", 6),
        ].joined(separator: "\n"))
        #expect(hosts.verdict(host: "git.example.com", port: nil, key: Self.blob(4)) == .trusted)
        #expect(hosts.verdict(host: "bad.example.com", port: nil, key: Self.blob(4)) == .unknown)
        #expect(hosts.verdict(host: "revoked.example.com", port: nil, key: Self.blob(5)) == .revoked)
        #expect(hosts.verdict(host: "revoked.example.com", port: nil, key: Self.blob(6)) == .trusted)
    }

    @Test func redactsPasswordsInURLs() {
        #expect(RemoteAccess.redact("https://user:secret@host/x.git") == "https://***@host/x.git")
        // A token as the user name, an encoded colon, a token parameter: none of them shown.
        #expect(RemoteAccess.redact("https://ghp_abc123@github.com/o/r.git") == "https://***@github.com/o/r.git")
        #expect(RemoteAccess.redact("https://user%3Asecret@host/x.git") == "https://***@host/x.git")
        #expect(RemoteAccess.redact("https://host/x.git?private_token=glpat-1&ref=main") == "https://host/x.git?private_token=***&ref=main")
        #expect(RemoteAccess.redact("https://host/x.git?X-Amz-Signature=abc") == "https://host/x.git?X-Amz-Signature=***")
        #expect(RemoteAccess.redact("ssh://git:pw@host/x.git") == "ssh://git:***@host/x.git")
        #expect(RemoteAccess.redact("https://host/a@b/x.git") == "https://host/a@b/x.git")
        #expect(!RemoteAccess.holdsCredential("ssh://git@host/x.git") && RemoteAccess.holdsCredential("git://tok@host/x.git"))
        #expect(RemoteAccess.redact("https://host/x.git") == "https://host/x.git")
        #expect(RemoteAccess.redact("ssh://git@host/x.git") == "ssh://git@host/x.git")
    }
}
