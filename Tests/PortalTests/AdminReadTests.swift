import Foundation
import TestSupport
import Testing

/// Reads the spec asks for: every noun by ID, and the audit log paginated by cursor.
@Suite struct AdminReadTests {
    @Test func everyNounCanBeReadByIDAndTheAuditLogPagesByCursor() async throws {
        let database = try PortalAdminAPITests.temporaryDatabase()
        defer { try? FileManager.default.removeItem(atPath: URL(filePath: database).deletingLastPathComponent().path) }
        let portal = try await PortalAdminAPITests.start(database, token: try PortalAdminAPITests.initialise(database))
        defer { portal.process.stop() }
        func create(_ path: String, _ body: String) throws -> [String: Any] {
            let answer = try portal.call("POST", "/api/v1/\(path)", body: body)
            #expect(answer.status == 201, "\(path): \(answer.body)")
            return try portal.json(answer.body)
        }
        let site = try create("sites", #"{"name": "hq"}"#)
        let group = try create("groups", #"{"name": "eng"}"#)
        let actor = try create("actors", #"{"type": "user", "name": "Ann", "email": "ann@acme.test"}"#)
        let resource = try create("resources", #"{"name": "db", "type": "ip", "address": "10.0.0.5", "site_id": "\#(site["id"] as? String ?? "")"}"#)
        let policy = try create("policies", #"{"group_id": "\#(group["id"] as? String ?? "")", "resource_id": "\#(resource["id"] as? String ?? "")"}"#)
        let token = try create("tokens", #"{"kind": "client", "actor_id": "\#(actor["id"] as? String ?? "")"}"#)
        for (noun, created, field) in [("sites", site, "name"), ("groups", group, "name"), ("actors", actor, "email"),
                                       ("resources", resource, "address"), ("policies", policy, "resource_id"), ("tokens", token, "kind")] {
            let id = try #require(created["id"] as? String)
            let read = try portal.call("GET", "/api/v1/\(noun)/\(id)")
            #expect(read.status == 200, "\(noun)/\(id): \(read.body)")
            let shown = try portal.json(read.body)
            #expect(shown["id"] as? String == id && "\(shown[field] ?? "")" == "\(created[field] ?? "")", "\(noun): \(shown)")
            #expect(shown["secret"] == nil, "no secret is ever shown again")
            #expect(try portal.call("GET", "/api/v1/\(noun)/\(UUID().uuidString.lowercased())").status == 404)
        }
        #expect(try portal.call("GET", "/api/v1/groups/\(UUID().uuidString.lowercased())/members").status == 404, "members of an unknown group")

        // The same reads from the command line, by name (or email) and by ID.
        for (noun, reference, field, expected) in [("site", "hq", "name", "hq"), ("group", "eng", "name", "eng"),
                                                   ("actor", "ann@acme.test", "name", "Ann"), ("resource", "db", "address", "10.0.0.5"),
                                                   ("policy", policy["id"] as? String ?? "", "group_id", group["id"] as? String ?? ""),
                                                   ("token", token["id"] as? String ?? "", "kind", "client")] {
            let output = try portal.admin([noun, "show", reference, "--json"])
            #expect(output.status == 0, "admin \(noun) show \(reference): \(output.standardError)")
            let shown = try portal.json(output.standardOutput)
            #expect(shown[field] as? String == expected, "admin \(noun) show \(reference): \(shown)")
        }
        let missing = try portal.admin(["site", "show", "nowhere"])
        #expect(missing.status != 0 && missing.standardError.contains("site \"nowhere\" not found"), "\(missing.standardError)")
        let table = try portal.admin(["resource", "show", "db"])
        #expect(table.status == 0 && table.standardOutput.contains("address") && table.standardOutput.contains("10.0.0.5"), "\(table.standardOutput)")

        // The audit log, three at a time, following next_cursor: every event once, newest first.
        let whole = try portal.json(portal.call("GET", "/api/v1/audit?limit=500").body)["data"] as? [[String: Any]] ?? []
        #expect(whole.count >= 7, "bootstrap and six creations")
        var paged: [String] = []
        var cursor: String?
        repeat {
            let query = "/api/v1/audit?limit=3" + (cursor.map { "&cursor=\($0.addingPercentEncoding(withAllowedCharacters: .alphanumerics) ?? $0)" } ?? "")
            let page = try portal.json(portal.call("GET", query).body)
            let data = page["data"] as? [[String: Any]] ?? []
            #expect(data.count <= 3)
            paged += data.compactMap { $0["id"] as? String }
            cursor = page["next_cursor"] as? String
        } while cursor != nil && paged.count <= whole.count
        #expect(paged == whole.compactMap { $0["id"] as? String }, "the pages, joined, are the whole log in order")
        #expect(try portal.call("GET", "/api/v1/audit?cursor=not-a-cursor").status == 400)
    }
}
