/// The leader election's campaign decisions, without I/O (see `LeaderElection.campaign()`).
///
/// The campaign is a loop of rounds: probe the address for a transaction pooler, connect,
/// hold a session (follow, then lead), and when the session ends either stop or pause and go
/// round again. The shell does the I/O and reports each step's result; the machine says what
/// comes next. A stop request always wins.
struct LeaderCampaignStateMachine {
    /// What to do with a pooling probe's answer.
    enum ProbeAction: Equatable {
        /// A session of its own is assured: connect and campaign.
        case campaign
        /// The probe could not run: connect once to learn why (an error retrying cannot fix
        /// ends the election), then close and probe again next round.
        case connectToDiagnose
        /// Behind transaction pooling a session lock would not hold: end the election.
        case refuse
    }

    /// How a round's session ended, as the shell saw it.
    enum SessionEnd {
        /// The round ended without an error (a stop was requested and honoured).
        case finished
        /// It failed; `permanent` when retrying cannot fix it (authentication, a missing
        /// database, a permission or syntax error).
        case failed(any Error, permanent: Bool)
    }

    /// What follows the end of a round.
    enum NextStep {
        /// End the campaign; with an error for `run()` to throw, or nil for a clean stop.
        case stop(failure: (any Error)?)
        /// Pause, then start the next round; `failure` is what to report (nil: nothing failed).
        case reconnect(after: Duration, failure: (any Error)?)
    }

    private var reconnects: ReconnectSchedule
    /// The least pause after a round that led: long enough for a polling follower's next try.
    let stepBack: Duration

    /// A campaign that reconnects on `backoff`, and after losing leadership pauses at least
    /// `stepBack` (two lock poll intervals, see ``roundEnded(_:healthy:led:stopRequested:using:)``).
    init(backoff: Backoff, stepBack: Duration = .zero) {
        reconnects = ReconnectSchedule(backoff: backoff)
        self.stepBack = stepBack
    }

    /// The probe's answer for this round.
    func probed(_ pooling: ConnectionPooling) -> ProbeAction {
        switch pooling {
        case .sessionPerConnection: return .campaign
        case .unknown: return .connectToDiagnose
        case .transactionPooling: return .refuse
        }
    }

    /// The round ended: `healthy` when its session got as far as polling for the lock (the
    /// backoff then starts over), `led` when it held leadership, `stopRequested` when the
    /// service is stopping.
    ///
    /// A round that led pauses at least ``stepBack``: the lost session freed the lock, and every
    /// polling follower tries it within one poll interval, so one of them takes over instead of
    /// the instance whose session just died (its network or its process may be what failed).
    /// With no follower the same instance leads again after the pause.
    mutating func roundEnded<G: RandomNumberGenerator>(
        _ end: SessionEnd,
        healthy: Bool,
        led: Bool,
        stopRequested: Bool,
        using generator: inout G
    ) -> NextStep {
        if stopRequested { return .stop(failure: nil) }
        let failure: (any Error)?
        switch end {
        case .failed(let error, permanent: true):
            return .stop(failure: error)
        case .failed(let error, permanent: false):
            failure = error
        case .finished:
            failure = nil
        }
        let pause = reconnects.pauseAfterSession(healthy: healthy, using: &generator)
        return .reconnect(after: led ? max(pause, stepBack) : pause, failure: failure)
    }
}
