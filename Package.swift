// swift-tools-version:6.0
import PackageDescription

let strict: [SwiftSetting] = [
    .enableUpcomingFeature("ExistentialAny"),
    .enableUpcomingFeature("InternalImportsByDefault"),
]

let package = Package(
    name: "shipyard",
    platforms: [.macOS(.v14)],
    products: [
        .executable(name: "shipyardd", targets: ["shipyardd"]),
        .executable(name: "shipyardctl", targets: ["shipyardctl"]),
        .library(name: "ShipyardCore", targets: ["ShipyardCore"]),
    ],
    dependencies: [
        .package(url: "https://github.com/apple/swift-argument-parser", from: "1.5.0"),
        .package(url: "https://github.com/apple/swift-log", from: "1.16.0"),
        // The event record: SQLite (Debian's libsqlite3, linked by GRDB's GRDBSQLite module).
        .package(url: "https://github.com/groue/GRDB.swift", from: "7.10.0"),
        // The web view and API (optional at run time: `http:` in the config).
        .package(url: "https://github.com/hummingbird-project/hummingbird", from: "2.28.1"),
        .package(url: "https://github.com/hummingbird-project/hummingbird-auth", from: "2.5.0"),
        // /metrics: the registry and the text format.
        .package(url: "https://github.com/swift-server/swift-prometheus", from: "2.4.1"),
        .package(url: "https://github.com/apple/swift-nio", from: "2.101.2"),
        .package(url: "https://github.com/apple/swift-http-types", from: "1.8.0"),
        // The daemon's services, their order, signals and graceful stop (Hummingbird's own).
        .package(url: "https://github.com/swift-server/swift-service-lifecycle", from: "2.6.0"),
    ],
    targets: [
        // System libraries, found through pkg-config; never vendored.
        .systemLibrary(
            name: "CYAML",
            pkgConfig: "yaml-0.1",
            providers: [.apt(["libyaml-dev"])]
        ),

        .systemLibrary(
            name: "CGit2",
            pkgConfig: "libgit2",
            providers: [.apt(["libgit2-dev"])]
        ),

        // libpq (Debian's libpq-dev): the record on PostgreSQL for more than one host. libpq's
        // blocking calls suit the store's one-transaction-per-step writes, and a system library
        // adds no build time (postgres-nio would add minutes to every clean build).
        .systemLibrary(
            name: "CPQ",
            pkgConfig: "libpq",
            providers: [.apt(["libpq-dev"])]
        ),

        // libcurl (Debian's libcurl4-openssl-dev, already loaded by Foundation's URLSession):
        // webhooks, where a request must go to the address that was checked (CURLOPT_RESOLVE),
        // with timeouts, a bounded body and no redirect unless allowed, none of which URLSession
        // offers.
        .systemLibrary(
            name: "CCurl",
            pkgConfig: "libcurl",
            providers: [.apt(["libcurl4-openssl-dev"])]
        ),

        // Pure domain: YAML with source marks, the shipyard model and its validation.
        .target(
            name: "ShipyardCore",
            dependencies: ["CYAML"],
            swiftSettings: strict
        ),

        // libgit2, wrapped: every C call, its error and its cleanup live here.
        .target(
            name: "ShipyardGit",
            dependencies: ["CGit2"],
            swiftSettings: strict
        ),

        // The one libc call Swift cannot see (posix_spawn_file_actions_addchdir_np).
        .target(name: "CSupport"),

        // The record: the `Store` protocol, its queries, the SQLite implementation with its
        // migrations, and the import of an earlier release's journal. Knows events, not the daemon.
        .target(
            name: "ShipyardStore",
            dependencies: [
                "ShipyardCore",
                "CPQ",
                .product(name: "GRDB", package: "GRDB.swift"),
                .product(name: "GRDBSQLite", package: "GRDB.swift"),
            ],
            swiftSettings: strict
        ),

        // The imperative shell: config, state directory, poller, the orchestrator, logging.
        .target(
            name: "ShipyardDaemon",
            dependencies: [
                "ShipyardCore",
                "ShipyardGit",
                "ShipyardStore",
                "CSupport",
                "CCurl",
                .product(name: "Logging", package: "swift-log"),
                .product(name: "Prometheus", package: "swift-prometheus"),
                .product(name: "ServiceLifecycle", package: "swift-service-lifecycle"),
                .product(name: "UnixSignals", package: "swift-service-lifecycle"),
            ],
            swiftSettings: strict
        ),

        // The web view: pages, Server-Sent Events, the JSON API and /metrics, in the daemon's
        // process, a client of its engine and the store's queries, never a second source of truth.
        .target(
            name: "ShipyardWeb",
            dependencies: [
                "ShipyardCore",
                "ShipyardDaemon",
                "ShipyardGit",
                "ShipyardStore",
                "CSupport",
                .product(name: "NIOPosix", package: "swift-nio"),
                .product(name: "Hummingbird", package: "hummingbird"),
                .product(name: "HummingbirdBcrypt", package: "hummingbird-auth"),
                .product(name: "NIOCore", package: "swift-nio"),
                .product(name: "HTTPTypes", package: "swift-http-types"),
                .product(name: "Prometheus", package: "swift-prometheus"),
                .product(name: "Logging", package: "swift-log"),
            ],
            swiftSettings: strict
        ),

        .executableTarget(
            name: "shipyardd",
            dependencies: [
                "ShipyardDaemon",
                "ShipyardStore",
                "ShipyardWeb",
                .product(name: "ArgumentParser", package: "swift-argument-parser"),
                .product(name: "Logging", package: "swift-log"),
            ],
            swiftSettings: strict
        ),

        .executableTarget(
            name: "shipyardctl",
            dependencies: [
                "ShipyardCore",
                "ShipyardDaemon",
                "ShipyardStore",
                .product(name: "HummingbirdBcrypt", package: "hummingbird-auth"),
                .product(name: "ArgumentParser", package: "swift-argument-parser"),
            ],
            swiftSettings: strict
        ),

        // `make bench`: Git polling measured beside git ls-remote and git fetch.
        .executableTarget(
            name: "shipyard-bench",
            dependencies: ["ShipyardCore", "ShipyardGit", "ShipyardStore", "ShipyardDaemon", "ShipyardTestKit"],
            swiftSettings: strict
        ),

        // Real servers and repositories for tests: git daemon, git http-backend, sshd.
        .target(
            name: "ShipyardTestKit",
            dependencies: ["ShipyardCore"],
            path: "Tests/ShipyardTestKit",
            swiftSettings: strict
        ),
        .testTarget(
            name: "ShipyardCoreTests",
            dependencies: ["ShipyardCore"],
            swiftSettings: strict
        ),
        .testTarget(
            name: "ShipyardGitTests",
            dependencies: ["ShipyardGit", "ShipyardTestKit"],
            swiftSettings: strict
        ),
        .testTarget(
            name: "ShipyardStoreTests",
            dependencies: ["ShipyardStore", "ShipyardTestKit", .product(name: "GRDB", package: "GRDB.swift")],
            swiftSettings: strict
        ),
        .testTarget(
            name: "ShipyardDaemonTests",
            dependencies: ["ShipyardDaemon", "ShipyardStore", "ShipyardWeb", "ShipyardTestKit"],
            swiftSettings: strict
        ),
        .testTarget(
            name: "EndToEndTests",
            dependencies: ["ShipyardCore", "ShipyardDaemon", "ShipyardStore", "ShipyardTestKit", .product(name: "HummingbirdBcrypt", package: "hummingbird-auth")],
            swiftSettings: strict
        ),
    ]
)
