import AdminAPI
import Foundation
import Hummingbird
import Identifiers
import Persistence

/// `/api/v1/actors`: users, admins and service accounts.
struct ActorsController {
    let repository: any PortalRepository

    func add<Context: RequestContext>(to group: RouterGroup<Context>) {
        group.get { request, _ in try await list(request) }
        group.get(":id") { _, context in try await show(context.parameters.id()) }
        group.post { request, _ in try await create(request.decode(CreateActor.self)) }
        group.patch(":id") { request, context in try await update(context.parameters.id(), request.decode(UpdateActor.self)) }
        group.delete(":id") { _, context in try await delete(context.parameters.id()) }
    }

    func list(_ request: Request) async throws -> Response {
        let admin = try AdminSession.require()
        let page = try PageRequest(request)
        let actors = try await repository.listActors(accountID: admin.accountID, after: page.cursor, limit: page.limit + 1)
        return try answer(page.page(actors, key: \.id.description, AdminAPI.Actor.init))
    }

    func show(_ id: ActorID) async throws -> Response {
        let admin = try AdminSession.require()
        guard let actor = try await repository.actor(accountID: admin.accountID, id: id) else { throw APIError.notFound("actor \(id)") }
        return try answer(AdminAPI.Actor(actor))
    }

    func create(_ body: CreateActor) async throws -> Response {
        let admin = try AdminSession.require()
        let type: ActorRecord.Kind = switch body.type {
        case .user: .user
        case .admin: .admin
        case .serviceAccount: .serviceAccount
        }
        let email = body.email?.lowercased()
        switch type {
        case .user, .admin:
            guard email != nil else { throw APIError.validation("a \(body.type.rawValue) has an email: \"email\" is required", field: "email") }
        case .serviceAccount:
            guard email == nil else { throw APIError.validation("a service account has no email", field: "email") }
        }
        do {
            let record = ActorRecord(accountID: admin.accountID, type: type, name: body.name, email: email, createdAt: Date())
            return try answer(AdminAPI.Actor(try await repository.createActor(record, by: admin, now: Date())), status: .created)
        } catch RepositoryError.conflict {
            throw APIError(.conflict, code: "conflict", message: "an actor with email \"\(email ?? "")\" exists", field: "email")
        }
    }

    /// Renames, changes the email of, disables or enables an actor. Disabling takes its access away at
    /// once (the change feed revokes its authorisations).
    func update(_ id: ActorID, _ body: UpdateActor) async throws -> Response {
        let admin = try AdminSession.require()
        if id == admin.id, body.disabled == true { throw APIError(.conflict, code: "conflict", message: "an admin cannot disable itself") }
        let email = body.email?.lowercased()
        do {
            let updated = try await repository.updateActor(accountID: admin.accountID, id: id, by: admin, now: Date()) { actor in
                if let name = body.name { actor.name = name }
                if let email {
                    guard actor.type != .serviceAccount else { throw APIError.validation("a service account has no email", field: "email") }
                    actor.email = email
                }
                if let disabled = body.disabled { actor.disabled = disabled }
            }
            guard let updated else { throw APIError.notFound("actor \(id)") }
            return try answer(AdminAPI.Actor(updated))
        } catch RepositoryError.conflict {
            throw APIError(.conflict, code: "conflict", message: "an actor with email \"\(email ?? "")\" exists", field: "email")
        }
    }

    func delete(_ id: ActorID) async throws -> Response {
        let admin = try AdminSession.require()
        if id == admin.id { throw APIError(.conflict, code: "conflict", message: "an admin cannot delete itself") }
        guard try await repository.deleteActor(accountID: admin.accountID, id: id, by: admin, now: Date()) else {
            throw APIError.notFound("actor \(id)")
        }
        return Response(status: .noContent)
    }
}
