import Testing

@testable import ShipyardCore

@Suite struct YAMLParserTests {
    let parser = YAMLParser()

    func parse(_ text: String) throws -> YAMLNode {
        let node = try parser.parse(text)
        return try #require(node)
    }

    func failure(_ bytes: [UInt8], limits: YAMLParser.Limits = .init()) -> YAMLError? {
        do {
            _ = try YAMLParser(limits: limits).parse(bytes)
            return nil
        } catch {
            return error
        }
    }

    func failure(_ text: String) -> YAMLError? { failure(Array(text.utf8)) }

    @Test func nodesKnowTheirLineAndColumn() throws {
        let root = try parse("""
            top:
              list:
                - one
                - "two"
              other: 3
            """)
        let list = try #require(root["top"]?["list"])
        #expect(list.mark == SourceMark(line: 3, column: 5))
        #expect(list.sequence?.map(\.mark) == [SourceMark(line: 3, column: 7), SourceMark(line: 4, column: 7)])
        #expect(root["top"]?["other"]?.mark == SourceMark(line: 5, column: 10))
        #expect(root.mapping?.first?.key.mark == SourceMark(line: 1, column: 1))
    }

    @Test func scalarsResolveByTheCoreSchema() throws {
        let root = try parse("""
            a: 1
            b: "1"
            c: true
            d: 'true'
            e: ~
            f:
            g: 1.5
            h: 15m
            i: !!str 2
            j: 0x1F
            k: yes
            """)
        #expect(root["a"]?.scalar?.resolved == .int(1))
        #expect(root["b"]?.string == "1")
        #expect(root["c"]?.scalar?.resolved == .bool(true))
        #expect(root["d"]?.string == "true")
        #expect(root["e"]?.isNull == true)
        #expect(root["f"]?.isNull == true)
        #expect(root["g"]?.scalar?.resolved == .float(1.5))
        #expect(root["h"]?.string == "15m")
        #expect(root["i"]?.string == "2")
        #expect(root["j"]?.scalar?.resolved == .int(31))
        #expect(root["k"]?.string == "yes")
    }

    @Test func anchorsAndAliasesResolve() throws {
        let root = try parse("""
            base: &tasks
              - name: deploy
            copy: *tasks
            """)
        let copy = try #require(root["copy"]?.sequence)
        #expect(copy.first?["name"]?.string == "deploy")
        #expect(root["copy"]?.mark == SourceMark(line: 3, column: 7))
    }

    @Test func mergeKeysFillInWhatAMappingDoesNotSet() throws {
        let root = try parse("""
            defaults: &d
              pass: manual
              warning: manual
            approval:
              <<: *d
              pass: automatic
            """)
        let approval = try #require(root["approval"])
        #expect(approval["pass"]?.string == "automatic")
        #expect(approval["warning"]?.string == "manual")
        #expect(approval.mapping?.count == 2)
    }

    @Test func mergeOfAScalarIsRefused() {
        let error = failure("""
            a: &x 1
            b:
              <<: *x
            """)
        #expect(error?.mark == SourceMark(line: 3, column: 7))
        #expect(error?.message.contains("merge key") == true)
    }

