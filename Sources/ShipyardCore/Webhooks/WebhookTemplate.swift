import Foundation

/// Keptn's webhook templates: Go's `text/template`, over the whole
/// CloudEvent (`.id`, `.type`, `.shkeptncontext`, `.data.project`, …) plus `.env.NAME` for the
/// secrets the webhook names. Keptn registers no functions, so only Go's built-ins exist.
///
/// Shipyard reads the part of that language webhook files use: text, `{{ pipeline }}` with
/// `{{-`/`-}}` trimming and comments, field chains, string/number/boolean literals, `|` pipes and
/// parentheses, `if`/`else if`/`else`/`end`, and the built-ins `index`, `len`, `not`, `and`, `or`,
/// `eq`, `ne`, `print`, `urlquery`, `js` and `html`, plus one of its own, `json` (a value as JSON,
/// quotes and escapes included, for payloads). Anything else (`range`, `with`, variables,
/// `printf`, `define`) is refused when the file is read, never half-run at send time.
///
/// Values print as Go prints them, except where Go's output would corrupt a request: a number
/// prints as JSON writes it (`1000000`, where Go prints `1e+06`), an object or list as compact
/// JSON (where Go prints `map[…]`). A key the event lacks, or one whose value is null, prints
/// `<no value>` as Go's default prints it (Keptn's engine sets no `missingkey` option); a field of
/// such a value fails the request with Go's message.
public struct WebhookTemplate: Sendable, Equatable {
    public struct Failure: Error, Sendable, Equatable, CustomStringConvertible {
        public var message: String
        public init(_ message: String) { self.message = message }
        public var description: String { message }
    }

    public let source: String
    let nodes: [Node]

    public init(_ source: String) throws(Failure) {
        self.source = source
        var parser = Parser(source: Array(source.unicodeScalars))
        nodes = try parser.parseAll()
    }

    /// The text with every action evaluated against `data`.
    public func render(_ data: JSONValue) throws(Failure) -> String {
        var out = ""
        try Evaluator(root: data).run(nodes, into: &out)
        return out
    }

    /// Every form a value takes when a template writes it through a function (as is, `urlquery`,
    /// `js`, `html`, `json`'s quoted string without its quotes): what masking a secret must find.
    public static func writtenForms(of value: String) -> [String] {
        let json = Evaluator.json(.string(value))
        return [value, Evaluator.queryEscaped(value), Evaluator.jsEscaped(value), Evaluator.htmlEscaped(value), String(json.dropFirst().dropLast())]
    }

    /// Whether the text holds no action: it renders to itself.
    public var isLiteral: Bool { nodes.allSatisfy { if case .text = $0 { true } else { false } } }

    /// The field chains the template reads (for lint: `.env.NAME` must name a secret).
    public var fieldChains: [[String]] {
        var chains: [[String]] = []
        func walk(_ pipeline: Pipeline) {
            for command in pipeline.commands {
                for operand in command.operands {
                    switch operand {
                    case .field(let chain): chains.append(chain)
                    case .pipeline(let inner): walk(inner)
                    default: break
                    }
                }
            }
        }
        func walk(_ nodes: [Node]) {
            for node in nodes {
                switch node {
                case .text: break
                case .action(let pipeline): walk(pipeline)
                case .conditional(let branches, let otherwise):
                    for branch in branches {
                        walk(branch.condition)
                        walk(branch.body)
                    }
                    walk(otherwise)
                }
            }
        }
        walk(nodes)
        return chains
    }

    // MARK: The tree

    indirect enum Node: Sendable, Equatable {
        case text(String)
        case action(Pipeline)
        case conditional([Branch], otherwise: [Node])
    }

    struct Branch: Sendable, Equatable {
        var condition: Pipeline
        var body: [Node]
    }

    struct Pipeline: Sendable, Equatable {
        var commands: [Command]
    }

    struct Command: Sendable, Equatable {
        var operands: [Operand]
    }

