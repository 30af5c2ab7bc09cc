// swift-tools-version:6.1
import PackageDescription

let swiftSettings: [SwiftSetting] = [
    .enableUpcomingFeature("ExistentialAny"),
]

let package = Package(
    name: "postgres-locks",
    platforms: [.macOS(.v15)],
    products: [
        .library(name: "PostgresLocks", targets: ["PostgresLocks"]),
        .library(name: "PostgresQueue", targets: ["PostgresQueue"]),
        .library(name: "EphemeralPostgres", targets: ["EphemeralPostgres"]),
        .library(name: "PostgresLocksWeb", targets: ["PostgresLocksWeb"]),
        .library(name: "PostgresLocksVapor", targets: ["PostgresLocksVapor"]),
        .executable(name: "pglock", targets: ["pglock"]),
    ],
    // Vapor and Fluent are built only for a package that asks for them (`traits: ["Vapor"]` or
    // `traits: ["Fluent"]` on its `.package` line): without a trait, PostgresLocksVapor is an
    // empty module and nothing of Vapor is built.
    traits: [
        .trait(name: "Vapor", description: "PostgresLocksVapor: app.postgresLocks, services in Vapor's lifecycle, errors as HTTP statuses."),
        .trait(name: "Fluent", description: "Vapor, and the library's transaction-scoped operations inside a Fluent or SQLKit transaction.", enabledTraits: ["Vapor"]),
        .default(enabledTraits: []),
    ],
    dependencies: [
        .package(url: "https://github.com/vapor/postgres-nio.git", from: "1.33.2"),
        .package(url: "https://github.com/apple/swift-log.git", from: "1.16.2"),
        .package(url: "https://github.com/apple/swift-metrics.git", from: "2.13.0"),
        .package(url: "https://github.com/apple/swift-nio.git", from: "2.101.2"),
        .package(url: "https://github.com/apple/swift-nio-ssl.git", from: "2.37.6"),
        .package(url: "https://github.com/swift-server/swift-service-lifecycle.git", from: "2.13.0"),
        .package(url: "https://github.com/apple/swift-argument-parser.git", from: "1.8.2"),
        .package(url: "https://github.com/apple/swift-crypto.git", "3.12.3"..<"5.0.0"),
        .package(url: "https://github.com/HdrHistogram/hdrhistogram-swift.git", from: "0.2.0"),
        .package(url: "https://github.com/apple/swift-async-algorithms.git", from: "1.1.4"),
        .package(url: "https://github.com/swiftlang/swift-subprocess.git", from: "1.0.2"),
        .package(url: "https://github.com/hummingbird-project/hummingbird.git", from: "2.28.1"),
        .package(url: "https://github.com/apple/swift-distributed-tracing.git", from: "1.7.3"),
        .package(url: "https://github.com/vapor/vapor.git", from: "4.122.3"),
        .package(url: "https://github.com/vapor/fluent-kit.git", from: "1.57.0"),
        .package(url: "https://github.com/vapor/sql-kit.git", from: "3.36.0"),
    ],
    targets: [
        .target(
            name: "PostgresLocks",
            dependencies: [
                .product(name: "PostgresNIO", package: "postgres-nio"),
                .product(name: "Logging", package: "swift-log"),
                .product(name: "Metrics", package: "swift-metrics"),
                .product(name: "NIOCore", package: "swift-nio"),
                .product(name: "NIOSSL", package: "swift-nio-ssl"),
                .product(name: "ServiceLifecycle", package: "swift-service-lifecycle"),
                .product(name: "Crypto", package: "swift-crypto"),
                .product(name: "Tracing", package: "swift-distributed-tracing"),
            ],
            swiftSettings: swiftSettings
        ),
        .target(
            name: "PostgresQueue",
            dependencies: [
                "PostgresLocks",
                .product(name: "Crypto", package: "swift-crypto"),
                .product(name: "NIOCore", package: "swift-nio"),
                .product(name: "PostgresNIO", package: "postgres-nio"),
                .product(name: "Logging", package: "swift-log"),
                .product(name: "Metrics", package: "swift-metrics"),
                .product(name: "ServiceLifecycle", package: "swift-service-lifecycle"),
                .product(name: "Tracing", package: "swift-distributed-tracing"),
            ],
            swiftSettings: swiftSettings
        ),
        .target(
            name: "EphemeralPostgres",
            dependencies: [
                .product(name: "PostgresNIO", package: "postgres-nio"),
                .product(name: "Logging", package: "swift-log"),
                .product(name: "Subprocess", package: "swift-subprocess"),
            ],
            swiftSettings: swiftSettings
        ),
        .target(
            name: "PostgresLocksWeb",
            dependencies: [
                "PostgresLocks",
                "PostgresQueue",
                .product(name: "Hummingbird", package: "hummingbird"),
                .product(name: "PostgresNIO", package: "postgres-nio"),
                .product(name: "Logging", package: "swift-log"),
                .product(name: "Crypto", package: "swift-crypto"),
            ],
            resources: [.copy("Assets")],
            swiftSettings: swiftSettings
        ),
        .target(
            name: "PostgresLocksVapor",
            dependencies: [
                "PostgresLocks",
                "PostgresQueue",
                .product(name: "PostgresNIO", package: "postgres-nio"),
                .product(name: "Logging", package: "swift-log"),
                .product(name: "ServiceLifecycle", package: "swift-service-lifecycle"),
                .product(name: "Vapor", package: "vapor", condition: .when(traits: ["Vapor"])),
                .product(name: "FluentKit", package: "fluent-kit", condition: .when(traits: ["Fluent"])),
                .product(name: "SQLKit", package: "sql-kit", condition: .when(traits: ["Fluent"])),
            ],
            swiftSettings: swiftSettings
        ),
        .target(
            name: "PglockHarness",
            dependencies: [
                "PostgresLocks",
                "PostgresQueue",
                .product(name: "ServiceLifecycle", package: "swift-service-lifecycle"),
                .product(name: "Subprocess", package: "swift-subprocess"),
                .product(name: "Logging", package: "swift-log"),
                .product(name: "PostgresNIO", package: "postgres-nio"),
            ],
            swiftSettings: swiftSettings
        ),
        .executableTarget(
            name: "pglock",
            dependencies: [
                "PglockHarness",
                "PostgresLocks",
                "PostgresQueue",
                "PostgresLocksWeb",
                .product(name: "Hummingbird", package: "hummingbird"),
                .product(name: "ServiceLifecycle", package: "swift-service-lifecycle"),
                "EphemeralPostgres",
                .product(name: "ArgumentParser", package: "swift-argument-parser"),
                .product(name: "Histogram", package: "hdrhistogram-swift"),
                .product(name: "Subprocess", package: "swift-subprocess"),
                .product(name: "Logging", package: "swift-log"),
                .product(name: "PostgresNIO", package: "postgres-nio"),
            ],
            swiftSettings: swiftSettings
        ),
        .target(
            name: "PostgresLocksTestSupport",
            dependencies: [
                "PostgresLocks",
                "EphemeralPostgres",
                .product(name: "PostgresNIO", package: "postgres-nio"),
                .product(name: "Logging", package: "swift-log"),
                .product(name: "AsyncAlgorithms", package: "swift-async-algorithms"),
                .product(name: "ServiceLifecycle", package: "swift-service-lifecycle"),
                .product(name: "Tracing", package: "swift-distributed-tracing"),
                .product(name: "InMemoryTracing", package: "swift-distributed-tracing"),
            ],
            path: "Tests/PostgresLocksTestSupport",
            swiftSettings: swiftSettings
        ),
        .target(
            name: "BrowserTesting",
            dependencies: [
                "EphemeralPostgres",
                .product(name: "AsyncAlgorithms", package: "swift-async-algorithms"),
                .product(name: "HummingbirdTesting", package: "hummingbird"),
                .product(name: "Logging", package: "swift-log"),
                .product(name: "Subprocess", package: "swift-subprocess"),
                .product(name: "NIOCore", package: "swift-nio"),
            ],
            path: "Tests/BrowserTesting",
            swiftSettings: swiftSettings
        ),
        .target(
            name: "DocumentationSnippets",
            dependencies: [
                "PostgresLocks",
                "PostgresQueue",
                "PostgresLocksWeb",
                .product(name: "Hummingbird", package: "hummingbird"),
                .product(name: "PostgresNIO", package: "postgres-nio"),
                .product(name: "Logging", package: "swift-log"),
                .product(name: "NIOCore", package: "swift-nio"),
                .product(name: "ServiceLifecycle", package: "swift-service-lifecycle"),
                .product(name: "Tracing", package: "swift-distributed-tracing"),
            ],
            path: "Tests/DocumentationSnippets",
            swiftSettings: swiftSettings
        ),
        .testTarget(
            name: "PostgresLocksUnitTests",
            dependencies: [
                "PostgresLocks",
                "PostgresQueue",
                "PostgresLocksTestSupport",
            ],
            swiftSettings: swiftSettings
        ),
        .testTarget(
            name: "PostgresLocksTests",
            dependencies: [
                "PostgresLocks",
                "PostgresLocksTestSupport",
                .product(name: "Metrics", package: "swift-metrics"),
                .product(name: "MetricsTestKit", package: "swift-metrics"),
                .product(name: "PostgresNIO", package: "postgres-nio"),
                .product(name: "ServiceLifecycle", package: "swift-service-lifecycle"),
                .product(name: "ServiceLifecycleTestKit", package: "swift-service-lifecycle"),
                .product(name: "Tracing", package: "swift-distributed-tracing"),
                .product(name: "InMemoryTracing", package: "swift-distributed-tracing"),
            ],
            swiftSettings: swiftSettings
        ),
        .testTarget(
            name: "PostgresQueueTests",
            dependencies: [
                "PostgresQueue",
                "PostgresLocks",
                "PostgresLocksTestSupport",
                .product(name: "PostgresNIO", package: "postgres-nio"),
                .product(name: "ServiceLifecycle", package: "swift-service-lifecycle"),
                .product(name: "Tracing", package: "swift-distributed-tracing"),
                .product(name: "InMemoryTracing", package: "swift-distributed-tracing"),
            ],
            swiftSettings: swiftSettings
        ),
        .testTarget(
            name: "PostgresLocksWebTests",
            dependencies: [
                "PostgresLocksWeb",
                "PostgresLocks",
                "PostgresQueue",
                "PostgresLocksTestSupport",
                "BrowserTesting",
                "PglockHarness",
                .product(name: "Subprocess", package: "swift-subprocess"),
                .product(name: "Hummingbird", package: "hummingbird"),
                .product(name: "HummingbirdTesting", package: "hummingbird"),
                .product(name: "PostgresNIO", package: "postgres-nio"),
                .product(name: "Logging", package: "swift-log"),
                .product(name: "ServiceLifecycle", package: "swift-service-lifecycle"),
            ],
            swiftSettings: swiftSettings
        ),
        .testTarget(
            name: "BrowserTestingTests",
            dependencies: [
                "BrowserTesting",
                .product(name: "Hummingbird", package: "hummingbird"),
                .product(name: "Logging", package: "swift-log"),
            ],
            swiftSettings: swiftSettings
        ),
        .testTarget(
            name: "EphemeralPostgresTests",
            dependencies: [
                "EphemeralPostgres",
                "PostgresQueue",
                .product(name: "ServiceLifecycle", package: "swift-service-lifecycle"),
                "PostgresLocksTestSupport",
                "PglockHarness",
                .product(name: "PostgresNIO", package: "postgres-nio"),
                .product(name: "Subprocess", package: "swift-subprocess"),
            ],
            swiftSettings: swiftSettings
        ),
        .testTarget(
            name: "ReliabilityTests",
            dependencies: [
                "DocumentationSnippets",
                "PostgresLocks",
                "PostgresQueue",
                "EphemeralPostgres",
                "PostgresLocksTestSupport",
                "PglockHarness",
                .product(name: "Logging", package: "swift-log"),
                .product(name: "PostgresNIO", package: "postgres-nio"),
                .product(name: "ServiceLifecycle", package: "swift-service-lifecycle"),
                .product(name: "Subprocess", package: "swift-subprocess"),
            ],
            exclude: ["README.md"],
            swiftSettings: swiftSettings
        ),
    ],
    swiftLanguageModes: [.v6]
)
