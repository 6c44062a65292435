import Foundation
import Testing

/// README's module graph, Package.swift's target dependencies and the imports in Sources say
/// the same thing, and no module imports one above it.
@Suite struct ModuleGraphTests {
    static let modules = ["ShipyardCore", "ShipyardGit", "ShipyardStore", "ShipyardDaemon", "ShipyardWeb"]
    static let local = Set(modules + ["CYAML", "CGit2", "CPQ", "CSupport"])

    /// `ShipyardWeb → ShipyardDaemon, ShipyardStore, …` lines of README's Layout section.
    func readmeGraph() throws -> [String: Set<String>] {
        let readme = try String(contentsOf: Repository.root.appendingPathComponent("README.md"), encoding: .utf8)
        var graph: [String: Set<String>] = [:]
        for line in readme.split(separator: "\n") where line.contains("→") {
            let parts = line.split(separator: "→", maxSplits: 1)
            let name = parts[0].trimmingCharacters(in: .whitespaces)
            guard Self.modules.contains(name) else { continue }
            graph[name] = Set(parts[1].split(separator: ",").map { $0.trimmingCharacters(in: .whitespaces) })
        }
        return graph
    }

    /// The local targets each of the modules depends on in Package.swift.
    func packageGraph() throws -> [String: Set<String>] {
        let package = try String(contentsOf: Repository.root.appendingPathComponent("Package.swift"), encoding: .utf8)
        var graph: [String: Set<String>] = [:]
        for module in Self.modules {
            let pattern = try Regex(#"\.target\(\s*name:\s*""# + module + #"""#)
            let start = try #require(package.firstMatch(of: pattern), "\(module) is not a target in Package.swift").range
            // The target's arguments: up to the parenthesis that closes `.target(`.
            var depth = 0
            var end = start.upperBound
            for index in package[package.index(start.lowerBound, offsetBy: ".target".count)...].indices {
                if package[index] == "(" { depth += 1 }
                if package[index] == ")" { depth -= 1 }
                if depth == 0 { end = index; break }
            }
            let quoted = package[start.upperBound..<end].split(separator: "\"", omittingEmptySubsequences: false).enumerated()
                .filter { $0.offset % 2 == 1 }.map { String($0.element) }
            graph[module] = Set(quoted.filter { Self.local.contains($0) })
        }
        return graph
    }

    /// The local modules each module's sources import.
    func imports() throws -> [String: Set<String>] {
        var graph: [String: Set<String>] = [:]
        for module in Self.modules {
            let folder = Repository.root.appendingPathComponent("Sources/\(module)")
            let files = try #require(FileManager.default.enumerator(atPath: folder.path)).compactMap { $0 as? String }.filter { $0.hasSuffix(".swift") }
            #expect(!files.isEmpty, "no sources in \(folder.path)")
            var found: Set<String> = []
            for file in files {
                let text = try String(contentsOf: folder.appendingPathComponent(file), encoding: .utf8)
                for line in text.split(separator: "\n") {
                    let words = line.split(separator: " ")
                    guard let at = words.firstIndex(of: "import"), at <= 1, at + 1 < words.count else { continue }
                    let name = String(words[at + 1])
                    if Self.local.contains(name) { found.insert(name) }
                }
            }
            graph[module] = found
        }
        return graph
    }

    @Test func readmePackageAndImportsAgree() throws {
        let readme = try readmeGraph()
        let package = try packageGraph()
        let imported = try imports()
        #expect(Set(readme.keys) == Set(Self.modules), "README's graph lists \(readme.keys.sorted())")
        for module in Self.modules {
            #expect(readme[module] == package[module], "\(module): README says \(readme[module]?.sorted() ?? []), Package.swift \(package[module]?.sorted() ?? [])")
            let extra = (imported[module] ?? []).subtracting(package[module] ?? [])
            #expect(extra.isEmpty, "\(module) imports \(extra.sorted()), which Package.swift does not give it")
        }
        // Below means earlier in this order: a module never imports one after it.
        for (index, module) in Self.modules.enumerated() {
            let above = Set(Self.modules[index...])
            #expect((imported[module] ?? []).isDisjoint(with: above), "\(module) imports a module above it: \((imported[module] ?? []).intersection(above).sorted())")
        }
    }
}
