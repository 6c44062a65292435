import Foundation

/// A curl command line of a `v1alpha1` webhook (or the `options` of a `v1beta1` request), read
/// into the request it describes. Nothing here is ever given to a shell or to curl.
///
/// Words split as a shell would split them without expanding anything: on blanks, `'…'` and
/// `"…"` kept whole (no escapes inside, as Keptn's splitter), `\x` outside quotes is `x`, and a
/// `{{ … }}` template is one piece however many blanks it holds (Keptn renders before splitting,
/// so an event value with a space could add an argument; here it never can).
///
/// The options read: `-X/--request`, `-H/--header`, `-d/--data`, `--data-raw`, `--data-binary`,
/// `--data-ascii` (several are joined with `&`, as curl joins them), `--json`, `--url`, `-L/--location`,
/// `-m/--max-time`, `--connect-timeout`, and curl's output flags `-f/--fail`, `--fail-with-body`,
/// `-s/--silent`, `-S/--show-error`, `-v`, `-i`, which change nothing here (a status of 400 or
/// more always fails the request). Keptn's denied options (`-o`, `-F`, `-T`, `-K` and their long
/// forms) are refused with its reason, as are `@file` bodies, `-k` and `--proxy`.
public struct CurlCommand: Sendable, Equatable {
    public struct Failure: Error, Sendable, Equatable {
        public var message: String
        init(_ message: String) { self.message = message }
    }

    public var method: String = "GET"
    public var url: String = ""
    public var headers: [(String, String)] = []
    public var data: String?
    public var followRedirects = false
    public var maxTime: Double?

    public static func == (a: CurlCommand, b: CurlCommand) -> Bool {
        a.method == b.method && a.url == b.url && a.headers.map { [$0.0, $0.1] } == b.headers.map { [$0.0, $0.1] } && a.data == b.data
            && a.followRedirects == b.followRedirects && a.maxTime == b.maxTime
    }

    static let ignored: Set<String> = ["-f", "--fail", "--fail-with-body", "-s", "--silent", "-S", "--show-error", "-v", "--verbose", "-i", "--include", "--compressed"]
    static let denied: [String: String] = [
        "-o": "writes a file", "--output": "writes a file", "-F": "uploads a file", "--form": "uploads a file",
        "-T": "uploads a file", "--upload-file": "uploads a file", "-K": "reads a config file", "--config": "reads a config file",
    ]
    static let known = "-X/--request, -H/--header, -d/--data, --data-raw, --data-binary, --json, --url, -L/--location, -m/--max-time, --connect-timeout, -f, -s, -S"

