package import Foundation

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
        package var policyID: UUID
        package var groupName: String
        package var disabled: Bool
        package var groupContainsActor: Bool
        /// Each condition with whether it holds (conditions come with a later issue; none means "all hold").
        package var conditions: [(name: String, holds: Bool)]

        package init(policyID: UUID, groupName: String, disabled: Bool, groupContainsActor: Bool, conditions: [(name: String, holds: Bool)]) {
            self.policyID = policyID
            self.groupName = groupName
            self.disabled = disabled
            self.groupContainsActor = groupContainsActor
            self.conditions = conditions
        }

        package var grants: Bool { !disabled && groupContainsActor && conditions.allSatisfy(\.holds) }

        package static func == (lhs: Self, rhs: Self) -> Bool {
            lhs.policyID == rhs.policyID && lhs.groupName == rhs.groupName && lhs.disabled == rhs.disabled
                && lhs.groupContainsActor == rhs.groupContainsActor
                && lhs.conditions.map(\.name) == rhs.conditions.map(\.name) && lhs.conditions.map(\.holds) == rhs.conditions.map(\.holds)
        }
    }

    package var decision: Decision
    package var policies: [PolicyOutcome]

    /// The Everyone group implicitly holds every user and admin, never a service account.
    package static func evaluate(policies: [PolicyOutcome]) -> AccessEvaluation {
        let decision: Decision
        if policies.contains(where: \.grants) {
            decision = .allowed
        } else if policies.contains(where: { !$0.disabled && $0.groupContainsActor }) {
            decision = .forbidden
        } else {
            decision = .notFound
        }
        return AccessEvaluation(decision: decision, policies: policies)
    }
}
