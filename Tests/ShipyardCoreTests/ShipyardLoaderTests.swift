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

    @Test func triggeredOnMustNameARealSequence() {
        let text = shipyard(stages: """
              stages:
                - name: qa
                  sequences:
                    - name: delivery
                      tasks: [{name: deploy}]
                - name: production
                  sequences:
                    - name: a
                      triggeredOn:
                        - event: qa.delivery
                        - event: staging.delivery.finished
                        - event: qa.deliver.finished
                        - event: sh.keptn.event.qa.delivery.finished
                        - event: qa.delivery.triggered
                        - selector: {}
                      tasks: [{name: deploy}]
            """)
        #expect(lint(text) == [
            "15:22: error: triggeredOn event \"qa.delivery\" must be '<stage>.<sequence>.finished', e.g. \"qa.delivery.finished\"",
            "16:22: error: triggeredOn names stage \"staging\", which does not exist (stages: qa, production)",
            "17:22: error: triggeredOn names sequence \"deliver\" in stage \"qa\", which has only delivery",
            "18:22: error: write the triggeredOn event in its short form \"qa.delivery.finished\"; Keptn compares it with '<stage>.<sequence>.finished' and never matches \"sh.keptn.event.qa.delivery.finished\"",
            "19:22: error: triggeredOn event \"qa.delivery.triggered\" must be '<stage>.<sequence>.finished', e.g. \"qa.delivery.finished\"",
            "20:15: error: this triggeredOn entry has no event; write 'event: <stage>.<sequence>.finished'",
        ])
    }

    @Test func selectorValues() {
        let text = shipyard(stages: """
              stages:
                - name: qa
                  sequences:
                    - name: delivery
                      tasks: [{name: deploy}, {name: evaluation}]
                    - name: a
                      triggeredOn:
                        - event: qa.delivery.finished
                          selector:
                            match:
                              result: failed
                      tasks: [{name: x}]
                    - name: b
                      triggeredOn:
                        - event: qa.delivery.finished
                          selector:
                            match:
                              result: true
                              evaluation.result: passed
                              outcome: fail
                      tasks: [{name: x}]
                    - name: c
                      triggeredOn:
                        - event: qa.delivery.finished
                          selector:
                            match:
                              test.result: fail
                      tasks: [{name: x}]
                    - name: d
                      triggeredOn:
                        - event: qa.delivery.finished
                          selector:
                            match:
                              deploy.result: fail
                      tasks: [{name: x}]
                    - name: e
                      triggeredOn:
                        - event: qa.delivery.finished
                          selector:
                            match: fail
                      tasks: [{name: x}]
            """)
        #expect(lint(text) == [
            "16:27: warning: Keptn compares results with \"fail\", so \"failed\" never matches there; Shipyard reads it as \"fail\": write \"fail\"",
            "23:27: error: result must be a string (pass, warning or fail), not the boolean true",
            "24:38: error: evaluation.result must be pass, warning or fail, not \"passed\"",
            "25:19: error: selector.match takes 'result' or '<task>.result' (e.g. 'evaluation.result'), not \"outcome\"",
            "29:22: error: the selector names task \"test\", which sequence qa.delivery does not run (it runs deploy, evaluation)",
            "45:24: error: selector.match must be a mapping like 'result: fail', not the string \"fail\"",
        ])
    }

    @Test func triggeredAfterMustBeADuration() {
        let text = shipyard(stages: """
              stages:
                - name: qa
                  sequences:
                    - name: delivery
                      tasks:
                        - name: a
                          triggeredAfter: 10
                        - name: b
                          triggeredAfter: "1d"
                        - name: c
                          triggeredAfter: "-5m"
                        - name: d
                          triggeredAfter: "soon"
                        - name: e
                          triggeredAfter: "1h30m"
            """)
        #expect(lint(text) == [
            "12:31: error: triggeredAfter must be a duration like \"90s\", \"15m\" or \"1h30m\", not the number 10; write it with a unit, e.g. \"10s\"",
            "14:31: error: triggeredAfter: unknown unit \"d\"; use ns, us, ms, s, m or h",
            "16:31: error: triggeredAfter must not be negative",
            "18:31: error: triggeredAfter: \"soon\" is not a duration like \"90s\", \"15m\" or \"1h30m\"",
        ])
    }

    @Test func triggeredAfterBeforeSpec022IsAWarning() {
        let text = shipyard(stages: """
              stages:
                - name: qa
                  sequences:
                    - name: delivery
                      tasks:
                        - name: a
                          triggeredAfter: 10s
            """, version: "0.2.1")
        #expect(lint(text) == [
            "12:15: warning: triggeredAfter arrived in spec 0.2.2 and this file declares 0.2.1; Keptn accepts it anyway, but say 'apiVersion: spec.keptn.sh/0.2.2' or later"
        ])
    }

    @Test func approvalProperties() {
        let text = shipyard(stages: """
              stages:
                - name: production
                  sequences:
                    - name: a
                      tasks:
                        - name: approval
                          properties:
                            pass: auto
                            warning: yes
                            fail: manual
                    - name: b
                      tasks:
                        - name: approval
                          properties:
                            pass: manual
                    - name: c
                      tasks:
                        - name: approval
            """)
        #expect(lint(text) == [
            "13:23: error: approval.pass must be \"automatic\" or \"manual\", not \"auto\"",
            "14:26: error: approval.warning must be \"automatic\" or \"manual\", not \"yes\"",
            "15:17: error: unknown key \"fail\" in approval properties (it takes pass, warning)",
            "20:17: warning: approval has no 'warning' strategy, so a warning result waits for a person (Keptn's approval service treats a missing strategy as manual); write 'warning: manual' to say so",
            "23:21: warning: approval has no properties, so every result waits for a person (Keptn's approval service treats a missing strategy as manual); say so with 'properties: {pass: manual, warning: manual}'",
        ])
    }

    @Test func legalLoopsAreAccepted() throws {
        let text = shipyard(stages: """
              stages:
                - name: production
                  sequences:
                    - name: remediation
                      triggeredOn:
                        - event: production.remediation.finished
                          selector:
                            match:
                              evaluation.result: fail
                      tasks:
                        - name: action
                        - name: evaluation
                          triggeredAfter: 15m
            """)
        #expect(lint(text).count == 1)
        #expect(lint(text).first?.hasPrefix("11:22: warning: production.remediation → production.remediation is a loop") == true)
        #expect(ShipyardLoader.load(text).shipyard != nil)
    }

    @Test func anUnconditionalSelfLoopIsAWarning() {
        let text = shipyard(stages: """
              stages:
                - name: production
                  sequences:
                    - name: heal
                      triggeredOn:
                        - event: production.heal.finished
                      tasks: [{name: action}]
            """)
        #expect(lint(text) == [
            "11:22: warning: sequence \"heal\" triggers itself on every pass or warning, an endless loop; add a selector such as 'match: {result: fail}'"
        ])
    }

    /// Keptn compares `<task>.result` with the last task that ran: a task before the last is that
    /// only when it fails, so `fail` matches and `pass` never does.
    @Test func aTaskResultSelectorOnAnEarlierTaskMatchesOnlyItsFailure() {
        let text = shipyard(stages: """
              stages:
                - name: qa
                  sequences:
                    - name: delivery
                      tasks: [{name: bad}, {name: deploy}, {name: evaluation}]
                - name: production
                  sequences:
                    - name: cleanup
                      triggeredOn:
                        - event: qa.delivery.finished
                          selector:
                            match:
                              bad.result: fail
                      tasks: [{name: x}]
                    - name: never
                      triggeredOn:
                        - event: qa.delivery.finished
                          selector:
                            match:
                              bad.result: pass
                      tasks: [{name: x}]
            """)
        #expect(lint(text) == [
            "22:22: warning: \"bad.result: pass\" never matches: Keptn compares '<task>.result' with the last task that ran, and bad is that only when it fails (after a pass qa.delivery goes on to deploy)"
        ])
    }

    @Test func loopsWithASelectorAreNamedWithTheirBound() {
        let text = shipyard(stages: """
              stages:
                - name: production
                  sequences:
                    - name: remediation
                      triggeredOn:
                        - event: production.remediation.finished
                          selector:
                            match:
                              evaluation.result: fail
                      tasks: [{name: bad}, {name: je-deployment}, {name: evaluation}]
                    - name: a
                      triggeredOn:
                        - event: production.b.finished
                          selector: {match: {result: fail}}
                      tasks: [{name: x}]
                    - name: b
                      triggeredOn:
                        - event: production.a.finished
                      tasks: [{name: x}]
            """)
        let bound = "a loop: it repeats in one delivery for as long as the selector matches (a remediation that never heals); Shipyard ends it after maxSequencesPerContext sequences of one context (50 unless the daemon's config says otherwise)"
        #expect(lint(text) == [
            "11:22: warning: production.remediation → production.remediation is \(bound)",
            "18:22: warning: production.b → production.a → production.b is \(bound)",
            "23:22: warning: production.a → production.b → production.a is \(bound)",
        ])
    }

    @Test func errorsMeanNoShipyardButWarningsDoNot() {
        let withWarning = shipyard(stages: "  stages:\n    - name: dev-\n")
        #expect(ShipyardLoader.load(withWarning).shipyard != nil)
        let withError = shipyard(stages: "  stages:\n    - name: Dev\n")
        #expect(ShipyardLoader.load(withError).shipyard == nil)
    }

    @Test func aStageWithoutSequencesIsValid() throws {
        let document = ShipyardLoader.load(shipyard(stages: "  stages:\n    - name: hardening"))
        #expect(document.diagnostics.isEmpty)
        #expect(try #require(document.shipyard).stages.first?.sequences.isEmpty == true)
    }

    @Test func quotedAndPlainStylesMeanTheSame() {
        let text = """
            apiVersion: 'spec.keptn.sh/0.2.2'
            kind: "Shipyard"
            metadata: {name: x}
            spec: {stages: [{name: qa, sequences: [{name: delivery, tasks: [{name: deploy}]}]}]}
            """
        #expect(lint(text).isEmpty)
    }
}
