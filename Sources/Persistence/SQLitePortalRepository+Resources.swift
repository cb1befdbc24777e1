package import Foundation
import GRDB
package import Identifiers

// Sites and resources.
extension SQLitePortalRepository {
    package func createSite(accountID: AccountID, name: String, by actor: ActorRecord, now: Date) async throws -> SiteRecord {
        try await insert(SiteRecord(accountID: accountID, name: name, createdAt: now), account: accountID, subject: "site", by: actor, now: now)
    }

    package func listSites(accountID: AccountID, after cursor: String?, limit: Int) async throws -> [SiteRecord] {
        try await page(SiteRecord.self, accountID: accountID, orderedBy: "name", after: cursor, limit: limit)
    }

    package func deleteSite(accountID: AccountID, id: SiteID, by actor: ActorRecord, now: Date) async throws -> Bool {
        try await remove(SiteRecord.self, accountID: accountID, id: id, subject: "site", by: actor, now: now)
    }

    package func createResource(_ resource: ResourceRecord, by actor: ActorRecord, now: Date) async throws -> ResourceRecord {
        try await insert(resource, account: resource.accountID, subject: "resource", by: actor, now: now, check: { db in
            try Self.requireInAccount(db, SiteRecord.self, resource.siteID, account: resource.accountID)
        })
    }

    package func listResources(accountID: AccountID, after cursor: String?, limit: Int) async throws -> [ResourceRecord] {
        try await page(ResourceRecord.self, accountID: accountID, orderedBy: "name", after: cursor, limit: limit)
    }

    package func deleteResource(accountID: AccountID, id: ResourceID, by actor: ActorRecord, now: Date) async throws -> Bool {
        try await remove(ResourceRecord.self, accountID: accountID, id: id, subject: "resource", by: actor, now: now)
    }

    package func updateSite(accountID: AccountID, id: SiteID, by actor: ActorRecord, now: Date,
                            _ change: @escaping @Sendable (inout SiteRecord) throws -> Void) async throws -> SiteRecord? {
        try await update(SiteRecord.self, accountID: accountID, id: id, subject: "site", by: actor, now: now, change)
    }

    package func updateResource(accountID: AccountID, id: ResourceID, by actor: ActorRecord, now: Date,
                                _ change: @escaping @Sendable (inout ResourceRecord) throws -> Void) async throws -> ResourceRecord? {
        try await update(ResourceRecord.self, accountID: accountID, id: id, subject: "resource", by: actor, now: now, change, check: { db, resource in
            try Self.requireInAccount(db, SiteRecord.self, resource.siteID, account: accountID)
        })
    }

    package func resource(accountID: AccountID, id: ResourceID) async throws -> ResourceRecord? {
        try await database.read { db in
            try ResourceRecord.filter(Column("id") == id)
                .filter(Column("account_id") == accountID).fetchOne(db)
        }
    }
}
