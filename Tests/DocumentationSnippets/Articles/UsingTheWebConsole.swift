// The code of PostgresLocksWeb's article "Using the web console", compiled.
import Hummingbird
import Logging
import PostgresNIO
import PostgresLocksWeb

func addConsole(to router: Router<BasicRequestContext>, client: PostgresClient, logger: Logger) throws {
    var configuration = WebConsole.Configuration(mountPath: "/ops")
    configuration.queueSchemas = ["jobs"]               // the schemas of your JobQueues
    configuration.knownLockNames = ["billing:nightly"]  // names for hashed advisory keys
    configuration.authentication = try WebConsoleAuthentication.fromEnvironment()
    let console = try WebConsole(client: client, configuration: configuration, logger: logger)
    console.addRoutes(to: router)
}
