import Testing

@testable import ShipyardDaemon

@Suite struct ConfigLoaderTests {
    func lint(_ text: String, environment: [String: String] = [:]) -> [String] {
        ConfigLoader.load(text, environment: environment).diagnostics.map(\.description)
    }

    @Test func theDesignExampleLoadsWithItsDefaults() throws {
        let text = """
            stateDirectory: /var/lib/shipyardd
            projects:
              - name: fulltour
                upstream: https://git.example.com/acme/fulltour.git
                branch: main
                shipyardPath: shipyard.yaml
                pollInterval: 30s
                credentials:
                  username: deploy
                  passwordFile: /etc/shipyardd/fulltour.token
              - name: other
                upstream: ssh://git@git.example.com/acme/other.git
                credentials:
                  sshKey: /etc/shipyardd/id_ed25519
                  knownHosts: /etc/shipyardd/known_hosts
            tasks:
              je-deployment:
                command: ["/usr/local/libexec/fulltour/deploy", "--chart", "helloservice"]
                timeout: 15m
              je-test:
                command: ["/usr/local/libexec/fulltour/test"]
            approvers:
              users: [alice]
              groups: [release-managers]
            """
        let document = ConfigLoader.load(text)
        #expect(document.diagnostics.isEmpty)
        let config = try #require(document.config)
        #expect(config.projects.map(\.name) == ["fulltour", "other"])
        let other = try #require(config.project(named: "other"))
        #expect(other.branch == "main")
        #expect(other.shipyardPath == "shipyard.yaml")
        #expect(other.pollInterval == .seconds(30))
        #expect(other.pollTimeout == .seconds(60))
        #expect(config.project(named: "fulltour")?.credentials?.passwordFile == "/etc/shipyardd/fulltour.token")
        #expect(config.tasks["je-deployment"]?.command == ["/usr/local/libexec/fulltour/deploy", "--chart", "helloservice"])
        #expect(config.tasks["je-test"]?.timeout == .seconds(900))
        #expect(config.approvers == DaemonConfig.Approvers(users: ["alice"], groups: ["release-managers"]))
    }

