import AdminAPI
import Foundation
import Hummingbird
import Identifiers
import Persistence
import Policy

/// `/api/v1/policies`: a group may reach a resource, while the policy's conditions hold.
struct PoliciesController {
    let repository: any PortalRepository

    func add<Context: RequestContext>(to group: RouterGroup<Context>) {
        group.get { request, _ in try await list(request) }
        group.get(":id") { _, context in try await show(context.parameters.id()) }
        group.post { request, _ in try await create(request.decode(CreatePolicy.self)) }
        group.patch(":id") { request, context in try await update(context.parameters.id(), request.decode(UpdatePolicy.self)) }
        group.delete(":id") { _, context in try await delete(context.parameters.id()) }
    }

    /// Conditions validated and in canonical form, as stored.
    static func conditions(_ texts: [String]) throws -> String {
        do {
            return PolicyConditions.encode(try texts.map { text throws(ConditionError) in try Condition(text) })
        } catch {
            throw APIError.validation("\(error)", field: "conditions")
        }
    }

    func list(_ request: Request) async throws -> Response {
        let admin = try AdminSession.require()
        let page = try PageRequest(request)
        let policies = try await repository.listPolicies(accountID: admin.accountID, after: page.cursor, limit: page.limit + 1)
        return try answer(page.page(policies, key: \.id.description, AdminAPI.Policy.init))
    }

    func show(_ id: PolicyID) async throws -> Response {
        let admin = try AdminSession.require()
        guard let policy = try await repository.find(PolicyRecord.self, accountID: admin.accountID, id: id) else { throw APIError.notFound("policy \(id)") }
        return try answer(AdminAPI.Policy(policy))
    }

    func create(_ body: CreatePolicy) async throws -> Response {
        let admin = try AdminSession.require()
        let record = PolicyRecord(accountID: admin.accountID, groupID: body.groupID, resourceID: body.resourceID, description: body.description,
                                  conditions: try Self.conditions(body.conditions ?? []), disabled: body.disabled ?? false, createdAt: Date())
        do {
            return try answer(AdminAPI.Policy(try await repository.createPolicy(record, by: admin, now: Date())), status: .created)
        } catch RepositoryError.conflict {
            throw APIError(.conflict, code: "conflict", message: "the group already has a policy for this resource", field: "group_id")
        } catch RepositoryError.missingReference {
            throw APIError.notFound("group \(body.groupID) or resource \(body.resourceID)")
        }
    }

    func update(_ id: PolicyID, _ body: UpdatePolicy) async throws -> Response {
        let admin = try AdminSession.require()
        let conditions = try body.conditions.map(Self.conditions)
        do {
            let updated = try await repository.updatePolicy(accountID: admin.accountID, id: id, by: admin, now: Date()) { policy in
                if let group = body.groupID { policy.groupID = group }
                if let resource = body.resourceID { policy.resourceID = resource }
                if let description = body.description { policy.description = description }
                if let disabled = body.disabled { policy.disabled = disabled }
                if let conditions { policy.conditions = conditions }
            }
            guard let updated else { throw APIError.notFound("policy \(id)") }
            return try answer(AdminAPI.Policy(updated))
        } catch RepositoryError.conflict {
            throw APIError(.conflict, code: "conflict", message: "the group already has a policy for this resource", field: "group_id")
        } catch RepositoryError.missingReference {
            throw APIError.notFound("group or resource")
        }
    }

    func delete(_ id: PolicyID) async throws -> Response {
        let admin = try AdminSession.require()
        guard try await repository.deletePolicy(accountID: admin.accountID, id: id, by: admin, now: Date()) else {
            throw APIError.notFound("policy \(id)")
        }
        return Response(status: .noContent)
    }
}
