import Addresses
import Foundation
import Identifiers
import Policy
import Testing

@Suite struct ConditionTests {
    /// 2026-11-23 was a Monday.
    static func utc(_ text: String) -> Date {
        let formatter = ISO8601DateFormatter()
        return formatter.date(from: text)!
    }

    static func ip(_ text: String) -> SocketAddress.IP { try! SocketAddress(text, port: 0).ip }

    @Test(arguments: [
        ("source_in:10.0.0.0/8,2001:db8::/32", "source_in:10.0.0.0/8,2001:db8::/32"),
        ("source_in:192.0.2.7", "source_in:192.0.2.7/32"),
        ("source_not_in:203.0.113.0/24", "source_not_in:203.0.113.0/24"),
        ("verified", "verified"),
        ("M/09:00-17:00/Europe/Berlin", "time:M/09:00-17:00/Europe/Berlin"),
        ("time:FRMTW/09:00-17:00/UTC,SU/10:00-24:00/UTC", "time:MTWRF/09:00-17:00/UTC,SU/10:00-24:00/UTC"),
        ("time:F/22:00-06:00/America/New_York", "time:F/22:00-06:00/America/New_York"),
    ])
    func parsesAndPrintsTheCanonicalForm(text: String, canonical: String) throws {
        let condition = try Condition(text)
        #expect(condition.description == canonical)
        #expect(try Condition(canonical) == condition, "the stored form parses back to the same condition")
    }

