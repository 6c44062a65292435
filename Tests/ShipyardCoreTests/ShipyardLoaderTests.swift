import Foundation
import Testing

@testable import ShipyardCore

/// Every mistake the linter knows, each at its exact line and column.
@Suite struct ShipyardLoaderTests {
    /// Diagnostics as `LINE:COLUMN: severity: message`, in file order.
    func lint(_ text: String) -> [String] {
        ShipyardLoader.load(text).diagnostics.map(\.description)
    }

    /// A valid shipyard around the given stages, which start at line 6.
    func shipyard(stages: String, version: String = "0.2.4") -> String {
        """
        apiVersion: spec.keptn.sh/\(version)
        kind: Shipyard
        metadata:
          name: test
        spec:
        \(stages)
        """
    }

    @Test func theTutorialShipyardsLintClean() throws {
        for name in ["shipyard.yaml", "shipyard-with-approval.yaml"] {
            let url = Fixtures.repository.appendingPathComponent("examples/demo/\(name)")
            let document = ShipyardLoader.load(try Array(Data(contentsOf: url)))
            #expect(document.diagnostics.isEmpty, "\(name): \(document.diagnostics)")
            let shipyard = try #require(document.shipyard)
            #expect(shipyard.stages.map(\.name) == ["qa", "production"])
            let production = try #require(shipyard.stage(named: "production")?.sequence(named: "delivery"))
            #expect(production.triggeredOn.map(\.event) == ["qa.delivery.finished"])
            #expect(production.tasks.last?.name == "je-deployment")
        }
    }

    @Test func theModelCarriesEverythingTheEngineNeeds() throws {
        let document = ShipyardLoader.load(shipyard(stages: """
              stages:
                - name: production
                  sequences:
                    - name: delivery
                      tasks:
                        - name: approval
                          properties: {pass: automatic, warning: manual}
                        - name: deployment
                    - name: remediation
                      triggeredOn:
                        - event: production.remediation.finished
                          selector:
                            match:
                              evaluation.result: fail
                      tasks:
                        - name: action
                        - name: evaluation
                          triggeredAfter: 1h30m
            """))
        // The remediation loop is legal; lint names its bound and nothing else.
        #expect(document.diagnostics.map(\.severity) == [.warning])
        #expect(document.diagnostics.first?.message.hasPrefix("production.remediation → production.remediation is a loop") == true)
        let shipyard = try #require(document.shipyard)
        #expect(shipyard.specPatch == 4)
        #expect(shipyard.name == "test")
        let remediation = try #require(shipyard.stage(named: "production")?.sequence(named: "remediation"))
        #expect(remediation.triggeredOn.first?.match == [Shipyard.Match(task: "evaluation", result: .fail)])
        #expect(remediation.tasks.last?.triggeredAfter == .seconds(5400))
        let approval = try #require(shipyard.stages.first?.sequences.first?.tasks.first)
        #expect(approval.properties?["pass"]?.string == "automatic")
    }

