import Foundation
import HummingbirdBcrypt
import ShipyardCore
import ShipyardDaemon
import ShipyardTestKit
import Testing

/// The web view and API of the real daemon on loopback: what anyone may read, who may decide,
/// and every forgery a group member or a visitor could try.
@Suite(.serialized) struct WebTests {
    typealias World = SequenceTests.World

    static let shipyard = GitWatchingTests.tutorialWithApproval

    /// The daemon's web address, once it listens.
    func web(_ world: World) async throws -> HTTPClient {
        var address: String?
        _ = await eventually(timeout: .seconds(30)) {
            address = world.daemon.status()?.web
            return address != nil
        }
        return HTTPClient(base: try #require(address, "the web view never listened: \(world.daemon.log)"))
    }

    func waitingApproval(_ world: World) async throws -> (context: String, id: String) {
        let context = try world.trigger(["--image", "ghcr.io/podtato-head/podtatoserver:v0.1.1"])
        #expect(await world.waitState(context, "production", "waitingForApproval"))
        let approvals = try world.daemon.ctl(["approvals", "--output", "json"])
        let list = try #require(try JSONSerialization.jsonObject(with: Data(approvals.stdout.utf8)) as? [[String: Any]])
        return (context, try #require(list.first?["id"] as? String))
    }

    static func sessionCookie(_ reply: HTTPClient.Reply) -> String? { reply.cookie }

    static func csrf(_ page: String) -> String? {
        guard let range = page.range(of: "name=\"csrf\" value=\"") else { return nil }
        return String(page[range.upperBound...].prefix { $0 != "\"" })
    }

    /// A token written into an upstream URL (as the user name, or as a `private_token`
    /// parameter) is used for fetching but never shown: not on pages anyone may read, not in the
    /// API, `status.json`, the CLI or the journal; `--check-config` says where it belongs.
    @Test func credentialsInAnUpstreamURLAreNeverShown() async throws {
        let dir = try TemporaryDirectory()
        let refusing = try RefusingPort()
        let upstream = "http://ghp_SECRETONE@127.0.0.1:\(refusing.port)/r.git?private_token=SECRETTWO&ref=main"
        let daemon = try RunningDaemon(directory: dir.path, config: """
            projects:
              - name: tokens
                upstream: \(upstream)
                pollInterval: 1s
            http:
              listen: 127.0.0.1:0
            """)
        let status = await daemon.waitFor("tokens") { $0.error != nil }
        #expect(status?.upstream == "http://***@127.0.0.1:\(refusing.port)/r.git?private_token=***&ref=main")
        var web: String?
        _ = await eventually { web = daemon.status()?.web; return web != nil }
        let client = HTTPClient(base: try #require(web))
        var seen: [String: String] = [
            "/projects": try client.get("/projects").body, "/api/v1/status": try client.get("/api/v1/status").body,
            "/api/v1/projects": try client.get("/api/v1/projects").body,
            "status.json": (try? String(contentsOfFile: daemon.state + "/status.json", encoding: .utf8)) ?? "",
            "shipyardctl status": try daemon.ctl(["status", "--output", "json"]).stdout, "the log": daemon.log,
        ]
        let check = try Command.run("shipyardd", ["--check-config", daemon.configPath])
        seen["--check-config"] = check.stdout + check.stderr
        #expect(check.status == 0 && seen["--check-config"]?.contains("it belongs in credentials.username and credentials.passwordFile") == true, "\(check)")
        #expect(seen["/projects"]?.contains("127.0.0.1:\(refusing.port)") == true)
        for (place, text) in seen {
            #expect(!text.contains("SECRETONE") && !text.contains("SECRETTWO"), "\(place) shows the token: \(text.suffix(2000))")
        }
        await daemon.stop()
        // An encoded colon is a password too: refused, like user:password.
        try daemon.write(config: "projects:\n  - name: p\n    upstream: https://user%3Asecret@host/r.git\n")
        let encoded = try Command.run("shipyardd", ["--check-config", daemon.configPath])
        #expect(encoded.status == 1 && (encoded.stdout + encoded.stderr).contains("upstream holds a password"), "\(encoded)")
        #expect(!(encoded.stdout + encoded.stderr).contains("secret"))
    }

    /// A visitor's session is kept nowhere (its CSRF token is an HMAC of its cookie): 12,000
    /// cookie-less page views, each of which makes a session, cannot push the sign-in form's
    /// session out, and alice signs in with the form she opened before them.
    @Test func aFloodOfPageViewsCannotEvictAVisitorsSession() async throws {
        let (world, secrets) = try Self.approverWorld()
        defer { withExtendedLifetime(secrets) {} }
        #expect(await world.ready())
        let web = try await web(world)
        let form = try web.get("/login")
        let cookie = try #require(form.cookie)
        let csrf = try #require(Self.csrf(form.body))
        let port = try #require(URLComponents(string: web.base)?.port)
        let made = try Run.checked("/usr/bin/python3", ["-c", #"""
            import http.client, sys
            port = int(sys.argv[1])
            connection = http.client.HTTPConnection("127.0.0.1", port)
            cookies = set()
            for _ in range(12000):
                connection.request("GET", "/login")
                response = connection.getresponse()
                response.read()
                cookies.add(response.getheader("Set-Cookie", ""))
            print(len(cookies))
            """#, String(port)]).trimmingCharacters(in: .whitespacesAndNewlines)
        #expect(Int(made) ?? 0 >= 12000, "\(made) sessions made")
        let reply = try web.post("/login", form: ["csrf": csrf, "user": "alice", "password": "alice-secret"], headers: ["Cookie": cookie])
        #expect(reply.status == 303, "\(reply.status): \(reply.body.prefix(300))")
        // A made-up token gets no CSRF token that works.
        let forged = try web.post("/login", form: ["csrf": csrf, "user": "alice", "password": "alice-secret"], headers: ["Cookie": "shipyard_session=" + String(repeating: "A", count: 43)])
        #expect(forged.status == 403, "\(forged.status)")
    }

    /// Request smuggling's raw material is refused: a full URL as the request line, a second
    /// Host header; every answer says nosniff; the API reads no body before it knows the caller.
    @Test func oddRequestLinesAndHeadersAreRefused() async throws {
        let (world, secrets) = try Self.approverWorld()
        defer { withExtendedLifetime(secrets) {} }
        #expect(await world.ready())
        let web = try await web(world)
        let port = try #require(URLComponents(string: web.base)?.port)
        let raw = try Run.checked("/usr/bin/python3", ["-c", #"""
            import socket, sys, json
            port = int(sys.argv[1])
            CRLF = "\r\n"
            def send(lines, body=""):
                s = socket.create_connection(("127.0.0.1", port))
                s.sendall((CRLF.join(lines) + CRLF + CRLF + body).encode())
                data = b""
                while True:
                    chunk = s.recv(65536)
                    if not chunk:
                        break
                    data += chunk
                return data.split(CRLF.encode())[0].decode()
            host = "Host: 127.0.0.1:%d" % port
            close = "Connection: close"
            print(json.dumps({
                "absolute": send(["GET http://evil.example/deliveries HTTP/1.1", host, close]),
                "twoHosts": send(["GET /deliveries HTTP/1.1", host, "Host: evil.example", close]),
                "plain": send(["GET /deliveries HTTP/1.1", host, close]),
                "anonymousBadBody": send(["POST /api/v1/approvals/x/approve HTTP/1.1", host, "Content-Type: application/json", "Content-Length: 5", close], "{{{{{"),
            }))
            """#, String(port)])
        let lines = try #require(try JSONSerialization.jsonObject(with: Data(raw.utf8)) as? [String: String])
        #expect(lines["absolute"]?.hasPrefix("HTTP/1.1 400") == true, "\(lines)")
        #expect(lines["twoHosts"]?.hasPrefix("HTTP/1.1 400") == true, "\(lines)")
        #expect(lines["plain"]?.hasPrefix("HTTP/1.1 200") == true, "\(lines)")
        #expect(lines["anonymousBadBody"]?.hasPrefix("HTTP/1.1 401") == true, "\(lines)")
        #expect(try web.get("/metrics").header("X-Content-Type-Options") == "nosniff")
        #expect(try web.get("/api/v1/status").header("X-Content-Type-Options") == "nosniff")
    }

    @Test func withoutAuthTheWebViewIsReadOnlyAndTheAPIHasTheCLIsKeys() async throws {
        let world = try World(shipyard: Self.shipyard, extraConfig: "http:\n  listen: 127.0.0.1:0")
        #expect(await world.ready())
        let web = try await web(world)
        #expect(try web.get("/healthz").status == 200)
        #expect(await eventually { (try? web.get("/readyz").status) == 200 })
        let (context, id) = try await waitingApproval(world)

        // The API gives what the CLI's --output json gives.
        func same(_ path: String, _ arguments: [String]) throws {
            let api = try web.get(path)
            #expect(api.status == 200)
            #expect(api.header("Content-Type")?.hasPrefix("application/json") == true)
            let cli = try world.daemon.ctl(arguments + ["--output", "json"])
            let a = try JSONSerialization.jsonObject(with: Data(api.body.utf8)) as? NSObject
            let b = try JSONSerialization.jsonObject(with: Data(cli.stdout.utf8)) as? NSObject
            #expect(a == b, "\(path): \(api.body) vs \(cli.stdout)")
        }
        try same("/api/v1/sequences", ["sequences"])
        try same("/api/v1/sequences/\(context)", ["sequence", context])
        try same("/api/v1/approvals", ["approvals"])
        let status = try #require(try web.get("/api/v1/status").json as? [String: Any])
        #expect((status["projects"] as? [[String: Any]])?.first?["name"] as? String == "fulltour")
        let events = try #require(try web.get("/api/v1/events?context=\(context)").json as? [[String: Any]])
        #expect(events.first?["type"] as? String == "sh.keptn.event.qa.delivery.triggered")
        #expect(try web.get("/api/v1/sequences/no-such-context").status == 404)

        // Pages: no buttons, every security header, a CSP without inline script.
        let page = try web.get("/approvals")
        #expect(page.status == 200)
        #expect(page.body.contains("helloservice"))
        #expect(!page.body.contains("<button class=\"approve\""))
        let csp = try #require(page.header("Content-Security-Policy"))
        #expect(csp.contains("script-src 'self'") && !csp.contains("unsafe-inline"))
        #expect(page.header("X-Frame-Options") == "DENY")
        #expect(page.header("Access-Control-Allow-Origin") == nil)
        let delivery = try web.get("/deliveries/\(context)")
        #expect(delivery.body.contains("waiting for approval"))

        // Another name for this address (DNS rebinding) is refused; so is a body that is not
        // JSON, and a form of nothing but '=' leaves the daemon running.
        let rebound = try web.get("/api/v1/approvals", headers: ["Host": "evil.example:8420"])
        #expect(rebound.status == 421, "\(rebound.status) \(rebound.body)")
        #expect(try web.get("/api/v1/approvals", headers: ["Host": "localhost:\(URL(string: web.base)!.port!)"]).status == 200)
        #expect(try web.request("POST", "/login", headers: ["Content-Type": "application/x-www-form-urlencoded"], body: Data("=".utf8)).status == 403)
        #expect(try web.request("POST", "/approvals/\(id)/approve", headers: ["Content-Type": "application/x-www-form-urlencoded"], body: Data("&=&=x&".utf8)).status == 403)
        #expect(world.daemon.isRunning)

        // Every POST is refused, and nothing changes.
        let forged = try web.post("/api/v1/approvals/\(id)/approve", json: #"{"reason":"trust me"}"#)
        #expect(forged.status == 403)
        #expect(forged.body.contains("read-only"))
        let form = try web.post("/approvals/\(id)/approve", form: ["reason": "trust me"])
        #expect(form.status == 403)
        #expect(try world.state(context, "production") == "waitingForApproval")
    }

    /// The tutorial with an htpasswd file of alice (an approver, `htpasswd -B`'s $2y$) and mallory
    /// (a user of the web, not an approver). The folder of the file goes with the world.
    static func approverWorld(seconds: String = "0") throws -> (World, TemporaryDirectory) {
        let secrets = try TemporaryDirectory()
        let alice = Bcrypt.hash("alice-secret", cost: 4).replacingOccurrences(of: "$2b$", with: "$2y$")
        let mallory = Bcrypt.hash("mallory-secret", cost: 4)
        let passwords = try secrets.write("htpasswd", "alice:\(alice)\nmallory:\(mallory)\n", mode: 0o600)
        let world = try World(shipyard: shipyard, seconds: seconds, extraConfig: """
            approvers:
              users: [alice]
            http:
              listen: 127.0.0.1:0
              auth:
                htpasswd: \(passwords)
            """)
        return (world, secrets)
    }

    func signIn(_ web: HTTPClient, _ user: String, _ password: String) throws -> String {
        let form = try web.get("/login")
        let cookie = try #require(form.cookie)
        let csrf = try #require(Self.csrf(form.body))
        let reply = try web.post("/login", form: ["csrf": csrf, "user": user, "password": password], headers: ["Cookie": cookie])
        #expect(reply.status == 303, "\(reply.body)")
        return try #require(reply.cookie)
    }

    /// A session is worth only as much as the htpasswd line it was made from: a changed password
    /// or a removed line ends it at its next request (no approve button, no decision), and the
    /// log says so; the new password signs in again.
    @Test func aSessionEndsWhenItsUsersPasswordChangesOrIsRemoved() async throws {
        let (world, secrets) = try Self.approverWorld()
        defer { withExtendedLifetime(secrets) {} }
        #expect(await world.ready())
        let web = try await web(world)
        let (context, id) = try await waitingApproval(world)
        let file = secrets.path + "/htpasswd"
        let original = try String(contentsOfFile: file, encoding: .utf8)
        let aliceLine = try #require(original.split(separator: "\n").first { $0.hasPrefix("alice:") })
        let malloryLine = try #require(original.split(separator: "\n").first { $0.hasPrefix("mallory:") })

        for change in ["changed", "removed"] {
            let cookie = try signIn(web, "alice", "alice-secret")
            let page = try web.get("/approvals", headers: ["Cookie": cookie])
            #expect(page.body.contains("<button class=\"approve\""))
            let csrf = try #require(Self.csrf(page.body))
            // The administrator changes alice's password, or removes her.
            let replacement = change == "changed" ? "alice:" + Bcrypt.hash("new-secret", cost: 4) + "\n" : ""
            try (replacement + malloryLine + "\n").write(toFile: file, atomically: true, encoding: .utf8)
            let after = try web.get("/approvals", headers: ["Cookie": cookie])
            #expect(!after.body.contains("<button class=\"approve\""), "\(change): the old session still shows the button")
            let form = try web.post("/approvals/\(id)/approve", form: ["csrf": csrf, "reason": "old session"], headers: ["Cookie": cookie])
            #expect(form.status == 403 || form.status == 401, "\(change): \(form.status) \(form.body.prefix(300))")
            let api = try web.post("/api/v1/approvals/\(id)/approve", json: "{}", headers: ["Cookie": cookie, "X-CSRF-Token": csrf])
            #expect(api.status == 401, "\(change): \(api.status) \(api.body.prefix(300))")
            #expect(try world.state(context, "production") == "waitingForApproval")
            #expect(world.daemon.log.contains("a session of alice ended: " + (change == "changed" ? "their password was changed" : "their htpasswd entry was removed")), "\(world.daemon.log.suffix(2000))")
            try (String(aliceLine) + "\n" + malloryLine + "\n").write(toFile: file, atomically: true, encoding: .utf8)
        }
        // With the new password (and only with it) alice signs in and decides.
        try ("alice:" + Bcrypt.hash("new-secret", cost: 4) + "\n" + malloryLine + "\n").write(toFile: file, atomically: true, encoding: .utf8)
        let cookie = try signIn(web, "alice", "new-secret")
        let csrf = try #require(Self.csrf(try web.get("/approvals", headers: ["Cookie": cookie]).body))
        #expect(try web.post("/approvals/\(id)/approve", form: ["csrf": csrf, "reason": "new password"], headers: ["Cookie": cookie]).status == 303)
        #expect(await world.waitState(context, "production", "finished"))
        // Signing out is logged.
        let signOutCSRF = try #require(Self.csrf(try web.get("/approvals", headers: ["Cookie": cookie]).body))
        _ = try web.post("/logout", form: ["csrf": signOutCSRF], headers: ["Cookie": cookie])
        #expect(world.daemon.log.contains("web: alice signed out"))
    }

    @Test func onlyASignedInApproverDecidesAndEveryForgeryIsRefused() async throws {
        let (world, secrets) = try Self.approverWorld()
        defer { withExtendedLifetime(secrets) {} }
        #expect(await world.ready())
        let web = try await web(world)
        let (context, id) = try await waitingApproval(world)

        // A visitor sees no button and cannot post.
        let anonymous = try web.get("/approvals")
        #expect(!anonymous.body.contains("<button class=\"approve\""))
        let visitorCookie = try #require(anonymous.cookie)
        let visitorCSRF = try #require(Self.csrf(try web.get("/login", headers: ["Cookie": visitorCookie]).body))
        #expect(try web.post("/approvals/\(id)/approve", form: ["reason": "x"]).status == 403)
        #expect(try web.post("/approvals/\(id)/approve", form: ["csrf": visitorCSRF, "reason": "x"], headers: ["Cookie": visitorCookie]).status == 403)

        // A wrong password: refused; typed again at once, checked again; a third try at once is
        // refused unchecked (429, even with the right password) until the wait is over.
        let form = try web.get("/login")
        let csrf = try #require(Self.csrf(form.body))
        let formCookie = try #require(form.cookie)
        let wrong = try web.post("/login", form: ["csrf": csrf, "user": "alice", "password": "guess"], headers: ["Cookie": formCookie])
        #expect(wrong.status == 401)
        #expect(wrong.body.contains("Wrong user or password."))
        let again = try web.post("/login", form: ["csrf": csrf, "user": "alice", "password": "guess2"], headers: ["Cookie": formCookie])
        #expect(again.status == 401)
        let third = try web.post("/login", form: ["csrf": csrf, "user": "alice", "password": "alice-secret"], headers: ["Cookie": formCookie])
        #expect(third.status == 429 && third.body.contains("Too many failed sign-ins; try again in 1 s."), "\(third.status)")
        let basic = try web.post("/api/v1/approvals/\(id)/approve", json: "{}", headers: ["Authorization": HTTPClient.basic("alice", "alice-secret")])
        #expect(basic.status == 429 && basic.header("Retry-After") == "1", "\(basic.status)")
        // The documented wait (0.5 s after a second failure), then alice is checked again.
        try await Task.sleep(for: .seconds(1))

        // mallory signs in, but is not an approver: no button, and a hand-made POST is refused.
        let malloryCookie = try signIn(web, "mallory", "mallory-secret")
        let malloryPage = try web.get("/approvals", headers: ["Cookie": malloryCookie])
        #expect(malloryPage.body.contains("signed in as <strong id=\"user\">mallory</strong>"))
        #expect(!malloryPage.body.contains("<button class=\"approve\""))
        let malloryCSRF = try #require(Self.csrf(malloryPage.body))
        let byMallory = try web.post("/approvals/\(id)/approve", form: ["csrf": malloryCSRF, "reason": "mine"], headers: ["Cookie": malloryCookie])
        #expect(byMallory.status == 303)
        #expect(try web.get("/approvals", headers: ["Cookie": malloryCookie]).body.contains("mallory may not resolve approvals"))
        // …with Basic credentials too, and with a wrong password, and with a stolen CSRF token.
        #expect(try web.post("/api/v1/approvals/\(id)/approve", json: "{}", headers: ["Authorization": HTTPClient.basic("mallory", "mallory-secret")]).status == 403)
        #expect(try web.post("/api/v1/approvals/\(id)/approve", json: "{}", headers: ["Authorization": HTTPClient.basic("alice", "nope")]).status == 401)
        #expect(try web.post("/api/v1/approvals/\(id)/approve", json: "{}", headers: ["Cookie": malloryCookie, "X-CSRF-Token": "forged"]).status == 401)
        // A form-encoded body (what a page of another site could send) is refused before any check.
        let textPlain = try web.request(
            "POST", "/api/v1/approvals/\(id)/approve", headers: ["Authorization": HTTPClient.basic("alice", "alice-secret"), "Content-Type": "text/plain"],
            body: Data("{}".utf8))
        #expect(textPlain.status == 415)
        // A cross-site form post carrying alice's cookie is refused by its Origin (once alice's
        // third failure, "nope" above, has had its wait of 1 s).
        try await Task.sleep(for: .seconds(1))
        let aliceCookie = try signIn(web, "alice", "alice-secret")
        let alicePage = try web.get("/approvals", headers: ["Cookie": aliceCookie])
        let aliceCSRF = try #require(Self.csrf(alicePage.body))
        #expect(try web.post("/approvals/\(id)/approve", form: ["csrf": aliceCSRF, "reason": "x"], headers: ["Cookie": aliceCookie, "Origin": "https://evil.example"]).status == 403)
        #expect(try world.state(context, "production") == "waitingForApproval")

        // alice, signed in, approves with a reason; production deploys; the record says who and how.
        #expect(alicePage.body.contains("<button class=\"approve\""))
        let approved = try web.post(
            "/approvals/\(id)/approve", form: ["csrf": aliceCSRF, "reason": "release notes checked", "back": "/deliveries/\(context)"], headers: ["Cookie": aliceCookie])
        #expect(approved.status == 303)
        #expect(approved.header("Location") == "/deliveries/\(context)")
        #expect(await world.waitState(context, "production", "finished"))
        let finished = world.events().first { $0["type"] as? String == "sh.keptn.event.approval.finished" && $0["shkeptncontext"] as? String == context }
        let decision = (finished?["data"] as? [String: Any])?["approval"] as? [String: Any]
        #expect(decision?["by"] as? String == "alice")
        #expect(decision?["via"] as? String == "web")
        #expect(decision?["reason"] as? String == "release notes checked")
        #expect(finished?["source"] as? String == "web/alice")
        let page = try web.get("/deliveries/\(context)", headers: ["Cookie": aliceCookie])
        #expect(page.body.contains("approved by alice (web)"))
        #expect(page.body.contains("release notes checked"))

        // A script with Basic credentials rejects the next one: the delivery fails.
        let (next, nextID) = try await waitingApproval(world)
        let rejected = try web.post("/api/v1/approvals/\(nextID)/reject", json: #"{"reason":"load test failed"}"#, headers: ["Authorization": HTTPClient.basic("alice", "alice-secret")])
        #expect(rejected.status == 200, "\(rejected.body)")
        #expect((rejected.json as? [String: Any])?["ok"] as? Bool == true)
        #expect(await world.waitState(next, "production", "finished"))
        #expect(try world.sequences().first { $0["context"] as? String == next && $0["stage"] as? String == "production" }?["result"] as? String == "fail")
        // Deciding it again: a conflict, said so.
        let twice = try web.post("/api/v1/approvals/\(nextID)/approve", json: "{}", headers: ["Authorization": HTTPClient.basic("alice", "alice-secret")])
        #expect(twice.status == 409)
        #expect(twice.body.contains("no longer pending"))
        // No password or hash ever shows on a page or in the record.
        for secret in ["alice-secret", "mallory-secret", "$2y$", "$2b$"] {
            #expect(!page.body.contains(secret))
            #expect(!(try world.daemon.ctl(["events"]).stdout.contains(secret)))
        }
    }

    /// The tutorial behind a proxy that names the user in X-Forwarded-User, believed from `trusted`.
    func proxyWorld(trusted: String, _ access: String) throws -> World {
        try World(shipyard: Self.shipyard, extraConfig: """
            \(access)
            http:
              listen: 127.0.0.1:0
              auth:
                proxyHeader: X-Forwarded-User
                trustedProxies: [\(trusted)]
            """)
    }

    @Test func aProxysHeaderIsBelievedOnlyFromTheTrustedProxy() async throws {
        let trusted = try proxyWorld(trusted: "10.1.2.0/24", """
            approvers:
              users: [carol]
            """)
        #expect(await trusted.ready())
        let web = try await web(trusted)
        let (context, id) = try await waitingApproval(trusted)
        // The test connects from 127.0.0.1, which is not the proxy: the header is ignored.
        let page = try web.get("/approvals", headers: ["X-Forwarded-User": "carol"])
        #expect(!page.body.contains("signed in as"))
        let forged = try web.post("/api/v1/approvals/\(id)/approve", json: "{}", headers: ["X-Forwarded-User": "carol"])
        #expect(forged.status == 401)
        #expect(try trusted.state(context, "production") == "waitingForApproval")
        _ = await trusted.daemon.stop()

        let world = try proxyWorld(trusted: "127.0.0.1/32", """
            approvers:
              users: [carol]
            """)
        #expect(await world.ready())
        let proxied = try await self.web(world)
        let (second, secondID) = try await waitingApproval(world)
        let carolPage = try proxied.get("/approvals", headers: ["X-Forwarded-User": "carol"])
        #expect(carolPage.body.contains("signed in as <strong id=\"user\">carol</strong>"))
        #expect(carolPage.body.contains("<button class=\"approve\""))
        // A form still needs its session's CSRF token.
        #expect(try proxied.post("/approvals/\(secondID)/approve", form: ["reason": "x"], headers: ["X-Forwarded-User": "carol"]).status == 403)
        let cookie = try #require(carolPage.cookie)
        let csrf = try #require(Self.csrf(carolPage.body))
        let approved = try proxied.post("/approvals/\(secondID)/approve", form: ["csrf": csrf, "reason": "ok"], headers: ["X-Forwarded-User": "carol", "Cookie": cookie])
        #expect(approved.status == 303)
        #expect(await world.waitState(second, "production", "finished"))
    }

    @Test func aGatesButtonsShowOnlyToThatGatesApprovers() async throws {
        let world = try proxyWorld(trusted: "127.0.0.1/32", """
            approvalPolicies:
              - stage: production
                approvers: {users: [carol]}
              - stage: qa
                approvers: {users: [dave]}
            """)
        #expect(await world.ready())
        let web = try await web(world)
        let (context, id) = try await waitingApproval(world)
        let dave = try web.get("/approvals", headers: ["X-Forwarded-User": "dave"])
        #expect(dave.body.contains("signed in as <strong id=\"user\">dave</strong>"))
        #expect(!dave.body.contains("<button class=\"approve\""))
        let refused = try web.post("/api/v1/approvals/\(id)/approve", json: "{}", headers: ["X-Forwarded-User": "dave"])
        #expect(refused.status == 403)
        #expect(refused.body.contains("dave may not decide production"))
        let carol = try web.get("/deliveries/\(context)", headers: ["X-Forwarded-User": "carol"])
        #expect(carol.body.contains("<button class=\"approve\""))
        let approved = try web.post("/api/v1/approvals/\(id)/approve", json: #"{"reason":"ok"}"#, headers: ["X-Forwarded-User": "carol"])
        #expect(approved.status == 200, "\(approved.body)")
        #expect(await world.waitState(context, "production", "finished"))
    }

}
