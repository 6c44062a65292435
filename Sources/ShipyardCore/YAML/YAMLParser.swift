import CYAML

/// Why a YAML document could not be read, and where.
public struct YAMLError: Error, Sendable, Equatable, CustomStringConvertible {
    public var message: String
    public var mark: SourceMark

    public init(_ message: String, at mark: SourceMark) {
        self.message = message
        self.mark = mark
    }

    public var description: String { "\(mark): \(message)" }
}

/// Reads one YAML document into a `YAMLNode` tree with libyaml's event parser.
///
/// The parser is hardened for files that come from a Git push rather than from a trusted author:
/// the input must be UTF-8, nesting depth and both the node count and the text's size after alias
/// expansion are bounded (a "billion laughs" file, or one long string aliased ten thousand times,
/// fails while it is read instead of exhausting memory wherever the tree is later copied out as
/// JSON, a query or a record), duplicate keys are refused,
/// and the tree is built with an explicit stack, so no input can overflow the call stack.
public struct YAMLParser: Sendable {
    public struct Limits: Sendable {
        /// Deepest nesting of lists and mappings.
        public var maxDepth: Int
        /// Most nodes the document may stand for once every alias is expanded.
        public var maxNodes: Int
        /// Largest input, in bytes.
        public var maxBytes: Int
        /// Most bytes of text (every scalar, keys included) the document may stand for once every
        /// alias is expanded: what copying it out as JSON or text can cost.
        public var maxExpandedBytes: Int

        public init(maxDepth: Int = 64, maxNodes: Int = 100_000, maxBytes: Int = 4 << 20, maxExpandedBytes: Int = 4 << 20) {
            self.maxDepth = maxDepth
            self.maxNodes = maxNodes
            self.maxBytes = maxBytes
            self.maxExpandedBytes = maxExpandedBytes
        }
    }

    public var limits: Limits

    public init(limits: Limits = Limits()) {
        self.limits = limits
    }

    /// Parses a single-document YAML stream. Returns nil when the input holds no document at all
    /// (empty, or only comments); throws a `YAMLError` pointing at the problem otherwise.
    public func parse(_ bytes: some Collection<UInt8>) throws(YAMLError) -> YAMLNode? {
        var input = Array(bytes)
        guard input.count <= limits.maxBytes else {
            throw YAMLError("the file is \(input.count) bytes; the limit is \(limits.maxBytes) bytes", at: .start)
        }
        try TextCheck.requireUTF8(&input)
        return try input.withUnsafeBufferPointer { buffer throws(YAMLError) in
            var builder = TreeBuilder(limits: limits, input: buffer)
            return try builder.run()
        }
    }

    public func parse(_ text: String) throws(YAMLError) -> YAMLNode? {
        try parse(Array(text.utf8))
    }
}

/// Checks done on the raw bytes before libyaml sees them.
enum TextCheck {
    /// Refuses anything but UTF-8 and drops a UTF-8 byte-order mark, so that columns stay right.
    static func requireUTF8(_ bytes: inout [UInt8]) throws(YAMLError) {
        if bytes.starts(with: [0xFF, 0xFE]) || bytes.starts(with: [0xFE, 0xFF]) {
            throw YAMLError(
                "the file is UTF-16; save it as UTF-8 (for example: iconv -f UTF-16 -t UTF-8)", at: .start)
        }
        if bytes.starts(with: [0xEF, 0xBB, 0xBF]) {
            bytes.removeFirst(3)
        }
        if let bad = firstInvalidUTF8Offset(bytes) {
            let byte = String(bytes[bad], radix: 16, uppercase: true)
            throw YAMLError(
                "the file is not valid UTF-8 (byte 0x\(byte.count == 1 ? "0" + byte : byte)); save it as UTF-8 text",
                at: mark(ofOffset: bad, in: bytes))
        }
    }

