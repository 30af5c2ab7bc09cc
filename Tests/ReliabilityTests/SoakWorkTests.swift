import PglockHarness
import PostgresLocks
import Testing

/// The soak's `--work` text: `kind=count` pairs, the kinds left out running nothing. No database.
@Suite("Soak work")
struct SoakWorkTests {
    @Test func namedKindsRunAndTheOthersRunNothing() throws {
        let work = try SoakWork(parsing: "queue=2, storm=0")
        #expect(work[.queue] == 2 && work[.storm] == 0)
        #expect(work[.lock] == 0 && work[.counter] == 0 && work[.ingest] == 0)
        var configuration = SoakConfiguration(duration: .seconds(1))
        work.apply(to: &configuration)
        #expect(configuration.queueWorkers == 2)
        #expect([configuration.lockWorkers, configuration.counterWorkers, configuration.ingestWorkers, configuration.stormTasks] == [0, 0, 0, 0])
    }

    @Test func theStandardWorkRunsEveryKindAndReadsBackFromItsText() throws {
        #expect(SoakWork.standard.description == "lock=6,counter=6,ingest=6,queue=2,storm=60")
        #expect(try SoakWork(parsing: SoakWork.standard.description) == .standard)
        #expect(try SoakWork(parsing: "storm=10,lock=1").description == "lock=1,storm=10")
    }

    @Test(arguments: [
        ("", "is not kind=count"),
        ("lock", "is not kind=count"),
        ("lock=6,", "is not kind=count"),
        ("locks=6", "unknown work \"locks\""),
        ("lock=6,lock=2", "lock is given twice"),
        ("lock=-1", "from 0 to 1000"),
        ("lock=many", "from 0 to 1000"),
        ("queue=1001", "from 0 to 1000"),
        ("storm=10001", "from 0 to 10000"),
    ])
    func badWorkIsRefusedWithAnErrorNamingThePair(text: String, problem: String) {
        #expect {
            try SoakWork(parsing: text)
        } throws: { error in
            let error = error as? PostgresLocksError
            return error?.code == .invalidArgument && error?.message.contains(problem) == true
        }
    }
}