    indirect enum Operand: Sendable, Equatable {
        case field([String])  // [] is the dot itself
        case literal(JSONValue)
        case function(String)
        case pipeline(Pipeline)
    }

    static let functions: Set<String> = ["index", "len", "not", "and", "or", "eq", "ne", "print", "urlquery", "js", "html", "json"]
}

// MARK: Parsing

extension WebhookTemplate {
    private enum Token: Equatable {
        case field([String])
        case literal(JSONValue)
        case identifier(String)
        case pipe, open, close
    }

    /// What one `{{ … }}` holds.
    private enum Action {
        case pipeline(Pipeline)
        case ifStart(Pipeline)
        case elseIf(Pipeline)
        case otherwise
        case end
        case comment
    }

    private struct Parser {
        let source: [Unicode.Scalar]
        var position = 0

        init(source: [Unicode.Scalar]) { self.source = source }

        /// Where a run of nodes stopped, short of the end of the text.
        private enum Stop {
            case otherwise, elseIf(Pipeline), end

            var word: String {
                switch self {
                case .otherwise: "else"
                case .elseIf: "else if"
                case .end: "end"
                }
            }
        }

        mutating func parseAll() throws(Failure) -> [Node] {
            let (nodes, stop) = try parseNodes()
            if let stop { throw Failure("{{\(stop.word)}} without an {{if}} before it") }
            return nodes
        }

        /// Nodes up to the end of the text or to an `else`/`end`, which it returns.
        private mutating func parseNodes() throws(Failure) -> ([Node], Stop?) {
            var nodes: [Node] = []
            while position < source.count {
                guard let open = find("{{", from: position) else {
                    nodes.append(.text(String(String.UnicodeScalarView(source[position...]))))
                    position = source.count
                    break
                }
                var text = String(String.UnicodeScalarView(source[position..<open]))
                var start = open + 2
                if start + 1 < source.count, source[start] == "-", source[start + 1].properties.isWhitespace {
                    while let last = text.unicodeScalars.last, last.properties.isWhitespace { text.unicodeScalars.removeLast() }
                    start += 2
                }
                if !text.isEmpty { nodes.append(.text(text)) }
                guard let close = find("}}", from: start) else {
                    throw Failure("the action at character \(open + 1) has no closing }}")
                }
                var end = close
                var trimAfter = false
                if end - 2 >= start, source[end - 1] == "-", source[end - 2].properties.isWhitespace {
                    end -= 2
                    trimAfter = true
                }
                position = close + 2
                let action = try Self.action(Array(source[start..<end]), at: open + 1)
                if trimAfter {
                    while position < source.count, source[position].properties.isWhitespace { position += 1 }
                }
                switch action {
                case .comment: continue
                case .pipeline(let pipeline): nodes.append(.action(pipeline))
                case .ifStart(let condition): nodes.append(try parseConditional(condition, openedAt: open + 1))
                case .elseIf(let condition): return (nodes, .elseIf(condition))
                case .otherwise: return (nodes, .otherwise)
                case .end: return (nodes, .end)
                }
            }
            return (nodes, nil)
        }

        /// The rest of an `if`: its branches up to `end`.
        private mutating func parseConditional(_ first: Pipeline, openedAt: Int) throws(Failure) -> Node {
            var branches: [Branch] = []
            var condition = first
            while true {
                let (body, stop) = try parseNodes()
                branches.append(Branch(condition: condition, body: body))
                switch stop {
                case nil:
                    throw Failure("the {{if}} at character \(openedAt) has no {{end}}")
                case .end?:
                    return .conditional(branches, otherwise: [])
                case .elseIf(let next)?:
                    condition = next
                case .otherwise?:
                    let (otherwise, last) = try parseNodes()
                    guard case .end? = last else { throw Failure("the {{if}} at character \(openedAt) needs {{end}} after its {{else}}") }
                    return .conditional(branches, otherwise: otherwise)
                }
            }
        }

        private func find(_ marker: String, from: Int) -> Int? {
            let m = Array(marker.unicodeScalars)
            var i = from
            while i + m.count <= source.count {
                if source[i] == m[0], source[i + 1] == m[1] { return i }
                i += 1
            }
            return nil
        }

