import PostgresLocks
import PostgresNIO

extension SoakWorkload {
    /// The run's ingestion: keys stored in the `ingested` table, split into transactions of
    /// ``SoakConfiguration/ingestKeysPerTransaction`` keys (so a fault can interrupt a batch
    /// after some of its transactions committed).
    package func ingestion() throws -> ExactlyOnceIngestion<String> {
        try ExactlyOnceIngestion<String>(table: table("ingested"), maximumKeysPerTransaction: configuration.ingestKeysPerTransaction)
    }

    /// Creates the key table and the side-effect table (no unique constraint on the effects:
    /// a handler effect committed twice must be seen, not refused).
    package func createIngestionTables(_ context: SoakContext) async throws {
        let ingestion = try ingestion()
        try await ingestion.migrate(on: context.client, logger: context.logger)
        try await context.client.checkedQuery(
            "CREATE TABLE \(identifier: table("ingest_effects")) (key text COLLATE \"C\" NOT NULL, worker int NOT NULL, batch bigint NOT NULL)",
            logger: context.logger
        )
    }

    /// Sends batches of business keys through ``ExactlyOnceIngestion`` until `stop` is set,
    /// about ``SoakConfiguration/ingestDuplicateShare`` of each batch repeating recent keys
    /// (often keys still in another worker's open transaction). The handler writes one effect
    /// row per new key in the ingesting transaction. A batch that fails because of a fault is
    /// sent again, whole, until it is accepted. Even workers lease connections from the pool;
    /// odd workers use a dedicated connection, opened again after a fault.
    package func runIngestWorker(_ worker: Int, context: SoakContext, state: SoakState, stop: SetOnceFlag) async {
        guard let ingestion = try? ingestion() else { return }
        let effects = table("ingest_effects")
        let dedicated = worker % 2 == 1
        var connection: PostgresConnection?
        await repeatOperations(until: stop) {
            let keys = state.ingestKeys(
                count: configuration.ingestBatchSize, duplicateShare: configuration.ingestDuplicateShare, window: configuration.ingestBatchSize * 16
            )
            let batch = state.newOp()
            var attemptsAfterStop = 0
            // Resend until accepted: committed keys come back as duplicates, the rest is ingested.
            while true {
                let handlerFinished = SoakBox(false)
                tallies.update { $0.ingestEvents += keys.count }
                do {
                    let handler: (Transaction, [String]) async throws -> Void = { tx, new in
                        handlerFinished.withLock { $0 = false }
                        try await tx.query("INSERT INTO \(identifier: effects) (key, worker, batch) SELECT unnest(\(new)::text[]), \(Int32(worker)), \(batch)")
                        handlerFinished.withLock { $0 = true }
                    }
                    let report: IngestionReport<String>
                    if dedicated {
                        if connection == nil {
                            connection = try await PostgresConnection.connect(
                                configuration: try context.settings.makeConnectionConfiguration(), id: Int.random(in: 1...Int(Int32.max)), logger: context.logger
                            )
                        }
                        report = try await ingestion.ingest(keys, keyedBy: { $0 }, on: connection!, logger: context.logger, handler: handler)
                    } else {
                        report = try await ingestion.ingest(keys, keyedBy: { $0 }, on: context.client, logger: context.logger, handler: handler)
                    }
                    state.acceptIngested(Set(keys), new: report.newKeys)
                    tallies.update {
                        $0.ingestBatches += 1
                        $0.ingestedKeys += report.newKeys.count
                    }
                    break
                } catch {
                    var cause = error
                    if let interrupted = error as? IngestionInterrupted<String> {
                        // The transactions before the failed one committed: their keys are accepted.
                        state.acceptIngested(Set(keys).subtracting(interrupted.uncommittedKeys), new: interrupted.committed.newKeys)
                        tallies.update { $0.ingestedKeys += interrupted.committed.newKeys.count }
                        cause = interrupted.underlying
                    }
                    record(cause, bodyFinished: handlerFinished.withLock { $0 }, during: "ingestion")
                    guard classify(cause) == .fault else { break }
                    if let old = connection {
                        try? await old.close()
                        connection = nil
                    }
                    // The faults stop before the work does, so a resend succeeds soon after; a
                    // batch still failing long after that is given up and reported.
                    if stop.isSet {
                        attemptsAfterStop += 1
                        if attemptsAfterStop > 200 {
                            tallies.unexpected(cause, during: "ingestion batch still failing after the faults stopped")
                            break
                        }
                    }
                    try? await Task.sleep(for: randomDuration(.milliseconds(5), .milliseconds(50)))
                }
            }
        }
        if let connection { try? await connection.close() }
    }

    /// Exactly once per key, checked in the database: every key a client saw accepted is in
    /// the key table, once; every stored key has exactly one handler effect and every effect
    /// its key; no key was reported new to two calls.
    package func checkIngestion(_ context: SoakContext, state: SoakState) async throws -> SoakFindings {
        var findings = SoakFindings()
        guard configuration.ingestWorkers > 0 else { return findings }
        let client = context.client, logger = context.logger
        let keys = table("ingested"), effects = table("ingest_effects")
        var present = Set<String>()
        var stored = 0
        for row in try await client.checkedQuery("SELECT key FROM \(identifier: keys)", logger: logger).rows {
            present.insert(try row.decode(String.self))
            stored += 1
        }
        // The primary key makes this 0; counted all the same, since it is the promise.
        findings.duplicateIngestions += stored - present.count
        findings.lostIngestedKeys = state.acceptedIngestKeys.withLock { $0.subtracting(present).count }
        findings.duplicateIngestions += state.ingestNewKeyReports.withLock { $0.values.filter { $0 > 1 }.count }
        // A handler that ran, and committed, more than once for a key.
        findings.duplicateIngestions += Int(try await client.checkedQuery(
            "SELECT count(*) FROM (SELECT key FROM \(identifier: effects) GROUP BY key HAVING count(*) > 1) d", logger: logger
        ).rows[0].decode(Int64.self))
        findings.ingestEffectMismatches += Int(try await client.checkedQuery(
            "SELECT count(*) FROM \(identifier: keys) k WHERE NOT EXISTS (SELECT 1 FROM \(identifier: effects) e WHERE e.key = k.key)", logger: logger
        ).rows[0].decode(Int64.self))
        findings.ingestEffectMismatches += Int(try await client.checkedQuery(
            "SELECT count(*) FROM \(identifier: effects) e WHERE NOT EXISTS (SELECT 1 FROM \(identifier: keys) k WHERE k.key = e.key)", logger: logger
        ).rows[0].decode(Int64.self))
        return findings
    }
}

extension SoakState {
    /// A batch of `count` keys: each one, with probability `duplicateShare`, one of the last
    /// `window` keys handed out (by any worker, this batch included), otherwise a new one.
    package func ingestKeys(count: Int, duplicateShare: Double, window: Int) -> [String] {
        nextIngestKey.withLock { next in
            (0..<count).map { _ in
                if next > 0 && Double.random(in: 0..<1) < duplicateShare {
                    return "k\(Int.random(in: max(0, next - window)..<next))"
                }
                next += 1
                return "k\(next - 1)"
            }
        }
    }

    /// Records what an ingestion call confirmed: `keys` are stored, `new` were reported new to it.
    package func acceptIngested(_ keys: Set<String>, new: [String]) {
        acceptedIngestKeys.withLock { $0.formUnion(keys) }
        ingestNewKeyReports.withLock { reports in
            for key in new { reports[key, default: 0] += 1 }
        }
    }
}