    /// The offset of the first byte that breaks UTF-8's rules (overlongs and surrogates included).
    static func firstInvalidUTF8Offset(_ b: [UInt8]) -> Int? {
        var i = 0
        let n = b.count
        while i < n {
            let c = b[i]
            if c < 0x80 {
                i += 1
                continue
            }
            let length: Int
            var lower: UInt8 = 0x80
            var upper: UInt8 = 0xBF
            switch c {
            case 0xC2...0xDF: length = 2
            case 0xE0: length = 3; lower = 0xA0
            case 0xE1...0xEC, 0xEE...0xEF: length = 3
            case 0xED: length = 3; upper = 0x9F
            case 0xF0: length = 4; lower = 0x90
            case 0xF1...0xF3: length = 4
            case 0xF4: length = 4; upper = 0x8F
            default: return i
            }
            guard i + length <= n else { return i }
            if b[i + 1] < lower || b[i + 1] > upper { return i }
            for k in 2..<length where b[i + k] & 0xC0 != 0x80 {
                return i
            }
            i += length
        }
        return nil
    }

    /// Line and column (in characters, as libyaml counts them) of a byte offset.
    static func mark(ofOffset offset: Int, in bytes: some Collection<UInt8>) -> SourceMark {
        var line = 1
        var column = 1
        var previous: UInt8 = 0
        for (i, byte) in bytes.enumerated() {
            if i >= offset { break }
            if byte == 0x0A {
                if previous != 0x0D { line += 1 }
                column = 1
            } else if byte == 0x0D {
                line += 1
                column = 1
            } else if byte & 0xC0 != 0x80 {
                column += 1
            }
            previous = byte
        }
        return SourceMark(line: line, column: column)
    }
}

/// Turns libyaml's events into a tree, one event at a time, with an explicit stack.
private struct TreeBuilder {
    let limits: YAMLParser.Limits
    let input: UnsafeBufferPointer<UInt8>

    /// What a node stands for once its aliases are expanded: nodes, and bytes of text.
    private struct Weight {
        var nodes: Int
        var bytes: Int

        static func + (a: Weight, b: Weight) -> Weight { Weight(nodes: a.nodes + b.nodes, bytes: a.bytes + b.bytes) }
        static let collection = Weight(nodes: 1, bytes: 1)
    }

    private enum Frame {
        case sequence(items: [YAMLNode], mark: SourceMark, anchor: String?, weight: Weight)
        case mapping(Mapping)
    }

    private struct Mapping {
        var pairs: [YAMLPair] = []
        var pendingKey: YAMLNode?
        var keys: [String: SourceMark] = [:]
        var merges: [YAMLNode] = []
        var mark: SourceMark
        var anchor: String?
        var weight = Weight.collection
    }

    private struct Anchored {
        var node: YAMLNode
        var weight: Weight
    }

    private var stack: [Frame] = []
    private var anchors: [String: Anchored] = [:]
    private var openAnchors: Set<String> = []
    private var expanded = Weight(nodes: 0, bytes: 0)
    private var document: YAMLNode?
    private var documentCount = 0

    init(limits: YAMLParser.Limits, input: UnsafeBufferPointer<UInt8>) {
        self.limits = limits
        self.input = input
    }

    mutating func run() throws(YAMLError) -> YAMLNode? {
        var parser = yaml_parser_t()
        guard yaml_parser_initialize(&parser) == 1 else {
            throw YAMLError("libyaml could not allocate a parser", at: .start)
        }
        defer { yaml_parser_delete(&parser) }
        yaml_parser_set_encoding(&parser, YAML_UTF8_ENCODING)
        if let base = input.baseAddress {
            yaml_parser_set_input_string(&parser, base, input.count)
        } else {
            var empty: UInt8 = 0
            yaml_parser_set_input_string(&parser, &empty, 0)
        }

        while true {
            var event = yaml_event_t()
            guard yaml_parser_parse(&parser, &event) == 1 else {
                throw libyamlError(parser)
            }
            defer { yaml_event_delete(&event) }
            if event.type == YAML_STREAM_END_EVENT { break }
            try handle(event)
        }
        return document
    }

