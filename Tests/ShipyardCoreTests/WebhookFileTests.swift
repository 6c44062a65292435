import Foundation
import Testing

@testable import ShipyardCore

struct WebhookFileTests {
    /// Keptn 1.0.x docs, integrations/webhooks/_index.md, verbatim (trailing blank after envFrom: included).
    static let slackV1beta1 = """
        apiVersion: webhookconfig.keptn.sh/v1beta1
        kind: WebhookConfig
        metadata:
          name: webhook-configuration
        spec:
          webhooks:
            - type: sh.keptn.event.evaluation.finished
              subscriptionID: 0123456987
              sendStarted: true
              sendFinished: true
              envFrom: 
                - name: "secretKey"
                  secretRef:
                    name: "my-webhook-secret"
                    key: "my-key"
              requests:
                - url: https://hooks.slack.com/services/{{.env.secretKey}}
                  method: POST
                  headers: []
                  payload: >-
                    {"text": "Evaluation {{.data.evaluation.result}} with a score of {{.data.evaluation.score}} "}
        """

    /// Keptn 0.10.x docs, the v1alpha1 curl form, verbatim.
    static let slackV1alpha1 = #"""
        apiVersion: webhookconfig.keptn.sh/v1alpha1
        kind: WebhookConfig
        metadata:
          name: webhook-configuration
        spec:
          webhooks:
            - type: sh.keptn.event.evaluation.finished
              subscriptionID: 0123456987
              envFrom: 
                - name: "secretKey"
                  secretRef:
                    name: "my-webhook-secret"
                    key: "my-key"
              requests:
                - "curl --request POST --data '{\"text\":\"Evaluation {{.data.evaluation.result}} with a score of {{.data.evaluation.score}} \"}'
                  https://hooks.slack.com/services/{{.env.secretKey}}"
        """#

    /// Keptn 1.0.x docs, Jenkins: the Bridge's `.secret.NAME.KEY` and no subscriptionID.
    static let jenkins = """
        apiVersion: webhookconfig.keptn.sh/v1alpha1
        kind: WebhookConfig
        metadata:
          name: webhook-configuration
        spec:
          webhooks:
            - type: sh.keptn.event.test.triggered
              requests:
                - curl --request GET
                  http://jenkins.127.0.0.1.nip.io/job/my-pipeline/buildWithParameters?token={{.secret.jenkins-secret.my-pipeline-secret}}&shkeptncontext={{.shkeptncontext}}&triggeredid={{.id}}&stage={{.data.stage}} --fail-with-body
              sendFinished: false
        """

    /// Keptn's artifacthub GitHub Actions example.
    static let github = """
        apiVersion: webhookconfig.keptn.sh/v1beta1
        kind: WebhookConfig
        metadata:
          name: webhook-configuration
        spec:
          webhooks:
            - type: "sh.keptn.event.deployment.triggered"
              subscriptionID: github-deploy
              sendFinished: false
              requests:
                - url: "https://api.github.com/repos/ORG/REPO/dispatches"
                  method: "POST"
                  headers:
                    - key: "Accept"
                      value: "application/vnd.github.everest-preview+json"
                    - key: "Authorization"
                      value: "token {{.secret.github-secret.GITHUBTOKEN}}"
                  payload: '{"event_type":"active","client_payload":{"type":"{{.type}}","project":"{{.data.project}}","service":"{{.data.service}}","stage":"{{.data.stage}}","shkeptncontext":"{{.shkeptncontext}}","id":"{{.id}}"}}'
        """

    let event: JSONValue = .object([
        "id": .string("t-1"), "type": .string("sh.keptn.event.evaluation.finished"), "shkeptncontext": .string("ctx-1"),
        "data": .object([
            "project": .string("sockshop"), "stage": .string("qa"), "service": .string("carts"),
            "evaluation": .object(["result": .string("pass"), "score": .number(100)]),
        ]),
    ])

    @Test func keptnsV1beta1ExampleIsReadAsWritten() throws {
        let loaded = WebhookFile.load(Self.slackV1beta1)
        // Keptn's own example asks for a .finished from a notification; said, not refused.
        #expect(loaded.diagnostics.map(\.severity) == [.warning], "\(loaded.diagnostics)")
        #expect(loaded.diagnostics.first?.message.contains("sendFinished applies to a webhook for a .triggered event") == true)
        let file = try #require(loaded.file)
        let webhook = try #require(file.webhook(subscriptionID: "0123456987", type: "anything"))
        #expect(webhook.type == "sh.keptn.event.evaluation.finished")
        #expect(webhook.sendStarted && webhook.sendFinished)
        #expect(webhook.secrets == [.init(env: "secretKey", secret: "my-webhook-secret", key: "my-key")])
        let request = try #require(webhook.requests.first)
        #expect(request.method == "POST")
        var data = event
        data["env"] = .object(["secretKey": .string("T000/B000/XXX")])
        #expect(try request.url.render(data) == "https://hooks.slack.com/services/T000/B000/XXX")
        #expect(try request.payload?.render(data) == #"{"text": "Evaluation pass with a score of 100 "}"#)
    }

    @Test func keptnsV1alpha1CurlExampleIsParsedNotRun() throws {
        let loaded = WebhookFile.load(Self.slackV1alpha1)
        #expect(loaded.diagnostics.isEmpty, "\(loaded.diagnostics)")
        let webhook = try #require(loaded.file?.webhooks.first)
        #expect(webhook.sendStarted && !webhook.sendFinished)  // Keptn's defaults
        let request = try #require(webhook.requests.first)
        #expect(request.method == "POST")
        var data = event
        data["env"] = .object(["secretKey": .string("K")])
        #expect(try request.url.render(data) == "https://hooks.slack.com/services/K")
        // YAML's double quotes took the backslashes; the single quotes keep the body whole.
        #expect(try request.payload?.render(data) == #"{"text":"Evaluation pass with a score of 100 "}"#)
    }

    @Test func theBridgesSecretSyntaxAndATypeOnlyWebhookAreAccepted() throws {
        let jenkins = WebhookFile.load(Self.jenkins)
        #expect(!jenkins.diagnostics.contains { $0.severity == .error }, "\(jenkins.diagnostics)")
        #expect(jenkins.diagnostics.contains { $0.message.contains("no subscriptionID") })
        let webhook = try #require(jenkins.file?.webhook(subscriptionID: nil, type: "sh.keptn.event.test.triggered"))
        #expect(webhook.secrets == [.init(env: "secret_jenkinssecretmypipelinesecret", secret: "jenkins-secret", key: "my-pipeline-secret")])
        let request = try #require(webhook.requests.first)
        #expect(request.method == "GET")
        var data = event
        data["env"] = .object(["secret_jenkinssecretmypipelinesecret": .string("tok")])
        #expect(
            try request.url.render(data)
                == "http://jenkins.127.0.0.1.nip.io/job/my-pipeline/buildWithParameters?token=tok&shkeptncontext=ctx-1&triggeredid=t-1&stage=qa")

        let github = WebhookFile.load(Self.github)
        #expect(github.diagnostics.isEmpty, "\(github.diagnostics)")
        let header = try #require(github.file?.webhooks.first?.requests.first?.headers.last)
        data["env"] = .object(["secret_githubsecretGITHUBTOKEN": .string("ghp")])
        #expect(try header.value.render(data) == "token ghp")
    }

    @Test(arguments: [
        ("apiVersion: webhookconfig.keptn.sh/v2\nspec:\n  webhooks: []", "1:13", "apiVersion must be"),
        ("apiVersion: webhookconfig.keptn.sh/v1beta1\nspec:\n  webhooks: []", "3:13", "spec.webhooks is empty"),
        ("apiVersion: webhookconfig.keptn.sh/v1beta1\nspec:\n  webhook: []", "3:3", "did you mean \"webhooks\""),
        ("apiVersion: webhookconfig.keptn.sh/v1beta1\nspec:\n  webhooks:\n  - type: sh.keptn.event.test.triggered\n    subscriptionID: a\n    requests:\n    - url: http://x/\n      method: post",
         "8:15", "write it in capitals: POST"),
        ("apiVersion: webhookconfig.keptn.sh/v1beta1\nspec:\n  webhooks:\n  - type: sh.keptn.event.test.triggered\n    subscriptionID: a\n    requests:\n    - curl http://x/",
         "7:7", "curl command lines belong to"),
        ("apiVersion: webhookconfig.keptn.sh/v1beta1\nspec:\n  webhooks:\n  - type: sh.keptn.event.test.triggered\n    subscriptionID: a\n    requests:\n    - url: http://x/{{.env.token}}\n      method: GET",
         "7:7", "{{.env.token}} names no envFrom entry"),
        ("apiVersion: webhookconfig.keptn.sh/v1beta1\nspec:\n  webhooks:\n  - type: sh.keptn.event.test.triggered\n    subscriptionID: a\n    requests:\n    - url: http://x/{{.data.project\n      method: GET",
         "7:12", "url: the action at character 10 has no closing }}"),
        ("apiVersion: webhookconfig.keptn.sh/v1beta1\nspec:\n  webhooks:\n  - type: deployment\n    subscriptionID: a\n    requests:\n    - url: http://x/\n      method: GET",
         "4:11", "type must be a task event"),
        ("apiVersion: webhookconfig.keptn.sh/v1alpha1\nspec:\n  webhooks:\n  - type: sh.keptn.event.test.triggered\n    subscriptionID: a\n    requests:\n    - curl -o /etc/passwd http://x/",
         "7:7", "-o writes a file"),
        ("apiVersion: webhookconfig.keptn.sh/v1alpha1\nspec:\n  webhooks:\n  - type: sh.keptn.event.test.triggered\n    subscriptionID: a\n    requests:\n    - curl --data @/etc/shadow http://x/",
         "7:7", "reads a file of this host"),
        ("apiVersion: webhookconfig.keptn.sh/v1alpha1\nspec:\n  webhooks:\n  - type: sh.keptn.event.test.triggered\n    subscriptionID: a\n    requests:\n    - curl -k https://x/",
         "7:7", "always checks them"),
        ("apiVersion: webhookconfig.keptn.sh/v1alpha1\nspec:\n  webhooks:\n  - type: sh.keptn.event.test.triggered\n    subscriptionID: a\n    requests:\n    - \"curl --request POST 'http://x/\"",
         "7:7", "never closed"),
    ])
    func mistakesAreReportedWhereTheyAre(yaml: String, mark: String, message: String) {
        let loaded = WebhookFile.load(yaml)
        #expect(loaded.file == nil)
        #expect(loaded.diagnostics.contains { $0.severity == .error && "\($0.mark)" == mark && $0.message.contains(message) }, "\(loaded.diagnostics)")
    }

    @Test func theBridgesSecretsAreReadOnlyWhereAFieldChainStarts() throws {
        let yaml = """
            apiVersion: webhookconfig.keptn.sh/v1beta1
            spec:
              webhooks:
                - type: sh.keptn.event.test.triggered
                  subscriptionID: a
                  requests:
                    - url: "https://x.secret.example/{{.data.secret.token}}/{{ .secret.ci.token }}"
                      method: GET

