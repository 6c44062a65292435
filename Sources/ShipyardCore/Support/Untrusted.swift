/// Text that came from a person or a repository (request files, file names, images, labels,
/// messages), made safe where it is shown, and checked where it has a grammar.
public enum Untrusted {
    /// One line's worth of `text` for a log line or a terminal cell: control characters (C0, DEL,
    /// C1), Unicode line and paragraph separators and bidirectional overrides become visible
    /// escapes (`\n`, `\x1b`, `\u{202e}`), so nothing can forge a log line, set a journald priority
    /// or hide text from a terminal; cut at `limit` characters.
    public static func printable(_ text: String, limit: Int = 512) -> String {
        var out = ""
        var count = 0
        for scalar in text.unicodeScalars {
            if count >= limit {
                out += "…"
                break
            }
            count += 1
            switch scalar.value {
            case 0x0A: out += "\\n"
            case 0x0D: out += "\\r"
            case 0x09: out += "\\t"
            case 0x00..<0x20, 0x7F, 0x80..<0xA0:
                out += "\\x" + String(scalar.value, radix: 16).leftPadded(to: 2)
            case 0x2028, 0x2029, 0x200E, 0x200F, 0x202A...0x202E, 0x2066...0x2069:
                out += "\\u{" + String(scalar.value, radix: 16) + "}"
            default:
                out.unicodeScalars.append(scalar)
            }
        }
        return out
    }

    /// Whether `reference` is an OCI image reference as the distribution spec's grammar has it:
    /// `[host[:port]/]path[:tag][@algorithm:hex]`, lowercase path components, at most 255
    /// characters in the name.
    public static func isImageReference(_ reference: String) -> Bool {
        guard !reference.isEmpty, reference.count <= 512, reference.unicodeScalars.allSatisfy({ $0.isASCII }) else { return false }
        var rest = Substring(reference)
        if let at = rest.firstIndex(of: "@") {
            guard isDigest(rest[rest.index(after: at)...]) else { return false }
            rest = rest[..<at]
        }
        // A tag follows the last ':' after the last '/'; a ':' before it is a registry's port.
        let lastSlash = rest.lastIndex(of: "/")
        if let colon = rest.lastIndex(of: ":"), lastSlash.map({ colon > $0 }) ?? true {
            guard isTag(rest[rest.index(after: colon)...]) else { return false }
            rest = rest[..<colon]
        }
        guard !rest.isEmpty, rest.count <= 255 else { return false }
        var components = rest.split(separator: "/", omittingEmptySubsequences: false)
        if components.count > 1, let first = components.first, isDomain(first) && (first.contains(".") || first.contains(":") || first == "localhost" || first.contains(where: { $0.isUppercase })) {
            components.removeFirst()
        }
        return !components.isEmpty && components.allSatisfy(isPathComponent)
    }

    /// Label keys: letters, digits, `_`, `.` and `-`, starting with a letter or digit, at most 63;
    /// values: at most 256 printable characters. Returns what is wrong, or nil.
    public static func labelProblem(key: String, value: String) -> String? {
        let keyScalars = Array(key.unicodeScalars)
        guard let first = keyScalars.first, keyScalars.count <= 63, isAlphanumeric(first),
            keyScalars.allSatisfy({ isAlphanumeric($0) || $0 == "_" || $0 == "." || $0 == "-" })
        else {
            return "label key \"\(printable(key, limit: 80))\" must be 1 to 63 letters, digits, '_', '.' or '-', starting with a letter or digit"
        }
        guard value.count <= 256, printable(value, limit: 257) == value else {
            return "label \(key)'s value must be at most 256 printable characters (no control characters)"
        }
        return nil
    }

    private static func isAlphanumeric(_ scalar: Unicode.Scalar) -> Bool {
        ("a"..."z").contains(scalar) || ("A"..."Z").contains(scalar) || ("0"..."9").contains(scalar)
    }

    private static func isLowerAlphanumeric(_ c: Character) -> Bool {
        ("a"..."z").contains(c) || ("0"..."9").contains(c)
    }

    /// `[a-z0-9]+(?:(?:[._]|__|[-]+)[a-z0-9]+)*`
    private static func isPathComponent(_ text: Substring) -> Bool {
        guard let first = text.first, let last = text.last, isLowerAlphanumeric(first), isLowerAlphanumeric(last) else { return false }
        var separator = ""
        for c in text {
            if isLowerAlphanumeric(c) {
                guard separator.isEmpty || separator == "." || separator == "_" || separator == "__" || separator.allSatisfy({ $0 == "-" }) else {
                    return false
                }
                separator = ""
            } else if c == "." || c == "_" || c == "-" {
                separator.append(c)
            } else {
                return false
            }
        }
        return true
    }

    /// A host name or IPv6 literal, with an optional port.
    private static func isDomain(_ text: Substring) -> Bool {
        var host = text
        if text.hasPrefix("[") {
            guard let close = text.firstIndex(of: "]") else { return false }
            let inside = text[text.index(after: text.startIndex)..<close]
            guard !inside.isEmpty, inside.allSatisfy({ $0.isHexDigit || $0 == ":" }) else { return false }
            host = text[text.index(after: close)...]
            if host.isEmpty { return true }
            guard host.hasPrefix(":") else { return false }
            let port = host.dropFirst()
            return !port.isEmpty && port.allSatisfy(\.isNumber)
        }
        if let colon = text.lastIndex(of: ":") {
            let port = text[text.index(after: colon)...]
            guard !port.isEmpty, port.allSatisfy({ $0.isASCII && $0.isNumber }) else { return false }
            host = text[..<colon]
        }
        return !host.isEmpty && host.split(separator: ".", omittingEmptySubsequences: false).allSatisfy { label in
            guard let first = label.first, let last = label.last, first.isLetter || first.isNumber, last.isLetter || last.isNumber else { return false }
            return label.allSatisfy { $0.isASCII && ($0.isLetter || $0.isNumber || $0 == "-") }
        }
    }

    /// `[\w][\w.-]{0,127}`
    private static func isTag(_ text: Substring) -> Bool {
        guard let first = text.first, text.count <= 128, first.isASCII, first.isLetter || first.isNumber || first == "_" else { return false }
        return text.allSatisfy { $0.isASCII && ($0.isLetter || $0.isNumber || $0 == "_" || $0 == "." || $0 == "-") }
    }

    /// `algorithm:hex`, the hex part at least 32 digits.
    private static func isDigest(_ text: Substring) -> Bool {
        guard let colon = text.firstIndex(of: ":") else { return false }
        let algorithm = text[..<colon], hex = text[text.index(after: colon)...]
        guard let first = algorithm.first, first.isLetter,
            algorithm.allSatisfy({ $0.isASCII && ($0.isLetter || $0.isNumber || "+._-".contains($0)) })
        else { return false }
        return hex.count >= 32 && hex.allSatisfy(\.isHexDigit)
    }
}

extension String {
    /// Zeros in front, up to `width` characters ("U+" + "200B").
    public func leftPadded(to width: Int) -> String {
        count >= width ? self : String(repeating: "0", count: width - count) + self
    }
}
