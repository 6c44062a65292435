import Foundation
import ShipyardCore
import ShipyardDaemon
import ShipyardTestKit
import Testing

/// A CLI that never makes you guess: contexts by prefix everywhere, why a sequence waits, the
/// image and times of each, events by type, warnings before a trigger runs the wrong thing,
/// `--wait` with its exit codes, options before the subcommand, suggestions, completions.
@Suite(.serialized) struct CLIGuessTests {
    typealias World = SequenceTests.World

    static let v1 = "ghcr.io/podtato-head/podtatoserver:v0.1.1"
    static let v2 = "ghcr.io/podtato-head/podtatoserver:v0.1.2"

    func json(_ world: World, _ arguments: [String]) throws -> Any? {
        let out = try world.daemon.ctl(arguments + ["--output", "json"])
        #expect(out.status == 0, "\(arguments): \(out.stderr)")
        return try? JSONSerialization.jsonObject(with: Data(out.stdout.utf8))
    }

    @Test func contextsByPrefixWaitsImagesTimesAndEventTypes() async throws {
        let world = try World(seconds: "gate")
        #expect(await world.ready())
        let first = try world.trigger(["--image", Self.v1])
        let second = try world.trigger(["--image", Self.v2])
        #expect(await world.waitState(second, "qa", "waiting"))
        #expect(await eventually { world.runs.count == 1 })

        // The listing: short contexts, the image, when, and why the second waits.
        let table = try world.daemon.ctl(["sequences"]).stdout
        #expect(table.contains("podtatoserver:v0.1.1") && table.contains("podtatoserver:v0.1.2"), "\(table)")
        #expect(table.contains(String(first.prefix(8))) && !table.contains(first), "\(table)")
        #expect(table.contains("\(second.prefix(8)) qa: waiting for delivery \(first.prefix(8)) ahead in qa (qa.delivery of \(Self.v1), running je-deployment)"), "\(table)")
        let rows = try #require(try json(world, ["sequences"]) as? [[String: Any]])
        let waiting = try #require(rows.first { $0["context"] as? String == second })
        #expect(waiting["image"] as? String == Self.v2)
        #expect((waiting["triggeredAt"] as? String).flatMap(Timestamps.parse) != nil)
        #expect((waiting["waitingFor"] as? String)?.contains("delivery \(first.prefix(8)) ahead in qa") == true)

        // One delivery by a prefix, in a table and in JSON.
        let detail = try world.daemon.ctl(["sequence", String(first.prefix(6))])
        #expect(detail.status == 0, "\(detail.stderr)")
        #expect(detail.stdout.contains("context \(first), project fulltour, service helloservice, image \(Self.v1)"), "\(detail.stdout)")
        #expect(detail.stdout.contains("qa.delivery: started"), "\(detail.stdout)")
        let view = try #require(try json(world, ["sequence", String(second.prefix(5))]) as? [String: Any])
        #expect(view["context"] as? String == second)
        #expect(view["image"] as? String == Self.v2)
        let stage = (view["stages"] as? [[String: Any]])?.first
        #expect((stage?["waitingFor"] as? String)?.contains(String(first.prefix(8))) == true)

        // Too short, unknown: an error that says what to do, never an empty success.
        let short = try world.daemon.ctl(["sequence", String(first.prefix(3))])
        #expect(short.status == 1 && short.stderr.contains("give at least 4 characters of the context"), "\(short.stderr)")
        let nope = try world.daemon.ctl(["events", "--context", "nope"])
        #expect(nope.status == 1 && nope.stdout.isEmpty, "\(nope.stdout)")
        #expect(nope.stderr == "shipyardctl: no sequence has a context starting with nope (shipyardctl sequences lists them)\n")

        // Events of one type and one context, by prefix.
        let typed = try world.daemon.ctl(["events", "--context", String(first.prefix(8)), "--type", "je-deployment.triggered"])
        let lines = typed.stdout.split(separator: "\n")
        #expect(lines.count == 1, "\(typed.stdout)\(typed.stderr)")
        let event = lines.first.flatMap { try? JSONSerialization.jsonObject(with: Data($0.utf8)) as? [String: Any] }
        #expect(event?["type"] as? String == "sh.keptn.event.je-deployment.triggered")
        #expect(event?["shkeptncontext"] as? String == first)
        let full = try world.daemon.ctl(["events", "--type", "sh.keptn.event.qa.delivery.triggered"]).stdout.split(separator: "\n")
        #expect(full.count == 2, "\(full)")

        // Commands take a prefix too, and answer with the whole context.
        let paused = try world.daemon.ctl(["pause", String(second.prefix(8))])
        #expect(paused.stdout == "paused \(second)\n", "\(paused.stderr)")
        #expect(try world.daemon.ctl(["resume", String(second.prefix(8))]).stdout == "resumed \(second)\n")
        try world.openGate()
        #expect(await world.waitState(second, "production", "finished", timeout: .seconds(60)))
    }

