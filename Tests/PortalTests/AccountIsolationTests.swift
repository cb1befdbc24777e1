import AdminAPI
import Foundation
import Persistence
import Identifiers
import Portal
import TestSupport
import Testing

/// Two accounts in one portal: every operation of the admin API (the OpenAPI document's table, so a new
/// route cannot slip past), made with account A's admin token and account B's IDs, gets 404 or leaves
/// B out of its answer, and changes nothing in B (its rows and its audit log compared before and
/// after). Issue #11, "Accounts isolated".
@Suite struct AccountIsolationTests {
    typealias Portal = PortalAdminAPITests.Portal

    /// Every row of account B, table by table, as sqlite3 prints it.
    func snapshot(_ database: String, account: String) throws -> [String: String] {
        var rows: [String: String] = [:]
        for table in ["actor", "actor_group", "membership", "site", "resource", "policy", "token", "device", "authorization", "audit_event"] {
            let query = "SELECT * FROM \"\(table)\" WHERE account_id = '\(account)' ORDER BY 1, 2"
            rows[table] = try Command.runBlocking(["sqlite3", database, query]).standardOutput
        }
        rows["account"] = try Command.runBlocking(["sqlite3", database, "SELECT * FROM account WHERE id = '\(account)'"]).standardOutput
        return rows
    }

