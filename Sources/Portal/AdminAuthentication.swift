import AdminAPI
import Foundation
import Hummingbird
import Persistence
import Prometheus

/// Admin API authentication: a bearer token of kind admin_api, unexpired, whose actor is an enabled
/// admin. The authenticated actor travels to the handlers in a task-local.
///
/// Every request that may write (anything but GET) runs as one change of the policy evaluator, which
/// works out who must be told what (portal spec, "Live changes"); with `?dry_run=true` it runs as the
/// evaluator's preview instead: checked and rolled back, answered with the access it would change.
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
            if try Self.isDryRun(request) {
                let (response, preview) = try await evaluator.preview(accountID: actor.accountID) { try await next(request, context) }
                // A write the handler refused answers as it would have; one it accepted answers what it would change.
                guard (200..<300).contains(response.status.code) else { return response }
                return try answer(AccessPreview(preview))
            }
            let (response, notified) = try await evaluator.change(accountID: actor.accountID) { try await next(request, context) }
            notifications.increment(by: Int64(notified.count))
            return response
        }
    }

    /// `?dry_run=true` (or `false`, or absent); anything else is refused, never taken as a real write.
    static func isDryRun(_ request: Request) throws -> Bool {
        guard let value = request.uri.queryParameters["dry_run"] else { return false }
        switch value.lowercased() {
        case "true", "1": return true
        case "false", "0": return false
        default: throw APIError(.badRequest, code: "invalid", message: "dry_run must be true or false", field: "dry_run")
        }
    }
}