    @Test func notYAML() {
        #expect(lint("apiVersion: [unclosed\nkind: Shipyard\n").first
            == "2:5: error: not valid YAML: did not find expected ',' or ']' (while parsing a flow sequence at line 1, column 13)")
    }

    @Test func emptyFile() {
        #expect(lint("") == [
            "1:1: error: the file is empty; a shipyard starts with 'apiVersion: spec.keptn.sh/0.2.4' and 'kind: Shipyard'"
        ])
        #expect(lint("# nothing yet\n").count == 1)
    }

    @Test func notAMapping() {
        #expect(lint("- a\n- b\n") == [
            "1:1: error: a shipyard is a mapping with apiVersion, kind, metadata and spec, not a list"
        ])
    }

    @Test func missingAPIVersion() {
        let text = """
            kind: Shipyard
            spec:
              stages:
                - name: qa
            """
        #expect(lint(text) == ["1:1: error: apiVersion is missing; add 'apiVersion: spec.keptn.sh/0.2.4'"])
    }

    @Test(arguments: ["spec.keptn.sh/0.1.7", "spec.keptn.sh/0.2.5", "spec.keptn.sh/0.3.0", "keptn/0.2.0", "0.2"])
    func unsupportedAPIVersion(version: String) {
        let text = "apiVersion: \"\(version)\"\nkind: Shipyard\nspec:\n  stages:\n    - name: qa\n"
        #expect(lint(text) == [
            "1:13: error: unsupported apiVersion \"\(version)\"; Shipyard reads spec.keptn.sh/0.2.0 to spec.keptn.sh/0.2.4"
        ])
    }

    @Test func apiVersionWithoutItsPrefix() {
        let text = "apiVersion: 0.2.2\nkind: Shipyard\nspec:\n  stages:\n    - name: qa\n"
        #expect(lint(text) == ["1:13: error: apiVersion must be written 'spec.keptn.sh/0.2.2'"])
    }

    @Test func keptn07FormatIsNamed() {
        let text = """
            registry: simplenodeservice
            stages:
              - name: "dev"
                deployment_strategy: "direct"
            """
        let found = lint(text)
        #expect(found.count == 1)
        #expect(found.first?.hasPrefix("1:1: error: this is a Keptn 0.7 shipyard") == true)
    }

    @Test func wrongKind() {
        let text = "apiVersion: spec.keptn.sh/0.2.0\nkind: Project\nspec:\n  stages:\n    - name: qa\n"
        #expect(lint(text) == ["2:7: error: kind must be \"Shipyard\", not \"Project\""])
        let missing = "apiVersion: spec.keptn.sh/0.2.0\nspec:\n  stages:\n    - name: qa\n"
        #expect(lint(missing) == ["1:1: error: kind is missing; add 'kind: Shipyard'"])
    }

    @Test func noStages() {
        #expect(lint(shipyard(stages: "  stages: []")) == [
            "6:11: error: spec.stages is empty; a shipyard needs at least one stage"
        ])
        #expect(lint(shipyard(stages: "  stages:")) == [
            "6:3: error: spec has no stages; a shipyard needs at least one stage"
        ])
        let noSpec = "apiVersion: spec.keptn.sh/0.2.0\nkind: Shipyard\n"
        #expect(lint(noSpec) == ["1:1: error: spec is missing; a shipyard lists its stages under spec.stages"])
    }

    @Test func unnamedStage() {
        let text = shipyard(stages: """
              stages:
                - sequences: []
            """)
        #expect(lint(text) == ["7:7: error: this stage has no name; add 'name: ...'"])
    }

    @Test func namesThatBreakKeptnsRule() {
        let text = shipyard(stages: """
              stages:
                - name: Production
                - name: dev-
                - name: pre.prod
                - name: "1st"
                - name: qa
                  sequences:
                    - name: Delivery
                      tasks:
                        - name: deploy.app
            """)
        #expect(lint(text) == [
            "7:13: error: stage name \"Production\" is invalid: use lowercase letters, digits and '-', starting with a letter and not ending with '-'",
            "8:13: warning: stage name \"dev-\" breaks Keptn's naming rule (lowercase letters, digits and '-', starting with a letter and not ending with '-'); Keptn only accepts it through a loophole in its check",
            "9:13: error: stage name \"pre.prod\" contains '.', which breaks Keptn's event types (sh.keptn.event.<stage>.<sequence>.triggered); use lowercase letters, digits and '-', starting with a letter and not ending with '-'",
            "10:13: error: stage name \"1st\" is invalid: use lowercase letters, digits and '-', starting with a letter and not ending with '-'",
            "13:17: warning: sequence name \"Delivery\" breaks Keptn's naming rule (lowercase letters, digits and '-', starting with a letter and not ending with '-')",
            "15:21: error: task name \"deploy.app\" contains '.', which breaks Keptn's event types (sh.keptn.event.<stage>.<sequence>.triggered); use lowercase letters, digits and '-', starting with a letter and not ending with '-'",
        ])
    }

    @Test func duplicateNames() {
        let text = shipyard(stages: """
              stages:
                - name: qa
                  sequences:
                    - name: delivery
                      tasks: [{name: deploy}]
                    - name: delivery
                      tasks: [{name: test}]
                - name: qa
            """)
        #expect(lint(text) == [
            "11:17: error: duplicate sequence name \"delivery\" in stage \"qa\" (first defined at line 9)",
            "13:13: error: duplicate stage name \"qa\" (first defined at line 7); stage names must be unique",
        ])
    }

    @Test func sequenceWithoutTasks() {
        let text = shipyard(stages: """
              stages:
                - name: qa
                  sequences:
                    - name: a
                      tasks: []
                    - name: b
                    - name: c
                      tasks:
            """)
        #expect(lint(text) == [
            "10:18: error: sequence \"a\" has no tasks; Keptn would end it at once ('task sequence does not contain any tasks'): add at least one task",
            "11:11: error: sequence \"b\" has no tasks; Keptn would end it at once ('task sequence does not contain any tasks'): add at least one task",
            "13:17: error: sequence \"c\" has no tasks; Keptn would end it at once ('task sequence does not contain any tasks'): add at least one task",
        ])
    }

    @Test func unknownKeysAnywhere() {
        let text = """
            apiVersion: spec.keptn.sh/0.2.4
            kind: Shipyard
            metdata: {name: x}
            spec:
              stages:
                - name: qa
                  sequences:
                    - name: delivery
                      tasks: [{name: deploy}]
                - name: production
                  sequence: []
                  sequences:
                    - name: delivery
                      triggerdOn:
                        - event: qa.delivery.finished
                      tasks:
                        - name: deploy
                          propertys: {x: 1}
                          triggeredafter: 5m
                    - name: rollback
                      triggeredOn:
                        - event: production.delivery.finished
                          selectr: {match: {result: fail}}
                          selector:
                            matches: {result: fail}
                      tasks: [{name: rollback}]
              labels: {}
            """
        #expect(lint(text) == [
            "3:1: error: unknown key \"metdata\" in the shipyard; did you mean \"metadata\"?",
            "11:7: error: unknown key \"sequence\" in a stage; did you mean \"sequences\"?",
            "14:11: error: unknown key \"triggerdOn\" in a sequence; did you mean \"triggeredOn\"?",
            "18:15: error: unknown key \"propertys\" in a task; did you mean \"properties\"?",
            "19:15: error: unknown key \"triggeredafter\" in a task; did you mean \"triggeredAfter\"?",
            "23:15: error: unknown key \"selectr\" in a triggeredOn entry; did you mean \"selector\"?",
            "25:17: error: unknown key \"matches\" in a selector; did you mean \"match\"?",
            "27:3: error: unknown key \"labels\" in spec (it takes stages)",
        ])
    }

    @Test func wrongNodeTypes() {
        let text = shipyard(stages: """
              stages:
                - name: qa
                  sequences:
                    name: delivery
                - name: production
                  sequences:
                    - name: delivery
                      triggeredOn: qa.delivery.finished
                      tasks:
                        - deploy
                        - name: [a]
                          properties: [x]
                - staging
            """)
        #expect(lint(text) == [
            "9:9: error: sequences must be a list, not a mapping; start each entry with '- '",
            "13:24: error: triggeredOn must be a list, not the string \"qa.delivery.finished\"",
            "15:15: error: a task must be a mapping (key: value pairs), not the string \"deploy\"",
            "16:21: error: a task name must be a string, not a list",
            "17:27: error: properties must be a mapping (key: value pairs), not a list",
            "18:7: error: a stage must be a mapping (key: value pairs), not the string \"staging\"",
        ])
    }

    @Test func numbersWhereNamesBelongSayToQuote() {
        let text = shipyard(stages: "  stages:\n    - name: 2024\n")
        #expect(lint(text) == ["7:13: error: a stage name must be a string, not the number 2024; quote it: \"2024\""])
    }

}