    @Test func duplicateKeysAreRefused() {
        let error = failure("""
            name: qa
            sequences: []
            name: production
            """)
        #expect(error == YAMLError(
            "duplicate key \"name\" (first written at line 1); remove one of them", at: SourceMark(line: 3, column: 1)))
    }

    @Test func complexKeysAreRefused() {
        let error = failure("? [a, b]\n: c\n")
        #expect(error?.mark == SourceMark(line: 1, column: 3))
        #expect(error?.message.contains("mapping key must be a plain value") == true)
    }

    @Test func syntaxErrorsPointAtTheProblem() {
        let error = failure("""
            stages:
              - name: qa
               sequences: []
            """)
        #expect(error?.mark.line == 3)
        #expect(error?.message.hasPrefix("not valid YAML:") == true)
    }

    @Test func byteOrderMarkAndCRLFAreFine() throws {
        let bytes: [UInt8] = [0xEF, 0xBB, 0xBF] + Array("a: 1\r\nb:\r\n  c: x\r\n".utf8)
        let root = try #require(try parser.parse(bytes))
        #expect(root["a"]?.mark == SourceMark(line: 1, column: 4))
        #expect(root["b"]?["c"]?.mark == SourceMark(line: 3, column: 6))
    }

    @Test func emptyInputHasNoDocument() throws {
        #expect(try parser.parse("") == nil)
        #expect(try parser.parse("# only a comment\n\n") == nil)
        #expect(try parser.parse([0xEF, 0xBB, 0xBF]) == nil)
    }

    @Test func aSecondDocumentIsRefused() {
        let error = failure("a: 1\n---\nb: 2\n")
        #expect(error?.mark == SourceMark(line: 2, column: 1))
        #expect(error?.message.contains("second YAML document") == true)
    }

    @Test func invalidUTF8IsRefusedWithItsPosition() {
        let bytes = Array("a: ok\nb: caf".utf8) + [0xC3, 0x28] + Array("\n".utf8)
        let error = failure(bytes)
        #expect(error == YAMLError(
            "the file is not valid UTF-8 (byte 0xC3); save it as UTF-8 text", at: SourceMark(line: 2, column: 7)))
    }

    @Test func overlongAndSurrogateEncodingsAreRefused() {
        #expect(failure([0x61, 0xC0, 0xAF]) != nil)
        #expect(failure([0x61, 0xED, 0xA0, 0x80]) != nil)
        #expect(failure([0x61, 0xF4, 0x90, 0x80, 0x80]) != nil)
        #expect(failure([0x61, 0xE2, 0x82]) != nil)
        #expect(failure(Array("a: \"é€😀\"".utf8)) == nil)
    }

    @Test func utf16IsRefusedByName() {
        let error = failure([0xFF, 0xFE, 0x61, 0x00])
        #expect(error?.message.contains("UTF-16") == true)
    }

    @Test func controlCharactersAreRefusedWithTheirPosition() {
        let error = failure(Array("a: 1\nb: x\u{01}y\n".utf8))
        #expect(error?.mark == SourceMark(line: 2, column: 5))
        #expect(error?.message.contains("control characters") == true)
    }

    @Test func randomBinaryIsRefused() {
        var generator = SystemRandomNumberGenerator()
        for _ in 0..<50 {
            let bytes = (0..<512).map { _ in UInt8.random(in: 0...255, using: &generator) }
            #expect(failure(bytes) != nil)
        }
    }

    @Test func aliasBombIsRefused() {
        var text = "a: &a [x, x, x, x, x, x, x, x, x]\n"
        var previous = "a"
        for level in 1...12 {
            let name = "n\(level)"
            let refs = Array(repeating: "*\(previous)", count: 9).joined(separator: ", ")
            text += "\(name): &\(name) [\(refs)]\n"
            previous = name
        }
        let error = failure(text)
        #expect(error?.message.contains("expands to more than 100000 nodes") == true)
        #expect(error?.mark.line == 6)
    }

    /// Few nodes, much text: one 450 KB string aliased 45,000 times is 20 GB once expanded. The
    /// budget counts the bytes as the aliases are met, so it fails at the ninth, at once.
    @Test func aLongStringAliasedManyTimesIsRefusedWhileReading() {
        let text = "big: &b \"" + String(repeating: "x", count: 450_000) + "\"\nuses:\n" + String(repeating: "  - *b\n", count: 45_000)
        let error = failure(text)
        #expect(error?.message.contains("expands to more than 4 MiB of text once its aliases are expanded") == true, "\(String(describing: error))")
        #expect(error?.mark.line == 11)
        // Just under the budget is fine: a document may use an alias as often as it likes.
        #expect(failure("big: &b \"" + String(repeating: "x", count: 400_000) + "\"\nuses: [*b, *b, *b, *b, *b, *b, *b, *b, *b]\n") == nil)
    }

    @Test func deepNestingIsRefusedWithoutRecursion() {
        let brackets = String(repeating: "[", count: 100_000) + String(repeating: "]", count: 100_000)
        let error = failure(brackets)
        #expect(error == YAMLError(
            "lists and mappings are nested more than 64 levels deep", at: SourceMark(line: 1, column: 65)))

        let mappings = String(repeating: "{a: ", count: 100_000)
        #expect(failure(mappings)?.message.contains("nested more than 64") == true)

        var block = ""
        for depth in 0..<200 { block += String(repeating: " ", count: depth) + "k:\n" }
        #expect(failure(block)?.message.contains("nested more than 64") == true)
    }

    @Test func aliasesToUnknownOrEnclosingAnchorsAreRefused() {
        #expect(failure("a: *nowhere\n")?.message == "alias *nowhere refers to no anchor &nowhere defined before it")
        #expect(failure("a: &x [1, *x]\n")?.message == "alias *x refers to a node that contains it")
    }

    @Test func customTagsAreRefused() {
        let error = failure("a: !secret value\n")
        #expect(error?.mark == SourceMark(line: 1, column: 4))
        #expect(error?.message.contains("unsupported tag !secret") == true)
    }

    @Test func oversizedInputIsRefusedBeforeParsing() {
        let error = failure(Array(repeating: 0x61, count: 2000), limits: .init(maxBytes: 1000))
        #expect(error?.message == "the file is 2000 bytes; the limit is 1000 bytes")
    }
}
