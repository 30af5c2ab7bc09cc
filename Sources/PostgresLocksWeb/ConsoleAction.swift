/// What an operator can do from the console, and to what.
enum ConsoleAction: String, Sendable, CaseIterable {
    case retryJob = "retry"
    case cancelJob = "cancel"
    case discardJob = "discard"
    case pauseQueue = "pause"
    case resumeQueue = "resume"
    case cancelBackend = "cancel-backend"
    case terminateBackend = "terminate-backend"

    enum Target: Sendable, Equatable {
        case job(Int64)
        case queue(String)
        case backend(Int32)

        var description: String {
            switch self {
            case .job(let id): "job \(id)"
            case .queue(let name): "queue \(name)"
            case .backend(let pid): "backend \(pid)"
            }
        }
    }

    /// The question on the confirmation page.
    func question(_ target: Target) -> String {
        switch self {
        case .retryJob: "Make \(target.description) available again now?"
        case .cancelJob: "Cancel \(target.description)? A worker running it is told to stop."
        case .discardJob: "Discard \(target.description)? It becomes dead and is not retried."
        case .pauseQueue: "Pause \(target.description)? No worker claims from it until it is resumed."
        case .resumeQueue: "Resume \(target.description)?"
        case .cancelBackend: "Cancel the statement running in \(target.description) (pg_cancel_backend)?"
        case .terminateBackend: "Terminate \(target.description) (pg_terminate_backend)? Its transaction is rolled back and its session locks are released."
        }
    }

    /// The `done` value an action's redirect carries: `<action>:<changed|unchanged>`.
    func done(changed: Bool) -> String { "\(rawValue):\(changed ? "changed" : "unchanged")" }

    /// The notice for a `done` value; nil for anything an action did not write (so a link
    /// cannot make the page claim something happened).
    static func notice(_ done: String) -> String? {
        let parts = done.split(separator: ":")
        guard parts.count == 2, let action = ConsoleAction(rawValue: String(parts[0])) else { return nil }
        switch parts[1] {
        case "changed": return "\(action.label): done."
        case "unchanged": return "\(action.label): nothing changed (the job or backend was no longer in a state it applies to)."
        default: return nil
        }
    }

    var label: String {
        switch self {
        case .retryJob: "Retry"
        case .cancelJob, .cancelBackend: "Cancel"
        case .discardJob: "Discard"
        case .pauseQueue: "Pause"
        case .resumeQueue: "Resume"
        case .terminateBackend: "Terminate"
        }
    }
}