        private static func action(_ inner: [Unicode.Scalar], at offset: Int) throws(Failure) -> Action {
            let text = String(String.UnicodeScalarView(inner)).trimmingCharacters(in: .whitespaces)
            if text.hasPrefix("/*") {
                guard text.hasSuffix("*/"), text.count >= 4 else { throw Failure("the comment at character \(offset) must end with */ just before }}") }
                return .comment
            }
            var tokens = try tokenize(inner, at: offset)
            guard let first = tokens.first else { throw Failure("the action at character \(offset) is empty") }
            if case .identifier(let word) = first {
                switch word {
                case "if":
                    tokens.removeFirst()
                    return .ifStart(try pipeline(tokens, at: offset, what: "{{if}}"))
                case "else":
                    tokens.removeFirst()
                    if tokens.isEmpty { return .otherwise }
                    guard tokens.first == .identifier("if") else { throw Failure("{{else}} at character \(offset) takes nothing after it but if") }
                    tokens.removeFirst()
                    return .elseIf(try pipeline(tokens, at: offset, what: "{{else if}}"))
                case "end":
                    guard tokens.count == 1 else { throw Failure("{{end}} at character \(offset) takes nothing after it") }
                    return .end
                case "range", "with", "define", "template", "block", "break", "continue":
                    throw Failure("{{\(word)}} at character \(offset) is not supported in webhook templates (they take field paths such as {{.data.project}}, if/else, and the functions \(WebhookTemplate.functions.sorted().joined(separator: ", ")))")
                default: break
                }
            }
            return .pipeline(try pipeline(tokens, at: offset, what: "the action"))
        }

        private static func pipeline(_ tokens: [Token], at offset: Int, what: String) throws(Failure) -> Pipeline {
            var index = 0
            let result = try pipeline(tokens, &index, at: offset, what: what)
            if index < tokens.count { throw Failure("\(what) at character \(offset) has an unmatched )") }
            return result
        }

        private static func pipeline(_ tokens: [Token], _ index: inout Int, at offset: Int, what: String) throws(Failure) -> Pipeline {
            var commands: [Command] = []
            var operands: [Operand] = []
            while index < tokens.count {
                let token = tokens[index]
                index += 1
                switch token {
                case .field(let chain): operands.append(.field(chain))
                case .literal(let value): operands.append(.literal(value))
                case .identifier(let name):
                    guard WebhookTemplate.functions.contains(name) else {
                        throw Failure("\"\(name)\" at character \(offset) is not a function webhook templates know (they have \(WebhookTemplate.functions.sorted().joined(separator: ", ")))")
                    }
                    operands.append(.function(name))
                case .open:
                    let inner = try pipeline(tokens, &index, at: offset, what: what)
                    guard index <= tokens.count, index > 0, tokens[index - 1] == .close else {
                        throw Failure("\(what) at character \(offset) has an unclosed (")
                    }
                    operands.append(.pipeline(inner))
                case .close:
                    guard !operands.isEmpty else { throw Failure("\(what) at character \(offset) has an empty command") }
                    commands.append(Command(operands: operands))
                    return Pipeline(commands: commands)
                case .pipe:
                    guard !operands.isEmpty else { throw Failure("\(what) at character \(offset) has | with nothing before it") }
                    commands.append(Command(operands: operands))
                    operands = []
                }
            }
            guard !operands.isEmpty else { throw Failure("\(what) at character \(offset) is empty or ends with |") }
            commands.append(Command(operands: operands))
            for (i, command) in commands.enumerated() {
                if i > 0, case .function = command.operands[0] {} else if i > 0 {
                    throw Failure("\(what) at character \(offset) pipes into something that is not a function")
                }
                if command.operands.count > 1, case .function = command.operands[0] {} else if command.operands.count > 1 {
                    throw Failure("\(what) at character \(offset) gives arguments to something that is not a function")
                }
            }
            return Pipeline(commands: commands)
        }

