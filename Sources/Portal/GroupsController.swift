import AdminAPI
import Foundation
import Hummingbird
import Identifiers
import Persistence

/// `/api/v1/groups` and their members.
struct GroupsController {
    let repository: any PortalRepository

    func add<Context: RequestContext>(to group: RouterGroup<Context>) {
        group.get { request, _ in try await list(request) }
        group.get(":id") { _, context in try await show(context.parameters.id()) }
        group.post { request, _ in try await create(request.decode(CreateGroup.self)) }
        group.patch(":id") { request, context in try await update(context.parameters.id(), request.decode(UpdateGroup.self)) }
        group.delete(":id") { _, context in try await delete(context.parameters.id()) }
        group.get(":id/members") { _, context in try await members(context.parameters.id()) }
        group.put(":id/members/:actor") { _, context in try await addMember(context.parameters.id(), context.parameters.id("actor")) }
        group.delete(":id/members/:actor") { _, context in try await removeMember(context.parameters.id(), context.parameters.id("actor")) }
    }

    func list(_ request: Request) async throws -> Response {
        let admin = try AdminSession.require()
        let page = try PageRequest(request)
        let groups = try await repository.listGroups(accountID: admin.accountID, after: page.cursor, limit: page.limit + 1)
        return try answer(page.page(groups, key: \.name, Group.init))
    }

    func show(_ id: GroupID) async throws -> Response {
        let admin = try AdminSession.require()
        guard let group = try await repository.find(GroupRecord.self, accountID: admin.accountID, id: id) else { throw APIError.notFound("group \(id)") }
        return try answer(Group(group))
    }

    func create(_ body: CreateGroup) async throws -> Response {
        let admin = try AdminSession.require()
        try Self.refuseEveryone(body.name)
        do {
            let group = try await repository.createGroup(accountID: admin.accountID, name: body.name, by: admin, now: Date())
            return try answer(Group(group), status: .created)
        } catch RepositoryError.conflict {
            throw APIError(.conflict, code: "conflict", message: "a group named \"\(body.name)\" exists", field: "name")
        }
    }

    static func refuseEveryone(_ name: String) throws {
        if name.caseInsensitiveCompare(GroupRecord.everyone) == .orderedSame {
            throw APIError(.conflict, code: "conflict", message: "\"Everyone\" is the built-in group of every user and admin", field: "name")
        }
    }

    /// Whether `id` is the account's Everyone group, which cannot be changed and has no membership rows.
    private func isEveryone(_ id: GroupID, account: AccountID) async throws -> Bool {
        try await repository.find(GroupRecord.self, accountID: account, id: id)?.isEveryone ?? false
    }

    func delete(_ id: GroupID) async throws -> Response {
        let admin = try AdminSession.require()
        if try await isEveryone(id, account: admin.accountID) {
            throw APIError(.conflict, code: "conflict", message: "\"Everyone\" is built in and cannot be deleted")
        }
        guard try await repository.deleteGroup(accountID: admin.accountID, id: id, by: admin, now: Date()) else {
            throw APIError.notFound("group \(id)")
        }
        return Response(status: .noContent)
    }

    func update(_ id: GroupID, _ body: UpdateGroup) async throws -> Response {
        let admin = try AdminSession.require()
        if try await isEveryone(id, account: admin.accountID) {
            throw APIError(.conflict, code: "conflict", message: "\"Everyone\" is built in and cannot be renamed")
        }
        try Self.refuseEveryone(body.name)
        do {
            guard let group = try await repository.updateGroup(accountID: admin.accountID, id: id, by: admin, now: Date(), { $0.name = body.name }) else {
                throw APIError.notFound("group \(id)")
            }
            return try answer(Group(group))
        } catch RepositoryError.conflict {
            throw APIError(.conflict, code: "conflict", message: "a group named \"\(body.name)\" exists", field: "name")
        }
    }

    func members(_ id: GroupID) async throws -> Response {
        let admin = try AdminSession.require()
        guard let actors = try await repository.members(accountID: admin.accountID, group: id) else { throw APIError.notFound("group \(id)") }
        return try answer(Members(data: actors.map(AdminAPI.Actor.init)))
    }

    func addMember(_ group: GroupID, _ member: ActorID) async throws -> Response {
        let admin = try AdminSession.require()
        if try await isEveryone(group, account: admin.accountID) {
            throw APIError.validation("\"Everyone\" contains every user and admin already; it has no members to add")
        }
        do {
            let added = try await repository.addMember(accountID: admin.accountID, group: group, member: member, by: admin, now: Date())
            return Response(status: added ? .created : .ok)
        } catch RepositoryError.missingReference {
            throw APIError.notFound("group \(group) or actor \(member)")
        }
    }

    func removeMember(_ group: GroupID, _ member: ActorID) async throws -> Response {
        let admin = try AdminSession.require()
        guard try await repository.removeMember(accountID: admin.accountID, group: group, member: member, by: admin, now: Date()) else {
            throw APIError.notFound("membership")
        }
        return Response(status: .noContent)
    }
}
