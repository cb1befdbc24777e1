import Foundation
import GRDB
import Identifiers
import Persistence
import Testing

/// The records read column by column (`Record+Row.swift`) read back exactly what was written, every
/// optional column set and unset, and agree with GRDB's Codable decoding of the same rows.
@Suite struct RecordRowTests {
    @Test func rowsReadColumnByColumnEqualWhatWasWritten() throws {
        let directory = FileManager.default.temporaryDirectory.appending(path: "gatehouse-rows-\(UUID().uuidString)")
        try FileManager.default.createDirectory(at: directory, withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(at: directory) }
        let database = try AppDatabase(path: directory.appending(path: "portal.sqlite").path)
        let now = Date(timeIntervalSince1970: 1_795_000_000.25)
        try database.writer.write { db in
            let account = AccountRecord(name: "Acme", slug: "acme", createdAt: now)
            try account.insert(db)
            let site = SiteRecord(accountID: account.id, name: "hq", createdAt: now)
            try site.insert(db)
            let group = GroupRecord(accountID: account.id, name: "eng", createdAt: now)
            try group.insert(db)
            let actor = ActorRecord(accountID: account.id, type: .user, name: "Ada", email: "ada@acme.test", createdAt: now)
            try actor.insert(db)
            let resources = [
                ResourceRecord(accountID: account.id, siteID: site.id, name: "db", type: .cidr, address: "10.0.0.0/24", createdAt: now),
                ResourceRecord(accountID: account.id, siteID: site.id, name: "web", type: .dns, address: "web.corp.example",
                               addressDescription: "https://web.corp.example \"quoted\"", filters: #"["tcp:443","icmp"]"#, ipStack: "dual", createdAt: now),
            ]
            for resource in resources { try resource.insert(db) }
            let policies = [
                PolicyRecord(accountID: account.id, groupID: group.id, resourceID: resources[0].id, createdAt: now),
                PolicyRecord(accountID: account.id, groupID: group.id, resourceID: resources[1].id, description: "why",
                             conditions: #"["verified"]"#, disabled: true, createdAt: now),
            ]
            for policy in policies { try policy.insert(db) }
            let membership = MembershipRecord(accountID: account.id, actorID: actor.id, groupID: group.id)
            try membership.insert(db)

            let readResources = try ResourceRecord.order(Column("name")).fetchAll(db)
            #expect(readResources == resources)
            let readPolicies = try PolicyRecord.fetchAll(db).sorted { $0.resourceID == resources[0].id && $1.resourceID != resources[0].id }
            #expect(readPolicies == policies)
            #expect(try MembershipRecord.fetchAll(db) == [membership])
            // GRDB's Codable decoding of the same rows says the same.
            for row in try Row.fetchAll(db, sql: "SELECT * FROM resource ORDER BY name") {
                #expect(try FetchableRecordDecoder().decode(ResourceRecord.self, from: row) == ResourceRecord(row: row))
            }
            for row in try Row.fetchAll(db, sql: "SELECT * FROM policy") {
                #expect(try FetchableRecordDecoder().decode(PolicyRecord.self, from: row) == PolicyRecord(row: row))
            }
            // A row that does not fit is an error, not a crash.
            let broken = try #require(try Row.fetchOne(db, sql: "SELECT *, 'bogus' AS type FROM resource LIMIT 1").map { row in
                Row(Dictionary(row.map { ($0.0, $0.1) }, uniquingKeysWith: { _, last in last }))
            })
            #expect(throws: (any Error).self) { try ResourceRecord(row: broken) }
        }
    }
}
