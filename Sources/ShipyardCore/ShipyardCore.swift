// ShipyardCore: the domain, pure. What a shipyard says and how sequences run, with nothing of
// the host: no files, no clocks it did not get, no processes, no network.
//
//   YAML/        libyaml events into nodes that keep their source marks (FILE:LINE:COLUMN errors)
//   Shipyard/    Keptn's spec 0.2.x: the model, its reader and validation (triggeredOn included)
//   Engine/      CloudEvents and the sequence engine, an event-sourced state machine: commands in,
//                events to record and effects to perform out (Engine, +Deciding, +Applying)
//   Evaluation/  Keptn's quality gates: SLO and SLI files, timeframes, lighthouse scoring
//   Approvals/   approval policies and the rules that count votes (who, how many, self-approval)
//   Webhooks/    Keptn's webhook.yaml (v1beta1, v1alpha1 curl lines parsed, never run) and the Go
//                template language its requests are written in
//   Support/     JSON, durations, byte counts, diagnostics, atomic files, untrusted text
//
// May import: CYAML (libyaml) only. Everything else in the package may import it.