    @Test(arguments: [
        ("source_in:", "list one or more networks"),
        ("source_in:10.0.0.0/33", "is not a network"),
        ("source_in:10.0.0.1/8", "is not a network"),
        ("source_not_in:example.com", "is not a network"),
        ("time:X/09:00-17:00/UTC", "days are letters among M T W R F S U"),
        ("time:/09:00-17:00/UTC", "at least one day"),
        ("time:M/9:00-17:00/UTC", "must be HH:MM-HH:MM"),
        ("time:M/09:00-25:00/UTC", "must be HH:MM-HH:MM"),
        ("time:M/09:00-09:00/UTC", "is empty"),
        ("time:M/09:00-17:00/Mars/Olympus", "is not an IANA time zone"),
        ("time:M/09:00-17:00", "DAYS/HH:MM-HH:MM/ZONE"),
        ("admin_only", "a condition is source_in"),
    ])
    func refusesBadConditionsWithAMessageThatSaysWhy(text: String, message: String) {
        #expect {
            try Condition(text)
        } throws: { error in
            "\(error)".contains(message) && "\(error)".contains(text)
        }
    }

    @Test func sourceConditionsNeedTheClientsAddress() throws {
        let inside = try Condition("source_in:10.0.0.0/8")
        let outside = try Condition("source_not_in:10.0.0.0/8")
        let now = Date()
        #expect(inside.evaluate(.init(sourceAddress: Self.ip("10.1.2.3"), now: now)).holds)
        #expect(!inside.evaluate(.init(sourceAddress: Self.ip("192.0.2.1"), now: now)).holds)
        #expect(!outside.evaluate(.init(sourceAddress: Self.ip("10.1.2.3"), now: now)).holds)
        #expect(outside.evaluate(.init(sourceAddress: Self.ip("192.0.2.1"), now: now)).holds)
        #expect(!inside.evaluate(.init(now: now)).holds, "no address known: the condition fails, never a guess")
        #expect(!outside.evaluate(.init(now: now)).holds)
    }

    @Test func verifiedNeedsAVerifiedClient() throws {
        let verified = try Condition("verified")
        #expect(verified.evaluate(.init(clientVerified: true, now: Date())).holds)
        #expect(!verified.evaluate(.init(clientVerified: false, now: Date())).holds)
        #expect(!verified.evaluate(.init(now: Date())).holds)
    }

    @Test(arguments: [
        // (window, now (UTC), holds, until (UTC) or nil)
        ("time:M/09:00-17:00/UTC", "2026-11-23T10:00:00Z", true, "2026-11-23T17:00:00Z"),
        ("time:M/09:00-17:00/UTC", "2026-11-23T17:00:00Z", false, nil),  // the end is exclusive
        ("time:M/09:00-17:00/UTC", "2026-11-24T10:00:00Z", false, nil),  // Tuesday
        // Berlin is UTC+1 in November: 09:00-17:00 local is 08:00-16:00 UTC.
        ("time:M/09:00-17:00/Europe/Berlin", "2026-11-23T08:30:00Z", true, "2026-11-23T16:00:00Z"),
        ("time:M/09:00-17:00/Europe/Berlin", "2026-11-23T16:30:00Z", false, nil),
        // ... and UTC+2 in summer (2026-06-22 is a Monday).
        ("time:M/09:00-17:00/Europe/Berlin", "2026-06-22T15:30:00Z", false, nil),
        ("time:M/09:00-17:00/Europe/Berlin", "2026-06-22T14:30:00Z", true, "2026-06-22T15:00:00Z"),
        // Overnight: Friday 22:00 to Saturday 06:00 New York (UTC-5 in November); 2026-11-27 is a Friday.
        ("time:F/22:00-06:00/America/New_York", "2026-11-28T05:00:00Z", true, "2026-11-28T11:00:00Z"),
        ("time:F/22:00-06:00/America/New_York", "2026-11-28T12:00:00Z", false, nil),
        // Adjacent windows join: Monday until midnight, then Tuesday from midnight to 08:00.
        ("time:M/18:00-24:00/UTC,T/00:00-08:00/UTC", "2026-11-23T20:00:00Z", true, "2026-11-24T08:00:00Z"),
        // Every day all day: no bound.
        ("time:MTWRFSU/00:00-24:00/UTC", "2026-11-23T20:00:00Z", true, nil),
    ])
    func timeWindowsHoldInTheirZoneAndBoundTheAuthorisation(text: String, now: String, holds: Bool, until: String?) throws {
        let result = try Condition(text).evaluate(.init(now: Self.utc(now)))
        #expect(result.holds == holds)
        #expect(result.until == until.map(Self.utc))
    }

    @Test func theLongestLastingPolicyIsChosenAndTheTokenExpiryBoundsIt() throws {
        let now = Self.utc("2026-11-23T10:00:00Z")
        let short = PolicyID()
        let long = PolicyID()
        func outcome(_ id: PolicyID, _ conditions: [String]) throws -> AccessEvaluation.PolicyOutcome {
            .init(policyID: id, groupName: "g", disabled: false, groupContainsActor: true,
                  conditions: try conditions.map(Condition.init), context: .init(now: now))
        }
        let policies = [try outcome(short, ["time:M/09:00-12:00/UTC"]), try outcome(long, ["time:M/09:00-17:00/UTC"])]
        let evaluation = AccessEvaluation.evaluate(policies: policies)
        #expect(evaluation.decision == .allowed)
        #expect(evaluation.chosenPolicy == long)
        #expect(evaluation.expiresAt == Self.utc("2026-11-23T17:00:00Z"))

        let bounded = AccessEvaluation.evaluate(policies: policies, tokenExpiry: Self.utc("2026-11-23T11:00:00Z"))
        #expect(bounded.expiresAt == Self.utc("2026-11-23T11:00:00Z"), "the token expires before any window ends")

        let unbounded = PolicyID()
        let withoutWindow = AccessEvaluation.evaluate(policies: policies + [try outcome(unbounded, [])])
        #expect(withoutWindow.chosenPolicy == unbounded)
        #expect(withoutWindow.expiresAt == nil)
    }

    @Test func failedConditionsAreNamedWhenForbidden() throws {
        let outcome = AccessEvaluation.PolicyOutcome(
            policyID: PolicyID(), groupName: "g", disabled: false, groupContainsActor: true,
            conditions: [try Condition("verified"), try Condition("source_in:10.0.0.0/8")],
            context: .init(sourceAddress: Self.ip("10.0.0.1"), clientVerified: false, now: Date()))
        let evaluation = AccessEvaluation.evaluate(policies: [outcome])
        #expect(evaluation.decision == .forbidden)
        #expect(evaluation.failedConditions == ["verified"])
    }
}
