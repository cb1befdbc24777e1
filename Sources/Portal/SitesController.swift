import AdminAPI
import Foundation
import Hummingbird
import Identifiers
import Persistence

/// `/api/v1/sites`: places where gateways run.
struct SitesController {
    let repository: any PortalRepository

    func add<Context: RequestContext>(to group: RouterGroup<Context>) {
        group.get { request, _ in try await list(request) }
        group.get(":id") { _, context in try await show(context.parameters.id()) }
        group.post { request, _ in try await create(request.decode(CreateSite.self)) }
        group.patch(":id") { request, context in try await update(context.parameters.id(), request.decode(UpdateSite.self)) }
        group.delete(":id") { _, context in try await delete(context.parameters.id()) }
    }

    func list(_ request: Request) async throws -> Response {
        let admin = try AdminSession.require()
        let page = try PageRequest(request)
        let sites = try await repository.listSites(accountID: admin.accountID, after: page.cursor, limit: page.limit + 1)
        return try answer(page.page(sites, key: \.name, Site.init))
    }

    func show(_ id: SiteID) async throws -> Response {
        let admin = try AdminSession.require()
        guard let site = try await repository.find(SiteRecord.self, accountID: admin.accountID, id: id) else { throw APIError.notFound("site \(id)") }
        return try answer(Site(site))
    }

    func create(_ body: CreateSite) async throws -> Response {
        let admin = try AdminSession.require()
        do {
            let site = try await repository.createSite(accountID: admin.accountID, name: body.name, by: admin, now: Date())
            return try answer(Site(site), status: .created)
        } catch RepositoryError.conflict {
            throw APIError(.conflict, code: "conflict", message: "a site named \"\(body.name)\" exists", field: "name")
        }
    }

    func update(_ id: SiteID, _ body: UpdateSite) async throws -> Response {
        let admin = try AdminSession.require()
        do {
            guard let site = try await repository.updateSite(accountID: admin.accountID, id: id, by: admin, now: Date(), { $0.name = body.name }) else {
                throw APIError.notFound("site \(id)")
            }
            return try answer(Site(site))
        } catch RepositoryError.conflict {
            throw APIError(.conflict, code: "conflict", message: "a site named \"\(body.name)\" exists", field: "name")
        }
    }

    func delete(_ id: SiteID) async throws -> Response {
        let admin = try AdminSession.require()
        guard try await repository.deleteSite(accountID: admin.accountID, id: id, by: admin, now: Date()) else {
            throw APIError.notFound("site \(id)")
        }
        return Response(status: .noContent)
    }
}
