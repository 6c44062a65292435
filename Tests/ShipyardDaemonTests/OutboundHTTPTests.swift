import Foundation
import ShipyardTestKit
import Testing

@testable import ShipyardDaemon

/// The webhook client against a real receiver on loopback: certificates, redirects, sizes, and
/// the addresses it refuses before it connects.
@Suite struct OutboundHTTPTests {
    static let loopback = [DaemonConfig.CIDR("127.0.0.1/32")!]

    func client(timeout: Duration = .seconds(5), maxResponseBytes: Int = 1 << 20, allow: [DaemonConfig.CIDR] = loopback, caFile: String? = nil) -> OutboundHTTP {
        OutboundHTTP(limits: .init(timeout: timeout, maxResponseBytes: maxResponseBytes, allow: allow, caFile: caFile))
    }

    @Test func tlsIsCheckedAgainstTheSystemsCAsAndTheOneConfigured() throws {
        let dir = try TemporaryDirectory()
        let ca = try LocalCA(in: dir.path)
        let server = try HookServer(scratch: dir.path, certificate: (ca.cert, ca.key))
        let request = OutboundHTTP.Request(method: "POST", url: server.url("/ok"), headers: [("X-Test", "1")], body: Array("{}".utf8))
        let untrusted = client().send(request)
        #expect(untrusted.status == 0 && (untrusted.failure ?? "").lowercased().contains("certificate"), "\(untrusted)")
        let trusted = client(caFile: ca.caFile).send(request)
        #expect(trusted.status == 200 && trusted.failure == nil, "\(trusted)")
        #expect(String(decoding: trusted.body, as: UTF8.self) == #"{"ok": true, "run": 42}"#)
        #expect(server.requests.count == 1, "the untrusted handshake sent no request")
    }

    @Test func redirectsAreFollowedOnlyWhenAskedAndPostBecomesGet() throws {
        let dir = try TemporaryDirectory()
        let server = try HookServer(scratch: dir.path)
        var request = OutboundHTTP.Request(method: "POST", url: server.url("/redirect"), headers: [], body: Array("x".utf8))
        let stopped = client().send(request)
        #expect(stopped.status == 302 && stopped.locationHeader == "/ok")
        request.followRedirects = true
        let followed = client().send(request)
        #expect(followed.status == 200, "\(followed)")
        #expect(server.requests.compactMap { "\($0["method"] as? String ?? "") \($0["path"] as? String ?? "")" } == ["POST /redirect", "POST /redirect", "GET /ok"])
    }

    @Test func aBigAnswerIsCutAtTheLimitAndAHangingOneAtTheTimeout() throws {
        let dir = try TemporaryDirectory()
        let server = try HookServer(scratch: dir.path)
        let big = client(maxResponseBytes: 4096).send(.init(method: "GET", url: server.url("/big"), headers: []))
        #expect(big.status == 200 && big.truncated && big.body.count == 4096 && big.failure == nil, "\(big.failure ?? "")")
        let started = ContinuousClock.now
        let hung = client(timeout: .seconds(1)).send(.init(method: "GET", url: server.url("/hang"), headers: []))
        #expect(hung.timedOut && hung.failure == "timed out after 1s", "\(hung)")
        #expect(ContinuousClock.now - started < .seconds(10))
    }

    @Test(arguments: [
        ("127.0.0.1", "a loopback address"), ("127.9.9.9", "a loopback address"), ("::1", "a loopback address"),
        ("169.254.169.254", "a link-local address (cloud metadata lives there)"), ("fe80::1", "a link-local address"),
        ("::ffff:127.0.0.1", "a loopback address"), ("64:ff9b::a9fe:a9fe", "a link-local address (cloud metadata lives there)"),
        ("fd00:ec2::254", "a cloud metadata address"), ("0.0.0.0", "the unspecified network"), ("224.0.0.1", "a multicast address"),
    ])
    func deniedAddresses(address: String, reason: String) {
        #expect(AddressPolicy.denied(address, allow: []) == reason)
    }

    @Test func allowedAndOrdinaryAddresses() throws {
        #expect(AddressPolicy.denied("127.0.0.1", allow: Self.loopback) == nil)
        #expect(AddressPolicy.denied("93.184.216.34", allow: []) == nil)
        #expect(AddressPolicy.denied("10.1.2.3", allow: []) == nil, "private networks are where on-premises CI lives")
        // This host's own addresses, whatever interface they are on.
        for own in try #require(AddressPolicy.ownAddresses()) where !own.hasPrefix("127.") && own != "::1" && !own.hasPrefix("fe80") {
            #expect(AddressPolicy.denied(own, allow: []) == "an address of this host", "\(own)")
        }
        // A name is checked by every address it has; the literal URL host the same way.
        if case .failure(let failure) = OutboundHTTP.target("http://localhost:1/x", allow: Self.loopback) {
            #expect(failure.refused && failure.message.contains("::1"), "\(failure.message)")
        }
        guard case .failure(let refused) = OutboundHTTP.target("http://[::1]:8080/x", allow: Self.loopback) else {
            Issue.record("::1 passed")
            return
        }
        #expect(refused.message == "::1 resolves to ::1, a loopback address; webhooks may not call it unless webhooks.allow in the host config lists it")
        guard case .success(let target) = OutboundHTTP.target("https://127.0.0.1/x", allow: Self.loopback) else {
            Issue.record("127.0.0.1 refused although allowed")
            return
        }
        #expect(target.port == 443 && target.addresses == ["127.0.0.1"])
    }

    @Test func aSecretIsMaskedInEveryFormATemplateWritesIt() {
        let secret = "p@ss-word 1\"<x>"
        let mask = Masker(secrets: [secret])
        for form in ["p@ss-word 1\"<x>", "p%40ss-word+1%22%3Cx%3E", #"p@ss-word 1\"\u003Cx\u003E"#, "p@ss-word 1&#34;&lt;x&gt;", #"p@ss-word 1\"<x>"#] {
            #expect(mask("before \(form) after") == "before *** after", "\(form)")
        }
        #expect(Masker(secrets: [""])("nothing to hide") == "nothing to hide")
    }

    @Test func aRedirectToAnotherOriginKeepsNoTokenHeader() throws {
        let dir = try TemporaryDirectory()
        let server = try HookServer(scratch: dir.path)
        let other = try HookServer(scratch: dir.path, name: "other")
        let headers = [("Authorization", "Bearer s3cret"), ("X-Api-Key", "k3y"), ("Accept", "application/json")]
        // Another port is another origin.
        let target = other.url("/ok").addingPercentEncoding(withAllowedCharacters: .alphanumerics)!
        let away = client().send(.init(method: "GET", url: server.url("/redirectto?to=\(target)"), headers: headers, followRedirects: true))
        #expect(away.status == 200, "\(away)")
        let arrived = try #require(other.requests.first?["headers"] as? [String: Any])
        #expect(arrived["Authorization"] == nil && arrived["X-Api-Key"] == nil && arrived["Accept"] as? String == "application/json", "\(arrived)")
        // The same origin keeps them.
        _ = client().send(.init(method: "GET", url: server.url("/redirect"), headers: headers, followRedirects: true))
        let same = try #require(server.requests.last?["headers"] as? [String: Any])
        #expect(same["Authorization"] as? String == "Bearer s3cret" && server.requests.last?["path"] as? String == "/ok", "\(same)")
    }
}
