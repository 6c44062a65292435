import CPQ
public import Foundation

/// Where the PostgreSQL record is and how the daemon's sessions behave on it.
public struct PostgresSettings: Sendable, Equatable {
    /// A libpq connection URI or key=value string (`postgresql://shipyard@db.example/shipyard`).
    public var url: String
    /// The password, read from the config's `passwordFile` (never from the URL in a config).
    public var password: String?
    /// Names the host in `leader_lease.holder` and `hosts` (default: the host name and pid).
    public var holder: String

    public init(url: String, password: String? = nil, holder: String) {
        self.url = url
        self.password = password
        self.holder = holder
    }

    /// The URL with any password in it left out, for messages.
    public var shownURL: String {
        guard var parts = URLComponents(string: url), parts.password != nil else { return url }
        parts.password = "…"
        return parts.string ?? url
    }
}

/// An error PostgreSQL or libpq reported, with its SQLSTATE when the server sent one.
public struct PGError: Error, CustomStringConvertible, Sendable {
    public var sqlstate: String?
    public var message: String
    /// The session is gone (the server or the network ended it): what was in flight has an
    /// unknown outcome when it was a COMMIT.
    public var connectionLost: Bool

    public var description: String { message }
}

/// One libpq session, used by one thread at a time (its owner holds a lock around it). Every
/// session of the daemon is set up so that it cannot hold anything up for long: a transaction
/// left idle (a leader frozen inside it) is ended by the server after 2 s, a statement after
/// its timeout, and TCP keepalives and a user timeout find a silent peer within seconds.
final class PGConnection {
    private let handle: OpaquePointer
    let settings: PostgresSettings

    /// `statementTimeout` in milliseconds (the lease's session uses 1 s).
    init(_ settings: PostgresSettings, application: String, statementTimeout: Int = 10_000) throws {
        self.settings = settings
        let options = "-c idle_in_transaction_session_timeout=2000 -c statement_timeout=\(statementTimeout) -c lock_timeout=2000 -c TimeZone=UTC"
        var pairs: [(String, String)] = [
            ("dbname", settings.url),
            ("application_name", application),
            ("connect_timeout", "5"),
            ("keepalives", "1"),
            ("keepalives_idle", "5"),
            ("keepalives_interval", "2"),
            ("keepalives_count", "3"),
            ("tcp_user_timeout", "10000"),
            ("options", options),
        ]
        if let password = settings.password { pairs.append(("password", password)) }
        let keys = pairs.map { strdup($0.0) }
        let values = pairs.map { strdup($0.1) }
        defer {
            keys.forEach { free($0) }
            values.forEach { free($0) }
        }
        var keyPointers = keys.map { UnsafePointer<CChar>($0) } + [nil]
        var valuePointers = values.map { UnsafePointer<CChar>($0) } + [nil]
        // expand_dbname = 1: `dbname` may be a whole URI or key=value string.
        guard let connection = PQconnectdbParams(&keyPointers, &valuePointers, 1) else {
            throw PGError(message: "cannot reach PostgreSQL at \(settings.shownURL): out of memory", connectionLost: true)
        }
        guard PQstatus(connection) == CONNECTION_OK else {
            let message = String(cString: PQerrorMessage(connection)).trimmingCharacters(in: .whitespacesAndNewlines)
            PQfinish(connection)
            throw PGError(message: "cannot connect to PostgreSQL at \(settings.shownURL): \(message)", connectionLost: true)
        }
        handle = connection
    }

    deinit { PQfinish(handle) }

    var isBroken: Bool { PQstatus(handle) != CONNECTION_OK }

    /// Rows of text values (nil: NULL) and the count of rows a command changed.
    struct Result {
        var rows: [[String?]]
        var affected: Int
    }

    /// Runs one statement with text parameters (`$1`, `$2`, …).
    @discardableResult
    func exec(_ sql: String, _ parameters: [String?] = []) throws -> Result {
        let copies = parameters.map { $0.map { strdup($0) } ?? nil }
        defer { copies.forEach { free($0) } }
        let pointers = copies.map { UnsafePointer<CChar>($0) }
        let result = pointers.withUnsafeBufferPointer { buffer in
            PQexecParams(handle, sql, Int32(parameters.count), nil, buffer.baseAddress, nil, nil, 0)
        }
        guard let result else {
            throw PGError(message: String(cString: PQerrorMessage(handle)), connectionLost: isBroken)
        }
        defer { PQclear(result) }
        switch PQresultStatus(result) {
        case PGRES_COMMAND_OK, PGRES_TUPLES_OK:
            let count = Int(PQntuples(result))
            let columns = Int(PQnfields(result))
            var rows: [[String?]] = []
            rows.reserveCapacity(count)
            for row in 0..<count {
                var values: [String?] = []
                values.reserveCapacity(columns)
                for column in 0..<columns {
                    if PQgetisnull(result, Int32(row), Int32(column)) == 1 {
                        values.append(nil)
                    } else {
                        values.append(String(cString: PQgetvalue(result, Int32(row), Int32(column))))
                    }
                }
                rows.append(values)
            }
            return Result(rows: rows, affected: Int(String(cString: PQcmdTuples(result))) ?? 0)
        default:
            let state = PQresultErrorField(result, Int32(UInt8(ascii: "C"))).map { String(cString: $0) }
            let message = String(cString: PQresultErrorMessage(result)).trimmingCharacters(in: .whitespacesAndNewlines)
            // Class 08 is a connection exception; 57P01..57P03 the server shutting down or
            // ending this session (an idle transaction timed out is 25P03 with the session gone).
            let lost = isBroken || state?.hasPrefix("08") == true || state?.hasPrefix("57P") == true || state == "25P03"
            throw PGError(sqlstate: state, message: message.isEmpty ? String(cString: PQerrorMessage(handle)) : message, connectionLost: lost)
        }
    }

    /// Runs several statements without parameters (a migration).
    func script(_ sql: String) throws {
        guard let result = PQexec(handle, sql) else {
            throw PGError(message: String(cString: PQerrorMessage(handle)), connectionLost: isBroken)
        }
        defer { PQclear(result) }
        let status = PQresultStatus(result)
        guard status == PGRES_COMMAND_OK || status == PGRES_TUPLES_OK else {
            let message = String(cString: PQresultErrorMessage(result)).trimmingCharacters(in: .whitespacesAndNewlines)
            throw PGError(sqlstate: PQresultErrorField(result, Int32(UInt8(ascii: "C"))).map { String(cString: $0) }, message: message, connectionLost: isBroken)
        }
    }

    /// Ends a transaction that failed, when the session still stands.
    func rollback() {
        if !isBroken { _ = try? exec("ROLLBACK") }
    }
}

extension PGConnection.Result {
    /// The first column of the first row.
    var scalar: String? { rows.first?.first ?? nil }
}

/// Values as PostgreSQL's text format writes them, and back.
enum PGValue {
    static func double(_ date: Date?) -> String? { date.map { String($0.timeIntervalSince1970) } }
    static func date(_ text: String?) -> Date? { text.flatMap(Double.init).map(Date.init(timeIntervalSince1970:)) }
    static func bool(_ text: String?) -> Bool { text == "t" || text == "true" }
}
