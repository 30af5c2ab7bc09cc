@testable import PostgresLocks
import Testing

@Suite("Lock-wait cancel: when to send and when to wait")
struct LockWaitCancelStateMachineTests {
    enum Event { case request, connectionReady, sendFinished, statementEnded }

    /// Feeds `events` to a fresh machine; returns each event's answer and the final phase.
    static func run(_ events: [Event]) -> (answers: [String], phase: LockWaitCancelStateMachine.Phase) {
        var machine = LockWaitCancelStateMachine()
        let answers = events.map { event -> String in
            switch event {
            case .request: return machine.requestCancel() ? "start" : "ignore"
            case .connectionReady: return machine.connectionReadyToSend() ? "send" : "skip"
            case .sendFinished: return machine.sendFinished() ? "resume end" : "-"
            case .statementEnded: return machine.statementEnded() == .waitForSend ? "wait" : "proceed"
            }
        }
        return (answers, machine.phase)
    }

    @Test func aCancelWhileTheStatementRunsIsSentAndItsEndWaitsForTheSend() {
        let (answers, phase) = Self.run([.request, .connectionReady, .statementEnded, .sendFinished])
        #expect(answers == ["start", "send", "wait", "resume end"])
        #expect(phase == .done)
    }

    @Test func aCancelAskedAfterTheStatementEndedIsNeverStarted() {
        let (answers, phase) = Self.run([.statementEnded, .request])
        #expect(answers == ["proceed", "ignore"])
        #expect(phase == .idle)
    }

    @Test func aConnectionLeasedAfterTheStatementEndedSendsNothing() {
        // The backend may already be running another caller's statement.
        let (answers, phase) = Self.run([.request, .statementEnded, .connectionReady, .sendFinished])
        #expect(answers == ["start", "proceed", "skip", "-"])
        #expect(phase == .done)
    }

    @Test func aSendThatFinishedBeforeTheEndLetsTheEndProceed() {
        let (answers, _) = Self.run([.request, .connectionReady, .sendFinished, .statementEnded])
        #expect(answers == ["start", "send", "-", "proceed"])
    }

    @Test func aSecondRequestIsIgnored() {
        let (answers, phase) = Self.run([.request, .request])
        #expect(answers == ["start", "ignore"])
        #expect(phase == .pending)
    }
}
