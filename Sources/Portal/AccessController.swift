import AdminAPI
import Foundation
import Hummingbird
import Identifiers
import Persistence
import Policy

/// `/api/v1/access/explain`: whether an actor (optionally on one of its clients, optionally at another
/// time) may reach a resource, policy by policy and condition by condition, with the expiry that
/// would result.
struct AccessController {
    let repository: any PortalRepository
    let evaluator: PolicyEvaluator

    func add<Context: RequestContext>(to group: RouterGroup<Context>) {
        group.get("explain") { request, _ in try await explain(request) }
    }

    func explain(_ request: Request) async throws -> Response {
        let admin = try AdminSession.require()
        let query = request.uri.queryParameters
        guard let actorID = query["actor"].flatMap({ ActorID(String($0)) }),
              let actor = try await repository.actor(accountID: admin.accountID, id: actorID)
        else { throw APIError.notFound("actor") }
        guard let resourceID = query["resource"].flatMap({ ResourceID(String($0)) }),
              try await repository.resource(accountID: admin.accountID, id: resourceID) != nil
        else { throw APIError.notFound("resource") }
        var now = Date()
        if let at = query["at"].map(String.init) {
            guard let date = ISO8601DateFormatter().date(from: at) else {
                throw APIError.validation("at \"\(at)\" must be an ISO 8601 time like 2026-11-23T10:00:00Z", field: "at")
            }
            now = date
        }
        var client: DeviceRecord?
        var tokenExpiry: Date?
        if let clientText = query["client"].map(String.init) {
            let clients = try await repository.listDevices(accountID: admin.accountID, kind: .client, after: nil, limit: Int.max)
            guard let found = clients.first(where: { $0.id.description == clientText.lowercased() || $0.name == clientText }),
                  found.actorID == actor.id
            else { throw APIError.notFound("client \(clientText) of this actor") }
            client = found
            if let tokenID = found.tokenID {
                tokenExpiry = try await repository.find(TokenRecord.self, accountID: admin.accountID, id: tokenID)?.expiresAt
            }
        }
        let evaluation = try await evaluator.evaluate(accountID: admin.accountID, actor: actor, resource: resourceID, client: client,
                                                      tokenExpiry: tokenExpiry, now: now)
        return try answer(AccessExplanation(
            decision: evaluation.decision.rawValue, actorDisabled: actor.disabled, at: now, failedConditions: evaluation.failedConditions,
            policies: evaluation.policies.map { outcome in
                AccessExplanation.PolicyOutcome(
                    policyID: outcome.policyID, group: outcome.groupName, disabled: outcome.disabled,
                    groupContainsActor: outcome.groupContainsActor, grants: outcome.grants,
                    conditions: outcome.conditions.map { .init(condition: $0.name, holds: $0.holds) }, conditionsHoldUntil: outcome.until)
            },
            policyID: evaluation.chosenPolicy, expiresAt: evaluation.expiresAt, clientID: client?.id))
    }
}
