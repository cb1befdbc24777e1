import Foundation
import Hummingbird
import Persistence
import Identifiers

/// `/api/v1/groups` and their members.
struct GroupsController {
    let repository: any PortalRepository

    func add<Context: RequestContext>(to group: RouterGroup<Context>) {
        group.get { request, _ in try await list(request) }
        group.get(":id") { _, context in try await showOne(GroupRecord.self, "group", id: context.parameters.get("id"), repository: repository, Self.representation) }
        group.post { request, _ in try await create(request) }
        group.patch(":id") { request, context in try await rename(request, id: context.parameters.get("id")) }
        group.delete(":id") { _, context in try await delete(id: context.parameters.get("id")) }
        group.get(":id/members") { _, context in try await members(group: context.parameters.get("id")) }
        group.put(":id/members/:actor") { _, context in
            try await addMember(group: context.parameters.get("id"), member: context.parameters.get("actor"))
        }
        group.delete(":id/members/:actor") { _, context in
            try await removeMember(group: context.parameters.get("id"), member: context.parameters.get("actor"))
        }
    }

    static func representation(_ group: GroupRecord) -> [String: Any] {
        ["id": group.id.description, "name": group.name, "created_at": ISO8601DateFormatter().string(from: group.createdAt)]
    }

    func list(_ request: Request) async throws -> Response {
        let admin = try AdminSession.require()
        let page = try Page(request)
        let groups = try await repository.listGroups(accountID: admin.accountID, after: page.cursor, limit: page.limit + 1)
        return try json(page.body(groups.map { ($0.name, Self.representation($0)) }))
    }

    func create(_ request: Request) async throws -> Response {
        let admin = try AdminSession.require()
        let name = try await JSONBody(request, allowed: ["name"]).string("name")
        if name.caseInsensitiveCompare("Everyone") == .orderedSame {
            throw APIError(.conflict, code: "conflict", message: "\"Everyone\" is the built-in group of every user and admin", field: "name")
        }
        do {
            let group = try await repository.createGroup(accountID: admin.accountID, name: name, by: admin, now: Date())
            return try json(Self.representation(group), status: .created)
        } catch RepositoryError.conflict {
            throw APIError(.conflict, code: "conflict", message: "a group named \"\(name)\" exists", field: "name")
        }
    }

    /// The Everyone group of the account, which cannot be deleted and has no membership rows.
    private func isEveryone(_ id: GroupID, account: AccountID) async throws -> Bool {
        try await repository.listGroups(accountID: account, after: nil, limit: 100_000).contains { $0.id == id && $0.isEveryone }
    }

    func delete(id: String?) async throws -> Response {
        let admin = try AdminSession.require()
        if let uuid = id.flatMap(GroupID.init), try await isEveryone(uuid, account: admin.accountID) {
            throw APIError(.conflict, code: "conflict", message: "\"Everyone\" is built in and cannot be deleted")
        }
        guard let uuid = id.flatMap(GroupID.init),
              try await repository.deleteGroup(accountID: admin.accountID, id: uuid, by: admin, now: Date())
        else { throw APIError.notFound("group \(id ?? "")") }
        return Response(status: .noContent)
    }

    func rename(_ request: Request, id: String?) async throws -> Response {
        let admin = try AdminSession.require()
        guard let uuid = id.flatMap(GroupID.init) else { throw APIError.notFound("group \(id ?? "")") }
        let name = try await JSONBody(request, allowed: ["name"]).string("name")
        if try await isEveryone(uuid, account: admin.accountID) {
            throw APIError(.conflict, code: "conflict", message: "\"Everyone\" is built in and cannot be renamed")
        }
        if name.caseInsensitiveCompare(GroupRecord.everyone) == .orderedSame {
            throw APIError(.conflict, code: "conflict", message: "\"Everyone\" is the built-in group of every user and admin", field: "name")
        }
        do {
            guard let group = try await repository.updateGroup(accountID: admin.accountID, id: uuid, by: admin, now: Date(), { $0.name = name }) else {
                throw APIError.notFound("group \(uuid.description)")
            }
            return try json(Self.representation(group))
        } catch RepositoryError.conflict {
            throw APIError(.conflict, code: "conflict", message: "a group named \"\(name)\" exists", field: "name")
        }
    }

