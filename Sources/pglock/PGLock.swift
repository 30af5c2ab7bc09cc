import ArgumentParser

/// `pglock`: the command-line tool of PostgresLocks.
@main
struct PGLock: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "pglock",
        abstract: "Coordinate services through PostgreSQL: advisory locks, patterns on them, and a look inside.",
        discussion: """
        Without --database-url (or DATABASE_URL), commands that need a server start a throwaway \
        local PostgreSQL and remove it when they finish.
        """,
        subcommands: [DemoCommand.self, RunCommand.self, LocksCommand.self, TopCommand.self, DoctorCommand.self, QueueCommand.self, BenchCommand.self, SoakCommand.self, EphemeralCommand.self]
    )
}