        private static func tokenize(_ s: [Unicode.Scalar], at offset: Int) throws(Failure) -> [Token] {
            var tokens: [Token] = []
            var i = 0
            func isIdentifier(_ c: Unicode.Scalar) -> Bool { c == "_" || c.properties.isAlphabetic || ("0"..."9").contains(c) }
            while i < s.count {
                let c = s[i]
                if c.properties.isWhitespace {
                    i += 1
                } else if c == "|" {
                    tokens.append(.pipe)
                    i += 1
                } else if c == "(" {
                    tokens.append(.open)
                    i += 1
                } else if c == ")" {
                    tokens.append(.close)
                    i += 1
                } else if c == "." {
                    var chain: [String] = []
                    while i < s.count, s[i] == "." {
                        i += 1
                        var name = ""
                        while i < s.count, isIdentifier(s[i]) {
                            name.unicodeScalars.append(s[i])
                            i += 1
                        }
                        if name.isEmpty {
                            if chain.isEmpty, i >= s.count || !isIdentifier(s[i]) { break }
                            throw Failure("a field name is missing after a dot at character \(offset)")
                        }
                        chain.append(name)
                    }
                    tokens.append(.field(chain))
                } else if c == "\"" {
                    var j = i + 1
                    var text = ""
                    var closed = false
                    while j < s.count {
                        if s[j] == "\"" { closed = true; break }
                        if s[j] == "\\", j + 1 < s.count {
                            j += 1
                            switch s[j] {
                            case "n": text += "\n"
                            case "t": text += "\t"
                            case "r": text += "\r"
                            case "\\": text += "\\"
                            case "\"": text += "\""
                            default: throw Failure("the string at character \(offset) has an escape Go's templates read differently; write the character itself")
                            }
                        } else {
                            text.unicodeScalars.append(s[j])
                        }
                        j += 1
                    }
                    guard closed else { throw Failure("a string in the action at character \(offset) has no closing quote") }
                    tokens.append(.literal(.string(text)))
                    i = j + 1
                } else if c == "`" {
                    guard let end = s[(i + 1)...].firstIndex(of: "`") else { throw Failure("a raw string in the action at character \(offset) has no closing `") }
                    tokens.append(.literal(.string(String(String.UnicodeScalarView(s[(i + 1)..<end])))))
                    i = end + 1
                } else if c == "-" || c == "+" || ("0"..."9").contains(c) {
                    var j = i + 1
                    while j < s.count, ("0"..."9").contains(s[j]) || s[j] == "." || s[j] == "e" || s[j] == "E" { j += 1 }
                    let text = String(String.UnicodeScalarView(s[i..<j]))
                    guard let number = Double(text) else { throw Failure("\"\(text)\" at character \(offset) is not a number") }
                    tokens.append(.literal(.number(number)))
                    i = j
                } else if c == "$" {
                    throw Failure("variables ($) at character \(offset) are not supported in webhook templates; use the field path, such as {{.data.project}}")
                } else if isIdentifier(c) {
                    var j = i
                    var word = ""
                    while j < s.count, isIdentifier(s[j]) {
                        word.unicodeScalars.append(s[j])
                        j += 1
                    }
                    switch word {
                    case "true": tokens.append(.literal(.bool(true)))
                    case "false": tokens.append(.literal(.bool(false)))
                    case "nil": tokens.append(.literal(.null))
                    default: tokens.append(.identifier(word))
                    }
                    i = j
                } else {
                    throw Failure("unexpected \"\(Character(c))\" in the action at character \(offset)")
                }
            }
            return tokens
        }
    }
}

// MARK: Evaluating

extension WebhookTemplate {
    private struct Evaluator {
        let root: JSONValue

        func run(_ nodes: [Node], into out: inout String) throws(Failure) {
            for node in nodes {
                switch node {
                case .text(let text): out += text
                case .action(let pipeline): out += Self.printed(try evaluate(pipeline))
                case .conditional(let branches, let otherwise):
                    var taken = false
                    for branch in branches where Self.truth(try evaluate(branch.condition)) {
                        try run(branch.body, into: &out)
                        taken = true
                        break
                    }
                    if !taken { try run(otherwise, into: &out) }
                }
            }
        }