    func members(group: String?) async throws -> Response {
        let admin = try AdminSession.require()
        guard let uuid = group.flatMap(GroupID.init) else { throw APIError.notFound("group \(group ?? "")") }
        guard let actors = try await repository.members(accountID: admin.accountID, group: uuid) else {
            throw APIError.notFound("group \(uuid.description)")
        }
        return try json(["data": actors.map(ActorsController.representation)])
    }

    func addMember(group: String?, member: String?) async throws -> Response {
        let admin = try AdminSession.require()
        guard let groupID = group.flatMap(GroupID.init), let actorID = member.flatMap(ActorID.init) else {
            throw APIError.notFound("group or actor")
        }
        if try await isEveryone(groupID, account: admin.accountID) {
            throw APIError.validation("\"Everyone\" contains every user and admin already; it has no members to add")
        }
        do {
            let added = try await repository.addMember(accountID: admin.accountID, group: groupID, member: actorID, by: admin, now: Date())
            return Response(status: added ? .created : .ok)
        } catch RepositoryError.missingReference {
            throw APIError.notFound("group \(groupID.description) or actor \(actorID.description)")
        }
    }

    func removeMember(group: String?, member: String?) async throws -> Response {
        let admin = try AdminSession.require()
        guard let groupID = group.flatMap(GroupID.init), let actorID = member.flatMap(ActorID.init),
              try await repository.removeMember(accountID: admin.accountID, group: groupID, member: actorID, by: admin, now: Date())
        else { throw APIError.notFound("membership") }
        return Response(status: .noContent)
    }
}

/// `/api/v1/actors`: users, admins and service accounts.
struct ActorsController {
    let repository: any PortalRepository

    func add<Context: RequestContext>(to group: RouterGroup<Context>) {
        group.get { request, _ in try await list(request) }
        group.get(":id") { _, context in try await showOne(ActorRecord.self, "actor", id: context.parameters.get("id"), repository: repository, Self.representation) }
        group.post { request, _ in try await create(request) }
        group.patch(":id") { request, context in try await update(request, id: context.parameters.get("id")) }
        group.delete(":id") { _, context in try await delete(id: context.parameters.get("id")) }
    }

    static func representation(_ actor: ActorRecord) -> [String: Any] {
        var value: [String: Any] = [
            "id": actor.id.description, "type": actor.type.rawValue, "name": actor.name, "disabled": actor.disabled,
        ]
        if let email = actor.email { value["email"] = email }
        return value
    }

    func list(_ request: Request) async throws -> Response {
        let admin = try AdminSession.require()
        let page = try Page(request)
        let actors = try await repository.listActors(accountID: admin.accountID, after: page.cursor, limit: page.limit + 1)
        return try json(page.body(actors.map { ($0.id.description, Self.representation($0)) }))
    }

    func create(_ request: Request) async throws -> Response {
        let admin = try AdminSession.require()
        let body = try await JSONBody(request, allowed: ["type", "name", "email"])
        let typeText = try body.string("type")
        guard let type = ActorRecord.Kind(rawValue: typeText) else {
            throw APIError.validation("type \"\(typeText)\" must be user, admin or service_account", field: "type")
        }
        let name = try body.string("name")
        var email: String?
        switch type {
        case .user, .admin:
            let address = try body.string("email", maximumLength: 254).lowercased()
            guard address.split(separator: "@").count == 2, !address.hasPrefix("@"), !address.hasSuffix("@") else {
                throw APIError.validation("email \"\(address)\" is not an email address", field: "email")
            }
            email = address
        case .serviceAccount:
            if body.values["email"] != nil {
                throw APIError.validation("a service account has no email", field: "email")
            }
        }
        do {
            let record = ActorRecord(accountID: admin.accountID, type: type, name: name, email: email, createdAt: Date())
            let created = try await repository.createActor(record, by: admin, now: Date())
            return try json(Self.representation(created), status: .created)
        } catch RepositoryError.conflict {
            throw APIError(.conflict, code: "conflict", message: "an actor with email \"\(email ?? "")\" exists", field: "email")
        }
    }

