import NIOCore
import PostgresNIO

/// The one error type thrown by `PostgresLocks` for database outcomes.
///
/// Every error the server or the driver reports is mapped to a ``Code`` with a readable
/// name, so callers can `switch` on what happened instead of parsing SQLSTATE strings:
///
/// ```swift
/// do {
///     try await client.withCheckedTransaction(logger: logger) { tx in ... }
/// } catch let error as PostgresLocksError where error.code == .deadlock {
///     // retry, or use withRetryingTransaction
/// }
/// ```
///
/// The description never contains a password or connection secret: it is built from the
/// code, the SQLSTATE and the server's message only, and a data exception's message (SQLSTATE
/// class 22) has the input values it quotes withheld, since they are the caller's data
/// (`invalid input syntax for type integer: "…"`). `String(reflecting:)` keeps the driver's
/// full error for debugging.
public struct PostgresLocksError: Error, Sendable, CustomStringConvertible, CustomDebugStringConvertible {
    /// What went wrong, as a small extensible set of named codes.
    public struct Code: Hashable, Sendable, CustomStringConvertible {
        /// The code's stable, readable name (for logs and metrics labels).
        public let name: String

        @usableFromInline
        init(_ name: String) { self.name = name }

        /// The server detected a deadlock and aborted this transaction (SQLSTATE 40P01).
        public static let deadlock = Code("deadlock")
        /// A serializable or repeatable-read transaction could not be serialized (SQLSTATE 40001).
        public static let serializationFailure = Code("serializationFailure")
        /// A lock could not be taken: `NOWAIT`, or `lock_timeout` expired (SQLSTATE 55P03).
        public static let lockNotAvailable = Code("lockNotAvailable")
        /// The statement was cancelled: `statement_timeout` or `pg_cancel_backend` (SQLSTATE 57014).
        public static let queryCanceled = Code("queryCanceled")
        /// The server's shared lock table is full (SQLSTATE 53200, "out of shared memory").
        public static let lockTableFull = Code("lockTableFull")
        /// A unique constraint was violated (SQLSTATE 23505).
        public static let uniqueViolation = Code("uniqueViolation")
        /// The connection to the server is gone (SQLSTATE class 08, 57P01–57P03, or a closed socket).
        public static let connectionLost = Code("connectionLost")
        /// The transaction was aborted by an earlier error that the body caught and swallowed;
        /// nothing it did was committed.
        public static let transactionAborted = Code("transactionAborted")
        /// A statement ran in a transaction that had already failed (SQLSTATE 25P02).
        public static let inFailedTransaction = Code("inFailedTransaction")
        /// A session lock's connection died while the lock was held; the guarded work was cancelled.
        public static let lockLost = Code("lockLost")
        /// A lock was not obtained within the caller's deadline, or not at all for a try-lock.
        public static let lockTimeout = Code("lockTimeout")
        /// A write was fenced off: its ``FencingToken`` is from an older leader term than the one
        /// stored, so another instance has become leader since (see ``Transaction/requireCurrentTerm(_:)``).
        public static let fenced = Code("fenced")
        /// An argument was rejected before anything was sent to the server.
        public static let invalidArgument = Code("invalidArgument")
        /// The server or connection does not provide what the library needs (a pooling proxy,
        /// advisory locks that do not exclude).
        public static let unsupportedEnvironment = Code("unsupportedEnvironment")
        /// The connection settings require TLS (`sslmode=require`, `verify-ca`, `verify-full`)
        /// and the server does not offer it.
        public static let tlsUnavailable = Code("tlsUnavailable")
        /// The connection was lost while `COMMIT` was in flight, and whether the transaction
        /// committed could not be settled: ``PostgresLocksError/transactionID`` holds its
        /// transaction id when it was read, so the caller can ask `pg_xact_status` later.
        public static let commitOutcomeUnknown = Code("commitOutcomeUnknown")
        /// A checked transaction was started on a connection that is already inside a
        /// transaction (opened by an ORM or by hand): nothing was sent.
        public static let nestedTransaction = Code("nestedTransaction")
        /// The library was asked to adopt the caller's transaction
        /// (``PostgresNIO/PostgresConnection/withAdoptedTransaction(canceller:logger:isolation:_:)``)
        /// on a connection that is not inside a transaction block: nothing was run.
        public static let notInTransaction = Code("notInTransaction")
        /// A feature that needs a server session (session locks, singletons, leader election,
        /// `LISTEN`) was refused because the connection goes through a transaction-pooling proxy.
        public static let transactionPooling = Code("transactionPooling")
        /// Any other server error; ``PostgresLocksError/sqlState`` holds its SQLSTATE.
        public static let server = Code("server")
        /// Any other client-side driver error.
        public static let client = Code("client")

        public var description: String { name }
    }

    /// What went wrong.
    public var code: Code
    /// The five-character SQLSTATE the server sent, if the error came from the server.
    public var sqlState: String?
    /// A readable explanation: the server's message or the library's own.
    public var message: String
    /// The server's hint, or advice from the library on what to change.
    public var hint: String?
    /// The error this one was made from, kept for debugging (`String(reflecting:)`).
    public var underlying: (any Error)?
    /// The transaction id (`pg_current_xact_id()`) of a transaction whose `COMMIT` outcome is
    /// unknown (``Code/commitOutcomeUnknown``), when it was read before `COMMIT`.
    public var transactionID: UInt64?

    /// Creates an error.
    public init(code: Code, message: String, sqlState: String? = nil, hint: String? = nil, underlying: (any Error)? = nil) {
        self.code = code
        self.message = message
        self.sqlState = sqlState
        self.hint = hint
        self.underlying = underlying
    }

