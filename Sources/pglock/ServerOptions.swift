import ArgumentParser

/// `--database-url` and `--connect-timeout`, as every command takes them; `Default` says what
/// a command does without a URL (its help names it). Read them through ``choice``.
struct ServerOptions<Default: ServerDefault>: ParsableArguments {
    @Option(name: .customLong("database-url"), help: ArgumentHelp(Default.urlHelp, valueName: "url"))
    var databaseURL: String?

    @Option(name: .customLong("connect-timeout"), help: ArgumentHelp(DatabaseChoice.connectTimeoutHelp, valueName: "duration"))
    var connectTimeout: String?

    /// The choice these options make.
    var choice: DatabaseChoice { DatabaseChoice(databaseURL: databaseURL, connectTimeout: connectTimeout) }
}

/// What a command does when given no URL: the one difference between the option groups.
protocol ServerDefault: Sendable {
    /// The help of `--database-url`: the phrase the tests look for.
    static var urlHelp: String { get }
}

/// The commands that act on *your* server (doctor, locks, top, queue, run, web): they never
/// start a throwaway one, so a URL is required unless `DATABASE_URL` is set
/// (``DatabaseChoice/withExplicitClient(maximumConnections:applicationName:purpose:_:)``).
enum YourServer: ServerDefault {
    static let urlHelp = "A postgres:// URL of the server to use (required unless $DATABASE_URL is set)."
}

/// The commands that bring their own server when given none (demo, bench, soak):
/// `--database-url`, else `DATABASE_URL`, else a throwaway local PostgreSQL, removed when the
/// command ends (``DatabaseChoice/withClient(maximumConnections:ephemeralConfiguration:progress:logger:_:)``).
enum ThrowawayServer: ServerDefault {
    static let urlHelp = "A postgres:// URL of the server to use (default: $DATABASE_URL, else a throwaway local server)."
}

/// The options of the commands that act on your server.
typealias DatabaseOptions = ServerOptions<YourServer>

/// The options of the commands that bring a throwaway server when given none.
typealias ThrowawayServerOptions = ServerOptions<ThrowawayServer>
