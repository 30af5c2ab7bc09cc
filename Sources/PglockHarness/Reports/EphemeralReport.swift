import Foundation

/// What `pglock ephemeral --json` prints: the throwaway server (and pooler) it started.
package struct EphemeralReport: Codable {
    package var url: String
    package var baseDirectory: String
    package var postmasterPID: Int32?
    package var userID: UInt32
    package var answer: Int
    /// With `--pgbouncer`: the pooler's URL and folder, its process id, and `SELECT 6 * 7`
    /// answered through it.
    package var pgbouncerURL, pgbouncerDirectory: String?
    package var pgbouncerPID: Int32?
    package var pgbouncerAnswer: Int?

    /// The report of a server started by this process's user, without a pooler (its fields
    /// are set when one is started).
    package init(url: String, baseDirectory: String, postmasterPID: Int32?, answer: Int) {
        userID = getuid()
        self.url = url
        self.baseDirectory = baseDirectory
        self.postmasterPID = postmasterPID
        self.answer = answer
    }
}
