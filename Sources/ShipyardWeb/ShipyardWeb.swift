// ShipyardWeb: the front door. One set of routes served on the local API's unix socket (callers
// named by the kernel, SO_PEERCRED) and, with `http:` in the config, on TCP: the web view's
// pages, Server-Sent Events, the JSON API and /metrics. Who is asking is decided here (Site+Identity);
// what they may do is the daemon's command layer (Commands), never decided twice. It reads the
// store's queries and the daemon's state; it writes nothing of its own but sessions in memory.
// KeptnAPI (+Projects, +Uniform, +Resources): Keptn's API for its CLI and integrations, its
// callers named by x-token (or the kernel), its commands judged by the same command layer.
//
// May import: ShipyardDaemon, ShipyardStore, ShipyardGit, ShipyardCore, CSupport, Hummingbird,
// hummingbird-auth (bcrypt), swift-nio, swift-prometheus.
