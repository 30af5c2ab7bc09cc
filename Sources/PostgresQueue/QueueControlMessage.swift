/// A message on a queue's control channel, as its `NOTIFY` payload carries it: the command, a
/// tab, and its argument. Workers act on them at once; the stored state (the queues table and
/// the jobs' states) stays the truth for a worker that was not listening.
enum QueueControlMessage: Sendable, Hashable {
    /// A queue was paused.
    case paused(queue: String)
    /// A queue was resumed.
    case resumed(queue: String)
    /// A queue's concurrency or limits changed.
    case settingsChanged(queue: String)
    /// A job was cancelled: the worker running it cancels its task.
    case cancelled(jobID: Int64)

    /// The `NOTIFY` payload.
    var payload: String {
        switch self {
        case .paused(let queue): "pause\t\(queue)"
        case .resumed(let queue): "resume\t\(queue)"
        case .settingsChanged(let queue): "settings\t\(queue)"
        case .cancelled(let id): "cancel\t\(id)"
        }
    }

    /// Reads a payload; `nil` for one this version does not know (ignored by workers).
    init?(payload: String) {
        guard let tab = payload.firstIndex(of: "\t") else { return nil }
        let command = payload[..<tab], argument = String(payload[payload.index(after: tab)...])
        guard !argument.isEmpty else { return nil }
        switch command {
        case "pause": self = .paused(queue: argument)
        case "resume": self = .resumed(queue: argument)
        case "settings": self = .settingsChanged(queue: argument)
        case "cancel":
            guard let id = Int64(argument) else { return nil }
            self = .cancelled(jobID: id)
        default: return nil
        }
    }

    /// The queue whose workers must re-read their settings, if any.
    var queue: String? {
        switch self {
        case .paused(let queue), .resumed(let queue), .settingsChanged(let queue): queue
        case .cancelled: nil
        }
    }
}
