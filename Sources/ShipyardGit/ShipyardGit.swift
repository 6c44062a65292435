// ShipyardGit: libgit2, wrapped. Every C call, its error and its cleanup live here: listing a
// remote's refs, fetching into a bare mirror, reading a blob at a path of a commit, known_hosts,
// and a local upstream for the demo and tests. Knows nothing of shipyards or sequences.
//
// May import: CGit2 (libgit2 through pkg-config) only.
