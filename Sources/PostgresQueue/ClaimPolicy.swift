/// When a worker claims jobs and how many, as a pure value (see ``QueueWorker``).
///
/// A worker claims in batches: with jobs running, it waits until at least half a batch of
/// slots is free (``refillThreshold``) rather than claiming one job per finished job, and it
/// claims again at once while a claim comes back full (more work may be waiting).
struct ClaimPolicy: Equatable {
    /// Jobs run at once.
    let concurrency: Int
    /// The most jobs asked for in one claim.
    let batchSize: Int

    /// Free slots needed before a worker with running jobs claims again.
    var refillThreshold: Int { max(1, min(batchSize, concurrency) / 2) }

    /// How many jobs to ask for with `running` jobs in flight; nil to wait for a wake-up (no
    /// room, or too little to be worth a statement).
    func jobsToClaim(running: Int) -> Int? {
        let room = concurrency - running
        guard room > 0, running == 0 || room >= refillThreshold else { return nil }
        return min(room, batchSize)
    }

    /// Whether to claim again without waiting: the last claim got all it asked for.
    func claimsAgain(asked: Int, claimed: Int) -> Bool { claimed >= asked }
}