    private mutating func handle(_ event: yaml_event_t) throws(YAMLError) {
        let mark = SourceMark(line: Int(event.start_mark.line) + 1, column: Int(event.start_mark.column) + 1)
        switch event.type {
        case YAML_DOCUMENT_START_EVENT:
            documentCount += 1
            if documentCount > 1 {
                throw YAMLError("a second YAML document starts here; this file must hold exactly one", at: mark)
            }
        case YAML_SCALAR_EVENT:
            let data = event.data.scalar
            let tag = try standardTag(data.tag, at: mark, quoted: data.quoted_implicit == 1 && data.plain_implicit == 0)
            let text = string(data.value, length: data.length) ?? ""
            let scalar = YAMLScalar(text, style: style(data.style), tag: tag)
            try complete(YAMLNode(.scalar(scalar), at: mark), weight: Weight(nodes: 1, bytes: 1 + data.length), anchor: string(data.anchor))
        case YAML_ALIAS_EVENT:
            let name = string(event.data.alias.anchor) ?? ""
            guard let target = anchors[name] else {
                if openAnchors.contains(name) {
                    throw YAMLError("alias *\(name) refers to a node that contains it", at: mark)
                }
                throw YAMLError("alias *\(name) refers to no anchor &\(name) defined before it", at: mark)
            }
            var node = target.node
            node.mark = mark
            try complete(node, weight: target.weight, anchor: nil)
        case YAML_SEQUENCE_START_EVENT:
            try collectionTag(event.data.sequence_start.tag, expected: "seq", at: mark)
            let anchor = string(event.data.sequence_start.anchor)
            try push(.sequence(items: [], mark: mark, anchor: anchor, weight: .collection), anchor: anchor, at: mark)
        case YAML_MAPPING_START_EVENT:
            try collectionTag(event.data.mapping_start.tag, expected: "map", at: mark)
            let anchor = string(event.data.mapping_start.anchor)
            try push(.mapping(Mapping(mark: mark, anchor: anchor)), anchor: anchor, at: mark)
        case YAML_SEQUENCE_END_EVENT, YAML_MAPPING_END_EVENT:
            guard let frame = stack.popLast() else { return }
            switch frame {
            case .sequence(let items, let start, let anchor, let weight):
                if let anchor { openAnchors.remove(anchor) }
                try complete(YAMLNode(.sequence(items), at: start), weight: weight, anchor: anchor, counted: true)
            case .mapping(let m):
                if let anchor = m.anchor { openAnchors.remove(anchor) }
                let pairs = try applyMerges(m)
                try complete(YAMLNode(.mapping(pairs), at: m.mark), weight: m.weight, anchor: m.anchor, counted: true)
            }
        default:
            break
        }
    }

    private mutating func push(_ frame: Frame, anchor: String?, at mark: SourceMark) throws(YAMLError) {
        guard stack.count < limits.maxDepth else {
            throw YAMLError("lists and mappings are nested more than \(limits.maxDepth) levels deep", at: mark)
        }
        try count(.collection, at: mark)
        if let anchor { openAnchors.insert(anchor) }
        stack.append(frame)
    }

    private mutating func count(_ weight: Weight, at mark: SourceMark) throws(YAMLError) {
        expanded = expanded + weight
        if expanded.nodes > limits.maxNodes {
            throw YAMLError(
                "the document expands to more than \(limits.maxNodes) nodes (aliases expanding into aliases?); it is refused",
                at: mark)
        }
        if expanded.bytes > limits.maxExpandedBytes {
            throw YAMLError(
                "the document expands to more than \(ByteCount.format(limits.maxExpandedBytes)) of text once its aliases are expanded "
                    + "(an alias of a long value, used many times?); it is refused",
                at: mark)
        }
    }

    /// Attaches a finished node to its parent. `counted` says the node's own weight was counted
    /// when it was opened, as collections are.
    private mutating func complete(_ node: YAMLNode, weight: Weight, anchor: String?, counted: Bool = false) throws(YAMLError) {
        if !counted { try count(weight, at: node.mark) }
        if let anchor { anchors[anchor] = Anchored(node: node, weight: weight) }
        guard let top = stack.popLast() else {
            document = node
            return
        }
        switch top {
        case .sequence(var items, let mark, let anchor, let total):
            items.append(node)
            stack.append(.sequence(items: items, mark: mark, anchor: anchor, weight: total + weight))
        case .mapping(var m):
            m.weight = m.weight + weight
            if let key = m.pendingKey {
                m.pendingKey = nil
                if key.scalar?.text == "<<", key.scalar?.style == .plain {
                    m.merges.append(node)
                } else {
                    m.pairs.append(YAMLPair(key: key, value: node))
                }
            } else {
                guard let scalar = node.scalar else {
                    throw YAMLError("a mapping key must be a plain value, not \(node.kindDescription)", at: node.mark)
                }
                if !(scalar.text == "<<" && scalar.style == .plain) {
                    if let first = m.keys[scalar.text] {
                        throw YAMLError(
                            "duplicate key \"\(scalar.text)\" (first written at line \(first.line)); remove one of them",
                            at: node.mark)
                    }
                    m.keys[scalar.text] = node.mark
                }
                m.pendingKey = node
            }
            stack.append(.mapping(m))
        }
    }

