import Foundation
import ShipyardTestKit
import Testing

@testable import ShipyardGit

@Suite struct RepackTests {
    /// A fetch per push left hundreds of packs; past a bound they are merged into one, keeping
    /// every object, also the commit a force-push took away (a sequence may be pinned to it).
    @Test func manyPacksBecomeOneAndNothingIsLost() throws {
        let dir = try TemporaryDirectory()
        let upstream = try UpstreamRepository(in: dir.path)
        let mirror = Mirror(path: dir.path + "/mirror.git")
        try mirror.prepare()
        var commits: [String] = []
        for i in 0..<40 {
            let commit = try upstream.commit(["shipyard.yaml": "n: \(i)\n", "f\(i).txt": "\(i)\n"])
            try LocalUpstream.fetch(upstream.bare, branch: "main", tip: ObjectID(hex: commit), into: mirror)
            commits.append(commit)
        }
        // A force-push: the last commit is no longer upstream, but the mirror keeps it.
        let rewritten = try upstream.forcePush(["shipyard.yaml": "rewritten\n"])
        try LocalUpstream.fetch(upstream.bare, branch: "main", tip: ObjectID(hex: rewritten), into: mirror)
        let packs = { ((try? FileManager.default.contentsOfDirectory(atPath: mirror.path + "/objects/pack")) ?? []).filter { $0.hasSuffix(".pack") }.count }
        #expect(packs() > 32)
        #expect(try mirror.repackIfNeeded(maxPacks: 32) > 32)
        #expect(packs() == 1)
        for commit in commits + [rewritten] {
            guard case .blob = try Mirror(path: mirror.path).file(at: ObjectID(hex: commit), path: "shipyard.yaml") else {
                Issue.record("\(commit) lost its shipyard.yaml")
                continue
            }
        }
        #expect(try mirror.repackIfNeeded(maxPacks: 32) == 0)
    }
}
