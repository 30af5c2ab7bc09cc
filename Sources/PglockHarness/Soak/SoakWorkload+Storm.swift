import PostgresLocks
import PostgresNIO
import Synchronization

extension SoakWorkload {
    /// The kinds of lock call a storm makes.
    package enum StormCall: CaseIterable, Sendable {
        case transactionForever, transactionTimeout, sessionForever, sessionTimeout, manyForever, manyTimeout, tryLock

        package var timesOut: Bool { self == .transactionTimeout || self == .sessionTimeout || self == .manyTimeout }
        package var waitsForever: Bool { self == .transactionForever || self == .sessionForever || self == .manyForever }
    }

    /// Waves of lock calls on a few contended keys until `stop` is set: calls that wait forever
    /// are cancelled at a random moment, calls with a short timeout sometimes too; each call's
    /// return is timed against its deadline.
    package func runStorm(context: SoakContext, stop: SetOnceFlag) async {
        let keys = (0..<Int32(configuration.stormKeys)).map { LockKey.pair(namespace: namespace &+ 1, id: $0) }
        while !stop.isSet {
            await stormWave(keys: keys, context: context)
            if configuration.stormWavePause > .zero { _ = await SetOnceFlag.sleep(configuration.stormWavePause, unless: stop) }
        }
    }

    private func stormWave(keys: [LockKey], context: SoakContext) async {
        let client = context.client, logger = context.logger
        // A holder keeps every key for a moment, so the wave's calls queue on the server.
        let holding = SetOnceFlag()
        let hold = randomDuration(.milliseconds(20), .milliseconds(200))
        let holder = Task {
            try? await client.withAdvisoryLocks(keys.map { LockRequest($0) }, wait: .timeout(.seconds(5)), logger: logger) { _ in
                holding.set()
                try await Task.sleep(for: hold)
            }
            holding.set()
        }
        let holderDeadline = ContinuousClock.now + .seconds(2)
        while !holding.isSet && ContinuousClock.now < holderDeadline { try? await Task.sleep(for: .milliseconds(2)) }

        await withTaskGroup(of: Void.self) { calls in
            for _ in 0..<configuration.stormTasks {
                calls.addTask { await stormCall(keys: keys, context: context) }
            }
        }
        _ = await awaitWithin(.seconds(10), holder)
    }

    /// One call: made in its own task (so a hung one can be abandoned), cancelled at a random
    /// moment if it waits forever, and timed.
    private func stormCall(keys: [LockKey], context: SoakContext) async {
        let client = context.client, logger = context.logger
        let kind = StormCall.allCases.randomElement()!
        let mode: LockMode = Int.random(in: 0..<4) == 0 ? .shared : .exclusive
        let key = keys.randomElement()!
        let some = Array(keys.shuffled().prefix(Int.random(in: 2...max(2, keys.count))))
        let timeout = randomDuration(configuration.stormTimeouts.0, configuration.stormTimeouts.1)
        let cancelAfter: Duration? = kind.waitsForever || (kind.timesOut && Bool.random())
            ? randomDuration(.zero, configuration.stormLatestCancel) : nil
        let holdFor = randomDuration(.zero, .milliseconds(10))

        let started = ContinuousClock.now
        let call = Task { () -> Result<Void, any Error> in
            do {
                switch kind {
                case .transactionForever, .transactionTimeout, .tryLock:
                    let wait: LockWait = kind == .tryLock ? .immediately : kind.timesOut ? .timeout(timeout) : .forever
                    try await client.withAdvisoryLock(key, mode: mode, wait: wait, logger: logger) { _ in try await Task.sleep(for: holdFor) }
                case .sessionForever, .sessionTimeout:
                    try await client.withSessionAdvisoryLock(key, mode: mode, wait: kind.timesOut ? .timeout(timeout) : .forever, heartbeat: nil, logger: logger) {
                        try await Task.sleep(for: holdFor)
                    }
                case .manyForever, .manyTimeout:
                    try await client.withAdvisoryLocks(some.map { LockRequest($0, mode: mode) }, wait: kind.timesOut ? .timeout(timeout) : .forever, logger: logger) { _ in
                        try await Task.sleep(for: holdFor)
                    }
                }
                return .success(())
            } catch {
                return .failure(error)
            }
        }
        let cancelledAt = SoakBox<ContinuousClock.Instant?>(nil)
        let canceller = cancelAfter.map { delay in
            Task {
                try await Task.sleep(for: delay)
                cancelledAt.withLock { $0 = ContinuousClock.now }
                call.cancel()
            }
        }
        var allowed = configuration.hangBound
        if let cancelAfter { allowed += cancelAfter } else if kind.timesOut { allowed += timeout }
        let outcome = await awaitWithin(allowed, call)
        canceller?.cancel()
        let ended = ContinuousClock.now
        let cancelled = cancelledAt.withLock { $0 }

        tallies.update { $0.stormCalls += 1 }
        guard let outcome else {
            tallies.update { $0.hungCalls += 1 }
            let what = "\(kind) (\(mode), cancel after \(cancelAfter.map { "\($0.soakMilliseconds) ms" } ?? "never"), timeout \(kind.timesOut ? "\(timeout.soakMilliseconds) ms" : "none"))"
            tallies.unexpected(PostgresLocksError(code: .client, message: "\(what) did not return within \(allowed.soakMilliseconds) ms"), during: "storm", first: true)
            // Find out how long it took in the end, for the report.
            let tallies = self.tallies
            Task {
                let late = await call.value
                let took = (ContinuousClock.now - started).soakMilliseconds
                tallies.note("hung \(what) returned after \(took) ms: \(late)")
            }
            return
        }
        switch outcome {
        case .success:
            tallies.update { $0.stormAcquired += 1 }
        case .failure(let error):
            let kindOfError = classify(error)
            if let cancelled, kindOfError != .unexpected || isPoolCancellation(error) {
                let latency = (ended - cancelled).soakMilliseconds
                tallies.update { $0.stormCancelled += 1; $0.maxCancelLatencyMilliseconds = max($0.maxCancelLatencyMilliseconds, latency) }
            } else if kindOfError == .timeout {
                let overshoot = kind.timesOut ? (ended - started - timeout).soakMilliseconds : 0
                tallies.update { $0.stormTimedOut += 1; $0.maxTimeoutOvershootMilliseconds = max($0.maxTimeoutOvershootMilliseconds, overshoot) }
            } else if kindOfError == .fault {
                tallies.update { $0.retried += 1 }
            } else if kindOfError == .cancelled {
                tallies.update { $0.strayCancels += 1 }
                tallies.unexpected(error, during: "storm \(kind), not cancelled by its caller")
            } else {
                tallies.unexpected(error, during: "storm \(kind)")
            }
        }
    }

    /// A pool lease given up because its task was cancelled.
    private func isPoolCancellation(_ error: any Error) -> Bool {
        String(reflecting: error).contains("requestCancelled")
    }
}
