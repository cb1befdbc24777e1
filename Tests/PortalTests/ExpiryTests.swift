import Actors
import Foundation
import Identifiers
import Persistence
import Portal
import TestSupport
import Testing

/// Time that revokes: `runExpiries()` evaluates an account at the moment a time window ends or a token
/// expires, and the gateways are told (`reject_access`) through `subscribe()`, on a clock the test steps.
@Suite struct ExpiryTests {
    /// Monday 2026-11-23, two seconds before 10:00 UTC.
    static let start = Date(timeIntervalSince1970: 1_795_946_398)

    /// Runs `runExpiries()` while `body` steps the clock; collects what subscribers are told.
    static func expiries(_ f: PolicyEvaluatorTests.Fixture, clock: ManualWallClock, advance seconds: TimeInterval, expecting count: Int)
        async throws -> [String]
    {
        let stream = await f.evaluator.subscribe()
        let runner = Task { try await f.evaluator.runExpiries() }
        defer { runner.cancel() }
        // Stepping before the service sleeps would step past nothing: wait until it waits on the clock.
        try await Wait.until("runExpiries waits for the next deadline", timeout: .seconds(60)) { clock.sleeperCount == 1 }
        clock.advance(by: seconds)
        let collected = Task {
            var seen: [String] = []
            for await notification in stream {
                seen.append(f.describe(notification))
                if seen.count == count { break }
            }
            return seen.sorted()
        }
        let timeout = Task {
            try await Task.sleep(for: .seconds(60))
            collected.cancel()
        }
        defer { timeout.cancel() }
        return await collected.value
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
        let told = try await Self.expiries(f, clock: clock, advance: 3, expecting: 3)
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
        let told = try await Self.expiries(f, clock: clock, advance: 3, expecting: 7)
        #expect(told == [
            "deleted alice-laptop db", "deleted alice-laptop web", "deleted bob-laptop db", "deleted bob-laptop web",
            "reject gateway alice-laptop db", "reject gateway alice-laptop web", "reject gateway bob-laptop db",
        ])
        #expect(try await f.remainingAuthorizations() == [])
    }

    @Test func nothingIsToldBeforeTheMoment() async throws {
        let clock = ManualWallClock(Self.start)
        let f = try await PolicyEvaluatorTests.Fixture(now: Self.start, clock: clock, tokenLifetime: 2)
        defer { f.remove() }
        let stream = await f.evaluator.subscribe()
        let runner = Task { try await f.evaluator.runExpiries() }
        try await Wait.until("runExpiries waits for the next deadline", timeout: .seconds(60)) { clock.sleeperCount == 1 }
        clock.advance(by: 1)
        // One second before the tokens expire: the service wakes for nothing or not at all, and says nothing.
        try await Wait.until("runExpiries sleeps again", timeout: .seconds(60)) { clock.sleeperCount == 1 }
        runner.cancel()
        let drain = Task {
            var told: [String] = []
            for await notification in stream { told.append(f.describe(notification)) }
            return told
        }
        try await Task.sleep(for: .milliseconds(200))
        drain.cancel()
        #expect(await drain.value == [])
        #expect(try await f.remainingAuthorizations().count == 3)
    }
}