    public static func parse(_ line: String, optionsOnly: Bool) throws(Failure) -> CurlCommand {
        var words = try split(line)
        if !optionsOnly {
            guard words.first == "curl" else { throw Failure("a \(WebhookFile.v1alpha1) request is a curl command line starting with \"curl \"") }
            words.removeFirst()
        }
        var command = CurlCommand()
        var method: String?
        var bodies: [String] = []
        var index = 0
        func value(_ option: String) throws(Failure) -> String {
            index += 1
            guard index < words.count else { throw Failure("\(option) needs a value after it") }
            return words[index]
        }
        while index < words.count {
            var word = words[index]
            // -XPOST, -HName:value, -dbody: a short option with its value attached.
            var attached: String?
            if word.count > 2, word.hasPrefix("-"), !word.hasPrefix("--"), ["-X", "-H", "-d", "-m"].contains(String(word.prefix(2))) {
                attached = String(word.dropFirst(2))
                word = String(word.prefix(2))
            }
            func argument() throws(Failure) -> String {
                if let attached { return attached }
                return try value(word)
            }
            if let reason = denied[word] {
                throw Failure("\(word) \(reason); Keptn's webhooks refuse it and Shipyard does too")
            }
            let dataOptions = ["-d", "--data", "--data-raw", "--data-binary", "--data-ascii", "--json"]
            if optionsOnly, ["-X", "--request", "-H", "--header", "--url"].contains(word) || dataOptions.contains(word) {
                throw Failure("\(word) belongs in the request's own keys (method, headers, payload, url), not in options")
            }
            switch word {
            case "-X", "--request":
                method = try argument()
            case "-H", "--header":
                let header = try argument()
                guard let colon = header.firstIndex(of: ":"), colon != header.startIndex else {
                    throw Failure("the header \"\(header)\" needs the form Name: value")
                }
                command.headers.append((header[..<colon].trimmingCharacters(in: .whitespaces), header[header.index(after: colon)...].trimmingCharacters(in: .whitespaces)))
            case _ where dataOptions.contains(word):
                let body = try argument()
                if body.hasPrefix("@"), word != "--data-raw" {
                    throw Failure("\(word) @FILE reads a file of this host; write the body itself")
                }
                if word == "--json" {
                    command.headers.append(("Content-Type", "application/json"))
                    command.headers.append(("Accept", "application/json"))
                }
                bodies.append(body)
            case "--url":
                guard command.url.isEmpty else { throw Failure("the command names two URLs; a request has one") }
                command.url = try argument()
            case "-L", "--location":
                command.followRedirects = true
            case "-m", "--max-time", "--connect-timeout":
                let text = try argument()
                guard let seconds = Double(text), seconds.isFinite, seconds >= 0.001, seconds <= 86_400 else {
                    throw Failure("\(word) takes seconds from 0.001 to 86400, not \"\(text)\"")
                }
                if word != "--connect-timeout" { command.maxTime = seconds }
            case "-k", "--insecure":
                throw Failure("\(word) turns off certificate checks; shipyardd always checks them (a private CA goes in the host config)")
            case "-x", "--proxy":
                throw Failure("\(word): a proxy is the host's to choose, not the file's")
            case "-u", "--user":
                throw Failure("\(word): send the credentials as a header instead (-H 'Authorization: Basic …' with the value from a secret)")
            case _ where ignored.contains(word):
                break
            case _ where word.hasPrefix("-") && word.count > 1 && !word.hasPrefix("--") && word.dropFirst().allSatisfy({ "sSfLvi".contains($0) }):
                if word.contains("L") { command.followRedirects = true }
            case _ where word.hasPrefix("-") && word.count > 1:
                throw Failure("\(word) is not an option Shipyard reads from a curl command line (it reads \(known))")
            default:
                guard !optionsOnly else { throw Failure("\"\(word)\" in options: the URL belongs in url:") }
                guard command.url.isEmpty else { throw Failure("the command names two URLs (\(command.url) and \(word)); a request has one") }
                command.url = word
            }
            index += 1
        }
        if !optionsOnly, command.url.isEmpty { throw Failure("the curl command names no URL") }
        if !bodies.isEmpty { command.data = bodies.joined(separator: "&") }
        command.method = method ?? (bodies.isEmpty ? "GET" : "POST")
        guard WebhookFile.methods.contains(command.method) else {
            throw Failure("the method must be one of \(WebhookFile.methods.joined(separator: ", ")), not \"\(command.method)\"")
        }
        return command
    }

    /// Words as a shell splits them, with nothing expanded; a template stays one piece.
    static func split(_ line: String) throws(Failure) -> [String] {
        var words: [String] = []
        var current = ""
        var inWord = false
        var quote: Character?
        var chars = Array(line)
        var i = 0
        chars.append(" ")
        while i < chars.count {
            let c = chars[i]
            if let q = quote {
                if c == q { quote = nil } else { current.append(c) }
                i += 1
                continue
            }
            if c == "{", i + 1 < chars.count, chars[i + 1] == "{" {
                // A template: copied whole up to its }}.
                var j = i + 2
                while j + 1 < chars.count, !(chars[j] == "}" && chars[j + 1] == "}") { j += 1 }
                guard j + 1 < chars.count else { throw Failure("a {{ in the command has no closing }}") }
                current += String(chars[i...(j + 1)])
                inWord = true
                i = j + 2
                continue
            }
            switch c {
            case " ", "\t", "\n", "\r":
                if inWord { words.append(current) }
                current = ""
                inWord = false
            case "'", "\"":
                quote = c
                inWord = true
            case "\\":
                if i + 1 < chars.count - 1 {
                    current.append(chars[i + 1])
                    i += 1
                }
                inWord = true
            default:
                current.append(c)
                inWord = true
            }
            i += 1
        }
        if quote != nil { throw Failure("a quote in the curl command is never closed") }
        return words
    }
}
