/// A position in a source file, 1-based, as editors and compilers print it.
public struct SourceMark: Sendable, Hashable, Comparable, CustomStringConvertible {
    public var line: Int
    public var column: Int

    public init(line: Int, column: Int) {
        self.line = line
        self.column = column
    }

    public static let start = SourceMark(line: 1, column: 1)

    public static func < (lhs: SourceMark, rhs: SourceMark) -> Bool {
        (lhs.line, lhs.column) < (rhs.line, rhs.column)
    }

    public var description: String { "\(line):\(column)" }
}

/// A YAML scalar as written, with what is needed to resolve its type.
public struct YAMLScalar: Sendable, Hashable {
    public enum Style: Sendable, Hashable {
        case plain, singleQuoted, doubleQuoted, literal, folded
    }

    /// The scalar's text after YAML's escaping and folding rules.
    public var text: String
    public var style: Style
    /// The explicit standard tag (`str`, `int`, …) when the author wrote one, e.g. `!!str 1`.
    public var tag: StandardTag?

    public enum StandardTag: String, Sendable, Hashable, CaseIterable {
        case str, int, float, bool, null
    }

    public init(_ text: String, style: Style = .plain, tag: StandardTag? = nil) {
        self.text = text
        self.style = style
        self.tag = tag
    }

    /// What the scalar means under YAML 1.2's core schema (the schema go-yaml v3, and so Keptn,
    /// uses): only plain scalars without a tag are resolved; everything quoted is a string.
    public var resolved: Resolved {
        if let tag {
            switch tag {
            case .str: return .string(text)
            case .null: return .null
            case .bool: return Self.resolveBool(text).map(Resolved.bool) ?? .string(text)
            case .int: return Self.resolveInt(text).map(Resolved.int) ?? .string(text)
            case .float: return Self.resolveFloat(text).map(Resolved.float) ?? .string(text)
            }
        }
        guard style == .plain else { return .string(text) }
        switch text {
        case "", "~", "null", "Null", "NULL": return .null
        default: break
        }
        if let b = Self.resolveBool(text) { return .bool(b) }
        if let i = Self.resolveInt(text) { return .int(i) }
        if let f = Self.resolveFloat(text) { return .float(f) }
        return .string(text)
    }

    public enum Resolved: Sendable, Hashable {
        case null
        case bool(Bool)
        case int(Int64)
        case float(Double)
        case string(String)
    }

    private static func resolveBool(_ s: String) -> Bool? {
        switch s {
        case "true", "True", "TRUE": return true
        case "false", "False", "FALSE": return false
        default: return nil
        }
    }

    private static func resolveInt(_ s: String) -> Int64? {
        if s.hasPrefix("0x") { return Int64(s.dropFirst(2), radix: 16) }
        if s.hasPrefix("0o") { return Int64(s.dropFirst(2), radix: 8) }
        guard let first = s.first, first.isASCII, first.isNumber || first == "-" || first == "+" else { return nil }
        return Int64(s)
    }

    private static func resolveFloat(_ s: String) -> Double? {
        switch s {
        case ".inf", ".Inf", ".INF", "+.inf", "+.Inf", "+.INF": return .infinity
        case "-.inf", "-.Inf", "-.INF": return -.infinity
        case ".nan", ".NaN", ".NAN": return .nan
        default: break
        }
        // Core schema: [-+]? ( \. [0-9]+ | [0-9]+ ( \. [0-9]* )? ) ( [eE] [-+]? [0-9]+ )?
        var chars = Substring(s)
        if chars.first == "-" || chars.first == "+" { chars = chars.dropFirst() }
        let digitsBefore = chars.prefix(while: \.isASCIIDigit)
        chars = chars.dropFirst(digitsBefore.count)
        var digitsAfter = 0
        if chars.first == "." {
            chars = chars.dropFirst()
            let after = chars.prefix(while: \.isASCIIDigit)
            digitsAfter = after.count
            chars = chars.dropFirst(after.count)
        }
        guard digitsBefore.count + digitsAfter > 0 else { return nil }
        if chars.first == "e" || chars.first == "E" {
            chars = chars.dropFirst()
            if chars.first == "-" || chars.first == "+" { chars = chars.dropFirst() }
            let exponent = chars.prefix(while: \.isASCIIDigit)
            guard !exponent.isEmpty else { return nil }
            chars = chars.dropFirst(exponent.count)
        }
        guard chars.isEmpty else { return nil }
        return Double(s)
    }
}

extension Character {
    var isASCIIDigit: Bool { isASCII && isNumber }
}

/// One node of a parsed YAML document. Every node knows where it was written.
public struct YAMLNode: Sendable {
    public enum Content: Sendable {
        case scalar(YAMLScalar)
        case sequence([YAMLNode])
        case mapping([YAMLPair])
    }

    public var content: Content
    public var mark: SourceMark

    public init(_ content: Content, at mark: SourceMark) {
        self.content = content
        self.mark = mark
    }

    public var scalar: YAMLScalar? {
        if case .scalar(let s) = content { return s }
        return nil
    }

    public var sequence: [YAMLNode]? {
        if case .sequence(let items) = content { return items }
        return nil
    }

    public var mapping: [YAMLPair]? {
        if case .mapping(let pairs) = content { return pairs }
        return nil
    }

    /// The node's text when it is a string scalar (quoted, or plain that resolves to no other type).
    public var string: String? {
        if case .string(let s) = scalar?.resolved { return s }
        return nil
    }

    /// True for an explicit or implicit null, e.g. `key:` with nothing after it.
    public var isNull: Bool {
        scalar?.resolved == .null
    }

    /// The value for a key in a mapping node, when the node is a mapping and has the key.
    public subscript(key: String) -> YAMLNode? {
        mapping?.first { $0.key.scalar?.text == key }?.value
    }

    /// How a person would name this kind of node in an error message.
    /// Bytes of text the node stands for, every key and scalar counted (aliases were expanded when
    /// the tree was built, within the parser's budget): what copying it out costs.
    public var textBytes: Int {
        switch content {
        case .scalar(let scalar): return scalar.text.utf8.count
        case .sequence(let items): return items.reduce(1) { $0 + $1.textBytes }
        case .mapping(let pairs): return pairs.reduce(1) { $0 + $1.key.textBytes + $1.value.textBytes }
        }
    }

    public var kindDescription: String {
        switch content {
        case .sequence: return "a list"
        case .mapping: return "a mapping"
        case .scalar(let s):
            switch s.resolved {
            case .null: return "an empty value"
            case .bool(let b): return "the boolean \(b)"
            case .int(let i): return "the number \(i)"
            case .float: return "the number \(s.text)"
            case .string(let text): return "the string \"\(text)\""
            }
        }
    }
}

/// A key and its value in a mapping, in the order they were written.
public struct YAMLPair: Sendable {
    public var key: YAMLNode
    public var value: YAMLNode

    public init(key: YAMLNode, value: YAMLNode) {
        self.key = key
        self.value = value
    }
}
