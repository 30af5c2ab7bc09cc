extension LeaderElection {
    /// A new stream of this instance's leadership changes, starting with the current state.
    ///
    /// Every call makes an independent subscriber, so several tasks can follow the same
    /// election. The first element is the state at the time of the call
    /// (``LeadershipChange/follower`` before the first election), then one element per change,
    /// in order, never the same twice in a row. The stream finishes when ``run()`` returns
    /// (after a last ``LeadershipChange/follower``); a stream made after that yields
    /// ``LeadershipChange/follower`` and finishes. Changes are buffered without limit, but
    /// there are few of them.
    public func leadershipChanges() -> AsyncStream<LeadershipChange> {
        let (stream, continuation) = AsyncStream<LeadershipChange>.makeStream()
        let registered = state.withLock { state -> UInt64? in
            // Yielded under the lock, so a concurrent change cannot overtake it.
            continuation.yield(state.current)
            guard !state.finished else { return nil }
            let id = state.nextSubscriberID
            state.nextSubscriberID &+= 1
            state.subscribers[id] = continuation
            return id
        }
        guard let id = registered else {
            continuation.finish()
            return stream
        }
        continuation.onTermination = { [weak self] _ in
            self?.state.withLock { _ = $0.subscribers.removeValue(forKey: id) }
        }
        return stream
    }

    /// Records `change` as the current state and sends it to every subscriber, unless it is
    /// the current state already. Only the campaign task calls this, so changes are ordered.
    func publish(_ change: LeadershipChange) {
        let published = state.withLock { state -> Bool in
            guard state.current != change, !state.finished else { return false }
            state.current = change
            for continuation in state.subscribers.values { continuation.yield(change) }
            return true
        }
        guard published else { return }
        switch change {
        case .leader(let token):
            logger.info("became leader", metadata: ["election": "\(configuration.name)", "term": "\(token.term)", "instance": "\(configuration.instanceID)"])
        case .follower:
            logger.info("not leader", metadata: ["election": "\(configuration.name)", "instance": "\(configuration.instanceID)"])
        }
    }

    /// Ends every stream of changes after a last ``LeadershipChange/follower``.
    func finishChanges() {
        publish(.follower)
        let continuations = state.withLock { state -> [AsyncStream<LeadershipChange>.Continuation] in
            state.finished = true
            defer { state.subscribers.removeAll() }
            return Array(state.subscribers.values)
        }
        // Outside the lock: finishing runs each stream's onTermination, which takes it.
        for continuation in continuations { continuation.finish() }
    }
}
