import Foundation
package import Hummingbird
package import Logging
package import Persistence

/// How the portal is run.
package struct PortalConfiguration: Sendable {
    package var host = "127.0.0.1"
    package var port = 8080

    package init() {}
}

/// The portal's HTTP application: `/healthz`, `/readyz` and the admin API under `/api/v1`.
package enum PortalApplication {
    /// The largest request body the admin API reads.
    static let maximumBody = 64 * 1024

    package static func build(
        configuration: PortalConfiguration, repository: any PortalRepository, logger: Logger,
        onListening: @escaping @Sendable (String) async -> Void = { _ in }
    ) -> some ApplicationProtocol {
        let router = Router()
        router.get("healthz") { _, _ in "ok\n" }
        router.get("readyz") { _, _ in "ready\n" }
        let api = router.group("api/v1").add(middleware: AdminAuthentication(repository: repository))
        SitesController(repository: repository).add(to: api.group("sites"))
        GroupsController(repository: repository).add(to: api.group("groups"))
        ActorsController(repository: repository).add(to: api.group("actors"))
        TokensController(repository: repository).add(to: api.group("tokens"))
        ResourcesController(repository: repository).add(to: api.group("resources"))
        PoliciesController(repository: repository).add(policies: api.group("policies"), access: api.group("access"))
        return Application(
            router: router,
            configuration: .init(address: .hostname(configuration.host, port: configuration.port), serverName: "gatehouse-portal"),
            onServerRunning: { channel in
                let address = channel.localAddress
                await onListening("\(address?.ipAddress ?? configuration.host):\(address?.port ?? configuration.port)")
            },
            logger: logger)
    }
}

/// Admin API authentication: a bearer token of kind admin_api, unexpired, whose actor is an enabled
/// admin. The authenticated actor travels to the handlers in a task-local.
struct AdminAuthentication<Context: RequestContext>: RouterMiddleware {
    let repository: any PortalRepository

    func handle(_ request: Request, context: Context, next: (Request, Context) async throws -> Response) async throws -> Response {
        guard let header = request.headers[.authorization], header.hasPrefix("Bearer ") else { throw APIError.unauthorized }
        let secret = String(header.dropFirst("Bearer ".count)).trimmingCharacters(in: .whitespaces)
        guard let token = try await repository.useToken(hash: TokenSecret.hash(secret), now: Date(), address: nil),
              let actorID = token.actorID, let actor = try await repository.actor(id: actorID), !actor.disabled
        else { throw APIError.unauthorized }
        guard token.kind == .adminAPI, actor.type == .admin else {
            throw APIError(.forbidden, code: "forbidden", message: "this token may not use the admin API")
        }
        return try await AdminSession.$current.withValue(actor) { try await next(request, context) }
    }
}

/// The admin a request is made by, set by `AdminAuthentication`.
enum AdminSession {
    @TaskLocal static var current: ActorRecord?

    static func require() throws -> ActorRecord {
        guard let actor = current else { throw APIError.unauthorized }
        return actor
    }
}

/// Reads a JSON object body with exactly the allowed keys: a wrong type, an unknown field or a body
/// over the limit is a 400 that names the problem.
struct JSONBody {
    let values: [String: Any]

    init(_ request: Request, allowed: Set<String>) async throws {
        let buffer: ByteBuffer
        do {
            buffer = try await request.body.collect(upTo: PortalApplication.maximumBody)
        } catch {
            throw APIError(.contentTooLarge, code: "too_large", message: "the request body is over \(PortalApplication.maximumBody) bytes")
        }
        guard let object = try? JSONSerialization.jsonObject(with: Data(buffer: buffer)) as? [String: Any] else {
            throw APIError.validation("the request body must be a JSON object")
        }
        if let unknown = object.keys.sorted().first(where: { !allowed.contains($0) }) {
            throw APIError.validation("unknown field \"\(unknown)\"", field: unknown)
        }
        values = object
    }

    func string(_ key: String, maximumLength: Int = 200) throws -> String {
        guard let value = values[key] else { throw APIError.validation("\"\(key)\" is required", field: key) }
        guard let text = value as? String else { throw APIError.validation("\"\(key)\" must be a string", field: key) }
        let trimmed = text.trimmingCharacters(in: .whitespacesAndNewlines)
        guard !trimmed.isEmpty, trimmed.count <= maximumLength else {
            throw APIError.validation("\"\(key)\" must be 1-\(maximumLength) characters", field: key)
        }
        return trimmed
    }
}

/// JSON responses with stable, sorted keys.
func json(_ object: Any, status: HTTPResponse.Status = .ok) throws -> Response {
    let body = try JSONSerialization.data(withJSONObject: object, options: [.sortedKeys])
    return Response(status: status, headers: [.contentType: "application/json"], body: .init(byteBuffer: ByteBuffer(bytes: body)))
}
