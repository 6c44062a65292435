// ShipyardStore: the record. The `Store` protocol (one transaction per engine step: the events
// and the sequences they changed) and the queries the CLI, the web view and quality gates make;
// `SQLiteStore` implements it (GRDB over Debian's libsqlite3) with its migrations, and
// `JournalImport` brings an earlier release's journal in once. Knows events, not the daemon: a
// second implementation (PostgreSQL) goes beside SQLiteStore and changes nothing above.
//
// May import: ShipyardCore, GRDB. Imported by ShipyardDaemon, ShipyardWeb and shipyardctl.
