import Foundation
import Identifiers
import Policy
import Testing

@Suite struct AccessEvaluationTests {
    func outcome(member: Bool, disabled: Bool = false, conditions: [(String, Bool)] = []) -> AccessEvaluation.PolicyOutcome {
        .init(policyID: PolicyID(), groupName: "g", disabled: disabled, groupContainsActor: member, conditions: conditions.map { (name: $0.0, holds: $0.1) })
    }

    @Test func noPolicyForTheActorsGroupsIsNotFound() {
        #expect(AccessEvaluation.evaluate(policies: []).decision == .notFound)
        #expect(AccessEvaluation.evaluate(policies: [outcome(member: false)]).decision == .notFound)
        #expect(AccessEvaluation.evaluate(policies: [outcome(member: true, disabled: true)]).decision == .notFound,
                "a disabled policy does not reveal the resource")
    }

    @Test func aMemberIsAllowedByAnEnabledPolicyWhoseConditionsHold() {
        #expect(AccessEvaluation.evaluate(policies: [outcome(member: true)]).decision == .allowed)
        #expect(AccessEvaluation.evaluate(policies: [outcome(member: true, conditions: [("verified", true)])]).decision == .allowed)
        #expect(AccessEvaluation.evaluate(policies: [outcome(member: false), outcome(member: true)]).decision == .allowed, "any policy suffices")
    }

    @Test func aMemberWhoseConditionsFailIsForbidden() {
        let evaluation = AccessEvaluation.evaluate(policies: [outcome(member: true, conditions: [("verified", false)])])
        #expect(evaluation.decision == .forbidden)
        #expect(evaluation.policies.first?.grants == false)
    }
}
