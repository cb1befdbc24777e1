import Foundation
import GRDB
import Identifiers
import Persistence
import Testing

/// The schema holds the data model's invariants, on a real SQLite file.
@Suite struct SchemaTests {
    let now = Date(timeIntervalSince1970: 1_700_000_000)

    /// A fresh database file in a temporary directory, removed afterwards.
    func withDatabase(_ body: (AppDatabase, String) throws -> Void) throws {
        let directory = FileManager.default.temporaryDirectory.appending(path: "gatehouse-db-\(UUID().uuidString)")
        try FileManager.default.createDirectory(at: directory, withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(at: directory) }
        let path = directory.appending(path: "portal.sqlite").path
        try body(try AppDatabase(path: path), path)
    }

    func isConstraintViolation(_ error: any Error) -> Bool {
        (error as? DatabaseError)?.resultCode == .SQLITE_CONSTRAINT
    }

    struct Fixture {
        var account: AccountRecord
        var site: SiteRecord
        var group: GroupRecord
        var user: ActorRecord
    }

    func seed(_ db: Database) throws -> Fixture {
        let account = AccountRecord(name: "Acme", slug: "acme", createdAt: now)
        try account.insert(db)
        let site = SiteRecord(accountID: account.id, name: "hq", createdAt: now)
        try site.insert(db)
        let group = GroupRecord(accountID: account.id, name: "engineering", createdAt: now)
        try group.insert(db)
        let user = ActorRecord(accountID: account.id, type: .user, name: "Ada", email: "ada@acme.test", createdAt: now)
        try user.insert(db)
        return Fixture(account: account, site: site, group: group, user: user)
    }

    /// A resource granted by a policy, a client with its token, a gateway, and an authorisation of the
    /// client through the gateway, all inserted.
    func seedFlow(_ db: Database, _ fixture: Fixture) throws -> (resource: ResourceRecord, policy: PolicyRecord, authorization: AuthorizationRecord) {
        let account = fixture.account.id
        let resource = ResourceRecord(accountID: account, siteID: fixture.site.id, name: "db", type: .cidr, address: "10.0.0.0/24", createdAt: now)
        try resource.insert(db)
        let policy = PolicyRecord(accountID: account, groupID: fixture.group.id, resourceID: resource.id, createdAt: now)
        try policy.insert(db)
        let token = TokenRecord(accountID: account, kind: .client, secretHash: String(repeating: "d", count: 64), expiresAt: nil, actorID: fixture.user.id)
        try token.insert(db)
        let client = DeviceRecord(accountID: account, kind: .client, externalID: "c", name: "laptop", publicKey: "k", tunnelIPv4: "100.64.0.9",
                                  tunnelIPv6: "fd00::9", actorID: fixture.user.id, tokenID: token.id, createdAt: now)
        try client.insert(db)
        let gateway = DeviceRecord(accountID: account, kind: .gateway, externalID: "g", name: "gw", publicKey: "k2", tunnelIPv4: "100.64.0.2",
                                   tunnelIPv6: "fd00::2", siteID: fixture.site.id, createdAt: now)
        try gateway.insert(db)
        let authorization = AuthorizationRecord(accountID: account, clientID: client.id, gatewayID: gateway.id, resourceID: resource.id,
                                                policyID: policy.id, expiresAt: now, createdAt: now)
        try authorization.insert(db)
        return (resource, policy, authorization)
    }

