import Foundation
import Testing

@testable import ShipyardCore

struct WebhookTemplateTests {
    let event: JSONValue = .object([
        "id": .string("e1"), "type": .string("sh.keptn.event.approval.triggered"), "shkeptncontext": .string("ctx"),
        "data": .object([
            "project": .string("sockshop"), "stage": .string("production"), "service": .string("carts"),
            "labels": .object(["buildId": .string("build 7&8")]),
            "evaluation": .object(["score": .number(87.5), "result": .string("pass"), "count": .number(1_000_000)]),
            "message": .string(#"say "hi" <now>"#), "empty": .null, "list": .array([.string("a"), .string("b")]),
        ]),
        "env": .object(["token": .string("s3cr3t")]),
    ])

    func render(_ text: String) throws -> String { try WebhookTemplate(text).render(event) }

    @Test func fieldsPrintAsKeptnPrintsThem() throws {
        #expect(try render("{{.data.project}}/{{ .data.stage }}/{{.data.service}}") == "sockshop/production/carts")
        #expect(try render("Evaluation {{.data.evaluation.result}} with a score of {{.data.evaluation.score}} ") == "Evaluation pass with a score of 87.5 ")
        #expect(try render("https://hooks.slack.com/services/{{.env.token}}") == "https://hooks.slack.com/services/s3cr3t")
        #expect(try render("{{.data.empty}}") == "<no value>")
        // Where Go would corrupt a request: a million is not 1e+06, a list is JSON.
        #expect(try render("{{.data.evaluation.count}} {{.data.list}}") == #"1000000 ["a","b"]"#)
        #expect(try render("no actions at all") == "no actions at all")
        #expect(try WebhookTemplate("plain").isLiteral)
        #expect(try !WebhookTemplate("{{.id}}").isLiteral)
    }

    @Test func aMissingKeyPrintsNoValueAndAFieldOfItFails() throws {
        // Go's default (Keptn's engine sets no missingkey option).
        #expect(try render("x {{.data.labels.gitCommit}}") == "x <no value>")
        #expect(try render("{{if .data.nothere}}yes{{else}}no{{end}}") == "no")
        do throws(WebhookTemplate.Failure) {
            _ = try WebhookTemplate("{{.data.nothere.x}}").render(event)
            Issue.record("rendered")
        } catch {
            #expect(error.message.contains("nil pointer evaluating .data.nothere.x"), "\(error.message)")
        }
        #expect(throws: WebhookTemplate.Failure.self) { try render("{{.data.project.name}}") }
        #expect(throws: WebhookTemplate.Failure.self) { try render("{{.data.empty.x}}") }
        // and/or stop at the argument that decides, as Go's do since 1.18.
        #expect(try render("{{if and .data.empty .data.empty.x}}yes{{else}}no{{end}}") == "no")
        #expect(try render("{{or .data.stage .data.empty.x}}") == "production")
        #expect(throws: WebhookTemplate.Failure.self) { try render("{{index .data.list 1e19}}") }
    }

    @Test func functionsPipesAndConditions() throws {
        #expect(try render("{{.data.labels.buildId | urlquery}}") == "build+7%268")
        #expect(try render("{{urlquery .data.labels.buildId}}") == "build+7%268")
        #expect(try render("{{js .data.message}}") == #"say \"hi\" \u003Cnow\u003E"#)
        #expect(try render("{{html .data.message}}") == "say &#34;hi&#34; &lt;now&gt;")
        #expect(try render(#"{"text": {{json .data.message}}}"#) == #"{"text": "say \"hi\" <now>"}"#)
        #expect(try render(#"{{index .data.labels "buildId"}}|{{index .data.list 1}}|{{len .data.list}}"#) == "build 7&8|b|2")
        #expect(try render(#"{{if eq .data.evaluation.result "pass"}}ok{{else}}bad{{end}}"#) == "ok")
        #expect(try render(#"{{if eq .data.stage "qa"}}qa{{else if eq .data.stage "production"}}prod{{else}}other{{end}}"#) == "prod")
        #expect(try render("{{if .data.empty}}set{{end}}-{{if not .data.empty}}unset{{end}}") == "-unset")
        #expect(try render("{{print .data.stage (len .data.list)}}") == "production2")
        #expect(try render("a  {{- .data.stage -}}  b {{/* a comment */}}c") == "aproductionb c")
        #expect(try render("{{and .data.project .data.stage}} {{or .data.empty .data.service}}") == "production carts")
    }

    @Test(arguments: [
        ("{{.data.project", "no closing }}"),
        ("{{range .data.list}}x{{end}}", "{{range}}"),
        ("{{$x := 1}}", "variables"),
        ("{{printf \"%s\" .id}}", "\"printf\""),
        ("{{if .id}}x", "no {{end}}"),
        ("x{{end}}", "without an {{if}}"),
        ("{{.data | .id}}", "not a function"),
        ("{{}}", "empty"),
        ("{{.data.}}", "missing after a dot"),
    ])
    func whatItDoesNotReadIsRefusedWhenRead(text: String, message: String) {
        do throws(WebhookTemplate.Failure) {
            _ = try WebhookTemplate(text)
            Issue.record("\(text) parsed")
        } catch {
            #expect(error.message.contains(message), "\(text): \(error.message)")
        }
    }

    @Test func fieldChainsListWhatItReads() throws {
        let template = try WebhookTemplate(#"{{.env.a}} {{if .data.x}}{{urlquery (index .data "y")}}{{end}}"#)
        #expect(template.fieldChains == [["env", "a"], ["data", "x"], ["data"]])
    }
}
