import ArgumentParser
import Foundation
import HummingbirdBcrypt

/// `shipyardctl htpasswd USER`: a line for `http.auth.htpasswd`, for hosts without apache2-utils.
struct HTPasswd: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "htpasswd",
        abstract: "Print an htpasswd line (bcrypt) for the web view's sign-in: shipyardctl htpasswd alice >> /etc/shipyardd/htpasswd",
        discussion: "Reads the password from standard input (its first line) when that is not a terminal, else asks for it without echo.")

    @Argument(help: "The user name.") var user: String
    @Option(help: "bcrypt's cost (10 to 14).") var cost: UInt8 = 12

    func validate() throws {
        guard !user.isEmpty, !user.contains(":"), user.unicodeScalars.allSatisfy({ $0.value > 0x20 && $0.value < 0x7F }) else {
            throw ValidationError("the user name must be printable ASCII without spaces or ':'")
        }
        guard (10...14).contains(cost) else { throw ValidationError("--cost takes 10 to 14") }
    }

    func run() throws {
        let password: String
        if isatty(0) == 1 {
            guard let first = getpass("password for \(user): ").map({ String(cString: $0) }),
                let second = getpass("again: ").map({ String(cString: $0) }), first == second
            else {
                throw CLIError("the passwords differ")
            }
            password = first
        } else {
            password = readLine(strippingNewline: true) ?? ""
        }
        guard password.count >= 8 else { throw CLIError("use a password of at least 8 characters") }
        // htpasswd -B writes $2y$; it is the same algorithm as $2b$.
        let hash = Bcrypt.hash(password, cost: cost).replacingOccurrences(of: "$2b$", with: "$2y$")
        print("\(user):\(hash)")
    }
}
