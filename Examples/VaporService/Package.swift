// swift-tools-version:6.1
import PackageDescription

let swiftSettings: [SwiftSetting] = [
    .enableUpcomingFeature("ExistentialAny"),
]

let package = Package(
    name: "VaporService",
    platforms: [.macOS(.v15)],
    products: [
        .executable(name: "VaporService", targets: ["VaporService"]),
    ],
    traits: [
        // Exports the traces to an OpenTelemetry collector with swift-otel (off by default: it
        // adds several minutes to a first build).
        .trait(name: "OTel", description: "Export traces with swift-otel (OTLP)."),
    ],
    dependencies: [
        // The root package (postgres-locks), with its Fluent trait: PostgresLocksVapor and the
        // Fluent transaction adoption are built only for packages that ask for them.
        .package(name: "postgres-locks", path: "../..", traits: ["Fluent"]),
        .package(url: "https://github.com/vapor/vapor.git", from: "4.122.3"),
        .package(url: "https://github.com/vapor/fluent.git", from: "4.13.0"),
        .package(url: "https://github.com/vapor/fluent-postgres-driver.git", from: "2.14.0"),
        .package(url: "https://github.com/vapor/postgres-nio.git", from: "1.33.2"),
        .package(url: "https://github.com/apple/swift-distributed-tracing.git", from: "1.7.3"),
        .package(url: "https://github.com/swift-server/swift-service-lifecycle.git", from: "2.13.0"),
        .package(url: "https://github.com/swift-otel/swift-otel.git", from: "1.6.0"),
        .package(url: "https://github.com/apple/swift-async-algorithms.git", from: "1.1.4"),
    ],
    targets: [
        .executableTarget(
            name: "VaporService",
            dependencies: [
                .product(name: "PostgresLocks", package: "postgres-locks"),
                .product(name: "PostgresQueue", package: "postgres-locks"),
                .product(name: "PostgresLocksVapor", package: "postgres-locks"),
                .product(name: "Vapor", package: "vapor"),
                .product(name: "Fluent", package: "fluent"),
                .product(name: "FluentPostgresDriver", package: "fluent-postgres-driver"),
                .product(name: "PostgresNIO", package: "postgres-nio"),
                .product(name: "Tracing", package: "swift-distributed-tracing"),
                .product(name: "ServiceLifecycle", package: "swift-service-lifecycle"),
                .product(name: "OTel", package: "swift-otel", condition: .when(traits: ["OTel"])),
            ],
            swiftSettings: swiftSettings
        ),
        .testTarget(
            name: "VaporServiceTests",
            dependencies: [
                "VaporService",
                .product(name: "PostgresLocks", package: "postgres-locks"),
                .product(name: "PostgresQueue", package: "postgres-locks"),
                .product(name: "PostgresLocksVapor", package: "postgres-locks"),
                .product(name: "EphemeralPostgres", package: "postgres-locks"),
                .product(name: "VaporTesting", package: "vapor"),
                .product(name: "Fluent", package: "fluent"),
                .product(name: "FluentPostgresDriver", package: "fluent-postgres-driver"),
                .product(name: "PostgresNIO", package: "postgres-nio"),
                .product(name: "Tracing", package: "swift-distributed-tracing"),
                .product(name: "InMemoryTracing", package: "swift-distributed-tracing"),
                .product(name: "AsyncAlgorithms", package: "swift-async-algorithms"),
            ],
            swiftSettings: swiftSettings
        ),
    ],
    swiftLanguageModes: [.v6]
)