    @Test func aTaskHeldByTriggeredAfterSaysUntilWhen() async throws {
        let shipyard = GitWatchingTests.tutorial.replacingOccurrences(
            of: "            - name: \"je-test\"\n", with: "            - name: \"je-test\"\n              triggeredAfter: \"10m\"\n")
        #expect(shipyard != GitWatchingTests.tutorial)
        let world = try World(shipyard: shipyard)
        #expect(await world.ready())
        let context = try world.trigger()
        #expect(await eventually { world.runs.count == 1 })
        // je-deployment finished: je-test is due ten minutes after that.
        let waits = await eventually {
            let view = (try? json(world, ["sequence", context])) as? [String: Any]
            let stage = (view?["stages"] as? [[String: Any]])?.first
            return (stage?["waitingFor"] as? String)?.hasPrefix("je-test to start at ") == true
        }
        #expect(waits)
        let view = try #require(try json(world, ["sequence", context]) as? [String: Any])
        let qa = try #require((view["stages"] as? [[String: Any]])?.first)
        let test = try #require((qa["tasks"] as? [[String: Any]])?.first { $0["name"] as? String == "je-test" })
        let dueAt = test["dueAt"] as? String
        let due = try #require(dueAt.flatMap { Timestamps.parse($0) })
        let finishedAt = (qa["tasks"] as? [[String: Any]])?.first?["finishedAt"] as? String
        let deployed = try #require(finishedAt.flatMap { Timestamps.parse($0) })
        #expect(abs(due.timeIntervalSince(deployed) - 600) < 1.5, "due \(due), deployed \(deployed)")
        let table = try world.daemon.ctl(["sequences"]).stdout
        #expect(table.contains("\(context.prefix(8)) qa: waiting for je-test to start at "), "\(table)")
        let detail = try world.daemon.ctl(["sequence", context]).stdout
        #expect(detail.contains("  waiting for je-test to start at ") && detail.contains("je-test          pending until "), "\(detail)")
        #expect(try world.daemon.ctl(["abort", String(context.prefix(8))]).status == 0)
    }

    @Test func aTriggerWarnsOfAnUnknownServiceAndARefusedShipyardAndStrictRefuses() async throws {
        let world = try World()
        #expect(await world.ready())
        let firstEver = try world.daemon.ctl(["trigger", "delivery", "--project", "fulltour", "--service", "helloservice"])
        #expect(firstEver.status == 0)
        #expect(firstEver.stderr == "shipyardctl: warning: helloservice is the first service delivered in fulltour (--strict refuses this)\n")
        let context = String(firstEver.stdout.split(separator: " ").last?.dropLast(2) ?? "")
        #expect(await world.waitState(context, "production", "finished"))

        // A typo: warned, and refused with --strict (nothing recorded).
        let typo = try world.daemon.ctl(["trigger", "delivery", "--project", "fulltour", "--service", "helloservise", "--strict"])
        #expect(typo.status == 1)
        #expect(typo.stderr == "shipyardctl: refused (--strict): fulltour has never delivered helloservise (it has delivered helloservice); is the name right?\n")
        #expect(try world.sequences().allSatisfy { $0["service"] as? String == "helloservice" })
        let known = try world.daemon.ctl(["trigger", "delivery", "--project", "fulltour", "--service", "helloservice", "--strict"])
        #expect(known.status == 0 && known.stderr.isEmpty, "\(known.stderr)")

        // The newest commit's shipyard is refused: the last good one runs, and the trigger says so.
        let broken = try world.upstream.commit(["shipyard.yaml": "apiVersion: spec.keptn.sh/0.2.2\nkind: Shipyard\nspec: [\n"], message: "broken")
        #expect(await world.daemon.waitFor("fulltour") { $0.commit == broken && $0.error != nil } != nil)
        let warned = try world.daemon.ctl(["trigger", "delivery", "--project", "fulltour", "--service", "helloservice"])
        #expect(warned.status == 0)
        #expect(warned.stderr.hasPrefix("shipyardctl: warning: the newest shipyard of fulltour is refused, so the last good one runs: shipyard.yaml at \(broken.prefix(12))"), "\(warned.stderr)")
        let strict = try world.daemon.ctl(["trigger", "delivery", "--project", "fulltour", "--service", "helloservice", "--strict"])
        #expect(strict.status == 1 && strict.stderr.hasPrefix("shipyardctl: refused (--strict): the newest shipyard of fulltour is refused"), "\(strict.stderr)")
    }

    @Test func waitFollowsADeliveryToItsApprovalAndItsEnd() async throws {
        let world = try World(shipyard: GitWatchingTests.tutorialWithApproval)
        #expect(await world.ready())
        let trigger = try world.daemon.ctl([
            "trigger", "delivery", "--project", "fulltour", "--service", "helloservice", "--image", Self.v1, "--wait", "--wait-timeout", "2m",
        ])
        #expect(trigger.status == 4, "\(trigger.stdout)\(trigger.stderr)")
        let lines = trigger.stdout.split(separator: "\n").map(String.init)
        #expect(lines.count == 3, "\(lines)")
        #expect(lines.first?.hasPrefix("qa.delivery triggered for helloservice (context ") == true)
        #expect(lines.dropFirst().first?.hasPrefix("qa.delivery: finished (pass) in ") == true, "\(lines)")
        let gate = try #require(lines.last)
        #expect(gate.hasPrefix("production.delivery: waiting for approval "), "\(gate)")
        let id = String(gate.dropFirst("production.delivery: waiting for approval ".count).prefix(8))

        let approved = try world.daemon.ctl(["approve", id, "--wait"])
        #expect(approved.status == 0, "\(approved.stdout)\(approved.stderr)")
        let after = approved.stdout.split(separator: "\n").map(String.init)
        #expect(after.first?.hasPrefix("approved") == true)
        // Stages already told are not told again; production's end is.
        #expect(after.dropFirst().contains { $0.hasPrefix("production.delivery: finished (pass) in ") }, "\(after)")
        #expect(!after.contains { $0.hasPrefix("qa.delivery") }, "\(after)")
    }

