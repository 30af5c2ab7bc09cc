// The Swift blocks of the DocC article RunningBehindPoolers.md.
import PostgresLocks
import PostgresNIO

func articleStatementPreparation(client: PostgresClient, connection: PostgresConnection) {
    client.statementPreparation = .disabled        // every hot statement unnamed on this client
    connection.statementPreparation = .disabled    // on one dedicated connection
}