    @Test func aNewFileIsMigratedInWALModeAndKeepsItsDataWhenReopened() throws {
        try withDatabase { database, path in
            #expect(try database.appliedMigrations() == ["001_initial_schema", "002_device_token", "003_account_keys", "004_authorization_outlives_policy",
                                                       "005_authorization_dns_proxy"])
            let mode = try database.writer.read { db in try String.fetchOne(db, sql: "PRAGMA journal_mode") }
            #expect(mode == "wal")
            let fixture = try database.writer.write { db in try seed(db) }
            let reopened = try AppDatabase(path: path)
            let account = try reopened.writer.read { db in try AccountRecord.fetchOne(db, key: fixture.account.id) }
            #expect(account == fixture.account)
            let storedID = try reopened.writer.read { db in try String.fetchOne(db, sql: "SELECT id FROM account") }
            #expect(storedID == fixture.account.id.uuid.uuidString.lowercased(), "IDs are stored as lower-case text")
        }
    }

    @Test func namesAreUniquePerAccountOnly() throws {
        try withDatabase { database, _ in
            try database.writer.write { db in
                let fixture = try seed(db)
                #expect(performing: { try GroupRecord(accountID: fixture.account.id, name: "engineering", createdAt: now).insert(db) },
                        throws: isConstraintViolation)
                let other = AccountRecord(name: "Other", slug: "other", createdAt: now)
                try other.insert(db)
                try GroupRecord(accountID: other.id, name: "engineering", createdAt: now).insert(db)
                #expect(performing: { try AccountRecord(name: "Acme 2", slug: "acme", createdAt: now).insert(db) },
                        throws: isConstraintViolation)
                #expect(performing: { try AccountRecord(name: "Bad", slug: "Not A Slug", createdAt: now).insert(db) },
                        throws: isConstraintViolation)
                #expect(performing: {
                    try ActorRecord(accountID: fixture.account.id, type: .admin, name: "Ada again", email: "ada@acme.test", createdAt: now).insert(db)
                }, throws: isConstraintViolation)
            }
        }
    }

    @Test func deletingASiteDeletesItsResourcesAndTheirPolicies() throws {
        try withDatabase { database, _ in
            try database.writer.write { db in
                let fixture = try seed(db)
                let resource = ResourceRecord(accountID: fixture.account.id, siteID: fixture.site.id, name: "db",
                                              type: .cidr, address: "10.0.0.0/24", filters: #"["tcp:5432"]"#, createdAt: now)
                try resource.insert(db)
                try PolicyRecord(accountID: fixture.account.id, groupID: fixture.group.id, resourceID: resource.id, createdAt: now).insert(db)
                try MembershipRecord(accountID: fixture.account.id, actorID: fixture.user.id, groupID: fixture.group.id).insert(db)
                _ = try fixture.site.delete(db)
                #expect(try ResourceRecord.fetchCount(db) == 0)
                #expect(try PolicyRecord.fetchCount(db) == 0)
                _ = try fixture.user.delete(db)
                #expect(try MembershipRecord.fetchCount(db) == 0, "memberships go with their actor")
            }
        }
    }

    @Test func foreignKeysAndChecksRefuseWhatTheModelForbids() throws {
        try withDatabase { database, _ in
            try database.writer.write { db in
                let fixture = try seed(db)
                let account = fixture.account.id
                #expect(performing: { try MembershipRecord(accountID: account, actorID: ActorID(), groupID: fixture.group.id).insert(db) },
                        throws: isConstraintViolation)
                #expect(performing: {
                    try ResourceRecord(accountID: account, siteID: fixture.site.id, name: "web", type: .dns, address: "web.acme.test", createdAt: now).insert(db)
                }, throws: isConstraintViolation)  // a DNS resource needs its IP stack
                #expect(performing: {
                    try ResourceRecord(accountID: account, siteID: fixture.site.id, name: "net", type: .cidr, address: "10.0.0.0/8",
                                       filters: #"{"tcp": 1}"#, createdAt: now).insert(db)
                }, throws: isConstraintViolation)  // filters are a JSON array
                let hash = String(repeating: "a", count: 64)
                #expect(performing: { try TokenRecord(accountID: account, kind: .gateway, secretHash: hash, expiresAt: nil).insert(db) },
                        throws: isConstraintViolation)  // a gateway token belongs to a site
                #expect(performing: { try TokenRecord(accountID: account, kind: .adminAPI, secretHash: "plain-secret", expiresAt: nil, actorID: fixture.user.id).insert(db) },
                        throws: isConstraintViolation)  // only a SHA-256 hex digest fits
                try TokenRecord(accountID: account, kind: .gateway, secretHash: hash, expiresAt: nil, siteID: fixture.site.id).insert(db)
                #expect(performing: { try ActorRecord(accountID: account, type: .serviceAccount, name: "ci", email: "ci@acme.test", createdAt: now).insert(db) },
                        throws: isConstraintViolation)  // machines have no email
            }
        }
    }

    /// A second account whose rows the first account's rows must never reference.
    @Test func noRowCanReferenceAnotherAccountsRow() throws {
        try withDatabase { database, _ in
            try database.writer.write { db in
                let a = try seed(db)
                let other = AccountRecord(name: "Beta", slug: "beta", createdAt: now)
                try other.insert(db)
                let b = Fixture(
                    account: other, site: SiteRecord(accountID: other.id, name: "b-hq", createdAt: now),
                    group: GroupRecord(accountID: other.id, name: "b-eng", createdAt: now),
                    user: ActorRecord(accountID: other.id, type: .user, name: "Bea", email: "bea@beta.test", createdAt: now))
                try b.site.insert(db)
                try b.group.insert(db)
                try b.user.insert(db)
                let bResource = ResourceRecord(accountID: other.id, siteID: b.site.id, name: "b-db", type: .cidr, address: "10.9.0.0/24", createdAt: now)
                try bResource.insert(db)

                let attempts: [(String, () throws -> Void)] = [
                    ("a membership of A naming B's actor", { try MembershipRecord(accountID: a.account.id, actorID: b.user.id, groupID: a.group.id).insert(db) }),
                    ("a membership of A naming B's group", { try MembershipRecord(accountID: a.account.id, actorID: a.user.id, groupID: b.group.id).insert(db) }),
                    ("a resource of A in B's site", {
                        try ResourceRecord(accountID: a.account.id, siteID: b.site.id, name: "x", type: .cidr, address: "10.8.0.0/24", createdAt: now).insert(db)
                    }),
                    ("a policy of A naming B's resource", {
                        try PolicyRecord(accountID: a.account.id, groupID: a.group.id, resourceID: bResource.id, createdAt: now).insert(db)
                    }),
                    ("a client token of A for B's actor", {
                        try TokenRecord(accountID: a.account.id, kind: .client, secretHash: String(repeating: "c", count: 64), expiresAt: nil,
                                        actorID: b.user.id).insert(db)
                    }),
                    ("a gateway of A in B's site", {
                        try DeviceRecord(accountID: a.account.id, kind: .gateway, externalID: "gw", name: "gw", publicKey: "k", tunnelIPv4: "100.64.0.2",
                                         tunnelIPv6: "fd00::2", siteID: b.site.id, createdAt: now).insert(db)
                    }),
                    ("B's actor moved into A", {
                        var moved = b.user
                        moved.accountID = a.account.id
                        try moved.update(db)
                    }),
                ]
                for (what, attempt) in attempts {
                    #expect("\(what) is refused by the schema", performing: attempt, throws: { isConstraintViolation($0) })
                }
                // Within one account the same rows are fine.
                try MembershipRecord(accountID: a.account.id, actorID: a.user.id, groupID: a.group.id).insert(db)
                #expect(try MembershipRecord.fetchCount(db) == 1)
            }
        }
    }

    /// Deleting a policy leaves its authorisations (the evaluator tells their gateways, then deletes
    /// them), but an authorisation can only be made naming a policy of its own account.
    @Test func anAuthorizationOutlivesItsPolicyButMustNameOneOfItsAccount() throws {
        try withDatabase { database, _ in
            try database.writer.write { db in
                let fixture = try seed(db)
                let account = fixture.account.id
                let flow = try seedFlow(db, fixture)
                let (resource, policy) = (flow.resource, flow.policy)
                func authorization(_ policyID: PolicyID) -> AuthorizationRecord {
                    var row = flow.authorization
                    row.id = AuthorizationID()
                    row.policyID = policyID
                    return row
                }

                let other = AccountRecord(name: "Beta", slug: "beta", createdAt: now)
                try other.insert(db)
                let otherGroup = GroupRecord(accountID: other.id, name: "b-eng", createdAt: now)
                try otherGroup.insert(db)
                let otherSite = SiteRecord(accountID: other.id, name: "b-hq", createdAt: now)
                try otherSite.insert(db)
                let otherResource = ResourceRecord(accountID: other.id, siteID: otherSite.id, name: "b-db", type: .cidr, address: "10.9.0.0/24", createdAt: now)
                try otherResource.insert(db)
                let otherPolicy = PolicyRecord(accountID: other.id, groupID: otherGroup.id, resourceID: otherResource.id, createdAt: now)
                try otherPolicy.insert(db)
                #expect("naming another account's policy", performing: { try authorization(otherPolicy.id).insert(db) }, throws: { isConstraintViolation($0) })
                #expect("naming no policy", performing: { try authorization(PolicyID()).insert(db) }, throws: { isConstraintViolation($0) })
                var moved = try #require(try AuthorizationRecord.fetchOne(db))
                moved.policyID = otherPolicy.id
                #expect("moved to another account's policy", performing: { try moved.update(db) }, throws: { isConstraintViolation($0) })

                _ = try policy.delete(db)
                #expect(try AuthorizationRecord.fetchCount(db) == 1, "the authorisation outlives its policy")
                #expect(try Row.fetchAll(db, sql: "PRAGMA foreign_key_check").isEmpty)
                _ = try resource.delete(db)
                #expect(try AuthorizationRecord.fetchCount(db) == 0, "a deleted resource still takes its authorisations")
            }
        }
    }

    /// An install from before 003_account_keys keeps every row through the table rebuilds, and the
    /// rebuilt tables then hold the new keys.
    @Test func anExistingDatabaseMigratesToAccountKeysWithItsData() throws {
        let directory = FileManager.default.temporaryDirectory.appending(path: "gatehouse-migrate-\(UUID().uuidString)")
        try FileManager.default.createDirectory(at: directory, withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(at: directory) }
        let path = directory.appending(path: "portal.sqlite").path
        let tables = ["account", "actor", "actor_group", "membership", "site", "resource", "policy", "token", "device", "authorization"]
        var before: [String: [Row]] = [:]
        do {
            let old = try AppDatabase(path: path, upTo: "002_device_token")
            #expect(try old.appliedMigrations() == ["001_initial_schema", "002_device_token"])
            try old.writer.write { db in
                let fixture = try seed(db)
                try MembershipRecord(accountID: fixture.account.id, actorID: fixture.user.id, groupID: fixture.group.id).insert(db)
                _ = try seedFlow(db, fixture)
                for table in tables { before[table] = try Row.fetchAll(db, sql: "SELECT * FROM \"\(table)\" ORDER BY 1, 2") }
            }
        }
        let migrated = try AppDatabase(path: path)
        #expect(try migrated.appliedMigrations() == ["001_initial_schema", "002_device_token", "003_account_keys", "004_authorization_outlives_policy",
                                                       "005_authorization_dns_proxy"])
        try migrated.writer.read { db in
            for table in tables {
                // The columns the table had (later migrations add some).
                let columns = before[table]?.first.map { Array($0.columnNames).map { "\"\($0)\"" }.joined(separator: ", ") } ?? "*"
                let rows = try Row.fetchAll(db, sql: "SELECT \(columns) FROM \"\(table)\" ORDER BY 1, 2")
                #expect(rows == before[table], "\(table) kept its rows")
            }
            #expect(try Row.fetchAll(db, sql: "PRAGMA foreign_key_check").isEmpty)
            let membershipKeys = try Row.fetchAll(db, sql: "PRAGMA foreign_key_list(membership)").map { $0["from"] as String? ?? "" }
            #expect(membershipKeys.filter { $0 == "account_id" }.count >= 2, "membership's references carry the account: \(membershipKeys)")
        }
    }
}

extension TokenRecord {
    init(accountID: AccountID?, kind: Kind, secretHash: String, expiresAt: Date?, actorID: ActorID? = nil, siteID: SiteID? = nil) {
        self.init(accountID: accountID, kind: kind, secretHash: secretHash, expiresAt: expiresAt, actorID: actorID,
                  siteID: siteID, createdAt: Date(timeIntervalSince1970: 1_700_000_000))
    }

}