    /// Whether re-running the whole transaction may succeed (deadlock or serialization failure).
    public var isTransient: Bool {
        code == .deadlock || code == .serializationFailure
    }

    public var description: String {
        var text = "\(code.name)"
        if let sqlState { text += " (SQLSTATE \(sqlState))" }
        text += ": \(message)"
        if let hint { text += " (hint: \(hint))" }
        return text
    }

    public var debugDescription: String {
        var text = "PostgresLocksError(\(description)"
        if let underlying { text += ", underlying: \(String(reflecting: underlying))" }
        return text + ")"
    }
}

extension PostgresLocksError {
    /// The code for a SQLSTATE, as a pure mapping.
    public static func code(forSQLState state: String) -> Code {
        switch state {
        case "40P01": return .deadlock
        case "40001": return .serializationFailure
        case "55P03": return .lockNotAvailable
        case "57014": return .queryCanceled
        case "53200": return .lockTableFull
        case "23505": return .uniqueViolation
        case "25P02": return .inFailedTransaction
        case "57P01", "57P02", "57P03": return .connectionLost
        default:
            return state.hasPrefix("08") ? .connectionLost : .server
        }
    }

    /// Maps any error to a `PostgresLocksError`; `CancellationError` and errors that are already
    /// `PostgresLocksError` are returned as they are (the former is not wrapped), and a pooled
    /// connection's lease cancelled with its task becomes `CancellationError`.
    public static func wrap(_ error: any Error) -> any Error {
        switch error {
        case is PostgresLocksError, is CancellationError:
            return error
        case let psql as PSQLError:
            return PostgresLocksError(psql)
        case let legacy as PostgresError:
            return PostgresLocksError(legacy)
        case is IOError, is ChannelError:
            // PostgresNIO's older API (prepared queries) passes socket errors through as they are.
            return PostgresLocksError(code: .connectionLost, message: "the connection to the server was lost (\(error))", underlying: error)
        default:
            if String(describing: type(of: error)) == "ConnectionPoolError" {
                // PostgresNIO's pool fails a lease whose task was cancelled while it waited in
                // the pool's queue with its own error: a cancellation, like any other wait's.
                if String(reflecting: error).contains("requestCancelled") { return CancellationError() }
                return poolFailure(error)
            }
            return error
        }
    }

    /// Maps a driver error to a `PostgresLocksError`.
    public init(_ error: PSQLError) {
        switch error.code {
        case .server:
            self.init(
                serverState: error.serverInfo?[.sqlState], message: error.serverInfo?[.message],
                hint: error.serverInfo?[.hint], underlying: error
            )
        case .connectionError:
            self = Self.connectFailure(error)
        case .serverClosedConnection, .clientClosedConnection, .uncleanShutdown, .poolClosed:
            self.init(code: .connectionLost, message: "the connection to the server was lost (\(error.code))", underlying: error)
        case .queryCancelled:
            self.init(code: .queryCanceled, message: "the query was cancelled", underlying: error)
        case .sslUnsupported:
            self.init(
                code: .tlsUnavailable,
                message: "the server does not offer TLS, and the connection settings require it",
                hint: "enable ssl on the server, or use sslmode=prefer (or disable) if an unencrypted connection is acceptable",
                underlying: error
            )
        default:
            self.init(code: .client, message: "driver error: \(error.code)", underlying: error)
        }
    }

    /// Maps an error of PostgresNIO's older API (its prepared queries) to a `PostgresLocksError`.
    public init(_ error: PostgresError) {
        switch error {
        case .server(let response):
            self.init(
                serverState: response.fields[.sqlState], message: response.fields[.message],
                hint: response.fields[.hint], underlying: error
            )
        case .connectionClosed:
            self.init(code: .connectionLost, message: "the connection to the server was lost", underlying: error)
        case .protocol(let text) where text == "Unexpected connection close":
            self.init(code: .connectionLost, message: "the connection to the server was lost (\(text))", underlying: error)
        case .protocol(let text):
            self.init(code: .client, message: "driver error: \(text)", underlying: error)
        }
    }

    /// An error the server sent: its SQLSTATE mapped to a ``Code``.
    private init(serverState: String?, message: String?, hint: String?, underlying: any Error) {
        let state = serverState ?? "XX000"
        let code = Self.code(forSQLState: state)
        var hint = hint
        if code == .lockTableFull {
            hint = "the server's lock table is full: raise max_locks_per_transaction (it sizes a shared table of max_locks_per_transaction × (max_connections + max_prepared_transactions) entries) or take fewer keys per transaction"
        }
        // A data exception's message quotes the caller's input: withheld (see ServerMessageRedaction).
        let message = message.map { ServerMessageRedaction.redacting($0, sqlState: state) }
        self.init(code: code, message: message ?? "server error", sqlState: state, hint: hint, underlying: underlying)
    }

    static func connectionLost(_ context: String) -> PostgresLocksError {
        PostgresLocksError(code: .connectionLost, message: "the connection to the server is closed (\(context))")
    }

    static func invalidArgument(_ message: String) -> PostgresLocksError {
        PostgresLocksError(code: .invalidArgument, message: message)
    }

    /// Throws ``Code/invalidArgument`` with `message` unless `condition` holds: how an argument
    /// is checked before anything is sent or made.
    package static func require(_ condition: Bool, _ message: @autoclosure () -> String) throws(PostgresLocksError) {
        guard condition else { throw PostgresLocksError(code: .invalidArgument, message: message()) }
    }
}
