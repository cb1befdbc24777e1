import AdminAPI
import Foundation
import Synchronization
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
    let sessions = AdminSessions()

    func handle(_ request: Request, context: Context, next: (Request, Context) async throws -> Response) async throws -> Response {
        guard let secret = request.bearerToken else { throw APIError.unauthorized }
        let address = (context as? any RemoteAddressRequestContext)?.remoteAddress.flatMap(\.ipAddress)
        let hash = TokenSecret.hash(secret)
        let now = Date()
        let token: TokenRecord
        let actor: ActorRecord?
        if let known = sessions.lookup(hash, now: now), !known.token.needsUseRecorded(now: now, address: address) {
            (token, actor) = (known.token, known.actor)
        } else {
            let generation = sessions.generation
            guard let used = try await repository.useToken(hash: hash, now: now, address: address) else { throw APIError.unauthorized }
            token = used
            actor = if let accountID = used.accountID, let actorID = used.actorID {
                try await repository.actor(accountID: accountID, id: actorID)
            } else {
                nil
            }
            sessions.remember(hash, token: token, actor: actor, now: now, readIn: generation)
        }
        if let expiry = token.expiresAt, expiry <= now { throw APIError.unauthorized }
        // A valid token of another kind (client, gateway, relay) authenticated but may not do this.
        guard token.kind == .adminAPI else {
            throw APIError(.forbidden, code: "forbidden", message: "a \(token.kind.rawValue) token may not use the admin API")
        }
        guard let actor, !actor.disabled else { throw APIError.unauthorized }
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
            // Whatever the write changed (a token revoked, an actor disabled), no request is authenticated by
            // what was known before it.
            defer { sessions.forget() }
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

/// What recent requests' tokens resolved to (the token and its actor), so that a burst of reads does
/// not read both from the database for every request. An entry lasts a second at most, and every
/// write through the admin API forgets them all (it may have revoked a token or disabled an actor); a
/// token's expiry is checked at each use, and its use is still recorded when a minute has passed.
final class AdminSessions: Sendable {
    static let lifetime: TimeInterval = 1
    static let capacity = 1024
    private struct State {
        var entries: [String: (token: TokenRecord, actor: ActorRecord?, at: Date)] = [:]
        /// Counts `forget()`s, so that what a request read before a write is not remembered after it.
        var generation = 0
    }
    private let state = Mutex(State())

    var generation: Int { state.withLock { $0.generation } }

    func lookup(_ hash: String, now: Date) -> (token: TokenRecord, actor: ActorRecord?)? {
        state.withLock { state in
            guard let entry = state.entries[hash], now.timeIntervalSince(entry.at) < Self.lifetime, entry.at <= now else { return nil }
            return (entry.token, entry.actor)
        }
    }

    /// Keeps what was read, unless a write came after `generation` was taken (the read may predate it).
    func remember(_ hash: String, token: TokenRecord, actor: ActorRecord?, now: Date, readIn generation: Int) {
        state.withLock { state in
            guard state.generation == generation else { return }
            if state.entries.count >= Self.capacity { state.entries.removeAll() }
            state.entries[hash] = (token, actor, now)
        }
    }

    func forget() {
        state.withLock { state in
            state.entries.removeAll()
            state.generation += 1
        }
    }
}

extension Request {
    /// The token of `Authorization: Bearer <token>`; RFC 9110 section 11.1: the scheme is
    /// case-insensitive ("Bearer", "bearer", "BEARER").
    var bearerToken: String? { Self.bearerToken(headers[.authorization]) }

    /// The token of an `Authorization` header's value.
    static func bearerToken(_ header: String?) -> String? {
        guard let header, let space = header.firstIndex(of: " "), header[..<space].lowercased() == "bearer" else { return nil }
        return header[space...].trimmingCharacters(in: .whitespaces)
    }
}
