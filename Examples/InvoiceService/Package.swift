// swift-tools-version:6.1
import PackageDescription

let swiftSettings: [SwiftSetting] = [
    .enableUpcomingFeature("ExistentialAny"),
]

let package = Package(
    name: "InvoiceService",
    platforms: [.macOS(.v15)],
    products: [
        .executable(name: "InvoiceService", targets: ["InvoiceService"]),
    ],
    dependencies: [
        // The root package (postgres-locks). `name:` keeps the product lookups below working
        // whatever the checkout's folder is called.
        .package(name: "postgres-locks", path: "../.."),
        .package(url: "https://github.com/hummingbird-project/hummingbird.git", from: "2.28.1"),
        .package(url: "https://github.com/vapor/postgres-nio.git", from: "1.33.2"),
        .package(url: "https://github.com/apple/swift-log.git", from: "1.16.2"),
        .package(url: "https://github.com/swift-server/swift-service-lifecycle.git", from: "2.13.0"),
        .package(url: "https://github.com/apple/swift-async-algorithms.git", from: "1.1.4"),
    ],
    targets: [
        .executableTarget(
            name: "InvoiceService",
            dependencies: [
                .product(name: "PostgresLocks", package: "postgres-locks"),
                .product(name: "PostgresQueue", package: "postgres-locks"),
                .product(name: "Hummingbird", package: "hummingbird"),
                .product(name: "PostgresNIO", package: "postgres-nio"),
                .product(name: "Logging", package: "swift-log"),
                .product(name: "ServiceLifecycle", package: "swift-service-lifecycle"),
            ],
            swiftSettings: swiftSettings
        ),
        .testTarget(
            name: "InvoiceServiceTests",
            dependencies: [
                "InvoiceService",
                .product(name: "PostgresLocks", package: "postgres-locks"),
                .product(name: "PostgresQueue", package: "postgres-locks"),
                .product(name: "Hummingbird", package: "hummingbird"),
                .product(name: "HummingbirdTesting", package: "hummingbird"),
                .product(name: "PostgresNIO", package: "postgres-nio"),
                .product(name: "Logging", package: "swift-log"),
                .product(name: "AsyncAlgorithms", package: "swift-async-algorithms"),
            ],
            swiftSettings: swiftSettings
        ),
    ],
    swiftLanguageModes: [.v6]
)
