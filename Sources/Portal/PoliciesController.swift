import Foundation
import Hummingbird
import Persistence
import Policy

/// `/api/v1/policies` (group → resource) and `/api/v1/access/explain`.
struct PoliciesController {
    let repository: any PortalRepository

    func add<Context: RequestContext>(policies: RouterGroup<Context>, access: RouterGroup<Context>) {
        policies.get { request, _ in try await list(request) }
        policies.post { request, _ in try await create(request) }
        policies.delete(":id") { _, context in try await delete(id: context.parameters.get("id")) }
        access.get("explain") { request, _ in try await explain(request) }
    }

    static func representation(_ policy: PolicyRecord) -> [String: Any] {
        var value: [String: Any] = [
            "id": policy.id.uuidString.lowercased(), "group_id": policy.groupID.uuidString.lowercased(),
            "resource_id": policy.resourceID.uuidString.lowercased(), "disabled": policy.disabled,
        ]
        if let description = policy.description { value["description"] = description }
        return value
    }

    func list(_ request: Request) async throws -> Response {
        let admin = try AdminSession.require()
        let page = try Page(request)
        let policies = try await repository.listPolicies(accountID: admin.accountID, after: page.cursor, limit: page.limit + 1)
        return try json(page.body(policies.map { ($0.id.uuidString.lowercased(), Self.representation($0)) }))
    }

    func create(_ request: Request) async throws -> Response {
        let admin = try AdminSession.require()
        let body = try await JSONBody(request, allowed: ["group_id", "resource_id", "description", "disabled"])
        guard let group = UUID(uuidString: try body.string("group_id")) else { throw APIError.validation("\"group_id\" must be an ID", field: "group_id") }
        guard let resource = UUID(uuidString: try body.string("resource_id")) else {
            throw APIError.validation("\"resource_id\" must be an ID", field: "resource_id")
        }
        let description = body.values["description"] == nil ? nil : try body.string("description", maximumLength: 500)
        var disabled = false
        if let value = body.values["disabled"] {
            guard let flag = value as? Bool, type(of: value) != Int.self else { throw APIError.validation("\"disabled\" must be true or false", field: "disabled") }
            disabled = flag
        }
        let record = PolicyRecord(accountID: admin.accountID, groupID: group, resourceID: resource, description: description,
                                  disabled: disabled, createdAt: Date())
        do {
            return try json(Self.representation(try await repository.createPolicy(record, by: admin, now: Date())), status: .created)
        } catch RepositoryError.conflict {
            throw APIError(.conflict, code: "conflict", message: "the group already has a policy for this resource", field: "group_id")
        } catch RepositoryError.missingReference {
            throw APIError.notFound("group \(group.uuidString.lowercased()) or resource \(resource.uuidString.lowercased())")
        }
    }

    func delete(id: String?) async throws -> Response {
        let admin = try AdminSession.require()
        guard let uuid = id.flatMap(UUID.init(uuidString:)),
              try await repository.deletePolicy(accountID: admin.accountID, id: uuid, by: admin, now: Date())
        else { throw APIError.notFound("policy \(id ?? "")") }
        return Response(status: .noContent)
    }

    /// Whether an actor may reach a resource, policy by policy.
    func explain(_ request: Request) async throws -> Response {
        let admin = try AdminSession.require()
        guard let actorID = request.uri.queryParameters["actor"].flatMap({ UUID(uuidString: String($0)) }),
              let actor = try await repository.actor(id: actorID), actor.accountID == admin.accountID
        else { throw APIError.notFound("actor") }
        guard let resourceID = request.uri.queryParameters["resource"].flatMap({ UUID(uuidString: String($0)) }) else {
            throw APIError.notFound("resource")
        }
        let policies = try await repository.policies(accountID: admin.accountID, resource: resourceID)
        let groups = try await repository.listGroups(accountID: admin.accountID, after: nil, limit: 100_000)
        let names = Dictionary(uniqueKeysWithValues: groups.map { ($0.id, $0.name) })
        var memberOf = try await repository.groupIDs(of: actor.id)
        // Everyone implicitly holds every user and admin, never a service account.
        if actor.type != .serviceAccount, let everyone = groups.first(where: \.isEveryone) { memberOf.insert(everyone.id) }
        let outcomes = policies.map { policy in
            AccessEvaluation.PolicyOutcome(
                policyID: policy.id, groupName: names[policy.groupID] ?? policy.groupID.uuidString.lowercased(),
                disabled: policy.disabled, groupContainsActor: !actor.disabled && memberOf.contains(policy.groupID), conditions: [])
        }
        let evaluation = AccessEvaluation.evaluate(policies: outcomes)
        return try json([
            "decision": evaluation.decision.rawValue,
            "actor_disabled": actor.disabled,
            "policies": evaluation.policies.map { outcome in
                [
                    "policy_id": outcome.policyID.uuidString.lowercased(), "group": outcome.groupName,
                    "disabled": outcome.disabled, "group_contains_actor": outcome.groupContainsActor, "grants": outcome.grants,
                    "conditions": outcome.conditions.map { ["condition": $0.name, "holds": $0.holds] },
                ] as [String: Any]
            },
        ])
    }
}
