package import Foundation
package import Identifiers

/// Whether an actor may reach a resource, and why (portal spec, "Policy evaluation" step 1 and
/// "Explaining access"). Pure: the caller passes the actor's groups and the resource's policies.
package struct AccessEvaluation: Sendable, Equatable {
    package enum Decision: String, Sendable {
        /// Some enabled policy names a group the actor is in, and its conditions hold.
        case allowed
        /// No enabled policy's group contains the actor: the client does not learn the resource exists.
        case notFound = "not_found"
        /// A policy's group contains the actor but its conditions fail.
        case forbidden
    }

    /// One policy of the resource, as the evaluator saw it.
    package struct PolicyOutcome: Sendable, Equatable {
        package var policyID: PolicyID
        package var groupName: String
        package var disabled: Bool
        package var groupContainsActor: Bool
        /// Each condition with whether it holds; none means "all hold".
        package var conditions: [(name: String, holds: Bool)]
        /// Until when the conditions keep holding (the end of the current time window); nil: no bound.
        package var until: Date?

        package init(policyID: PolicyID, groupName: String, disabled: Bool, groupContainsActor: Bool, conditions: [(name: String, holds: Bool)],
                     until: Date? = nil) {
            self.policyID = policyID
            self.groupName = groupName
            self.disabled = disabled
            self.groupContainsActor = groupContainsActor
            self.conditions = conditions
            self.until = until
        }

        /// The outcome of a policy with `conditions` for a client in `context`.
        package init(policyID: PolicyID, groupName: String, disabled: Bool, groupContainsActor: Bool, conditions: [Condition],
                     context: ConditionContext) {
            var results: [(name: String, holds: Bool)] = []
            var until: Date?
            for condition in conditions {
                let result = condition.evaluate(context)
                results.append((condition.description, result.holds))
                if let end = result.until { until = min(until ?? end, end) }
            }
            self.init(policyID: policyID, groupName: groupName, disabled: disabled, groupContainsActor: groupContainsActor,
                      conditions: results, until: until)
        }

        /// The failed conditions, for `forbidden`.
        package var failedConditions: [String] { conditions.filter { !$0.holds }.map(\.name) }

        package var grants: Bool { !disabled && groupContainsActor && conditions.allSatisfy(\.holds) }

        package static func == (lhs: Self, rhs: Self) -> Bool {
            lhs.policyID == rhs.policyID && lhs.groupName == rhs.groupName && lhs.disabled == rhs.disabled
                && lhs.groupContainsActor == rhs.groupContainsActor
                && lhs.conditions.map(\.name) == rhs.conditions.map(\.name) && lhs.conditions.map(\.holds) == rhs.conditions.map(\.holds)
                && lhs.until == rhs.until
        }
    }

    package var decision: Decision
    package var policies: [PolicyOutcome]
    /// When allowed: the policy whose authorisation lasts longest (spec step 2).
    package var chosenPolicy: PolicyID?
    /// When allowed: the earliest of the client token's expiry and the end of the chosen policy's time
    /// window; nil when neither bounds it.
    package var expiresAt: Date?

    /// Step 1 and 2 of the spec's evaluation over the resource's policies.
    package static func evaluate(policies: [PolicyOutcome], tokenExpiry: Date? = nil) -> AccessEvaluation {
        func expiry(_ outcome: PolicyOutcome) -> Date? {
            switch (outcome.until, tokenExpiry) {
            case let (until?, token?): min(until, token)
            case let (until?, nil): until
            case let (nil, token): token
            }
        }
        let granting = policies.filter(\.grants)
        if !granting.isEmpty {
            // Longest-lasting first; nil (unbounded) lasts longest; ties go to the lowest ID, so that
            // the choice is stable.
            let chosen = granting.min { lhs, rhs in
                switch (expiry(lhs), expiry(rhs)) {
                case (nil, nil): lhs.policyID < rhs.policyID
                case (nil, _): true
                case (_, nil): false
                case let (left?, right?): left != right ? left > right : lhs.policyID < rhs.policyID
                }
            }
            return AccessEvaluation(decision: .allowed, policies: policies, chosenPolicy: chosen?.policyID, expiresAt: chosen.flatMap(expiry))
        }
        let decision: Decision = policies.contains(where: { !$0.disabled && $0.groupContainsActor }) ? .forbidden : .notFound
        return AccessEvaluation(decision: decision, policies: policies, chosenPolicy: nil, expiresAt: nil)
    }

    /// The conditions that failed, over the policies whose group contains the actor (for `forbidden`).
    package var failedConditions: [String] {
        policies.filter { !$0.disabled && $0.groupContainsActor }.flatMap(\.failedConditions)
    }
}
