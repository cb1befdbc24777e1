import Foundation
import Hummingbird
import Persistence
import Identifiers
import Policy

/// `/api/v1/policies` (group → resource, with conditions) and `/api/v1/access/explain`.
struct PoliciesController {
    let repository: any PortalRepository
    let evaluator: PolicyEvaluator

    func add<Context: RequestContext>(policies: RouterGroup<Context>, access: RouterGroup<Context>) {
        policies.get { request, _ in try await list(request) }
        policies.get(":id") { _, context in try await showOne(PolicyRecord.self, "policy", id: context.parameters.get("id"), repository: repository, Self.representation) }
        policies.post { request, _ in try await create(request) }
        policies.patch(":id") { request, context in try await update(request, id: context.parameters.get("id")) }
        policies.delete(":id") { _, context in try await delete(id: context.parameters.get("id")) }
        access.get("explain") { request, _ in try await explain(request) }
    }

    static func representation(_ policy: PolicyRecord) -> [String: Any] {
        var value: [String: Any] = [
            "id": policy.id.description, "group_id": policy.groupID.description,
            "resource_id": policy.resourceID.description, "disabled": policy.disabled,
            "conditions": (try? JSONSerialization.jsonObject(with: Data(policy.conditions.utf8))) ?? [],
        ]
        if let description = policy.description { value["description"] = description }
        return value
    }

    /// The `conditions` field, validated and in canonical form, as stored (nil when left out).
    static func conditions(_ body: JSONBody) throws -> String? {
        guard let texts = try body.strings("conditions") else { return nil }
        do {
            return PolicyConditions.encode(try texts.map { text throws(ConditionError) in try Condition(text) })
        } catch {
            throw APIError.validation("\(error)", field: "conditions")
        }
    }

    func list(_ request: Request) async throws -> Response {
        let admin = try AdminSession.require()
        let page = try Page(request)
        let policies = try await repository.listPolicies(accountID: admin.accountID, after: page.cursor, limit: page.limit + 1)
        return try json(page.body(policies.map { ($0.id.description, Self.representation($0)) }))
    }

    func create(_ request: Request) async throws -> Response {
        let admin = try AdminSession.require()
        let body = try await JSONBody(request, allowed: ["group_id", "resource_id", "description", "disabled", "conditions"])
        guard let group: GroupID = try body.id("group_id") else { throw APIError.validation("\"group_id\" is required", field: "group_id") }
        guard let resource: ResourceID = try body.id("resource_id") else { throw APIError.validation("\"resource_id\" is required", field: "resource_id") }
        let description = try body.optionalString("description", maximumLength: 500)
        let disabled = try body.bool("disabled") ?? false
        let conditions = try Self.conditions(body)
        let record = PolicyRecord(accountID: admin.accountID, groupID: group, resourceID: resource, description: description,
                                  conditions: conditions ?? "[]", disabled: disabled, createdAt: Date())
        do {
            return try json(Self.representation(try await repository.createPolicy(record, by: admin, now: Date())), status: .created)
        } catch RepositoryError.conflict {
            throw APIError(.conflict, code: "conflict", message: "the group already has a policy for this resource", field: "group_id")
        } catch RepositoryError.missingReference {
            throw APIError.notFound("group \(group.description) or resource \(resource.description)")
        }
    }

    func update(_ request: Request, id: String?) async throws -> Response {
        let admin = try AdminSession.require()
        guard let uuid = id.flatMap(PolicyID.init) else { throw APIError.notFound("policy \(id ?? "")") }
        let body = try await JSONBody(request, allowed: ["group_id", "resource_id", "description", "disabled", "conditions"])
        let group: GroupID? = try body.id("group_id")
        let resource: ResourceID? = try body.id("resource_id")
        let description = try body.optionalString("description", maximumLength: 500)
        let disabled = try body.bool("disabled")
        let conditions = try Self.conditions(body)
        do {
            let updated = try await repository.updatePolicy(accountID: admin.accountID, id: uuid, by: admin, now: Date()) { policy in
                if let group { policy.groupID = group }
                if let resource { policy.resourceID = resource }
                if let description { policy.description = description }
                if let disabled { policy.disabled = disabled }
                if let conditions { policy.conditions = conditions }
            }
            guard let updated else { throw APIError.notFound("policy \(uuid.description)") }
            return try json(Self.representation(updated))
        } catch RepositoryError.conflict {
            throw APIError(.conflict, code: "conflict", message: "the group already has a policy for this resource", field: "group_id")
        } catch RepositoryError.missingReference {
            throw APIError.notFound("group or resource")
        }
    }

    func delete(id: String?) async throws -> Response {
        let admin = try AdminSession.require()
        guard let uuid = id.flatMap(PolicyID.init),
              try await repository.deletePolicy(accountID: admin.accountID, id: uuid, by: admin, now: Date())
        else { throw APIError.notFound("policy \(id ?? "")") }
        return Response(status: .noContent)
    }

    /// Whether an actor (optionally on one of its clients, optionally at another time) may reach a
    /// resource, policy by policy and condition by condition, with the expiry that would result.
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
                tokenExpiry = try await repository.listTokens(accountID: admin.accountID, after: nil, limit: Int.max)
                    .first { $0.id == tokenID }?.expiresAt
            }
        }
        let evaluation = try await evaluator.evaluate(accountID: admin.accountID, actor: actor, resource: resourceID, client: client,
                                                      tokenExpiry: tokenExpiry, now: now)
        let dates = ISO8601DateFormatter()
        var answer: [String: Any] = [
            "decision": evaluation.decision.rawValue,
            "actor_disabled": actor.disabled,
            "at": dates.string(from: now),
            "failed_conditions": evaluation.failedConditions,
            "policies": evaluation.policies.map { outcome in
                var value: [String: Any] = [
                    "policy_id": outcome.policyID.description, "group": outcome.groupName,
                    "disabled": outcome.disabled, "group_contains_actor": outcome.groupContainsActor, "grants": outcome.grants,
                    "conditions": outcome.conditions.map { ["condition": $0.name, "holds": $0.holds] },
                ]
                if let until = outcome.until { value["conditions_hold_until"] = dates.string(from: until) }
                return value
            },
        ]
        if let chosen = evaluation.chosenPolicy { answer["policy_id"] = chosen.description }
        if let expiry = evaluation.expiresAt { answer["expires_at"] = dates.string(from: expiry) }
        if let client { answer["client_id"] = client.id.description }
        return try json(answer)
    }
}