    /// Numbers as YAML writes them (an integer, not a string), and retention periods.
    @Test func limitsPoolAndHistory() throws {
        let text = """
            projects:
              - name: a
                upstream: file:///srv/a.git
            maxSequencesPerContext: 10
            pollThreads: 12
            history:
              keep: 180d
            """
        let config = try #require(ConfigLoader.load(text).config, "\(lint(text))")
        #expect(config.maxSequencesPerContext == 10)
        #expect(config.pollThreads == 12)
        #expect(config.historyKeep == .seconds(180 * 86400))
        let base = "projects:\n  - name: a\n    upstream: file:///srv/a.git\n"
        #expect(ConfigLoader.load(base + "history: {keep: 26w}\n").config?.historyKeep == .seconds(26 * 7 * 86400))
        #expect(ConfigLoader.load(base + "history: {keep: 4320h}\n").config?.historyKeep == .seconds(4320 * 3600))
        #expect(ConfigLoader.load(base).config?.historyKeep == nil)
        #expect(ConfigLoader.load(base).config?.pollThreads == nil)
        #expect(lint(base + "pollThreads: 0\n") == [
            "4:14: error: pollThreads must be a whole number from 1 to 256 (the threads that poll upstreams; leave it out for 4 per core)"])
        #expect(lint(base + "maxSequencesPerContext: many\n") == ["4:25: error: maxSequencesPerContext must be a whole number of at least 1"])
        #expect(lint(base + "history:\n  keep: 10m\n") == ["5:9: error: history.keep must be at least 1h: ended deliveries are kept at least that long"])
        #expect(lint(base + "history:\n  keep: soon\n") == ["5:9: error: history.keep: \"soon\" is not a period like \"180d\", \"26w\" or \"4320h\""])
        #expect(lint(base + "history: {}\n").first?.contains("history needs 'keep:'") == true)
    }

    @Test func stateDirectoryComesFromSystemdWhenNotSet() throws {
        let text = "projects:\n  - name: a\n    upstream: file:///srv/a.git\n"
        #expect(ConfigLoader.load(text).config?.stateDirectory == "/var/lib/shipyardd")
        #expect(ConfigLoader.load(text, environment: ["STATE_DIRECTORY": "/var/lib/x:/var/lib/y"]).config?.stateDirectory == "/var/lib/x")
    }

    @Test func everyMistakeAtItsLine() {
        let text = """
            stateDirectory: relative/path
            projects:
              - name: Full_Tour
                upstream: git@github.com:acme/x.git
                pollInterval: 500ms
                pollTimeot: 10s
              - name: b
                upstream: ssh://git@host/b.git
              - name: c
                upstream: https://user:pw@host/c.git
              - name: d
                upstream: https://host/d.git
                branch: "bad..name"
                shipyardPath: ../shipyard.yaml
                credentials:
                  passwordFile: /etc/token
                  sshKey: /etc/key
              - name: d
                upstream: file:///srv/d.git
            tasks:
              deploy:
                command: ["deploy.sh"]
              test:
                command: []
              approval:
                command: ["/bin/true"]
              lint:
                timeout: 5m
            approvers:
              users: []
            """
        #expect(lint(text) == [
            "1:17: error: stateDirectory must be an absolute path, not \"relative/path\"",
            "3:11: error: project name \"Full_Tour\" is invalid: use lowercase letters, digits and '-', starting with a letter and not ending with '-', at most 200 characters",
            "4:15: error: write the upstream as a URL: ssh://git@github.com/acme/x.git",
            "5:19: error: pollInterval must be at least 1s",
            "6:5: error: unknown key \"pollTimeot\" in a project; did you mean \"pollTimeout\"?",
            "8:15: error: an ssh upstream needs credentials.knownHosts (unknown host keys are refused); create it with ssh-keyscan",
            "10:15: error: upstream holds a password; put it in a file and name it in credentials.passwordFile",
            "13:13: error: branch \"bad..name\" is not a valid Git branch name",
            "14:19: error: shipyardPath must be a path inside the repository, like \"shipyard.yaml\" or \"deploy/shipyard.yaml\"",
            "16:7: error: passwordFile needs a username beside it (for a token, any name the server accepts)",
            "17:7: error: sshKey is for ssh:// upstreams; this upstream is not one",
            "18:11: error: duplicate project name \"d\" (first defined at line 11)",
            "22:15: error: the program \"deploy.sh\" must be an absolute path (no shell and no PATH lookup is used)",
            "24:14: error: command is empty; name the program to run",
            "25:3: error: approval is built in and cannot be given a command",
            "28:5: error: task \"lint\" has no command; add 'command: [\"/path/to/program\", \"arg\"]'",
            "30:3: warning: approvers lists no users and no groups, so nobody can approve; remove it to let every operator approve",
        ])
    }

    @Test func qualityGateSettings() throws {
        let config = try #require(ConfigLoader.load("""
            projects:
              - name: a
                upstream: file:///srv/a.git
                sliProvider:
                  command: ["/usr/local/bin/sli", "--fast"]
                  timeout: 20s
                sloPath: "gates/{stage}-{service}.yaml"
                requireSLO: true
              - name: b
                upstream: file:///srv/b.git
                sliProvider:
                  prometheus:
                    url: http://127.0.0.1:9090/
              - name: c
                upstream: file:///srv/c.git
                sliProvider:
                  prometheus: {url: "https://prom.example.com", timeout: 5s, bearerTokenFile: /etc/shipyardd/prom-token}
                sliPath: "{stage}/sli.yaml"
            """).config)
        #expect(config.projects[0].sliProvider == .command(DaemonConfig.TaskExecutor(command: ["/usr/local/bin/sli", "--fast"], timeout: .seconds(20))))
        #expect(config.projects[0].sloPath == "gates/{stage}-{service}.yaml")
        #expect(config.projects[0].requireSLO)
        #expect(config.projects[0].effectiveSLIPaths == [])
        var prometheus = DaemonConfig.Prometheus(url: "http://127.0.0.1:9090")
        #expect(config.projects[1].sliProvider == .prometheus(prometheus))
        #expect(config.projects[1].sloPath == "{stage}/{service}/slo.yaml")
        #expect(!config.projects[1].requireSLO)
        #expect(config.projects[1].effectiveSLIPaths == ["prometheus/sli.yaml", "{stage}/prometheus/sli.yaml", "{stage}/{service}/prometheus/sli.yaml"])
        prometheus = DaemonConfig.Prometheus(url: "https://prom.example.com")
        prometheus.timeout = .seconds(5)
        prometheus.bearerTokenFile = "/etc/shipyardd/prom-token"
        #expect(config.projects[2].sliProvider == .prometheus(prometheus))
        #expect(config.projects[2].effectiveSLIPaths == ["{stage}/sli.yaml"])
    }

    @Test func qualityGateMistakesAtTheirLine() {
        #expect(lint("""
            projects:
              - name: a
                upstream: file:///srv/a.git
                sliProvider:
                  prometheus:
                    url: prometheus:9090
              - name: b
                upstream: file:///srv/b.git
                sliProvider:
                  prometheus:
                    url: https://admin:secret@prom.example.com
                sloPath: /etc/slo.yaml
                requireSLO: "yes"
              - name: c
                upstream: file:///srv/c.git
                sliProvider:
                  command: ["sli.sh"]
                sliPath: ["ok.yaml", "../out.yaml"]
              - name: d
                upstream: file:///srv/d.git
                sliProvider:
                  prometheus:
                    url: http://127.0.0.1:9090
                    passwordFile: /etc/pw
                    tokenFile: /etc/token
            tasks:
              evaluation:
                command: ["/bin/true"]
            """) == [
            "6:14: error: sliProvider.prometheus.url must be an http:// or https:// URL of the server, like http://127.0.0.1:9090",
            "11:14: error: sliProvider.prometheus.url holds credentials; use username and passwordFile (or bearerTokenFile)",
            "12:14: error: sloPath must be a path inside the repository, like \"{stage}/{service}/slo.yaml\"",
            "13:17: error: requireSLO must be true or false",
            "17:17: error: the program \"sli.sh\" must be an absolute path (no shell and no PATH lookup is used)",
            "18:26: error: sliPath must be a path inside the repository, like \"{stage}/{service}/prometheus/sli.yaml\"",
            "24:9: error: passwordFile needs a username beside it (HTTP Basic authentication)",
            "25:9: error: unknown key \"tokenFile\" in sliProvider.prometheus (it takes url, timeout, username, passwordFile, bearerTokenFile)",
            "27:3: error: evaluation is built in (Keptn's quality gate); give the project an sliProvider instead of a command",
        ])
    }

    @Test func webhookSubscriptionsSecretsAndSettings() throws {
        let document = ConfigLoader.load("""
            projects:
              - name: shop
                upstream: https://git.example.com/shop.git
                webhooks:
                  - on: approval.triggered
                    subscriptionID: slack
                    stages: [production]
                  - on: deployment.triggered
                    services: [carts]
                secrets:
                  slack: /etc/shipyardd/secrets/slack
            webhooks:
              timeout: 20s
              maxResponseBytes: 65536
              followRedirects: true
              allow: [10.0.0.0/8, "::1/128"]
              caFile: /etc/shipyardd/ca.pem
              retries: 2
              concurrency: 4
            """)
        #expect(document.diagnostics.isEmpty, "\(document.diagnostics)")
        let config = try #require(document.config)
        let project = try #require(config.projects.first)
        #expect(project.webhooks.map(\.eventType) == ["sh.keptn.event.approval.triggered", "sh.keptn.event.deployment.triggered"])
        #expect(project.webhooks.map(\.name) == ["slack", "deployment.triggered"])
        #expect(project.webhooks[0].matches(stage: "production", service: "x") && !project.webhooks[0].matches(stage: "qa", service: "x"))
        #expect(project.webhooks[1].matches(stage: "qa", service: "carts") && !project.webhooks[1].matches(stage: "qa", service: "orders"))
        #expect(project.secrets == ["slack": "/etc/shipyardd/secrets/slack"])
        #expect(config.webhooks.timeout == .seconds(20) && config.webhooks.maxResponseBytes == 65536 && config.webhooks.followRedirects)
        #expect(config.webhooks.allow.count == 2 && config.webhooks.allow[0].contains("10.1.2.3") && config.webhooks.caFile == "/etc/shipyardd/ca.pem")
        #expect(config.webhooks.retries == 2 && config.webhooks.concurrency == 4)
        #expect(DaemonConfig.Webhooks().timeout == .seconds(10) && DaemonConfig.Webhooks().allow.isEmpty && !DaemonConfig.Webhooks().followRedirects)
    }

    @Test func webhookMistakesAtTheirLine() {
        let found = lint("""
            projects:
              - name: shop
                upstream: https://git.example.com/shop.git
                webhooks:
                  - on: approval
                  - on: deployment.triggered
                    stage: [qa]
                  - on: deployment.triggered
                  - on: test.triggered
                secrets:
                  "../up": /etc/x
                  slack: relative/path
            tasks:
              test:
                command: [/bin/true]
            webhooks:
              timeout: 10m
              allow: [localhost]
              retries: 50
            """)
        #expect(found.contains { $0.hasPrefix("5:13: error: on must be TASK.PHASE") }, "\(found)")
        #expect(found.contains { $0.hasPrefix("7:9: error: unknown key \"stage\" in a webhook subscription; did you mean \"stages\"?") }, "\(found)")
        #expect(found.contains { $0.hasPrefix("8:9: error: this subscription repeats the one at line 6") }, "\(found)")
        #expect(found.contains { $0.hasPrefix("4:5: error: project shop: a webhook on test.triggered performs the task, and tasks.test runs it") }, "\(found)")
        #expect(found.contains { $0.hasPrefix("11:7: error: secret name \"../up\"") }, "\(found)")
        #expect(found.contains { $0.hasPrefix("12:14: error: secrets.slack must be an absolute path") }, "\(found)")
        #expect(found.contains { $0.hasPrefix("17:12: error: webhooks.timeout is at most 5m") }, "\(found)")
        #expect(found.contains { $0.hasPrefix("18:11: error: \"localhost\" is not an address or range") }, "\(found)")
        #expect(found.contains { $0.hasPrefix("19:12: error: webhooks.retries") }, "\(found)")
    }

    @Test func emptyAndBrokenFiles() {
        #expect(lint("") == ["1:1: error: the config file is empty; it needs at least a 'projects:' list"])
        #expect(lint("projects: []\n") == ["1:11: error: projects is empty; add at least one project with a name and an upstream"])
        #expect(lint("projects: [\n").first?.hasPrefix("2:1: error: not valid YAML") == true)
        #expect(lint("stateDirectory: /x\n") == ["1:1: error: projects is missing; list the repositories to watch under 'projects:'"])
    }

    /// Over the local socket the proxy header is believed only from the proxy's user, named in
    /// trustedProxies; a header on a socket without one is an error, and root is no proxy.
    @Test func aProxyOnTheLocalSocketIsNamedByItsUser() throws {
        let socketWithoutProxy = lint("""
            projects:
              - {name: p, upstream: "https://host/p.git"}
            http:
              listen: /run/shipyardd/http.sock
              auth:
                proxyHeader: X-Forwarded-User
            """)
        #expect(socketWithoutProxy.contains { $0.contains("error: http.auth.proxyHeader on the local socket needs the proxy's user in trustedProxies (user:www-data or uid:33)") }, "\(socketWithoutProxy)")
        #expect(socketWithoutProxy.contains { $0.contains("warning: http.listen /run/shipyardd/http.sock: pages, API and metrics are served on the local API's socket") })
        let named = ConfigLoader.load("""
            projects:
              - {name: p, upstream: "https://host/p.git"}
            http:
              listen: 127.0.0.1:8420
              auth:
                proxyHeader: X-Forwarded-User
                trustedProxies: [127.0.0.1/32, "uid:33"]
            """, environment: [:])
        #expect(named.config?.http?.proxyUsers == ["uid:33"], "\(named.diagnostics)")
        let messages = lint("""
            projects:
              - {name: p, upstream: "https://host/p.git"}
            http:
              listen: 127.0.0.1:8420
              auth:
                proxyHeader: X-Forwarded-User
                trustedProxies: [127.0.0.1/32, "user:root", "uid:x"]
            """)
        #expect(messages.contains { $0.contains("error: trustedProxies: root is no proxy") })
        #expect(messages.contains { $0.contains("error: \"uid:x\" is not uid:NUMBER") })
        let htpasswd = ConfigLoader.load("""
            projects:
              - {name: p, upstream: "https://host/p.git"}
            http:
              listen: 127.0.0.1:8420
              auth:
                htpasswd: /etc/shipyardd/htpasswd
                trustedProxies: ["uid:33"]
            """, environment: [:])
        #expect(htpasswd.config?.http?.proxyUsers == ["uid:33"])
        // A web view on the socket without a named proxy would make every visitor the proxy's user.
        let unnamed = lint("""
            projects:
              - {name: p, upstream: "https://host/p.git"}
            http:
              listen: /run/shipyardd/http.sock
              auth:
                htpasswd: /etc/shipyardd/htpasswd
            """)
        #expect(unnamed.contains { $0.contains("error: http.listen /run/shipyardd/http.sock: on the local socket every caller is the user the kernel names") }, "\(unnamed)")
        #expect(lint("""
            projects:
              - {name: p, upstream: "https://host/p.git"}
            http:
              listen: 127.0.0.1:8420
              auth:
                proxyHeader: X-Forwarded-User
                trustedProxies: [127.0.0.1/32, "uid:00"]
            """).contains { $0.contains("error: trustedProxies: root is no proxy") })
    }
}
