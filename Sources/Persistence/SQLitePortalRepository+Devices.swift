package import Foundation
import GRDB
package import Identifiers

// Clients, gateways and their authorisations.
extension SQLitePortalRepository {
    package func createDevice(_ device: DeviceRecord, by actor: ActorRecord?, now: Date) async throws -> DeviceRecord {
        try await insert(device, account: device.accountID, subject: "device", by: actor, now: now, check: { db in
            if let owner = device.actorID { try Self.requireInAccount(db, ActorRecord.self, owner, account: device.accountID) }
            if let site = device.siteID { try Self.requireInAccount(db, SiteRecord.self, site, account: device.accountID) }
        })
    }

    package func listDevices(accountID: AccountID, kind: DeviceRecord.Kind, after cursor: String?, limit: Int) async throws -> [DeviceRecord] {
        try await database.read { db in
            var request = DeviceRecord.filter(Column("account_id") == accountID).filter(Column("kind") == kind.rawValue)
            if let cursor { request = request.filter(Column("id") > cursor) }
            return try request.order(Column("id")).limit(limit).fetchAll(db)
        }
    }

    package func updateDevice(accountID: AccountID, id: DeviceID, by actor: ActorRecord?, now: Date,
                              _ change: @escaping @Sendable (inout DeviceRecord) throws -> Void) async throws -> DeviceRecord? {
        try await update(DeviceRecord.self, accountID: accountID, id: id, subject: "device", by: actor, now: now, change)
    }

    package func createAuthorization(_ authorization: AuthorizationRecord) async throws -> AuthorizationRecord {
        let inserted = try await mapping {
            try await database.write { db in
                try authorization.insert(db)
                return authorization
            }
        }
        record(.authorization(before: nil, after: inserted), account: inserted.accountID)
        return inserted
    }

    package func deleteAuthorizations(accountID: AccountID, ids: [AuthorizationID]) async throws -> Int {
        guard !ids.isEmpty else { return 0 }
        let deleted = try await database.write { db in
            let request = AuthorizationRecord.filter(Column("account_id") == accountID).filter(ids.contains(Column("id")))
            let rows = try request.fetchAll(db)
            try request.deleteAll(db)
            return rows
        }
        for row in deleted { record(.authorization(before: row, after: nil), account: accountID) }
        return deleted.count
    }
}
