import Foundation

/// What `pglock ephemeral --json` prints: the throwaway server (and pooler) it started.
package struct EphemeralReport: Codable {
    package var url: String
    package var baseDirectory: String
    package var postmasterPID: Int32?
    package var userID: UInt32
    package var answer: Int
    /// The pooler's URL, with `--pgbouncer`.
    package var pgbouncerURL: String?
    /// The pooler's folder, with `--pgbouncer`.
    package var pgbouncerDirectory: String?
    /// The pooler's process id, with `--pgbouncer`.
    package var pgbouncerPID: Int32?
    /// `SELECT 6 * 7` answered through the pooler, with `--pgbouncer`.
    package var pgbouncerAnswer: Int?

    /// The report of a server started by this process's user, without a pooler (its fields
    /// are set when one is started).
    package init(url: String, baseDirectory: String, postmasterPID: Int32?, answer: Int) {
        self.url = url
        self.baseDirectory = baseDirectory
        self.postmasterPID = postmasterPID
        userID = getuid()
        self.answer = answer
    }
}
