import Foundation
import Testing

@testable import ShipyardCore

/// Real shipyards from Keptn's repositories get the verdict `shared/corpus/README.md` gives them.
@Suite struct CorpusTests {
    /// Files the README's table marks as refused; every other file must be accepted.
    func refusedFiles() throws -> Set<String> {
        let readme = try String(contentsOf: Fixtures.corpus.appendingPathComponent("README.md"), encoding: .utf8)
        var refused: Set<String> = []
        for line in readme.split(separator: "\n") where line.hasPrefix("| `keptn/") {
            let cells = line.split(separator: "|").map { $0.trimmingCharacters(in: .whitespaces) }
            guard cells.count >= 2, cells[1].hasPrefix("refused") else { continue }
            refused.insert(String(cells[0].dropFirst("`keptn/".count).dropLast()))
        }
        return refused
    }

    @Test func everyCorpusFileGetsItsVerdict() throws {
        let folder = Fixtures.corpus.appendingPathComponent("keptn")
        let files = try FileManager.default.contentsOfDirectory(atPath: folder.path).filter { $0.hasSuffix(".yaml") }.sorted()
        try #require(files.count >= 15, "the corpus at \(folder.path) is missing; set SHIPYARD_CORPUS")
        let refused = try refusedFiles()
        #expect(refused == ["examples-simplenodeservice-keptn-shipyard_keptn07.yaml"])
        for file in files {
            let bytes = try Array(Data(contentsOf: folder.appendingPathComponent(file)))
            let document = ShipyardLoader.load(bytes)
            if refused.contains(file) {
                #expect(document.shipyard == nil, "\(file) should be refused")
                #expect(document.errors.first?.message.contains("Keptn 0.7") == true, "\(file): \(document.errors)")
            } else {
                #expect(document.shipyard != nil, "\(file) should be accepted: \(document.errors)")
            }
        }
    }
}
