import Foundation
import Hummingbird
import HummingbirdTesting
import Persistence
import Portal
import TestSupport
import Testing

/// The portal's router in this process, without sockets (Hummingbird's `app.test(.router)`), over a
/// real SQLite file made by `gatehouse portal init`. Most API tests run here; the suites that need what
/// only a server process has (a peer address, a restart, the CLI, schemathesis) use
/// `PortalAdminAPITests.start`.
struct InProcessPortal {
    let client: any TestClientProtocol
    let token: String
    let database: String

    /// Runs `body` against a fresh portal; the database is removed afterwards.
    static func with<Value: Sendable>(_ body: @Sendable (InProcessPortal) async throws -> Value) async throws -> Value {
        let database = try PortalAdminAPITests.temporaryDatabase()
        defer { try? FileManager.default.removeItem(atPath: URL(filePath: database).deletingLastPathComponent().path) }
        return try await serve(database, token: try PortalAdminAPITests.initialise(database), body)
    }

    /// Runs `body` against a portal on an existing database, with `token` as the default admin token.
    static func serve<Value: Sendable>(_ database: String, token: String, _ body: @Sendable (InProcessPortal) async throws -> Value) async throws -> Value {
        let repository = SQLitePortalRepository(database: try AppDatabase(path: database))
        let app = Application(router: PortalApplication.router(repository: repository))
        return try await app.test(.router) { client in
            try await body(InProcessPortal(client: client, token: token, database: database))
        }
    }

    /// One request; returns status and body.
    func call(_ method: String, _ path: String, body: String? = nil, token: String? = nil) async throws -> (status: Int, body: String) {
        var headers: HTTPFields = [:]
        if let bearer = token ?? Optional(self.token), !bearer.isEmpty { headers[.authorization] = "Bearer \(bearer)" }
        if body != nil { headers[.contentType] = "application/json" }
        let response = try await client.executeRequest(
            uri: path, method: HTTPRequest.Method(rawValue: method) ?? .get, headers: headers, body: body.map { ByteBuffer(string: $0) })
        return (Int(response.status.code), String(buffer: response.body))
    }

    func json(_ body: String) throws -> [String: Any] {
        try JSONSerialization.jsonObject(with: Data(body.utf8)) as? [String: Any] ?? [:]
    }
}
