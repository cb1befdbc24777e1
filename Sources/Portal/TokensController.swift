import AdminAPI
import Foundation
import Hummingbird
import Identifiers
import Persistence

/// `/api/v1/tokens`: create (the secret is in the answer, once), list (metadata only), revoke.
struct TokensController {
    let repository: any PortalRepository

    func add<Context: RequestContext>(to group: RouterGroup<Context>) {
        group.get { request, _ in try await list(request) }
        group.get(":id") { _, context in try await show(context.parameters.id()) }
        group.post { request, _ in try await create(request.decode(CreateToken.self)) }
        group.delete(":id") { _, context in try await delete(context.parameters.id()) }
    }

    func list(_ request: Request) async throws -> Response {
        let admin = try AdminSession.require()
        let page = try PageRequest(request)
        let tokens = try await repository.listTokens(accountID: admin.accountID, after: page.cursor, limit: page.limit + 1)
        return try answer(page.page(tokens, key: \.id.description, Token.init))
    }

    func show(_ id: TokenID) async throws -> Response {
        let admin = try AdminSession.require()
        guard let token = try await repository.find(TokenRecord.self, accountID: admin.accountID, id: id) else { throw APIError.notFound("token \(id)") }
        return try answer(Token(token))
    }

    func create(_ body: CreateToken) async throws -> Response {
        let admin = try AdminSession.require()
        let kind: TokenRecord.Kind = switch body.kind {
        case .adminAPI: .adminAPI
        case .client: .client
        case .gateway: .gateway
        case .relay: .relay
        }
        let (actor, site) = (body.actorID, body.siteID)
        switch kind {
        case .adminAPI, .client:
            guard actor != nil else { throw APIError.validation("a \(kind.rawValue) token belongs to an actor: actor_id is required", field: "actor_id") }
            guard site == nil else { throw APIError.validation("a \(kind.rawValue) token has no site", field: "site_id") }
        case .gateway:
            guard site != nil else { throw APIError.validation("a gateway token belongs to a site: site_id is required", field: "site_id") }
            guard actor == nil else { throw APIError.validation("a gateway token has no actor", field: "actor_id") }
        case .relay:
            throw APIError.validation("relay tokens belong to the installation: the operator makes them with gatehouse portal relay-token create",
                                      field: "kind")
        }
        let expiry = body.expiresInSeconds.map { Date().addingTimeInterval(TimeInterval($0)) }
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
            return try answer(CreatedToken(token: Token(created), secret: secret), status: .created)
        } catch RepositoryError.missingReference {
            throw APIError.notFound(actor.map { "actor \($0)" } ?? "site \(site?.description ?? "")")
        }
    }

    func delete(_ id: TokenID) async throws -> Response {
        let admin = try AdminSession.require()
        guard try await repository.deleteToken(accountID: admin.accountID, id: id, by: admin, now: Date()) else {
            throw APIError.notFound("token \(id)")
        }
        return Response(status: .noContent)
    }
}
