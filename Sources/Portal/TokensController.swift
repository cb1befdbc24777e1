import Foundation
import Hummingbird
import Persistence
import Identifiers

/// `/api/v1/tokens`: create (the secret is in the answer, once), list (metadata only), revoke.
struct TokensController {
    let repository: any PortalRepository

    /// Longest lifetime a token may be given: ten years.
    static let maximumLifetime = 10 * 365 * 24 * 3600

    func add<Context: RequestContext>(to group: RouterGroup<Context>) {
        group.get { request, _ in try await list(request) }
        group.get(":id") { _, context in try await showOne(TokenRecord.self, "token", id: context.parameters.get("id"), repository: repository, Self.representation) }
        group.post { request, _ in try await create(request) }
        group.delete(":id") { _, context in try await delete(id: context.parameters.get("id")) }
    }

    static func representation(_ token: TokenRecord) -> [String: Any] {
        let dates = ISO8601DateFormatter()
        var value: [String: Any] = [
            "id": token.id.description, "kind": token.kind.rawValue, "created_at": dates.string(from: token.createdAt),
        ]
        if let expiry = token.expiresAt { value["expires_at"] = dates.string(from: expiry) }
        if let actor = token.actorID { value["actor_id"] = actor.description }
        if let site = token.siteID { value["site_id"] = site.description }
        if let used = token.lastUsedAt { value["last_used_at"] = dates.string(from: used) }
        if let address = token.lastUsedAddress { value["last_used_address"] = address }
        return value
    }

    func list(_ request: Request) async throws -> Response {
        let admin = try AdminSession.require()
        let page = try Page(request)
        let tokens = try await repository.listTokens(accountID: admin.accountID, after: page.cursor, limit: page.limit + 1)
        return try json(page.body(tokens.map { ($0.id.description, Self.representation($0)) }))
    }

    func create(_ request: Request) async throws -> Response {
        let admin = try AdminSession.require()
        let body = try await JSONBody(request, allowed: ["kind", "actor_id", "site_id", "expires_in_seconds"])
        let kindText = try body.string("kind")
        guard let kind = TokenRecord.Kind(rawValue: kindText) else {
            throw APIError.validation("kind \"\(kindText)\" must be admin_api, client, gateway or relay", field: "kind")
        }
        let actor: ActorID? = try body.id("actor_id")
        let site: SiteID? = try body.id("site_id")
        switch kind {
        case .adminAPI, .client:
            guard actor != nil else { throw APIError.validation("a \(kind.rawValue) token belongs to an actor: actor_id is required", field: "actor_id") }
            guard site == nil else { throw APIError.validation("a \(kind.rawValue) token has no site", field: "site_id") }
        case .gateway:
            guard site != nil else { throw APIError.validation("a gateway token belongs to a site: site_id is required", field: "site_id") }
            guard actor == nil else { throw APIError.validation("a gateway token has no actor", field: "actor_id") }
        case .relay:
            guard actor == nil, site == nil else { throw APIError.validation("a relay token has no owner", field: actor != nil ? "actor_id" : "site_id") }
        }
        var expiry: Date?
        if let seconds = body.values["expires_in_seconds"] {
            guard let value = seconds as? Int, (60...Self.maximumLifetime).contains(value), !(seconds is Bool) else {
                throw APIError.validation("expires_in_seconds must be a whole number from 60 to \(Self.maximumLifetime)", field: "expires_in_seconds")
            }
            expiry = Date().addingTimeInterval(TimeInterval(value))
        }
        let prefix = switch kind {
        case .adminAPI: "gh_admin"
        case .client: "gh_client"
        case .gateway: "gh_gateway"
        case .relay: "gh_relay"
        }
        let secret = TokenSecret.generate(prefix: prefix)
        let record = TokenRecord(accountID: admin.accountID, kind: kind, secretHash: TokenSecret.hash(secret), expiresAt: expiry,
                                 actorID: actor, siteID: site, createdAt: Date())
        do {
            let created = try await repository.createToken(record, by: admin, now: Date())
            var answer = Self.representation(created)
            answer["secret"] = secret
            return try json(answer, status: .created)
        } catch RepositoryError.missingReference {
            throw APIError.notFound(actor != nil ? "actor \(actor?.description ?? "")" : "site \(site?.description ?? "")")
        }
    }

    func delete(id: String?) async throws -> Response {
        let admin = try AdminSession.require()
        guard let uuid = id.flatMap(TokenID.init),
              try await repository.deleteToken(accountID: admin.accountID, id: uuid, by: admin, now: Date())
        else { throw APIError.notFound("token \(id ?? "")") }
        return Response(status: .noContent)
    }
}