        func evaluate(_ pipeline: Pipeline) throws(Failure) -> JSONValue {
            var piped: JSONValue?
            for command in pipeline.commands {
                piped = try evaluate(command, piped: piped)
            }
            return piped ?? .null
        }

        private func evaluate(_ command: Command, piped: JSONValue?) throws(Failure) -> JSONValue {
            guard case .function(let name) = command.operands[0] else {
                return try value(command.operands[0])
            }
            if name == "and" || name == "or" {
                // Go stops at the first argument that decides (a later one is never evaluated).
                let operands = Array(command.operands.dropFirst())
                guard !operands.isEmpty || piped != nil else { throw Failure("\(name) takes at least one argument") }
                var last: JSONValue = .null
                for operand in operands {
                    last = try value(operand)
                    if Self.truth(last) == (name == "or") { return last }
                }
                if let piped { last = piped }
                return last
            }
            var arguments: [JSONValue] = []
            for operand in command.operands.dropFirst() { arguments.append(try value(operand)) }
            if let piped { arguments.append(piped) }
            return try call(name, arguments)
        }

        private func value(_ operand: Operand) throws(Failure) -> JSONValue {
            switch operand {
            case .literal(let value): return value
            case .pipeline(let inner): return try evaluate(inner)
            case .function(let name): return try call(name, [])
            case .field(let chain):
                var current = root
                for (depth, name) in chain.enumerated() {
                    switch current {
                    case .object(let fields):
                        // Go's default, as Keptn runs it: a key the map lacks is no value (printed
                        // <no value>); a field of it is an error.
                        current = fields[name] ?? .null
                    case .null:
                        throw Failure("nil pointer evaluating .\(chain.prefix(depth + 1).joined(separator: ".")): .\(chain.prefix(depth).joined(separator: ".")) is null")
                    default:
                        throw Failure("can't evaluate field \(name) in .\(chain.prefix(depth).joined(separator: ".")), which is \(Self.kind(current))")
                    }
                }
                return current
            }
        }

        private func call(_ name: String, _ arguments: [JSONValue]) throws(Failure) -> JSONValue {
            func want(_ count: Int) throws(Failure) {
                guard arguments.count == count else { throw Failure("\(name) takes \(count) argument\(count == 1 ? "" : "s"), not \(arguments.count)") }
            }
            switch name {
            case "index":
                guard var current = arguments.first else { throw Failure("index takes a value and at least one key") }
                for key in arguments.dropFirst() {
                    switch (current, key) {
                    case (.object(let fields), .string(let k)): current = fields[k] ?? .null
                    case (.array(let items), .number(let n)):
                        guard n >= 0, n.rounded() == n, n < Double(items.count) else { throw Failure("index out of range: \(Self.printed(key))") }
                        current = items[Int(n)]
                    case (.null, _): throw Failure("index of a null value")
                    default: throw Failure("can't index \(Self.kind(current)) with \(Self.kind(key))")
                    }
                }
                return current
            case "len":
                try want(1)
                switch arguments[0] {
                case .string(let s): return .number(Double(s.utf8.count))
                case .array(let a): return .number(Double(a.count))
                case .object(let o): return .number(Double(o.count))
                default: throw Failure("len of \(Self.kind(arguments[0]))")
                }
            case "not":
                try want(1)
                return .bool(!Self.truth(arguments[0]))
            case "and", "or":
                guard !arguments.isEmpty else { throw Failure("\(name) takes at least one argument") }
                for argument in arguments.dropLast() where Self.truth(argument) == (name == "or") { return argument }
                return arguments.last!
            case "eq", "ne":
                guard arguments.count >= 2 else { throw Failure("\(name) takes at least two arguments") }
                var equal = false
                for other in arguments.dropFirst() {
                    switch (arguments[0], other) {
                    case (.string, .string), (.number, .number), (.bool, .bool), (.null, _), (_, .null): break
                    default: throw Failure("incompatible types for comparison: \(Self.kind(arguments[0])) and \(Self.kind(other))")
                    }
                    if arguments[0] == other { equal = true }
                }
                return .bool(name == "eq" ? equal : !equal)
            case "print": return .string(Self.sprint(arguments))
            case "urlquery": return .string(Self.queryEscaped(Self.sprint(arguments)))
            case "js": return .string(Self.jsEscaped(Self.sprint(arguments)))
            case "html": return .string(Self.htmlEscaped(Self.sprint(arguments)))
            case "json":
                try want(1)
                return .string(Self.json(arguments[0]))
            default: throw Failure("\(name) is not a function")
            }
        }

