import Logging
@testable import PostgresLocks
import PostgresNIO
import Testing

/// The `application_name` of the library's sessions: `<role> <instance>` by default, within
/// PostgreSQL's 63 bytes, and whatever the user gave when they gave one.
@Suite("Application name")
struct ApplicationNameTests {
    /// The `application_name` a connection configuration sends.
    private static func sent(_ parameters: [(String, String)]) -> String? {
        parameters.first { $0.0 == "application_name" }?.1
    }

    @Test func theDefaultNamesTheLibraryAndThisProcesssInstance() throws {
        let settings = try ConnectionSettings(url: "postgres://app@db.internal/orders")
        #expect(settings.applicationName == nil)
        let expected = ConnectionSettings.applicationName("postgres-locks", instance: ServiceInstance.current)
        #expect(settings.effectiveApplicationName == expected)
        #expect(expected.hasPrefix("postgres-locks "))
        #expect(expected.utf8.count <= 63)
        // One id per process: every default name carries the same one.
        #expect(ServiceInstance.current == ServiceInstance.current)
        #expect(expected.contains(String(ServiceInstance.current.prefix(20))))
        #expect(Self.sent(try settings.makeConnectionConfiguration().options.additionalStartupParameters) == expected)
        #expect(Self.sent(try settings.makeClientConfiguration().options.additionalStartupParameters) == expected)
    }

    @Test func aGivenNameWinsAndIsSentAsItIs() throws {
        let fromURL = try ConnectionSettings(url: "postgres://app@db.internal/orders?application_name=billing")
        #expect(fromURL.effectiveApplicationName == "billing")
        #expect(Self.sent(try fromURL.makeConnectionConfiguration().options.additionalStartupParameters) == "billing")

        let fromEnvironment = try ConnectionSettings(url: "postgres://app@db.internal/orders", environment: ["PGAPPNAME": "nightly-export"])
        #expect(Self.sent(try fromEnvironment.makeClientConfiguration().options.additionalStartupParameters) == "nightly-export")

        var explicit = try ConnectionSettings(url: "postgres://app@db.internal/orders")
        explicit.applicationName = "worker"
        #expect(explicit.effectiveApplicationName == "worker")
        #expect(explicit.named("pglocks-leader", instance: "a").applicationName == "worker")
    }

    @Test func leaderAndLockPoolSessionsNameTheirRoleAndInstance() throws {
        let settings = try ConnectionSettings(url: "postgres://app@db.internal/orders")
        let configuration = LeaderElection.Configuration(name: "billing", connection: settings, instanceID: "web-1/4242/9f3a")
        let election = try LeaderElection(configuration: configuration, logger: Logger(label: "test"))
        #expect(Self.sent(election.connectionConfiguration.options.additionalStartupParameters) == "pglocks-leader web-1/4242/9f3a")

        let pool = try SessionLockPool(configuration: .init(connection: settings), logger: Logger(label: "test"))
        #expect(Self.sent(pool.connectionConfiguration.options.additionalStartupParameters) == ConnectionSettings.applicationName("pglocks-locks", instance: ServiceInstance.current))

        var named = settings
        named.applicationName = "scheduler"
        let namedElection = try LeaderElection(configuration: .init(name: "billing", connection: named), logger: Logger(label: "test"))
        #expect(Self.sent(namedElection.connectionConfiguration.options.additionalStartupParameters) == "scheduler")
    }

    @Test func longNamesAreCutTo63BytesAtACharacterBoundary() {
        let host = String(repeating: "h", count: 40) + "é漢字" + String(repeating: "x", count: 30)
        let name = ConnectionSettings.applicationName("pglocks-leader", instance: "\(host)/4242/9f3a")
        #expect(name.utf8.count <= 63)
        #expect(name.utf8.count >= 60)
        #expect(("pglocks-leader \(host)/4242/9f3a").hasPrefix(name))
        // Exactly at a boundary: a three-byte character that would cross byte 63 is left out whole.
        let edge = ConnectionSettings.applicationName(String(repeating: "a", count: 61), instance: "漢")
        #expect(edge == String(repeating: "a", count: 61) + " ")
        #expect(ConnectionSettings.applicationName("postgres-locks", instance: "") == "postgres-locks")
    }
}
