import AdminAPI
import Foundation
import Persistence
import Portal
import TestSupport
import Testing

/// Updates, the account setting, the OpenAPI document and /metrics, through the portal's router in process.
@Suite struct AdminUpdateTests {
    @Test func badUpdatesGetTheRightStatusAMessageAndChangeNothing() async throws {
        try await InProcessPortal.with { portal in
            func create(_ path: String, _ body: String) async throws -> String {
                let answer = try await portal.call("POST", path, body: body)
                #expect(answer.status == 201, "\(path): \(answer.body)")
                return try portal.json(answer.body)["id"] as? String ?? ""
            }
            let site = try await create("/api/v1/sites", #"{"name": "hq"}"#)
            _ = try await create("/api/v1/sites", #"{"name": "lab"}"#)
            let group = try await create("/api/v1/groups", #"{"name": "eng"}"#)
            _ = try await create("/api/v1/groups", #"{"name": "ops"}"#)
            let actor = try await create("/api/v1/actors", #"{"type": "user", "name": "Ada", "email": "ada@acme.test"}"#)
            _ = try await create("/api/v1/actors", #"{"type": "user", "name": "Bob", "email": "bob@acme.test"}"#)
            let resource = try await create("/api/v1/resources", #"{"name": "db", "type": "cidr", "address": "10.0.0.0/24", "site_id": "\#(site)"}"#)
            let policy = try await create("/api/v1/policies", #"{"group_id": "\#(group)", "resource_id": "\#(resource)"}"#)
            let everyone = try await portal.json(try portal.call("GET", "/api/v1/groups").body)["data"] as? [[String: Any]] ?? []
            let everyoneID = everyone.first { $0["name"] as? String == "Everyone" }?["id"] as? String ?? ""

            func state() async throws -> String {
                var bodies: [String] = []
                for path in ["/api/v1/sites", "/api/v1/groups", "/api/v1/actors", "/api/v1/resources", "/api/v1/policies", "/api/v1/account"] {
                    bodies.append(try await portal.call("GET", path).body)
                }
                return bodies.joined(separator: "\n")
            }
            let before = try await state()
            let missing = UUID().uuidString
            let cases: [(String, String, String?, Int, String)] = [
                ("PATCH", "/api/v1/sites/\(site)", #"{"name": "lab"}"#, 409, "conflict"),
                ("PATCH", "/api/v1/sites/\(site)", #"{"name": ""}"#, 400, "invalid"),
                ("PATCH", "/api/v1/sites/\(missing)", #"{"name": "x"}"#, 404, "not_found"),
                ("PATCH", "/api/v1/groups/\(group)", #"{"name": "ops"}"#, 409, "conflict"),
                ("PATCH", "/api/v1/groups/\(group)", #"{"name": "everyone"}"#, 409, "conflict"),
                ("PATCH", "/api/v1/groups/\(everyoneID)", #"{"name": "all"}"#, 409, "conflict"),
                ("PATCH", "/api/v1/actors/\(actor)", #"{"disabled": 1}"#, 400, "invalid"),
                ("PATCH", "/api/v1/actors/\(actor)", #"{"disabled": "yes"}"#, 400, "invalid"),
                ("PATCH", "/api/v1/actors/\(actor)", #"{"email": "bob@acme.test"}"#, 409, "conflict"),
                ("PATCH", "/api/v1/actors/\(actor)", #"{"email": "not-an-email"}"#, 400, "invalid"),
                ("PATCH", "/api/v1/actors/\(actor)", #"{"type": "admin"}"#, 400, "invalid"),
                ("PATCH", "/api/v1/resources/\(resource)", #"{"type": "ip"}"#, 400, "invalid"),
                ("PATCH", "/api/v1/resources/\(resource)", #"{"address": "10.0.0.0/33"}"#, 400, "invalid"),
                ("PATCH", "/api/v1/resources/\(resource)", #"{"filters": ["tcp:0"]}"#, 400, "invalid"),
                ("PATCH", "/api/v1/resources/\(resource)", #"{"filters": "tcp:22"}"#, 400, "invalid"),
                ("PATCH", "/api/v1/resources/\(resource)", #"{"site_id": "\#(missing)"}"#, 404, "not_found"),
                ("PATCH", "/api/v1/resources/\(resource)", #"{"ip_stack": "dual"}"#, 400, "invalid"),
                ("PATCH", "/api/v1/policies/\(policy)", #"{"conditions": ["source_in:10.0.0.0/33"]}"#, 400, "invalid"),
                ("PATCH", "/api/v1/policies/\(policy)", #"{"conditions": ["time:M/09:00-17:00/Nowhere/City"]}"#, 400, "invalid"),
                ("PATCH", "/api/v1/policies/\(policy)", #"{"conditions": [7]}"#, 400, "invalid"),
                ("PATCH", "/api/v1/policies/\(policy)", #"{"group_id": "\#(missing)"}"#, 404, "not_found"),
                ("PATCH", "/api/v1/policies/\(policy)", #"{"disabled": 0}"#, 400, "invalid"),
                ("POST", "/api/v1/policies", #"{"group_id": "\#(everyoneID)", "resource_id": "\#(resource)", "conditions": ["sometimes"]}"#, 400, "invalid"),
                ("PATCH", "/api/v1/account", #"{"tunnel_ipv4_range": "10.0.0.0/8"}"#, 409, "conflict"),
                ("PATCH", "/api/v1/account", #"{"tunnel_ipv4_range": "fd00::/48"}"#, 400, "invalid"),
                ("PATCH", "/api/v1/account", #"{"tunnel_ipv4_range": "100.64.0.0/4"}"#, 400, "invalid"),
                ("PATCH", "/api/v1/account", #"{"tunnel_ipv6_range": "garbage"}"#, 400, "invalid"),
                ("PATCH", "/api/v1/account", #"{"slug": "other"}"#, 400, "invalid"),
                ("PUT", "/api/v1/clients/\(missing)/verified", nil, 404, "not_found"),
            ]
            for (method, path, body, status, code) in cases {
                let answer = try await portal.call(method, path, body: body)
                #expect(answer.status == status, "\(method) \(path) \(body ?? ""): \(answer.body)")
                let error = try portal.json(answer.body)["error"] as? [String: Any]
                #expect(error?["code"] as? String == code, "\(method) \(path) \(body ?? ""): \(answer.body)")
                #expect((error?["message"] as? String)?.isEmpty == false)
            }
            #expect(try await state() == before, "no bad update changed anything")

            // A good update changes exactly what it names and leaves an audit event with before and after.
            let renamed = try await portal.call("PATCH", "/api/v1/resources/\(resource)", body: #"{"filters": ["tcp:5432"], "name": "database"}"#)
            #expect(renamed.status == 200, "\(renamed.body)")
            #expect(try portal.json(renamed.body)["name"] as? String == "database")
            #expect(try portal.json(renamed.body)["address"] as? String == "10.0.0.0/24")
            let audit = try await portal.json(try portal.call("GET", "/api/v1/audit?limit=1").body)["data"] as? [[String: Any]]
            #expect(audit?.first?["action"] as? String == "update")
            #expect((audit?.first?["before"] as? [String: Any])?["name"] as? String == "db")
            #expect((audit?.first?["after"] as? [String: Any])?["name"] as? String == "database")
        }
    }

    /// Every operation the OpenAPI document lists is served (an answer of the API's own, not the
    /// router's bare 404/405), and every answer is JSON.
    @Test func theOpenAPIDocumentDescribesWhatTheServerServes() async throws {
        try await InProcessPortal.with { portal in
            let document = try await portal.json(try portal.call("GET", "/api/v1/openapi.json", token: "").body)
            #expect(document["openapi"] as? String == "3.1.0")
            let paths = try #require(document["paths"] as? [String: [String: Any]])
            var operations = 0
            for (path, methods) in paths.sorted(by: { $0.key < $1.key }) {
                for method in methods.keys.sorted() {
                    operations += 1
                    let concrete = path.replacing(/\{[a-z_]+\}/, with: UUID().uuidString.lowercased())
                    let answer = try await portal.call(method.uppercased(), concrete + (path.hasSuffix("explain") ? "?actor=x&resource=y" : ""),
                                                 body: ["post", "patch"].contains(method) ? "{}" : nil)
                    #expect(answer.status != 405 && !(answer.status == 404 && answer.body.isEmpty),
                            "\(method.uppercased()) \(path) is in the document but not served: \(answer.status)")
                    if answer.status != 204 {
                        #expect((try? JSONSerialization.jsonObject(with: Data(answer.body.utf8))) != nil, "\(method) \(path): \(answer.body)")
                    }
                }
            }
            #expect(operations >= 30, "the document lists every admin operation")
            let unknown = try await portal.call("GET", "/api/v1/nothing-here")
            #expect(unknown.status == 404, "a path outside the document is not served")

            let metrics = try await portal.call("GET", "/metrics", token: "")
            #expect(metrics.status == 200)
            #expect(metrics.body.contains("gatehouse_portal_http_requests_total{method=\"GET\",status=\"2xx\"}"), "\(metrics.body.prefix(500))")
            #expect(metrics.body.contains("status=\"4xx\""))
            #expect(try await portal.call("GET", "/readyz", token: "").status == 200)
        }
    }

    /// The other direction: every route the server serves under /api/v1 is in the document, and every
    /// documented operation has a route (read from the router itself, in process).
    @Test func everyServedRouteIsDocumentedAndEveryDocumentedOneServed() throws {
        let directory = FileManager.default.temporaryDirectory.appending(path: "gatehouse-routes-\(UUID().uuidString)")
        try FileManager.default.createDirectory(at: directory, withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(at: directory) }
        let repository = SQLitePortalRepository(database: try AppDatabase(path: directory.appending(path: "portal.sqlite").path))
        let served = Set(PortalApplication.router(repository: repository).routes.compactMap { route -> String? in
            let path = route.path.description
            guard path.hasPrefix("/api/v1/"), path != "/api/v1/openapi.json" else { return nil }
            // ":id" in the router is "{id}" in the document.
            let documentPath = path.dropFirst("/api/v1".count).split(separator: "/")
                .map { $0.hasPrefix(":") ? "{\($0.dropFirst())}" : String($0) }.joined(separator: "/")
            return "\(route.method.rawValue) /\(documentPath)"
        })
        let documented = Set(AdminRoutes.all.map { "\($0.method.rawValue.uppercased()) \($0.path)" })
        #expect(served.subtracting(documented).sorted() == [], "served but not documented")
        #expect(documented.subtracting(served).sorted() == [], "documented but not served")
        #expect(served.count == documented.count && documented.count >= 40)
    }
}
