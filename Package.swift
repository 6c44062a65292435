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
        .executable(name: "shipyardctl", targets: ["shipyardctl"]),
        .library(name: "ShipyardCore", targets: ["ShipyardCore"]),
    ],
    dependencies: [
        .package(url: "https://github.com/apple/swift-argument-parser", from: "1.5.0"),
    ],
    targets: [
        // System libraries, found through pkg-config; never vendored.
        .systemLibrary(
            name: "CYAML",
            pkgConfig: "yaml-0.1",
            providers: [.apt(["libyaml-dev"])]
        ),

        // Pure domain: YAML with source marks, the shipyard model and its validation.
        .target(
            name: "ShipyardCore",
            dependencies: ["CYAML"],
            swiftSettings: strict
        ),

        .executableTarget(
            name: "shipyardctl",
            dependencies: [
                "ShipyardCore",
                .product(name: "ArgumentParser", package: "swift-argument-parser"),
            ],
            swiftSettings: strict
        ),

        .testTarget(
            name: "ShipyardCoreTests",
            dependencies: ["ShipyardCore"],
            swiftSettings: strict
        ),
        .testTarget(
            name: "EndToEndTests",
            dependencies: ["ShipyardCore"],
            swiftSettings: strict
        ),
    ]
)
