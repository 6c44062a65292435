import Foundation

/// Any JSON value: event payloads, task properties, merged task data.
public enum JSONValue: Sendable, Hashable, Codable {
    case null
    case bool(Bool)
    case number(Double)
    case string(String)
    case array([JSONValue])
    case object([String: JSONValue])

    public init(from decoder: any Decoder) throws {
        let container = try decoder.singleValueContainer()
        if container.decodeNil() {
            self = .null
        } else if let b = try? container.decode(Bool.self) {
            self = .bool(b)
        } else if let n = try? container.decode(Double.self) {
            self = .number(n)
        } else if let s = try? container.decode(String.self) {
            self = .string(s)
        } else if let a = try? container.decode([JSONValue].self) {
            self = .array(a)
        } else {
            self = .object(try container.decode([String: JSONValue].self))
        }
    }

    public func encode(to encoder: any Encoder) throws {
        var container = encoder.singleValueContainer()
        switch self {
        case .null: try container.encodeNil()
        case .bool(let b): try container.encode(b)
        case .number(let n):
            if n.rounded() == n, abs(n) < 1e15 { try container.encode(Int64(n)) } else { try container.encode(n) }
        case .string(let s): try container.encode(s)
        case .array(let a): try container.encode(a)
        case .object(let o): try container.encode(o)
        }
    }

    public subscript(key: String) -> JSONValue? {
        get {
            if case .object(let o) = self { return o[key] }
            return nil
        }
        set {
            guard case .object(var o) = self else { return }
            o[key] = newValue
            self = .object(o)
        }
    }

    public var string: String? {
        if case .string(let s) = self { return s }
        return nil
    }

    public var object: [String: JSONValue]? {
        if case .object(let o) = self { return o }
        return nil
    }

    public var array: [JSONValue]? {
        if case .array(let a) = self { return a }
        return nil
    }

    public var bool: Bool? {
        if case .bool(let b) = self { return b }
        return nil
    }

    public var number: Double? {
        if case .number(let n) = self { return n }
        return nil
    }

    /// The value as compact JSON, at most 120 characters, for messages.
    public var compactDescription: String {
        let text = (try? String(decoding: JSONEncoder().encode(self), as: UTF8.self)) ?? "?"
        return text.count > 120 ? text.prefix(117) + "..." : text
    }

    /// Keptn's deep merge (shipyard-controller `common.Merge`) of newer data into this: objects
    /// merge key by key, arrays are joined with the newer entries first (keptn#7627), a null
    /// changes nothing, and any other newer value replaces the older one (Keptn's code keeps the
    /// older number or boolean, a quirk its own pull request called a bug; strings it replaces).
    public func merging(_ other: JSONValue) -> JSONValue {
        switch (self, other) {
        case (_, .null):
            return self
        case (.array(let older), .array(let newer)):
            return .array(newer + older)
        case (.object(var mine), .object(let theirs)):
            for (key, value) in theirs {
                mine[key] = mine[key].map { $0.merging(value) } ?? value
            }
            return .object(mine)
        default:
            return other
        }
    }

    /// A YAML tree as JSON, with scalars resolved by YAML's core schema.
    public init(_ node: YAMLNode) {
        switch node.content {
        case .scalar(let scalar):
            switch scalar.resolved {
            case .null: self = .null
            case .bool(let b): self = .bool(b)
            case .int(let i): self = .number(Double(i))
            case .float(let f): self = f.isFinite ? .number(f) : .string(scalar.text)
            case .string(let s): self = .string(s)
            }
        case .sequence(let items): self = .array(items.map(JSONValue.init))
        case .mapping(let pairs):
            var object: [String: JSONValue] = [:]
            for pair in pairs { object[pair.key.scalar?.text ?? ""] = JSONValue(pair.value) }
            self = .object(object)
        }
    }
}