        static func truth(_ value: JSONValue) -> Bool {
            switch value {
            case .null: false
            case .bool(let b): b
            case .number(let n): n != 0
            case .string(let s): !s.isEmpty
            case .array(let a): !a.isEmpty
            case .object(let o): !o.isEmpty
            }
        }

        static func kind(_ value: JSONValue) -> String {
            switch value {
            case .null: "null"
            case .bool: "a boolean"
            case .number: "a number"
            case .string: "a string"
            case .array: "a list"
            case .object: "an object"
            }
        }

        static func json(_ value: JSONValue) -> String {
            let encoder = JSONEncoder()
            encoder.outputFormatting = [.sortedKeys, .withoutEscapingSlashes]
            return (try? String(decoding: encoder.encode(value), as: UTF8.self)) ?? "null"
        }

        static func printed(_ value: JSONValue) -> String {
            switch value {
            case .null: "<no value>"
            case .string(let s): s
            case .bool(let b): b ? "true" : "false"
            case .number, .array, .object: json(value)
            }
        }

        /// Go's fmt.Sprint: a space between two operands when neither is a string.
        static func sprint(_ values: [JSONValue]) -> String {
            var out = ""
            for (i, value) in values.enumerated() {
                if i > 0, values[i - 1].string == nil, value.string == nil { out += " " }
                out += printed(value)
            }
            return out
        }

        /// Go's url.QueryEscape.
        static func queryEscaped(_ text: String) -> String {
            var out = ""
            for byte in text.utf8 {
                switch byte {
                case UInt8(ascii: "a")...UInt8(ascii: "z"), UInt8(ascii: "A")...UInt8(ascii: "Z"), UInt8(ascii: "0")...UInt8(ascii: "9"),
                    UInt8(ascii: "-"), UInt8(ascii: "_"), UInt8(ascii: "."), UInt8(ascii: "~"):
                    out.unicodeScalars.append(Unicode.Scalar(byte))
                case UInt8(ascii: " "): out += "+"
                default: out += String(format: "%%%02X", byte)
                }
            }
            return out
        }

        /// Go's template.JSEscapeString.
        static func jsEscaped(_ text: String) -> String {
            var out = ""
            for scalar in text.unicodeScalars {
                switch scalar {
                case "\\": out += "\\\\"
                case "'": out += "\\'"
                case "\"": out += "\\\""
                case "<": out += "\\u003C"
                case ">": out += "\\u003E"
                case "&": out += "\\u0026"
                case "=": out += "\\u003D"
                default:
                    if scalar.value < 0x20 { out += String(format: "\\u%04X", scalar.value) } else { out.unicodeScalars.append(scalar) }
                }
            }
            return out
        }

        /// Go's template.HTMLEscapeString.
        static func htmlEscaped(_ text: String) -> String {
            var out = ""
            for scalar in text.unicodeScalars {
                switch scalar {
                case "\"": out += "&#34;"
                case "'": out += "&#39;"
                case "&": out += "&amp;"
                case "<": out += "&lt;"
                case ">": out += "&gt;"
                case "\0": out += "\u{FFFD}"
                default: out.unicodeScalars.append(scalar)
                }
            }
            return out
        }
    }
}
