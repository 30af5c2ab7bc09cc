import PostgresLocks

extension SoakWorkload {
    /// Runs `operation` again and again until `stop` is set, with the configured random pause
    /// (``SoakConfiguration/pause``) after each.
    package func repeatOperations(until stop: SetOnceFlag, _ operation: () async -> Void) async {
        while !stop.isSet {
            await operation()
            if configuration.pause > .zero { _ = await SetOnceFlag.sleep(randomDuration(.zero, configuration.pause), unless: stop) }
        }
    }

    /// Runs one operation and records its failure, if any (``record(_:bodyFinished:during:)``);
    /// `body` sets the flag it is given once its work inside the transaction is done.
    package func attempt(during what: String, _ body: (_ bodyFinished: SetOnceFlag) async throws -> Void) async {
        let bodyFinished = SetOnceFlag()
        do {
            try await body(bodyFinished)
        } catch {
            record(error, bodyFinished: bodyFinished.isSet, during: what)
        }
    }

    /// Counts a failed operation; a fault after the body finished makes the commit ambiguous.
    package func record(_ error: any Error, bodyFinished: Bool, during what: String) {
        switch classify(error) {
        case .fault:
            tallies.fault(error)
            tallies.update {
                $0.retried += 1
                if bodyFinished { $0.ambiguousCommits += 1 }
            }
        case .timeout, .cancelled, .unexpected:
            tallies.unexpected(error, during: what)
        }
    }

}
