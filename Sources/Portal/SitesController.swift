import Foundation
import Hummingbird
import Persistence
import Identifiers

/// `/api/v1/sites`: list (cursor pagination), create, delete.
struct SitesController {
    let repository: any PortalRepository

    func add<Context: RequestContext>(to group: RouterGroup<Context>) {
        group.get { request, _ in try await list(request) }
        group.get(":id") { _, context in try await showOne(SiteRecord.self, "site", id: context.parameters.get("id"), repository: repository, Self.representation) }
        group.post { request, _ in try await create(request) }
        group.patch(":id") { request, context in try await rename(request, id: context.parameters.get("id")) }
        group.delete(":id") { request, context in try await delete(request, id: context.parameters.get("id")) }
    }

    static func representation(_ site: SiteRecord) -> [String: Any] {
        ["id": site.id.description, "name": site.name, "created_at": ISO8601DateFormatter().string(from: site.createdAt)]
    }

    func list(_ request: Request) async throws -> Response {
        let admin = try AdminSession.require()
        let page = try Page(request)
        let sites = try await repository.listSites(accountID: admin.accountID, after: page.cursor, limit: page.limit + 1)
        return try json(page.body(sites.map { ($0.name, Self.representation($0)) }))
    }

    func create(_ request: Request) async throws -> Response {
        let admin = try AdminSession.require()
        let body = try await JSONBody(request, allowed: ["name"])
        let name = try body.string("name")
        do {
            let site = try await repository.createSite(accountID: admin.accountID, name: name, by: admin, now: Date())
            return try json(Self.representation(site), status: .created)
        } catch RepositoryError.conflict {
            throw APIError(.conflict, code: "conflict", message: "a site named \"\(name)\" exists", field: "name")
        }
    }

    func rename(_ request: Request, id: String?) async throws -> Response {
        let admin = try AdminSession.require()
        guard let uuid = id.flatMap(SiteID.init) else { throw APIError.notFound("site \(id ?? "")") }
        let name = try await JSONBody(request, allowed: ["name"]).string("name")
        do {
            guard let site = try await repository.updateSite(accountID: admin.accountID, id: uuid, by: admin, now: Date(), { $0.name = name }) else {
                throw APIError.notFound("site \(uuid.description)")
            }
            return try json(Self.representation(site))
        } catch RepositoryError.conflict {
            throw APIError(.conflict, code: "conflict", message: "a site named \"\(name)\" exists", field: "name")
        }
    }

    func delete(_ request: Request, id: String?) async throws -> Response {
        let admin = try AdminSession.require()
        guard let id, let uuid = SiteID(id) else { throw APIError.notFound("site \"\(id ?? "")\"") }
        guard try await repository.deleteSite(accountID: admin.accountID, id: uuid, by: admin, now: Date()) else {
            throw APIError.notFound("site \(id)")
        }
        return Response(status: .noContent)
    }
}
