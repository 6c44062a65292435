import Testing

@testable import ShipyardCore

@Suite struct GoDurationTests {
    @Test(arguments: [
        ("0", Int64(0)),
        ("90s", 90_000_000_000),
        ("15m", 900_000_000_000),
        ("1h30m", 5_400_000_000_000),
        ("1.5h", 5_400_000_000_000),
        ("300ms", 300_000_000),
        ("2h45m10s", 9_910_000_000_000),
        ("-1m", -60_000_000_000),
        ("+5s", 5_000_000_000),
        ("1us", 1_000),
        ("1µs", 1_000),
        (".5s", 500_000_000),
    ])
    func parsesWhatGoParses(text: String, nanos: Int64) throws {
        #expect(try GoDuration.nanoseconds(text) == nanos)
    }

    @Test func refusesWhatGoRefuses() {
        #expect(throws: GoDuration.ParseError.missingUnit("10")) { try GoDuration.nanoseconds("10") }
        #expect(throws: GoDuration.ParseError.unknownUnit("d")) { try GoDuration.nanoseconds("1d") }
        #expect(throws: GoDuration.ParseError.empty) { try GoDuration.nanoseconds("") }
        #expect(throws: GoDuration.ParseError.malformed("m")) { try GoDuration.nanoseconds("m") }
        #expect(throws: GoDuration.ParseError.malformed("1m 2s")) { try GoDuration.nanoseconds("1m 2s") }
        #expect(throws: GoDuration.ParseError.overflow("9999999999h")) { try GoDuration.nanoseconds("9999999999h") }
    }

    @Test func formatsLikeGo() {
        #expect(GoDuration.format(.seconds(5400)) == "1h30m0s")
        #expect(GoDuration.format(.seconds(90)) == "1m30s")
        #expect(GoDuration.format(.milliseconds(1500)) == "1.5s")
        #expect(GoDuration.format(.milliseconds(300)) == "300ms")
        #expect(GoDuration.format(.zero) == "0s")
    }
}