            """
        let loaded = WebhookFile.load(yaml)
        let webhook = try #require(loaded.file?.webhooks.first, "\(loaded.diagnostics)")
        #expect(webhook.secrets == [.init(env: "secret_citoken", secret: "ci", key: "token")])
        let data: JSONValue = .object(["data": .object(["secret": .object(["token": .string("T")])]), "env": .object(["secret_citoken": .string("S")])])
        #expect(try webhook.requests[0].url.render(data) == "https://x.secret.example/T/S")
        let colliding = WebhookFile.load(yaml.replacingOccurrences(of: "{{.data.secret.token}}", with: "{{.secret.c.itoken}}"))
        #expect(colliding.file == nil)
        #expect(colliding.diagnostics.contains { $0.message.contains("both become {{.env.secret_citoken}}") }, "\(colliding.diagnostics)")
    }

    @Test func curlCommandLinesReadAsCurlWouldReadThem() throws {
        let command = try CurlCommand.parse(
            #"curl -XPUT -H 'Content-Type: application/json' -H "X-Id:{{ .id }}" -d a=1 --data-raw b=2 -sSL --max-time 5 --url https://ci.example/{{ .data.project }}/x"#,
            optionsOnly: false)
        #expect(command.method == "PUT")
        #expect(command.headers.map { "\($0.0)=\($0.1)" } == ["Content-Type=application/json", "X-Id={{ .id }}"])
        #expect(command.data == "a=1&b=2")
        #expect(command.url == "https://ci.example/{{ .data.project }}/x")
        #expect(command.followRedirects && command.maxTime == 5)
        #expect(try CurlCommand.parse("curl http://x/ -d x", optionsOnly: false).method == "POST")
        #expect(try CurlCommand.parse("curl http://x/", optionsOnly: false).method == "GET")
        #expect(try CurlCommand.split(#"a\ b 'c d'e "" f"#) == ["a b", "c de", "", "f"])
        #expect(throws: CurlCommand.Failure.self) { try CurlCommand.parse("wget http://x/", optionsOnly: false) }
        #expect(throws: CurlCommand.Failure.self) { try CurlCommand.parse("curl http://x/ http://y/", optionsOnly: false) }
        #expect(throws: CurlCommand.Failure.self) { try CurlCommand.parse("curl --proxy http://p http://x/", optionsOnly: false) }
        #expect(throws: CurlCommand.Failure.self) { try CurlCommand.parse("curl --frobnicate http://x/", optionsOnly: false) }
        #expect(throws: CurlCommand.Failure.self) { try CurlCommand.parse("-H 'a: b'", optionsOnly: true) }
        #expect(try CurlCommand.parse("--location -m 3", optionsOnly: true).followRedirects)
        for huge in ["inf", "1e16", "0", "-1", "nan"] {
            #expect(throws: CurlCommand.Failure.self, "\(huge)") { try CurlCommand.parse("--max-time \(huge)", optionsOnly: true) }
        }
    }
}
