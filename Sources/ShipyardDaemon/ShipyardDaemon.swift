// ShipyardDaemon: the imperative shell around the engine.
//
//   Daemon/         the process: the ServiceGroup's owner, reload, status.json, logging, metrics
//   Services/       the daemon's services and the order they start and stop in (ServiceGroup)
//   Commands/       the one way in for requests that change something: the caller, who may do
//                   what (Authorization), each request's checks, rate, log line and metric
//   Orchestration/  the engine driver (Orchestrator: engine + record + effects) and what it owns:
//                   Tasks/ (TaskRunner: local programs), QualityGates/ (QualityGate: providers,
//                   get-sli events), Approvals/ (ApprovalDesk: files, votes, timers), Housekeeping/
//   Evaluation/     the plan of an evaluation (SLO/SLI files at the commit) and the SLI providers
//   Watching/       one watcher per project: polls, fetches in a child process, worktrees
//   Programs/       child processes the daemon runs: task programs, the notify program
//   Config/         the host config: model, reader, checks
//   Host/           the host: accounts, the state directory and its lock, the listening socket
//   Interface/      what the CLI and the web view share with the daemon: the local API's address
//                   and client, and the read models they show
//   Integrations/   Keptn's API's callers: the API token file (x-token → a user or a role) and the
//                   integrations registered through Keptn's Uniform API
//   Webhooks/       Keptn's webhook.yaml run: which subscription calls which webhook, secrets,
//                   rendering, and the one outbound HTTP client (libcurl, addresses checked and pinned)
//
// May import: ShipyardCore, ShipyardGit, ShipyardStore, CSupport, CCurl, swift-log, swift-prometheus,
// swift-service-lifecycle. Never ShipyardWeb: the web view is handed in as a `DaemonFrontend`.
