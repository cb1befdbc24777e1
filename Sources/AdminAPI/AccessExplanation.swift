package import Foundation
package import Identifiers

/// The answer to `GET /access/explain`: whether an actor may reach a resource, policy by policy and
/// condition by condition.
package struct AccessExplanation: APIObject, Equatable {
    package struct PolicyOutcome: APIObject, Equatable {
        package struct ConditionOutcome: APIObject, Equatable {
            package var condition: String
            package var holds: Bool

            package init(condition: String, holds: Bool) {
                self.condition = condition
                self.holds = holds
            }

            package static let schema = ObjectSchema([.init("condition", .string, required: true), .init("holds", .boolean, required: true)])
        }

        package var policyID: PolicyID
        package var group: String
        package var disabled: Bool
        package var groupContainsActor: Bool
        package var grants: Bool
        package var conditions: [ConditionOutcome]
        package var conditionsHoldUntil: Date?

        package init(policyID: PolicyID, group: String, disabled: Bool, groupContainsActor: Bool, grants: Bool,
                     conditions: [ConditionOutcome], conditionsHoldUntil: Date?) {
            self.policyID = policyID
            self.group = group
            self.disabled = disabled
            self.groupContainsActor = groupContainsActor
            self.grants = grants
            self.conditions = conditions
            self.conditionsHoldUntil = conditionsHoldUntil
        }

        enum CodingKeys: String, CodingKey {
            case group, disabled, grants, conditions
            case policyID = "policy_id"
            case groupContainsActor = "group_contains_actor"
            case conditionsHoldUntil = "conditions_hold_until"
        }

        package static let schema = ObjectSchema([
            .init("policy_id", .id(noun: "policy"), required: true), .init("group", .string, required: true),
            .init("disabled", .boolean, required: true), .init("group_contains_actor", .boolean, required: true),
            .init("grants", .boolean, required: true),
            .init("conditions", .list(of: .object(ConditionOutcome.schema), maximum: nil), required: true),
            .init("conditions_hold_until", .dateTime),
        ])
    }

    /// allowed, not_found (no policy's group holds the actor) or forbidden (conditions fail).
    package var decision: String
    package var actorDisabled: Bool
    package var at: Date
    package var failedConditions: [String]
    package var policies: [PolicyOutcome]
    package var policyID: PolicyID?
    package var expiresAt: Date?
    package var clientID: DeviceID?

    package init(decision: String, actorDisabled: Bool, at: Date, failedConditions: [String], policies: [PolicyOutcome],
                 policyID: PolicyID?, expiresAt: Date?, clientID: DeviceID?) {
        self.decision = decision
        self.actorDisabled = actorDisabled
        self.at = at
        self.failedConditions = failedConditions
        self.policies = policies
        self.policyID = policyID
        self.expiresAt = expiresAt
        self.clientID = clientID
    }

    enum CodingKeys: String, CodingKey {
        case decision, at, policies
        case actorDisabled = "actor_disabled"
        case failedConditions = "failed_conditions"
        case policyID = "policy_id"
        case expiresAt = "expires_at"
        case clientID = "client_id"
    }

    package static let schema = ObjectSchema([
        .init("decision", .choice(["allowed", "not_found", "forbidden"]), required: true),
        .init("actor_disabled", .boolean, required: true), .init("at", .dateTime, required: true),
        .init("failed_conditions", .list(of: .string, maximum: nil), required: true),
        .init("policies", .list(of: .object(PolicyOutcome.schema), maximum: nil), required: true),
        .init("policy_id", .id(noun: "policy")), .init("expires_at", .dateTime), .init("client_id", .id(noun: "client")),
    ])
}