    @Test func accountAsAdminCannotSeeOrChangeAnythingOfAccountB() async throws {
        let database = try PortalAdminAPITests.temporaryDatabase()
        defer { try? FileManager.default.removeItem(atPath: URL(filePath: database).deletingLastPathComponent().path) }
        let tokenA = try PortalAdminAPITests.initialise(database)
        let created = try await Command.run([
            Binaries.gatehouse, "portal", "account", "create", "--db", database, "--account", "Beta", "--slug", "beta",
            "--admin-email", "admin@beta.test",
        ])
        let tokenB = created.standardOutput.split(separator: "\n").last.map(String.init) ?? ""
        #expect(tokenB.hasPrefix("gh_admin_") && tokenB != tokenA, "\(created.standardOutput)")
        try await InProcessPortal.serve(database, token: tokenA) { portal in

            // Account B, through its own admin: one of everything.
            func createB(_ path: String, _ body: String) async throws -> String {
                let answer = try await portal.call("POST", path, body: body, token: tokenB)
                #expect(answer.status == 201, "B: POST \(path): \(answer.body)")
                return try portal.json(answer.body)["id"] as? String ?? ""
            }
            var b: [String: String] = [:]
            b["sites"] = try await createB("/api/v1/sites", #"{"name": "b-site"}"#)
            b["groups"] = try await createB("/api/v1/groups", #"{"name": "b-group"}"#)
            b["actors"] = try await createB("/api/v1/actors", #"{"type": "user", "name": "B User", "email": "user@beta.test"}"#)
            #expect(try await portal.call("PUT", "/api/v1/groups/\(b["groups"]!)/members/\(b["actors"]!)", token: tokenB).status == 201)
            b["resources"] = try await createB("/api/v1/resources", #"{"name": "b-db", "type": "cidr", "address": "10.20.0.0/24", "site_id": "\#(b["sites"]!)"}"#)
            b["policies"] = try await createB("/api/v1/policies", #"{"group_id": "\#(b["groups"]!)", "resource_id": "\#(b["resources"]!)"}"#)
            b["tokens"] = try await createB("/api/v1/tokens", #"{"kind": "client", "actor_id": "\#(b["actors"]!)"}"#)
            let accountB = try await #require(try portal.json(portal.call("GET", "/api/v1/account", token: tokenB).body)["id"] as? String)
            // A client and a gateway of B (devices join through the realtime API, which is not built yet: stored directly).
            let repository = SQLitePortalRepository(database: try AppDatabase(path: database))
            let client = try await repository.createDevice(
                DeviceRecord(accountID: try #require(AccountID(accountB)), kind: .client, externalID: "b-machine", name: "b-laptop",
                             publicKey: "key-b", tunnelIPv4: "100.64.0.10", tunnelIPv6: "fd00:6761:7465::10",
                             actorID: ActorID(b["actors"]!), createdAt: Date()), by: nil, now: Date())
            b["clients"] = client.id.description
            let gateway = try await repository.createDevice(
                DeviceRecord(accountID: try #require(AccountID(accountB)), kind: .gateway, externalID: "b-gw", name: "b-gw",
                             publicKey: "key-b-gw", tunnelIPv4: "100.64.0.2", tunnelIPv6: "fd00:6761:7465::2", siteID: SiteID(b["sites"]!),
                             createdAt: Date()), by: nil, now: Date())
            b["gateways"] = gateway.id.description
            let bIDs = Set(b.values).union([accountB])
            let before = try snapshot(database, account: accountB)

            // Every operation, with A's token and B's IDs.
            var checked = 0
            for (index, operation) in AdminRoutes.all.enumerated() {
                let segments = operation.path.split(separator: "/").map(String.init)
                let noun = segments.first ?? ""
                var path = "/api/v1"
                var targetsB = false
                for segment in segments {
                    switch segment {
                    case "{id}":
                        let id = try #require(b[noun], "no ID of B to put in \(operation.method.rawValue) \(operation.path)")
                        path += "/\(id)"
                        targetsB = true
                    case "{actor}":
                        path += "/\(b["actors"]!)"
                        targetsB = true
                    default:
                        #expect(!segment.hasPrefix("{"), "a path parameter this test cannot fill: \(segment) in \(operation.path)")
                        path += "/\(segment)"
                    }
                }
                if operation.query.contains(where: { $0.name == "actor" }) {
                    path += "?actor=\(b["actors"]!)&resource=\(b["resources"]!)"
                    targetsB = true
                }
                // A body with every field the operation takes that can name B's rows, and valid values for the rest.
                var body: [String: Any] = [:]
                var namesB = false
                let fields = operation.request?.schema.fields ?? []
                for field in fields.map(\.name) {
                    switch field {
                    case "site_id": body[field] = b["sites"]; namesB = true
                    case "group_id": body[field] = b["groups"]; namesB = true
                    case "resource_id": body[field] = b["resources"]; namesB = true
                    case "actor_id": body[field] = b["actors"]; namesB = true
                    case "name": body[field] = "from-a-\(index)"
                    case "description": body[field] = "from A"
                    case "type": body[field] = noun == "actors" ? "user" : "cidr"
                    case "address": body[field] = "10.30.\(index).0/24"
                    case "kind": body[field] = "client"
                    case "disabled" where operation.method == .patch: body[field] = false
                    default: break
                    }
                }
                let text = fields.isEmpty ? nil : String(decoding: try JSONSerialization.data(withJSONObject: body), as: UTF8.self)
                let answer = try await portal.call(operation.method.rawValue.uppercased(), path, body: text, token: tokenA)
                let what = "\(operation.method.rawValue.uppercased()) \(path) \(text ?? "")"
                if targetsB {
                    #expect(answer.status == 404, "\(what): \(answer.status) \(answer.body)")
                } else if namesB {
                    #expect(!(200..<300).contains(answer.status), "\(what) used B's rows: \(answer.status) \(answer.body)")
                } else {
                    #expect(answer.status < 500, "\(what): \(answer.status) \(answer.body)")
                }
                // An error may repeat what the request named; anything else of B's is a leak.
                let leaked = bIDs.filter { answer.body.contains($0) && !what.contains($0) }
                #expect(leaked.isEmpty, "\(what) answered with B's IDs \(leaked)")
                checked += 1
            }
            print("account isolation: \(checked) operations made with A's token and B's IDs")
            #expect(checked == AdminRoutes.all.count)

            let after = try snapshot(database, account: accountB)
            for table in before.keys.sorted() {
                #expect(before[table] == after[table], "account B's \(table) rows changed")
            }
            let auditA = try await portal.call("GET", "/api/v1/audit?limit=500", token: tokenA).body
            #expect(bIDs.filter { auditA.contains($0) }.isEmpty, "A's audit log names none of B's rows")
        }
    }
}