    /// YAML merge keys (`<<: *defaults`): the merged mappings' keys fill in what the mapping does
    /// not set itself; earlier merges win over later ones, as the merge-key spec says.
    private func applyMerges(_ m: Mapping) throws(YAMLError) -> [YAMLPair] {
        guard !m.merges.isEmpty else { return m.pairs }
        var pairs = m.pairs
        var seen = Set(m.keys.keys)
        for merge in m.merges {
            let sources: [YAMLNode]
            switch merge.content {
            case .mapping: sources = [merge]
            case .sequence(let items): sources = items
            case .scalar:
                throw YAMLError("a merge key (<<) takes a mapping or a list of mappings, not \(merge.kindDescription)", at: merge.mark)
            }
            for source in sources {
                guard let sourcePairs = source.mapping else {
                    throw YAMLError("a merge key (<<) takes a mapping or a list of mappings, not \(source.kindDescription)", at: source.mark)
                }
                for pair in sourcePairs {
                    guard let key = pair.key.scalar?.text, !seen.contains(key) else { continue }
                    seen.insert(key)
                    pairs.append(pair)
                }
            }
        }
        return pairs
    }

    private func standardTag(_ tag: UnsafeMutablePointer<yaml_char_t>?, at mark: SourceMark, quoted: Bool) throws(YAMLError) -> YAMLScalar.StandardTag? {
        guard let name = string(tag) else { return nil }
        if name == "!" { return .str }
        let prefix = "tag:yaml.org,2002:"
        if name.hasPrefix(prefix), let known = YAMLScalar.StandardTag(rawValue: String(name.dropFirst(prefix.count))) {
            return known
        }
        throw YAMLError("unsupported tag \(name); only YAML's standard tags (!!str, !!int, !!float, !!bool, !!null) are allowed", at: mark)
    }

    private func collectionTag(_ tag: UnsafeMutablePointer<yaml_char_t>?, expected: String, at mark: SourceMark) throws(YAMLError) {
        guard let name = string(tag), name != "!", name != "tag:yaml.org,2002:\(expected)" else { return }
        throw YAMLError("unsupported tag \(name) on a \(expected == "seq" ? "list" : "mapping")", at: mark)
    }

    private func style(_ style: yaml_scalar_style_t) -> YAMLScalar.Style {
        switch style {
        case YAML_SINGLE_QUOTED_SCALAR_STYLE: return .singleQuoted
        case YAML_DOUBLE_QUOTED_SCALAR_STYLE: return .doubleQuoted
        case YAML_LITERAL_SCALAR_STYLE: return .literal
        case YAML_FOLDED_SCALAR_STYLE: return .folded
        default: return .plain
        }
    }

    private func string(_ pointer: UnsafeMutablePointer<yaml_char_t>?, length: Int? = nil) -> String? {
        guard let pointer else { return nil }
        guard let length else { return String(cString: pointer) }
        return String(decoding: UnsafeBufferPointer(start: pointer, count: length), as: UTF8.self)
    }

    private func libyamlError(_ parser: yaml_parser_t) -> YAMLError {
        let problem = parser.problem.map { String(cString: $0) } ?? "libyaml ran out of memory"
        let context = parser.context.map { String(cString: $0) }
        let mark: SourceMark
        if parser.error == YAML_READER_ERROR {
            mark = TextCheck.mark(ofOffset: parser.problem_offset, in: input)
        } else {
            mark = SourceMark(line: parser.problem_mark.line + 1, column: parser.problem_mark.column + 1)
        }
        var message = "not valid YAML: \(problem)"
        if let context, parser.error != YAML_READER_ERROR {
            let where_ = SourceMark(line: parser.context_mark.line + 1, column: parser.context_mark.column + 1)
            message += " (\(context) at line \(where_.line), column \(where_.column))"
        }
        return YAMLError(message, at: mark)
    }
}
