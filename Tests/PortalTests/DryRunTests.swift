import AdminAPI
import Foundation
import Hummingbird
import HummingbirdTesting
import Identifiers
import Persistence
import Portal
import TestSupport
import Testing

/// `?dry_run=true` on admin writes: the answer says which clients (and whose) would gain or lose which
/// resources through which policy, the database is left exactly as it was (no row, no audit event), and
/// the real write that follows tells subscribers the same thing.
@Suite struct DryRunTests {
    /// The whole database as sqlite3 dumps it.
    /// The whole database as SQL, except when each token was last used: the admin calls of the test
    /// record that now and then (once per `TokenRecord.useResolution`), which is the token's use, not
    /// the dry run's write (a loaded machine once crossed that interval between two dumps).
    static func dump(_ database: String) throws -> String {
        let dump = try Command.runBlocking(["sqlite3", database, ".dump"]).standardOutput
        let tokens = try Command.runBlocking(["sqlite3", database,
                                              "SELECT id, account_id, kind, secret_hash, expires_at, actor_id, site_id FROM token ORDER BY id"]).standardOutput
        return dump.split(separator: "\n").filter { !$0.hasPrefix("INSERT INTO token ") && !$0.hasPrefix("INSERT INTO \"token\" ") }
            .joined(separator: "\n") + "\n" + tokens
    }

    /// The preview's entries as the notifications the real write would publish.
    static func notifications(_ preview: AccessPreview) -> Set<String> {
        var result = Set<String>()
        for access in preview.gains + preview.updates { result.insert("created_or_updated \(access.clientID) \(access.resourceID)") }
        for access in preview.losses { result.insert("deleted \(access.clientID) \(access.resourceID)") }
        for change in preview.rejectedAuthorizations { result.insert("reject \(change.gatewayID) \(change.clientID.map(\.description) ?? "-") \(change.resourceID)") }
        for change in preview.filterUpdates { result.insert("updated \(change.gatewayID) \(change.resourceID)") }
        return result
    }

    static func describe(_ notification: AccessNotification) -> String {
        switch notification {
        case let .rejectAccess(gateway, client, resource): "reject \(gateway) \(client) \(resource)"
        case let .resourceDeleted(client, resource): "deleted \(client) \(resource)"
        case let .resourceCreatedOrUpdated(client, resource): "created_or_updated \(client) \(resource)"
        case let .resourceUpdated(gateway, resource): "updated \(gateway) \(resource)"
        }
    }

