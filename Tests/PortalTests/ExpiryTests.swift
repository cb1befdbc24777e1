import Actors
import Foundation
import Identifiers
import Persistence
import Synchronization
import Portal
import TestSupport
import Testing

/// Time that revokes: `runExpiries()` evaluates an account at the moment a time window ends or a token
/// expires, and the gateways are told (`reject_access`) through `subscribe()`, on a clock the test steps.
@Suite struct ExpiryTests {
    /// Monday 2026-11-23, two seconds before 10:00 UTC.
    static let start = Date(timeIntervalSince1970: 1_795_946_398)

    /// What subscribers have been told so far, in the order they were told.
    final class Told: Sendable {
        private let lines = Mutex<[String]>([])
        func append(_ line: String) { lines.withLock { $0.append(line) } }
        var all: [String] { lines.withLock { $0 } }
    }

    /// Runs `runExpiries()`, steps the clock by each of `steps` (each once the service waits on it), and
    /// returns what subscribers were told once `count` notifications came, sorted.
    static func expiries(_ f: PolicyEvaluatorTests.Fixture, clock: ManualWallClock, steps: [TimeInterval], expecting count: Int)
        async throws -> [String]
    {
        let stream = await f.evaluator.subscribe()
        let told = Told()
        let listener = Task {
            for await notification in stream { told.append(f.describe(notification)) }
        }
        defer { listener.cancel() }
        let runner = Task { try await f.evaluator.runExpiries() }
        defer { runner.cancel() }
        for step in steps {
            // Stepping before the service sleeps would step past nothing: wait until it waits on the clock.
            try await Wait.until("runExpiries waits for the next deadline", timeout: .seconds(60)) { clock.sleeperCount == 1 }
            clock.advance(by: step)
        }
        try await Wait.until("\(count) notifications", timeout: .seconds(60)) { told.all.count >= count }
        return told.all.sorted()
    }

    @Test func theEndOfATimeWindowRevokesAtThatMoment() async throws {
        let clock = ManualWallClock(Self.start)
        let f = try await PolicyEvaluatorTests.Fixture(now: Self.start, clock: clock)
        defer { f.remove() }
        // P1 (eng → db) now holds only until 10:00 UTC, two seconds ahead: nothing changes yet.
        let narrowed = try await f.change { f in
            _ = try await f.repository.updatePolicy(accountID: f.account, id: f.ids["P1"]!, by: f.admin, now: f.now) {
                $0.conditions = #"["time:MTWRFSU/00:00-10:00/UTC"]"#
            }
        }
        #expect(narrowed == [])
        let told = try await Self.expiries(f, clock: clock, steps: [3], expecting: 3)
        #expect(told == [
            "deleted alice-laptop db",  // bob keeps db through P2 (ops), but not the authorisation P1 gave him
            "reject gateway alice-laptop db",
            "reject gateway bob-laptop db",
        ])
        #expect(try await f.remainingAuthorizations() == ["A3"], "the revoked authorisations are gone from the database")
    }

    @Test func aTokenThatExpiresTakesItsClientsAccessAtThatMoment() async throws {
        let clock = ManualWallClock(Self.start)
        let f = try await PolicyEvaluatorTests.Fixture(now: Self.start, clock: clock, tokenLifetime: 2)
        defer { f.remove() }
        // One second before the tokens expire nothing is told (anything told then would be among the seven
        // and break the list below); two seconds later everything is.
        let told = try await Self.expiries(f, clock: clock, steps: [1, 2], expecting: 7)
        #expect(told == [
            "deleted alice-laptop db", "deleted alice-laptop web", "deleted bob-laptop db", "deleted bob-laptop web",
            "reject gateway alice-laptop db", "reject gateway alice-laptop web", "reject gateway bob-laptop db",
        ])
        #expect(try await f.remainingAuthorizations() == [])
    }
}
