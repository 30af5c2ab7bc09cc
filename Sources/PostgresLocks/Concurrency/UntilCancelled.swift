/// Suspends until the calling task is cancelled, then throws `CancellationError`: for work that
/// must run until something else cancels it (a lock's body, a term's work, a held lock in a
/// benchmark), without a timer.
package func suspendUntilCancelled() async throws {
    let (stream, continuation) = AsyncStream<Never>.makeStream()
    // The stream ends only when the task is cancelled: the handler finishes it.
    await withTaskCancellationHandler {
        for await _ in stream {}
    } onCancel: {
        continuation.finish()
    }
    throw CancellationError()
}
