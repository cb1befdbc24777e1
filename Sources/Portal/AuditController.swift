import AdminAPI
import Hummingbird
import Persistence

/// `/api/v1/audit`: every change, newest first, paginated by a cursor on (time, ID).
struct AuditController {
    let repository: any PortalRepository

    func add<Context: RequestContext>(to group: RouterGroup<Context>) {
        group.get { request, _ in try await list(request) }
    }

    func list(_ request: Request) async throws -> Response {
        let admin = try AdminSession.require()
        let page = try PageRequest(request)
        var cursor: AuditCursor?
        if let text = page.cursor {
            guard let parsed = AuditCursor(text) else { throw APIError.validation("cursor \"\(text)\" is not one this API gave out", field: "cursor") }
            cursor = parsed
        }
        let events = try await repository.auditEvents(accountID: admin.accountID, after: cursor, limit: page.limit + 1)
        return try answer(page.page(events, key: { AuditCursor(at: $0.at, id: $0.id).text }, AuditEvent.init))
    }
}
