import ArgumentParser
import Foundation
import ShipyardDaemon

/// `shipyardctl api-token new --user alice`: a Keptn API token (for `keptn auth`, CI scripts,
/// job-executor-service) and its line for `http.apiTokens`, which keeps only the token's SHA-256.
struct APIToken: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "api-token",
        abstract: "Make API tokens for Keptn's API (x-token): the keptn CLI, CI, job-executor-service.",
        subcommands: [New.self, Hash.self])

    /// Who a token acts as: `--user NAME` or `--role NAME`.
    struct Who: ParsableArguments {
        @Option(help: "The account of this host the token acts as.") var user: String?
        @Option(help: "The role the token acts as (a program: job-executor, ci).") var role: String?

        func validate() throws {
            guard (user == nil) != (role == nil) else { throw ValidationError("give --user NAME or --role NAME") }
            guard APITokens.isName(user ?? role ?? "") else { throw ValidationError("a name takes letters, digits, ., _ and -, at most 64") }
        }

        var principal: APITokens.Principal { user.map { .user($0) } ?? .role(role ?? "") }
    }

    struct New: ParsableCommand {
        static let configuration = CommandConfiguration(
            abstract: "Print a new token on standard output and its line for http.apiTokens on standard error.",
            discussion: """
                shipyardctl api-token new --user alice 2>>/etc/shipyardd/api-tokens
                The token is shown once; the file keeps only its SHA-256. A user: token acts as that account of this host \
                (approvers and eventSenders judge it as that person's shipyardctl); a role: token is a program, admitted by \
                roles: [NAME] under eventSenders or sequenceControl, and decides no approval.
                """)

        @OptionGroup var who: Who

        func run() throws {
            let (token, line) = APITokens.make(for: who.principal)
            print(token)
            FileHandle.standardError.write(Data((line + "\n").utf8))
        }
    }

    struct Hash: ParsableCommand {
        static let configuration = CommandConfiguration(
            abstract: "Print the http.apiTokens line of an existing token (read from standard input), e.g. one a Keptn install used.")

        @OptionGroup var who: Who

        func run() throws {
            let token = (readLine(strippingNewline: true) ?? "").trimmingCharacters(in: .whitespaces)
            guard token.count >= 16 else { throw CLIError("give the token (at least 16 characters) on standard input") }
            print(APITokens.line(token: token, principal: who.principal))
        }
    }
}
