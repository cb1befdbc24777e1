import Foundation
import NIOCore
package import Hummingbird
package import Logging
package import Persistence
import Identifiers
package import Prometheus

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
        evaluator: PolicyEvaluator? = nil, registry: PrometheusCollectorRegistry = PrometheusCollectorRegistry(),
        onListening: @escaping @Sendable (String) async -> Void = { _ in }
    ) -> some ApplicationProtocol {
        Application(
            router: router(repository: repository, evaluator: evaluator, registry: registry),
            configuration: .init(address: .hostname(configuration.host, port: configuration.port), serverName: "gatehouse-portal"),
            onServerRunning: { channel in
                let address = channel.localAddress
                await onListening("\(address?.ipAddress ?? configuration.host):\(address?.port ?? configuration.port)")
            },
            logger: logger)
    }

    /// Every route of the portal, over `repository`.
    package static func router(
        repository: any PortalRepository, evaluator: PolicyEvaluator? = nil, registry: PrometheusCollectorRegistry = PrometheusCollectorRegistry()
    ) -> Router<PortalRequestContext> {
        let evaluator = evaluator ?? PolicyEvaluator(repository: repository)
        let router = Router(context: PortalRequestContext.self)
        router.add(middleware: RequestMetrics(registry: registry))
        router.add(middleware: MethodNotAllowed())
        router.get("healthz") { _, _ in "ok\n" }
        router.get("readyz") { _, _ -> Response in
            // Ready when the database answers.
            do {
                _ = try await repository.account(id: AccountID())
                return Response(status: .ok, body: .init(byteBuffer: ByteBuffer(string: "ready\n")))
            } catch {
                return Response(status: .serviceUnavailable, body: .init(byteBuffer: ByteBuffer(string: "database unavailable\n")))
            }
        }
        router.get("metrics") { _, _ -> Response in
            var bytes: [UInt8] = []
            registry.emit(into: &bytes)
            return Response(status: .ok, headers: [.contentType: "text/plain; version=0.0.4; charset=utf-8"],
                            body: .init(byteBuffer: ByteBuffer(bytes: bytes)))
        }
        router.get("api/v1/openapi.json") { _, _ -> Response in
            Response(status: .ok, headers: [.contentType: "application/json"], body: .init(byteBuffer: ByteBuffer(string: OpenAPIDocument.json)))
        }
        let api = router.group("api/v1")
            .add(middleware: AdminAuthentication(repository: repository, evaluator: evaluator,
                                                 notifications: registry.makeCounter(name: "gatehouse_portal_access_notifications_total")))
        SitesController(repository: repository).add(to: api.group("sites"))
        GroupsController(repository: repository).add(to: api.group("groups"))
        ActorsController(repository: repository).add(to: api.group("actors"))
        TokensController(repository: repository).add(to: api.group("tokens"))
        ResourcesController(repository: repository).add(to: api.group("resources"))
        PoliciesController(repository: repository, evaluator: evaluator).add(policies: api.group("policies"), access: api.group("access"))
        AccountController(repository: repository).add(account: api.group("account"), clients: api.group("clients"),
                                                      gateways: api.group("gateways"), audit: api.group("audit"))
        return router
    }
}

/// Counts requests by method and status class for `/metrics`.
struct RequestMetrics<Context: RequestContext>: RouterMiddleware {
    let registry: PrometheusCollectorRegistry

    func handle(_ request: Request, context: Context, next: (Request, Context) async throws -> Response) async throws -> Response {
        let status: Int
        let response: Response
        do {
            response = try await next(request, context)
            status = Int(response.status.code)
        } catch let error as any HTTPResponseError {
            count(request, status: Int(error.status.code))
            throw error
        } catch {
            count(request, status: 500)
            throw error
        }
        count(request, status: status)
        return response
    }

    private func count(_ request: Request, status: Int) {
        registry.makeCounter(name: "gatehouse_portal_http_requests_total",
                             labels: [("method", request.method.rawValue), ("status", "\(status / 100)xx")]).increment()
    }
}

/// Admin API authentication: a bearer token of kind admin_api, unexpired, whose actor is an enabled
/// admin. The authenticated actor travels to the handlers in a task-local.
///
/// Every request that may write (anything but GET) runs as one change of the policy evaluator, which
/// works out who must be told what (portal spec, "Live changes").
struct AdminAuthentication<Context: RequestContext>: RouterMiddleware {
    let repository: any PortalRepository
    let evaluator: PolicyEvaluator
    let notifications: Counter