    /// Renames, changes the email of, disables or enables an actor. Disabling takes its access away at
    /// once (the change feed revokes its authorisations).
    func update(_ request: Request, id: String?) async throws -> Response {
        let admin = try AdminSession.require()
        guard let uuid = id.flatMap(ActorID.init) else { throw APIError.notFound("actor \(id ?? "")") }
        let body = try await JSONBody(request, allowed: ["name", "email", "disabled"])
        let name = try body.optionalString("name")
        let email = try body.optionalString("email", maximumLength: 254)?.lowercased()
        let disabled = try body.bool("disabled")
        if uuid == admin.id, disabled == true { throw APIError(.conflict, code: "conflict", message: "an admin cannot disable itself") }
        if let email, email.split(separator: "@").count != 2 || email.hasPrefix("@") || email.hasSuffix("@") {
            throw APIError.validation("email \"\(email)\" is not an email address", field: "email")
        }
        do {
            let updated = try await repository.updateActor(accountID: admin.accountID, id: uuid, by: admin, now: Date()) { actor in
                if let name { actor.name = name }
                if let email {
                    guard actor.type != .serviceAccount else { throw APIError.validation("a service account has no email", field: "email") }
                    actor.email = email
                }
                if let disabled { actor.disabled = disabled }
            }
            guard let updated else { throw APIError.notFound("actor \(uuid.description)") }
            return try json(Self.representation(updated))
        } catch RepositoryError.conflict {
            throw APIError(.conflict, code: "conflict", message: "an actor with email \"\(email ?? "")\" exists", field: "email")
        }
    }

    func delete(id: String?) async throws -> Response {
        let admin = try AdminSession.require()
        guard let uuid = id.flatMap(ActorID.init) else { throw APIError.notFound("actor \(id ?? "")") }
        if uuid == admin.id { throw APIError(.conflict, code: "conflict", message: "an admin cannot delete itself") }
        guard try await repository.deleteActor(accountID: admin.accountID, id: uuid, by: admin, now: Date()) else {
            throw APIError.notFound("actor \(uuid.description)")
        }
        return Response(status: .noContent)
    }
}

/// Cursor pagination: `?limit=` (1-500, default 100) and `?cursor=` (the sort key of the last item seen).
struct Page {
    /// Longer than any key a page ends on (names are at most 200 characters).
    static let maximumCursor = 200
    let limit: Int
    let cursor: String?

    init(_ request: Request) throws {
        let limitText = request.uri.queryParameters["limit"].map(String.init)
        if let limitText {
            guard let value = Int(limitText), (1...500).contains(value) else {
                throw APIError.validation("limit must be 1-500", field: "limit")
            }
            limit = value
        } else {
            limit = 100
        }
        cursor = request.uri.queryParameters["cursor"].map(String.init)
        if let cursor, cursor.count > Self.maximumCursor {
            throw APIError.validation("cursor must be at most \(Self.maximumCursor) characters (a next_cursor this API gave out)", field: "cursor")
        }
    }

    /// `{"data": [...], "next_cursor": ...}` from up to `limit + 1` items (the extra one says there is more).
    func body(_ items: [(key: String, value: [String: Any])]) -> [String: Any] {
        let shown = items.prefix(limit)
        var body: [String: Any] = ["data": shown.map(\.value)]
        if items.count > limit, let last = shown.last { body["next_cursor"] = last.key }
        return body
    }
}