    @Test func waitSaysHowADeliveryEndedOrThatItStillRuns() async throws {
        let failing = try World(testExit: 3)
        #expect(await failing.ready())
        let failed = try failing.daemon.ctl(["trigger", "delivery", "--project", "fulltour", "--service", "helloservice", "--wait"])
        #expect(failed.status == 3, "\(failed.stdout)\(failed.stderr)")
        #expect(failed.stdout.contains("qa.delivery: finished (fail) in "), "\(failed.stdout)")

        let slow = try World(seconds: "gate")
        #expect(await slow.ready())
        let running = try slow.daemon.ctl(["trigger", "delivery", "--project", "fulltour", "--service", "helloservice", "--wait", "--wait-timeout", "2s"])
        #expect(running.status == 5, "\(running.stdout)\(running.stderr)")
        #expect(running.stderr.contains("still running after 2s: qa.delivery is started"), "\(running.stderr)")
        let bad = try slow.daemon.ctl(["trigger", "delivery", "--project", "fulltour", "--service", "helloservice", "--wait", "--wait-timeout", "soon"])
        #expect(bad.status == 2 && bad.stderr.contains("--wait-timeout takes a duration"), "\(bad.stderr)")
        try slow.openGate()
    }

    @Test func optionsBeforeTheSubcommandSuggestionsOneOutputVocabularyAndCompletions() async throws {
        let world = try World(seconds: "gate")
        #expect(await world.ready())
        let context = try world.trigger()
        let state = world.daemon.state

        // --state-dir (and --socket) before the subcommand, with or without =.
        for arguments in [["--state-dir", state, "sequences"], ["--state-dir=\(state)", "sequences"], ["--socket", state + "/shipyardd.sock", "sequences"]] {
            let out = try Command.run("shipyardctl", arguments + ["--output", "json"])
            #expect(out.status == 0 && out.stdout.contains(context), "\(arguments): \(out.stderr)")
        }
        let nested = try Command.run("shipyardctl", ["--state-dir", state, "evaluations", "list", "--project", "fulltour", "--stage", "qa", "--service", "helloservice"])
        #expect(nested.status == 0, "\(nested.stderr)")

        // A mistyped subcommand: what was meant, exit 2.
        let typo = try Command.run("shipyardctl", ["sequnce", context])
        #expect(typo.status == 2)
        #expect(typo.stderr == "shipyardctl: unknown command 'sequnce'; did you mean 'sequence' or 'sequences'? (shipyardctl --help lists them)\n")
        let deeper = try Command.run("shipyardctl", ["--state-dir", state, "send", "evnt"])
        #expect(deeper.status == 2 && deeper.stderr.contains("did you mean 'event'?"), "\(deeper.stderr)")
        let nothing = try Command.run("shipyardctl", ["frobnicate"])
        #expect(nothing.stderr == "shipyardctl: unknown command 'frobnicate' (shipyardctl --help lists them)\n")

        // One output vocabulary: table|json everywhere, lint's old "text" still taken.
        let shipyard = try world.dir.write("shipyard.yaml", GitWatchingTests.tutorial)
        for format in ["table", "text"] {
            let lint = try Command.run("shipyardctl", ["lint", "--output", format, shipyard])
            #expect(lint.status == 0 && lint.stdout == "\(shipyard): ok\n", "\(format): \(lint.stdout)\(lint.stderr)")
        }
        #expect(try Command.run("shipyardctl", ["lint", "-o", "json", shipyard]).stdout.hasPrefix("{"))
        for command in [["sequences"], ["status"], ["approvals"], ["sequence", context]] {
            #expect(try world.daemon.ctl(command + ["--output", "table"]).status == 0, "\(command)")
        }

        // Completions ask the running daemon for contexts (as the generated scripts call it).
        let completion = try Command.run(
            "shipyardctl", ["---completion", "sequence", "--", "positional@0", "2", "2", "shipyardctl", "sequence", String(context.prefix(2))],
            environment: ["SHIPYARD_STATE_DIR": state])
        #expect(completion.stdout.split(separator: "\n").contains(Substring(context)), "\(completion.stdout)\(completion.stderr)")
        let script = try Command.run("shipyardctl", ["--generate-completion-script", "bash"]).stdout
        #expect(script.contains("---completion approve -- positional@0"))
        try world.openGate()
    }
}