    func handle(_ request: Request, context: Context, next: (Request, Context) async throws -> Response) async throws -> Response {
        // RFC 9110 section 11.1: the scheme is case-insensitive ("Bearer", "bearer", "BEARER").
        guard let header = request.headers[.authorization], let space = header.firstIndex(of: " "),
              header[..<space].lowercased() == "bearer" else { throw APIError.unauthorized }
        let secret = header[space...].trimmingCharacters(in: .whitespaces)
        let address = (context as? any RemoteAddressRequestContext)?.remoteAddress.flatMap(\.ipAddress)
        guard let token = try await repository.useToken(hash: TokenSecret.hash(secret), now: Date(), address: address) else {
            throw APIError.unauthorized
        }
        // A valid token of another kind (client, gateway, relay) authenticated but may not do this.
        guard token.kind == .adminAPI else {
            throw APIError(.forbidden, code: "forbidden", message: "a \(token.kind.rawValue) token may not use the admin API")
        }
        guard let accountID = token.accountID, let actorID = token.actorID,
              let actor = try await repository.actor(accountID: accountID, id: actorID), !actor.disabled
        else { throw APIError.unauthorized }
        guard actor.type == .admin else {
            throw APIError(.forbidden, code: "forbidden", message: "this token may not use the admin API")
        }
        return try await AdminSession.$current.withValue(actor) {
            guard request.method != .get, request.method != .head else { return try await next(request, context) }
            // The body is read before the account's turn is taken: a slow client holds up nobody.
            var request = request
            do {
                _ = try await request.collectBody(upTo: PortalApplication.maximumBody)
            } catch {
                throw APIError(.contentTooLarge, code: "too_large", message: "the request body is over \(PortalApplication.maximumBody) bytes")
            }
            let (response, notified) = try await evaluator.change(accountID: actor.accountID) { try await next(request, context) }
            notifications.increment(by: Int64(notified.count))
            return response
        }
    }
}

/// A method that a documented path does not have is 405 with the methods it has (RFC 9110 section
/// 15.5.6), not the router's 404: the path exists. Paths come from the OpenAPI operation table.
struct MethodNotAllowed<Context: RequestContext>: RouterMiddleware {
    /// Each documented path as its segments ("{id}" matches any one segment), with its methods.
    static var paths: [(segments: [Substring], methods: [String])] {
        Dictionary(grouping: OpenAPIDocument.operations, by: \.path).map { path, operations in
            (("/api/v1" + path).split(separator: "/"), operations.map { $0.method.uppercased() }.sorted())
        }
    }

    private let paths = Self.paths

    func handle(_ request: Request, context: Context, next: (Request, Context) async throws -> Response) async throws -> Response {
        do {
            return try await next(request, context)
        } catch let error as HTTPError where error.status == .notFound {
            let segments = request.uri.path.split(separator: "/")
            guard let match = paths.first(where: { path in
                path.segments.count == segments.count
                    && zip(path.segments, segments).allSatisfy { template, actual in template.hasPrefix("{") || template == actual }
            }), !match.methods.contains(request.method.rawValue) else { throw error }
            let allow = match.methods.joined(separator: ", ")
            var response = try json(["error": ["code": "method_not_allowed", "message": "\(request.method.rawValue) is not allowed here; allowed: \(allow)"]],
                                    status: .methodNotAllowed)
            response.headers[.allow] = allow
            return response
        }
    }
}

/// The portal's request context: Hummingbird's basic one, plus the peer's address (recorded as a
/// token's last-used address).
package struct PortalRequestContext: RequestContext, RemoteAddressRequestContext {
    package var coreContext: CoreRequestContextStorage
    package let remoteAddress: NIOCore.SocketAddress?

    package init(source: ApplicationRequestContextSource) {
        coreContext = .init(source: source)
        remoteAddress = source.channel.remoteAddress
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

    /// A string field that may be left out.
    func optionalString(_ key: String, maximumLength: Int = 200) throws -> String? {
        values[key] == nil ? nil : try string(key, maximumLength: maximumLength)
    }

    /// A true/false field that may be left out (JSON numbers are not booleans).
    func bool(_ key: String) throws -> Bool? {
        guard let value = values[key] else { return nil }
        // JSONSerialization gives numbers and booleans alike as NSNumber (1 `as? Bool` is true);
        // JSON true/false come as its boolean subclass.
        guard let flag = value as? Bool, type(of: value) != NSNumber.self else {
            throw APIError.validation("\"\(key)\" must be true or false", field: key)
        }
        return flag
    }

    /// An ID field that may be left out.
    func id<Noun>(_ key: String) throws -> Identifier<Noun>? {
        guard values[key] != nil else { return nil }
        guard let id = Identifier<Noun>(try string(key)) else { throw APIError.validation("\"\(key)\" must be an ID", field: key) }
        return id
    }

    /// A list-of-strings field that may be left out.
    func strings(_ key: String) throws -> [String]? {
        guard let value = values[key] else { return nil }
        guard let texts = value as? [String] else { throw APIError.validation("\"\(key)\" must be a list of strings", field: key) }
        return texts
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
/// `GET /<noun>/:id`: the account's row with that ID, or 404.
func showOne<Record: GatehouseRecord & Identified>(
    _ type: Record.Type, _ noun: String, id: String?, repository: any PortalRepository, _ representation: (Record) -> [String: Any]
) async throws -> Response {
    let admin = try AdminSession.require()
    guard let uuid = id.flatMap(Record.ID.init),
          let record = try await repository.find(Record.self, accountID: admin.accountID, id: uuid)
    else { throw APIError.notFound("\(noun) \(id ?? "")") }
    return try json(representation(record))
}

func json(_ object: Any, status: HTTPResponse.Status = .ok) throws -> Response {
    let body = try JSONSerialization.data(withJSONObject: object, options: [.sortedKeys])
    return Response(status: status, headers: [.contentType: "application/json"], body: .init(byteBuffer: ByteBuffer(bytes: body)))
}
