/// Typed access to YAML nodes that logs a precise diagnostic for every mismatch: the shared
/// vocabulary of the shipyard and daemon-config readers.
public struct SchemaReader: Sendable {
    public init() {}

    /// Parses a file whose top level must be a mapping; nil (with the error logged) when it is
    /// not YAML, empty, or something else. `empty` and `what` complete the messages.
    public func document(_ bytes: some Collection<UInt8>, empty: String, what: String, log: inout DiagnosticLog) -> YAMLNode? {
        let root: YAMLNode?
        do {
            root = try YAMLParser().parse(bytes)
        } catch {
            log.error(error.message, at: error.mark)
            return nil
        }
        guard let root, !root.isNull else {
            log.error("the file is empty; \(empty)", at: .start)
            return nil
        }
        guard root.mapping != nil else {
            log.error("\(what), not \(root.kindDescription)", at: root.mark)
            return nil
        }
        return root
    }

    /// Reads a mapping whose keys must be among `allowed`. Unknown keys are errors, with a
    /// suggestion when one is a likely typo: a misspelt `triggeredOn` must never be ignored.
    /// Returns false when the node is not a mapping at all.
    public func mapping(
        _ node: YAMLNode, of what: String, allowed: [String], log: inout DiagnosticLog,
        into result: inout [String: YAMLPair]
    ) -> Bool {
        guard let pairs = node.mapping else {
            log.error("\(what) must be a mapping (key: value pairs), not \(node.kindDescription)", at: node.mark)
            return false
        }
        for pair in pairs {
            let key = pair.key.scalar?.text ?? ""
            if allowed.contains(key) {
                result[key] = pair
                continue
            }
            var message = "unknown key \"\(key)\" in \(what)"
            if let guess = Self.suggestion(for: key, among: allowed) {
                message += "; did you mean \"\(guess)\"?"
            } else {
                message += " (it takes \(allowed.joined(separator: ", ")))"
            }
            log.error(message, at: pair.key.mark)
        }
        return true
    }

    public func string(_ node: YAMLNode, what: String, log: inout DiagnosticLog) -> String? {
        if let text = node.string { return text }
        var message = "\(what) must be a string, not \(node.kindDescription)"
        if let scalar = node.scalar, scalar.style == .plain { message += "; quote it: \"\(scalar.text)\"" }
        log.error(message, at: node.mark)
        return nil
    }

    public func list(_ node: YAMLNode, what: String, log: inout DiagnosticLog) -> [YAMLNode]? {
        if let items = node.sequence { return items }
        let hint = node.mapping != nil ? "; start each entry with '- '" : ""
        log.error("\(what) must be a list, not \(node.kindDescription)\(hint)", at: node.mark)
        return nil
    }

    /// The allowed key closest to a misspelt one, when it is close enough to be a typo.
    static func suggestion(for key: String, among allowed: [String]) -> String? {
        let lowered = key.lowercased().filter { $0 != "_" && $0 != "-" }
        var best: (String, Int)?
        for candidate in allowed {
            let distance = editDistance(lowered, candidate.lowercased())
            if distance <= max(2, candidate.count / 4), distance < (best?.1 ?? .max) {
                best = (candidate, distance)
            }
        }
        return best?.0
    }

    static func editDistance(_ a: String, _ b: String) -> Int {
        let a = Array(a.unicodeScalars)
        let b = Array(b.unicodeScalars)
        if a.isEmpty { return b.count }
        if b.isEmpty { return a.count }
        var previous = Array(0...b.count)
        var current = previous
        for i in 1...a.count {
            current[0] = i
            for j in 1...b.count {
                let cost = a[i - 1] == b[j - 1] ? 0 : 1
                current[j] = min(previous[j] + 1, current[j - 1] + 1, previous[j - 1] + cost)
            }
            swap(&previous, &current)
        }
        return previous[b.count]
    }
}