    @Test func aDryRunAnswersWhatTheRealWriteThenDoesAndWritesNothing() async throws {
        let database = try PortalAdminAPITests.temporaryDatabase()
        defer { try? FileManager.default.removeItem(atPath: URL(filePath: database).deletingLastPathComponent().path) }
        let token = try PortalAdminAPITests.initialise(database)
        let repository = SQLitePortalRepository(database: try AppDatabase(path: database))
        let evaluator = PolicyEvaluator(repository: repository)
        let app = Application(router: PortalApplication.router(repository: repository, evaluator: evaluator))
        try await app.test(.router) { client in
            let portal = InProcessPortal(client: client, token: token, database: database)
            func create(_ path: String, _ body: String) async throws -> String {
                let answer = try await portal.call("POST", "/api/v1/\(path)", body: body)
                #expect(answer.status == 201, "\(path): \(answer.body)")
                return try portal.json(answer.body)["id"] as? String ?? ""
            }
            let site = try await create("sites", #"{"name": "hq"}"#)
            let db = try await create("resources", #"{"name": "db", "type": "cidr", "address": "10.0.0.0/24", "site_id": "\#(site)"}"#)
            let alice = try await create("actors", #"{"type": "user", "name": "Alice", "email": "alice@acme.test"}"#)
            let eng = try await create("groups", #"{"name": "eng"}"#)
            #expect(try await portal.call("PUT", "/api/v1/groups/\(eng)/members/\(alice)").status == 201)
            let clientToken = try await create("tokens", #"{"kind": "client", "actor_id": "\#(alice)"}"#)
            // Alice's laptop joins (as the realtime API will make it), as one change of the account.
            let account = try #require(AccountID(try Self.accountOf(database)))
            let laptop = try await evaluator.change(accountID: account) {
                try await repository.createDevice(
                    DeviceRecord(accountID: account, kind: .client, externalID: "alice-machine", name: "alice-laptop", publicKey: "k",
                                 tunnelIPv4: "100.64.0.10", tunnelIPv6: "fd00:6761:7465::10", actorID: ActorID(alice), tokenID: TokenID(clientToken),
                                 createdAt: Date()), by: nil, now: Date())
            }.0
            let stream = await evaluator.subscribe()
            var told = stream.makeAsyncIterator()

            // Allowing eng to reach db: Alice's laptop would gain it, through the policy the write would make.
            let before = try Self.dump(database)
            let previewed = try await portal.call("POST", "/api/v1/policies?dry_run=true", body: #"{"group_id": "\#(eng)", "resource_id": "\#(db)"}"#)
            #expect(previewed.status == 200, "\(previewed.body)")
            let gain = try APICoding.decoder().decode(AccessPreview.self, from: Data(previewed.body.utf8))
            #expect(gain.dryRun)
            #expect(gain.gains.map { "\($0.client) \($0.actor ?? "-") \($0.resource ?? "-")" } == ["alice-laptop Alice db"])
            #expect(gain.gains.first?.policies.count == 1 && gain.losses.isEmpty)
            #expect(try Self.dump(database) == before, "a dry run writes nothing, not even an audit event")

            let created = try await portal.call("POST", "/api/v1/policies", body: #"{"group_id": "\#(eng)", "resource_id": "\#(db)"}"#)
            #expect(created.status == 201)
            let policy = try portal.json(created.body)["id"] as? String ?? ""
            #expect(await told.next().map(Self.describe) == "created_or_updated \(laptop.id) \(db)")
            #expect(Self.notifications(gain) == ["created_or_updated \(laptop.id) \(db)"], "the same as the real write told")

            // Removing Alice from eng: she would lose db, through the policy that grants it now.
            let removal = try await portal.call("DELETE", "/api/v1/groups/\(eng)/members/\(alice)?dry_run=true")
            #expect(removal.status == 200, "\(removal.body)")
            let loss = try APICoding.decoder().decode(AccessPreview.self, from: Data(removal.body.utf8))
            #expect(loss.losses.map { "\($0.client) \($0.resource ?? "-") \($0.policies.map(\.description))" } == ["alice-laptop db [\"\(policy)\"]"])
            #expect(try await portal.call("GET", "/api/v1/groups/\(eng)/members").body.contains(alice), "still a member")
            #expect(try await portal.call("DELETE", "/api/v1/groups/\(eng)/members/\(alice)").status == 204)
            #expect(await told.next().map(Self.describe) == "deleted \(laptop.id) \(db)")
            #expect(Self.notifications(loss) == ["deleted \(laptop.id) \(db)"])

            // A write the handler refuses answers as it would have; a dry_run that is not a boolean is refused.
            let refused = try await portal.call("POST", "/api/v1/policies?dry_run=true", body: #"{"group_id": "\#(eng)", "resource_id": "\#(db)"}"#)
            #expect(refused.status == 409, "the policy exists: \(refused.body)")
            let unclear = try await portal.call("DELETE", "/api/v1/policies/\(policy)?dry_run=maybe")
            #expect(unclear.status == 400 && unclear.body.contains("dry_run"))
            #expect(try await portal.call("GET", "/api/v1/policies/\(policy)").status == 200, "nothing deleted")
        }
    }

    /// `--dry-run` from the shell, against a portal process that read a client device from the file at
    /// start (devices come from the realtime API, so this one is written with sqlite3 while it is down).
    @Test func theAdminCommandsTakeDryRun() async throws {
        let database = try PortalAdminAPITests.temporaryDatabase()
        defer { try? FileManager.default.removeItem(atPath: URL(filePath: database).deletingLastPathComponent().path) }
        let token = try PortalAdminAPITests.initialise(database)
        var portal = try await PortalAdminAPITests.start(database, token: token)
        func admin(_ arguments: [String]) throws -> CommandOutput {
            let output = try portal.admin(arguments)
            #expect(output.status == 0, "\(arguments): \(output.standardError)")
            return output
        }
        _ = try admin(["site", "create", "--name", "hq"])
        _ = try admin(["resource", "create", "--name", "db", "--type", "cidr", "--address", "10.0.0.0/24", "--site", "hq"])
        _ = try admin(["actor", "create", "--name", "Alice", "--email", "alice@acme.test"])
        _ = try admin(["group", "create", "--name", "eng"])
        _ = try admin(["group", "add-member", "eng", "alice@acme.test"])
        let policy = try portal.json(try admin(["policy", "create", "--group", "eng", "--resource", "db", "--json"]).standardOutput)["id"] as? String ?? ""
        let clientToken = try portal.json(try admin(["token", "create", "--kind", "client", "--actor", "alice@acme.test", "--json"]).standardOutput)
        let tokenID = clientToken["id"] as? String ?? ""
        portal.process.stop()
        let account = try Self.accountOf(database)
        let alice = try await Command.run(["sqlite3", database, "SELECT id FROM actor WHERE email = 'alice@acme.test'"]).standardOutput
            .trimmingCharacters(in: .whitespacesAndNewlines)
        _ = try await Command.run(["sqlite3", database, """
            INSERT INTO device (id, account_id, kind, external_id, name, public_key, tunnel_ipv4, tunnel_ipv6, actor_id, created_at, token_id)
            VALUES ('\(UUID().uuidString.lowercased())', '\(account)', 'client', 'alice-machine', 'alice-laptop', 'k', '100.64.0.10',
                    'fd00:6761:7465::10', '\(alice)', '2026-12-06 10:00:00.000', '\(tokenID)')
            """])
        portal = try await PortalAdminAPITests.start(database, token: token)
        defer { portal.process.stop() }

        let before = try Self.dump(database)
        let deletion = try admin(["policy", "delete", policy, "--dry-run"])
        #expect(deletion.standardOutput == """
            dry run: nothing was written
            - alice-laptop (Alice) loses db granted until now by policy \(policy)

            """, "\(deletion.standardOutput)")
        let removal = try admin(["group", "remove-member", "eng", "alice@acme.test", "--dry-run", "--json"])
        let preview = try APICoding.decoder().decode(AccessPreview.self, from: Data(removal.standardOutput.utf8))
        #expect(preview.losses.map(\.client) == ["alice-laptop"] && preview.gains.isEmpty)
        let rename = try admin(["resource", "update", "db", "--name", "database", "--dry-run"])
        #expect(rename.standardOutput.contains("~ alice-laptop (Alice) sees database change"), "\(rename.standardOutput)")
        let nothing = try admin(["site", "create", "--name", "lab", "--dry-run"])
        #expect(nothing.standardOutput.contains("no client's access would change"))
        #expect(try Self.dump(database) == before, "dry runs write nothing")
        #expect(try admin(["policy", "list"]).standardOutput.contains(policy))
    }

    static func accountOf(_ database: String) throws -> String {
        try Command.runBlocking(["sqlite3", database, "SELECT id FROM account LIMIT 1"]).standardOutput.trimmingCharacters(in: .whitespacesAndNewlines)
    }
}
