import Foundation
import Testing

@testable import ShipyardCore

extension ShipyardLoaderTests {
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
