// swift-tools-version:6.1
import PackageDescription

let swiftSettings: [SwiftSetting] = [
    .enableUpcomingFeature("ExistentialAny"),
    .enableUpcomingFeature("MemberImportVisibility"),
]

let package = Package(
    name: "rollcall",
    platforms: [.macOS(.v15)],
    products: [
        .executable(name: "rollcall", targets: ["rollcall"]),
        .executable(name: "rollcall-agent", targets: ["rollcall-agent"]),
        .executable(name: "rollcall-load", targets: ["rollcall-load"]),
        .library(name: "RollcallCore", targets: ["RollcallCore"]),
        .library(name: "RollcallAgent", targets: ["RollcallAgent"]),
        // For the micro-benchmarks in Benchmarks/, a package of its own.
        .library(name: "RollcallStore", targets: ["RollcallStore"]),
        .library(name: "RollcallDashboard", targets: ["RollcallDashboard"]),
    ],
    dependencies: [
        .package(url: "https://github.com/hummingbird-project/hummingbird.git", from: "2.28.1"),
        .package(url: "https://github.com/hummingbird-project/hummingbird-websocket.git", from: "2.8.1"),
        .package(url: "https://github.com/apple/swift-nio.git", from: "2.101.2"),
        .package(url: "https://github.com/groue/GRDB.swift.git", from: "7.10.0"),
        .package(url: "https://github.com/vapor/postgres-nio.git", from: "1.33.2"),
        .package(url: "https://github.com/apple/swift-argument-parser.git", from: "1.8.2"),
        .package(url: "https://github.com/swift-server/swift-service-lifecycle.git", from: "2.13.0"),
        .package(url: "https://github.com/apple/swift-log.git", from: "1.16.2"),
        .package(url: "https://github.com/apple/swift-nio-extras.git", from: "1.35.2"),
        .package(url: "https://github.com/apple/swift-http-types.git", from: "1.8.0"),
        .package(url: "https://github.com/x-sheep/swift-property-based.git", from: "2.0.1"),
        .package(url: "https://github.com/HdrHistogram/hdrhistogram-swift.git", from: "0.2.0"),
        .package(url: "https://github.com/apple/swift-crypto.git", "3.12.3"..<"5.0.0"),
        .package(url: "https://github.com/apple/swift-nio-ssl.git", from: "2.37.6"),
        .package(url: "https://github.com/swift-server/swift-prometheus.git", from: "2.4.1"),
        .package(url: "https://github.com/apple/swift-collections.git", from: "1.6.0"),
        .package(url: "https://github.com/swift-server/async-http-client.git", from: "1.37.0"),
    ],
    targets: [
        // Pure: ids, states, the liveness engine, the wire codec. No I/O, no clock reads.
        .target(
            name: "RollcallCore",
            swiftSettings: swiftSettings
        ),
        // The only module that speaks SQL.
        .target(
            name: "RollcallStore",
            dependencies: [
                "RollcallCore",
                .product(name: "GRDB", package: "GRDB.swift"),
                .product(name: "PostgresNIO", package: "postgres-nio"),
                .product(name: "_ConnectionPoolModule", package: "postgres-nio"),
                .product(name: "NIOCore", package: "swift-nio"),
                .product(name: "NIOPosix", package: "swift-nio"),
                .product(name: "Logging", package: "swift-log"),
            ],
            swiftSettings: swiftSettings
        ),
        .target(
            name: "RollcallServer",
            dependencies: [
                "RollcallCore",
                "RollcallStore",
                .product(name: "Hummingbird", package: "hummingbird"),
                .product(name: "HummingbirdCore", package: "hummingbird"),
                .product(name: "HTTPTypes", package: "swift-http-types"),
                .product(name: "NIOHTTPTypes", package: "swift-nio-extras"),
                .product(name: "NIOHTTPTypesHTTP1", package: "swift-nio-extras"),
                .product(name: "NIOCore", package: "swift-nio"),
                .product(name: "NIOPosix", package: "swift-nio"),
                .product(name: "NIOHTTP1", package: "swift-nio"),
                .product(name: "NIOWebSocket", package: "swift-nio"),
                .product(name: "Crypto", package: "swift-crypto"),
                .product(name: "HummingbirdTLS", package: "hummingbird"),
                .product(name: "NIOSSL", package: "swift-nio-ssl"),
                .product(name: "Prometheus", package: "swift-prometheus"),
                .product(name: "DequeModule", package: "swift-collections"),
                .product(name: "ServiceLifecycle", package: "swift-service-lifecycle"),
                .product(name: "Logging", package: "swift-log"),
            ],
            swiftSettings: swiftSettings
        ),
        // The clients' side of the wire: server URLs (IPv6 literals included) and a WebSocket
        // client on SwiftNIO that verifies TLS by IP address when the server is addressed by one.
        .target(
            name: "RollcallTransport",
            dependencies: [
                "RollcallCore",
                .product(name: "NIOConcurrencyHelpers", package: "swift-nio"),
                .product(name: "NIOCore", package: "swift-nio"),
                .product(name: "NIOPosix", package: "swift-nio"),
                .product(name: "NIOHTTP1", package: "swift-nio"),
                .product(name: "NIOWebSocket", package: "swift-nio"),
                .product(name: "NIOSSL", package: "swift-nio-ssl"),
            ],
            swiftSettings: swiftSettings
        ),
        // Links neither Hummingbird's server side nor SQLite: see scripts/check-agent-deps.
        .target(
            name: "RollcallAgent",
            dependencies: [
                "RollcallCore",
                "RollcallTransport",
                .product(name: "NIOCore", package: "swift-nio"),
                .product(name: "NIOSSL", package: "swift-nio-ssl"),
                .product(name: "Logging", package: "swift-log"),
            ],
            swiftSettings: swiftSettings
        ),
        // The operator commands' HTTP client, and the tables they print.
        .target(
            name: "RollcallClient",
            dependencies: [
                "RollcallCore",
                "RollcallTransport",
                .product(name: "AsyncHTTPClient", package: "async-http-client"),
                .product(name: "NIOCore", package: "swift-nio"),
                .product(name: "NIOHTTP1", package: "swift-nio"),
                .product(name: "NIOSSL", package: "swift-nio-ssl"),
            ],
            swiftSettings: swiftSettings
        ),
        // The terminal dashboard, pure: model, renderer, key decoder, cell-diff writer. No I/O.
        .target(
            name: "RollcallDashboard",
            dependencies: ["RollcallCore"],
            swiftSettings: swiftSettings
        ),
        // `rollcall top` around the pure dashboard: the raw terminal, the watch stream, the API polls.
        .target(
            name: "RollcallTop",
            dependencies: [
                "RollcallCore",
                "RollcallDashboard",
                "RollcallClient",
                "RollcallTransport",
                .product(name: "NIOCore", package: "swift-nio"),
                .product(name: "NIOSSL", package: "swift-nio-ssl"),
                .product(name: "ServiceLifecycle", package: "swift-service-lifecycle"),
                .product(name: "UnixSignals", package: "swift-service-lifecycle"),
                .product(name: "Logging", package: "swift-log"),
            ],
            swiftSettings: swiftSettings
        ),
        // The demo's simulated fleet and live log.
        .target(
            name: "RollcallDemo",
            dependencies: [
                "RollcallCore",
                "RollcallAgent",
                .product(name: "ServiceLifecycle", package: "swift-service-lifecycle"),
                .product(name: "Logging", package: "swift-log"),
            ],
            swiftSettings: swiftSettings
        ),
        .target(
            name: "RollcallTesting",
            dependencies: [
                "RollcallCore",
                "RollcallStore",
                "RollcallServer",
                .product(name: "HummingbirdWSClient", package: "hummingbird-websocket"),
                .product(name: "HTTPTypes", package: "swift-http-types"),
                .product(name: "NIOWebSocket", package: "swift-nio"),
                .product(name: "NIOCore", package: "swift-nio"),
                .product(name: "NIOPosix", package: "swift-nio"),
                .product(name: "ServiceLifecycle", package: "swift-service-lifecycle"),
                .product(name: "Logging", package: "swift-log"),
            ],
            swiftSettings: swiftSettings
        ),
        .executableTarget(
            name: "rollcall",
            dependencies: [
                "RollcallCore",
                "RollcallStore",
                "RollcallServer",
                "RollcallAgent",
                "RollcallDemo",
                "RollcallClient",
                "RollcallDashboard",
                "RollcallTop",
                "RollcallTransport",
                .product(name: "ArgumentParser", package: "swift-argument-parser"),
                .product(name: "NIOCore", package: "swift-nio"),
                .product(name: "ServiceLifecycle", package: "swift-service-lifecycle"),
                .product(name: "UnixSignals", package: "swift-service-lifecycle"),
                .product(name: "Logging", package: "swift-log"),
            ],
            swiftSettings: swiftSettings
        ),
        .executableTarget(
            name: "rollcall-agent",
            dependencies: [
                "RollcallAgent",
                "RollcallTransport",
                .product(name: "NIOCore", package: "swift-nio"),
                .product(name: "NIOPosix", package: "swift-nio"),
                .product(name: "Logging", package: "swift-log"),
            ],
            swiftSettings: swiftSettings
        ),
        // The load generator: many agents from one process, on SwiftNIO directly.
        .target(
            name: "RollcallLoad",
            dependencies: [
                "RollcallCore",
                .product(name: "NIOCore", package: "swift-nio"),
                .product(name: "NIOPosix", package: "swift-nio"),
                .product(name: "NIOHTTP1", package: "swift-nio"),
                .product(name: "NIOWebSocket", package: "swift-nio"),
                .product(name: "Histogram", package: "hdrhistogram-swift"),
            ],
            swiftSettings: swiftSettings
        ),
        .executableTarget(
            name: "rollcall-load",
            dependencies: [
                "RollcallLoad",
                .product(name: "ArgumentParser", package: "swift-argument-parser"),
            ],
            swiftSettings: swiftSettings
        ),
        .testTarget(
            name: "RollcallCoreTests",
            dependencies: [
                "RollcallCore", "RollcallTesting",
                .product(name: "PropertyBased", package: "swift-property-based"),
            ],
            swiftSettings: swiftSettings
        ),
        .testTarget(
            name: "RollcallDashboardTests",
            dependencies: ["RollcallCore", "RollcallDashboard", "RollcallTop", "RollcallTransport"],
            swiftSettings: swiftSettings
        ),
        .testTarget(
            name: "RollcallTransportTests",
            dependencies: [
                "RollcallTransport",
                .product(name: "NIOCore", package: "swift-nio"),
                .product(name: "NIOEmbedded", package: "swift-nio"),
                .product(name: "NIOPosix", package: "swift-nio"),
            ],
            swiftSettings: swiftSettings
        ),
        .testTarget(
            name: "RollcallClientTests",
            dependencies: ["RollcallCore", "RollcallClient", "RollcallTransport"],
            swiftSettings: swiftSettings
        ),
        .testTarget(
            name: "RollcallAgentTests",
            dependencies: ["RollcallCore", "RollcallAgent", "RollcallTransport"],
            swiftSettings: swiftSettings
        ),
        .testTarget(
            name: "RollcallStoreTests",
            dependencies: [
                "RollcallCore", "RollcallStore", "RollcallTesting",
                .product(name: "GRDB", package: "GRDB.swift"),
            ],
            swiftSettings: swiftSettings
        ),
        .testTarget(
            name: "RollcallServerTests",
            dependencies: [
                "RollcallCore", "RollcallStore", "RollcallServer", "RollcallAgent", "RollcallTesting", "RollcallClient",
                "RollcallTransport", "RollcallTop", "RollcallDashboard",
                .product(name: "HummingbirdWSClient", package: "hummingbird-websocket"),
                .product(name: "NIOWebSocket", package: "swift-nio"),
                .product(name: "NIOCore", package: "swift-nio"),
                .product(name: "GRDB", package: "GRDB.swift"),
                .product(name: "Logging", package: "swift-log"),
                .product(name: "PropertyBased", package: "swift-property-based"),
                .product(name: "ServiceLifecycle", package: "swift-service-lifecycle"),
                .product(name: "NIOEmbedded", package: "swift-nio"),
            ],
            swiftSettings: swiftSettings
        ),
    ]
)
