public import Foundation

/// A command a standby's local API took, for the leader to apply: the command (`body`, the
/// local API's JSON) and its caller as the standby's kernel named them (the uid at the other end
/// of its socket) and its host's accounts described them.
public struct ForwardedRequest: Sendable, Equatable {
    public var id: String
    /// The standby's name (`store.postgres.name`).
    public var via: String
    public var uid: UInt32?
    public var user: String
    public var groups: [String]
    /// How the standby named the caller: `cli` (the kernel) or `web` (a sign-in or a proxy).
    public var channel: String
    /// Whether the standby counted the caller an administrator (root or its daemon user there).
    public var administrator: Bool
    public var body: Data

    public init(
        id: String = UUID().uuidString.lowercased(), via: String, uid: UInt32?, user: String, groups: [String], channel: String,
        administrator: Bool = false, body: Data
    ) {
        self.id = id
        self.channel = channel
        self.administrator = administrator
        self.via = via
        self.uid = uid
        self.user = user
        self.groups = groups
        self.body = body
    }
}

/// The `requests` table: a standby forwards, the leader claims with its epoch and answers once.
/// A leader that stopped between its claim and its answer leaves the request to the next one,
/// which applies it again; commands are applied once by their request id (a trigger's context
/// is found by it), so a second application changes nothing. A request nobody claimed within
/// `PostgresStore.requestLifetime` is answered by its standby ("no host leads") and never applied.
extension PostgresStore {
    /// Seconds a forwarded request may wait for a leader.
    public static let requestLifetime = 30.0

    /// Standby: hands a command to whoever leads.
    public func forward(_ request: ForwardedRequest) throws {
        let groups = String(decoding: try JSONEncoder().encode(request.groups), as: UTF8.self)
        try with { connection in
            _ = try connection.exec("""
                INSERT INTO requests (id, via, caller_uid, caller_user, caller_groups, caller_channel, caller_administrator, body)
                VALUES ($1, $2, $3, $4, $5, $6, $7, $8) ON CONFLICT (id) DO NOTHING
                """, [request.id, request.via, request.uid.map { String($0) }, request.user, groups, request.channel, String(request.administrator),
                      String(decoding: request.body, as: UTF8.self)])
        }
    }

    /// Standby: the leader's answer (JSON), once there is one.
    public func answer(of id: String) throws -> Data? {
        try with { connection in
            try connection.exec("SELECT outcome FROM requests WHERE id = $1", [id]).scalar.map { Data($0.utf8) }
        }
    }

    /// Standby: answers a request no leader claimed with `outcome`, so that none applies it later.
    /// False: a leader claimed it meanwhile (its answer is coming).
    public func abandon(_ id: String, outcome: Data) throws -> Bool {
        try with { connection in
            try connection.exec("""
                UPDATE requests SET outcome = $2, answered_at = clock_timestamp() WHERE id = $1 AND claimed_epoch IS NULL AND outcome IS NULL
                """, [id, String(decoding: outcome, as: UTF8.self)]).affected == 1
        }
    }

    /// Leader: the open requests (new ones, those an earlier leader claimed but never answered,
    /// and this leader's own claims whose answer it never saw, but for `answering`: those it
    /// applied and has yet to answer), claimed with this leader's epoch while its lease is live.
    public func claimRequests(limit: Int = 20, answering: Set<String> = []) throws -> [ForwardedRequest] {
        let pending = String(decoding: try JSONEncoder().encode(answering.sorted()), as: UTF8.self)
        guard let fence else { return [] }
        return try with { connection in
            try connection.exec("""
                UPDATE requests SET claimed_epoch = $2
                WHERE id IN (
                    SELECT id FROM requests
                    WHERE outcome IS NULL
                        AND (claimed_epoch IS NULL OR claimed_epoch < $2 OR (claimed_epoch = $2 AND id NOT IN (SELECT jsonb_array_elements_text($5::jsonb))))
                        AND created_at > clock_timestamp() - make_interval(secs => $4::float8)
                    ORDER BY created_at LIMIT $3 FOR UPDATE SKIP LOCKED
                ) AND EXISTS (
                    SELECT 1 FROM leader_lease WHERE name = 'delivery' AND holder = $1 AND epoch = $2 AND expires_at > clock_timestamp()
                )
                RETURNING id, via, caller_uid, caller_user, caller_groups, caller_channel, body, created_at, caller_administrator
                """, [fence.holder, String(fence.epoch), String(limit), String(Self.requestLifetime), pending]).rows
                .sorted { ($0[7] ?? "") < ($1[7] ?? "") }
                .map { row in
                    ForwardedRequest(
                        id: row[0] ?? "", via: row[1] ?? "", uid: row[2].flatMap(UInt32.init), user: row[3] ?? "",
                        groups: (try? JSONDecoder().decode([String].self, from: Data((row[4] ?? "[]").utf8))) ?? [], channel: row[5] ?? "cli",
                        administrator: PGValue.bool(row[8]), body: Data((row[6] ?? "").utf8))
                }
        }
    }

    /// Leader: the answer to a request it claimed. Answered requests are kept for a day.
    public func answer(_ id: String, outcome: Data) throws {
        guard let fence else { return }
        try with { connection in
            _ = try connection.exec("""
                UPDATE requests SET outcome = $3, answered_at = clock_timestamp() WHERE id = $1 AND claimed_epoch = $2 AND outcome IS NULL
                """, [id, String(fence.epoch), String(decoding: outcome, as: UTF8.self)])
            _ = try connection.exec("DELETE FROM requests WHERE created_at < clock_timestamp() - interval '1 day'")
        }
    }
}

/// The pending approvals' request files (`approvals/<id>.json`), shared by the leader so that
/// each standby writes the same files in its own `approvals/` (for the scripts and people that
/// read them there). Only the lease's holder changes them.
extension PostgresStore {
    private static let leaseIsMine = """
        EXISTS (SELECT 1 FROM leader_lease WHERE name = 'delivery' AND holder = $1 AND epoch = $2 AND expires_at > clock_timestamp())
        """

    /// Leader: a request file written or rewritten.
    public func shareApproval(id: String, body: Data) throws {
        guard let fence else { return }
        try with { connection in
            _ = try connection.exec("""
                INSERT INTO approval_requests (id, body) SELECT $3, $4 WHERE \(Self.leaseIsMine)
                ON CONFLICT (id) DO UPDATE SET body = excluded.body
                """, [fence.holder, String(fence.epoch), id, String(decoding: body, as: UTF8.self)])
        }
    }

    /// Leader: the files of these approvals are all there are (others were decided).
    public func keepSharedApprovals(_ ids: Set<String>) throws {
        guard let fence else { return }
        let list = String(decoding: try JSONEncoder().encode(ids.sorted()), as: UTF8.self)
        try with { connection in
            _ = try connection.exec("""
                DELETE FROM approval_requests WHERE id NOT IN (SELECT jsonb_array_elements_text($3::jsonb)) AND \(Self.leaseIsMine)
                """, [fence.holder, String(fence.epoch), list])
        }
    }

    /// Standby: every shared request file, by approval id.
    public func sharedApprovals() throws -> [String: Data] {
        try with { connection in
            Dictionary(try connection.exec("SELECT id, body FROM approval_requests").rows.map { ($0[0] ?? "", Data(($0[1] ?? "").utf8)) }) { a, _ in a }
        }
    }
}
