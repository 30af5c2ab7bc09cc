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

/// A form posted to an action, `application/x-www-form-urlencoded`. Pure.
struct ActionForm: Equatable {
    var fields: [String: String] = [:]

    init(fields: [String: String]) { self.fields = fields }

    /// Parses the body of a posted form (`+` as space, `%XX` decoded; bad escapes kept as they are).
    init(urlEncoded body: String) {
        for pair in body.split(separator: "&") {
            let parts = pair.split(separator: "=", maxSplits: 1, omittingEmptySubsequences: false)
            let name = Self.decode(parts[0]), value = parts.count > 1 ? Self.decode(parts[1]) : ""
            if fields[name] == nil { fields[name] = value }
        }
    }

    static func decode(_ text: Substring) -> String {
        let replaced = text.replacingOccurrences(of: "+", with: " ")
        return replaced.removingPercentEncoding ?? replaced
    }

    subscript(_ name: String) -> String? { fields[name] }

    /// The page to return to: a path inside the console only (never another site).
    func back(within mountPath: String, default fallback: String) -> String {
        guard let back = fields["back"], back.hasPrefix(mountPath.isEmpty ? "/" : mountPath + "/"), !back.hasPrefix("//"),
              !back.contains("\\"), back.unicodeScalars.allSatisfy({ $0.value > 0x20 && $0.value < 0x7F })
        else { return fallback }
        return back
    }
}

import Foundation
