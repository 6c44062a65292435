/// The PostgreSQL record's schema: numbered migrations as for SQLite, applied under a
/// transaction-scoped advisory lock so that daemons starting together apply each once. Text
/// columns compare as bytes (`COLLATE "C"`), as SQLite's do, so that listings, prefixes and
/// ranges answer exactly as on one host.
enum PostgresSchema {
    /// A lock id of this schema's own (the bytes of "shipyard").
    static let migrationLock = "7522525041445044"

    static let migrations: [(String, String)] = [
        ("1-record", """
            CREATE TABLE leader_lease (
                name text COLLATE "C" PRIMARY KEY,
                holder text COLLATE "C" NOT NULL,
                epoch bigint NOT NULL,
                expires_at timestamptz NOT NULL,
                taken_at timestamptz NOT NULL
            );
            INSERT INTO leader_lease VALUES ('delivery', '', 0, '-infinity', '-infinity');
            -- Every take, for the record and the checker: which epoch began when, held by whom.
            CREATE TABLE lease_history (
                epoch bigint PRIMARY KEY,
                holder text COLLATE "C" NOT NULL,
                taken_at timestamptz NOT NULL DEFAULT clock_timestamp()
            );
            -- Each daemon's last heartbeat (shipyardctl status).
            CREATE TABLE hosts (
                holder text COLLATE "C" PRIMARY KEY,
                host text NOT NULL,
                pid integer NOT NULL,
                version text NOT NULL,
                started_at timestamptz NOT NULL,
                seen_at timestamptz NOT NULL
            );
            -- The record's positions: taken inside the append transaction, so that they have no
            -- gap (a rolled-back append gives its numbers back) and are never used twice.
            CREATE TABLE record_position (name text PRIMARY KEY, last bigint NOT NULL);
            INSERT INTO record_position VALUES ('events', 0);

            CREATE TABLE events (
                position bigint PRIMARY KEY,
                epoch bigint NOT NULL,
                id text COLLATE "C" NOT NULL UNIQUE,
                context text COLLATE "C" NOT NULL,
                type text COLLATE "C" NOT NULL,
                triggeredid text COLLATE "C",
                time text NOT NULL,
                project text COLLATE "C",
                stage text COLLATE "C",
                service text COLLATE "C",
                body text NOT NULL
            );
            CREATE INDEX events_by_context ON events(context, position);
            CREATE INDEX events_by_triggeredid ON events(triggeredid) WHERE triggeredid IS NOT NULL;

            CREATE TABLE sequences (
                position bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
                id text COLLATE "C" NOT NULL UNIQUE,
                context text COLLATE "C" NOT NULL,
                project text COLLATE "C" NOT NULL,
                stage text COLLATE "C" NOT NULL,
                service text COLLATE "C" NOT NULL,
                sequence text COLLATE "C" NOT NULL,
                commit_id text,
                state text COLLATE "C" NOT NULL,
                active boolean NOT NULL,
                result text COLLATE "C",
                status text COLLATE "C",
                message text,
                triggered_by text,
                request_id text COLLATE "C",
                triggered_at double precision NOT NULL,
                started_at double precision,
                finished_at double precision,
                queue_released_at double precision,
                image text
            );
            CREATE INDEX sequences_by_context ON sequences(context);
            CREATE INDEX sequences_active ON sequences(context) WHERE active;
            CREATE INDEX sequences_by_project ON sequences(project, position);
            CREATE INDEX sequences_by_service ON sequences(service, position);
            CREATE INDEX sequences_by_state ON sequences(state, position);
            CREATE INDEX sequences_by_triggered_at ON sequences(triggered_at);
            CREATE INDEX sequences_ended ON sequences(finished_at) WHERE NOT active;
            CREATE INDEX sequences_by_request ON sequences(request_id) WHERE request_id IS NOT NULL;
            CREATE INDEX sequences_by_slot ON sequences(project, service, stage, position);
            CREATE INDEX sequences_deployed ON sequences(project, service, stage, position)
                WHERE state = 'finished' AND result IN ('pass', 'warning');

            CREATE TABLE tasks (
                sequence_id text COLLATE "C" NOT NULL,
                position integer NOT NULL,
                name text COLLATE "C" NOT NULL,
                state text NOT NULL,
                result text,
                status text,
                message text,
                triggered_id text COLLATE "C",
                triggered_at double precision,
                started_at double precision,
                finished_at double precision,
                due_at double precision,
                PRIMARY KEY (sequence_id, position)
            );
            CREATE UNIQUE INDEX tasks_by_triggered_id ON tasks(triggered_id) WHERE triggered_id IS NOT NULL;

            CREATE TABLE evaluations (
                position bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
                event_id text COLLATE "C" NOT NULL UNIQUE,
                triggered_id text COLLATE "C" NOT NULL,
                context text COLLATE "C" NOT NULL,
                project text COLLATE "C" NOT NULL,
                stage text COLLATE "C" NOT NULL,
                service text COLLATE "C" NOT NULL,
                time text NOT NULL,
                result text COLLATE "C" NOT NULL,
                invalidated boolean NOT NULL DEFAULT false
            );
            CREATE INDEX evaluations_by_service ON evaluations(project, stage, service, position);
            CREATE INDEX evaluations_by_triggered_id ON evaluations(triggered_id);
            CREATE INDEX evaluations_by_context ON evaluations(context);
            """),
        ("2-forwarded-requests", """
            -- Commands a standby's local API took (shipyardctl on any host), for the leader to
            -- apply: claimed with its epoch, answered once; the standby waits for the answer.
            CREATE TABLE requests (
                id text COLLATE "C" PRIMARY KEY,
                via text COLLATE "C" NOT NULL,
                caller_uid bigint,
                caller_user text NOT NULL,
                caller_groups text NOT NULL,
                caller_channel text NOT NULL,
                caller_administrator boolean NOT NULL,
                body text NOT NULL,
                created_at timestamptz NOT NULL DEFAULT clock_timestamp(),
                claimed_epoch bigint,
                outcome text,
                answered_at timestamptz
            );
            CREATE INDEX requests_open ON requests(created_at) WHERE outcome IS NULL;
            -- The leader's approvals/ files, for standbys to write in theirs.
            CREATE TABLE approval_requests (
                id text COLLATE "C" PRIMARY KEY,
                body text NOT NULL
            );
            """),
        ("3-open-tasks", """
            -- The tasks integrations poll for (Keptn's open .triggered events), by name among the open ones.
            CREATE INDEX tasks_open ON tasks(name) WHERE state IN ('triggered', 'started');
            """),
    ]

    /// Applies what is missing; refuses a database with a migration this build does not know.
    static func migrate(_ connection: PGConnection) throws {
        try connection.exec("BEGIN")
        do {
            try connection.exec("SELECT pg_advisory_xact_lock(\(migrationLock))")
            try connection.exec("CREATE TABLE IF NOT EXISTS shipyard_migrations (identifier text PRIMARY KEY, applied_at timestamptz NOT NULL DEFAULT now())")
            let applied = Set(try connection.exec("SELECT identifier FROM shipyard_migrations").rows.compactMap { $0[0] })
            let known = Set(migrations.map(\.0))
            let unknown = applied.subtracting(known).sorted()
            guard unknown.isEmpty else {
                throw StoreError(
                    "the PostgreSQL record at \(connection.settings.shownURL) was written by a newer shipyardd (its schema has \(unknown.joined(separator: ", ")), "
                        + "which this one does not know): run that version or a newer one on every host")
            }
            for (identifier, sql) in migrations where !applied.contains(identifier) {
                try connection.script(sql)
                try connection.exec("INSERT INTO shipyard_migrations (identifier) VALUES ($1)", [identifier])
            }
            try connection.exec("COMMIT")
        } catch {
            connection.rollback()
            throw error
        }
    }
}
