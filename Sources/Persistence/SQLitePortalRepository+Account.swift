package import Foundation
import GRDB
package import Identifiers

// The account and its audit log.
extension SQLitePortalRepository {
    package func bootstrap(account name: String, slug: String, adminName: String, adminEmail: String, tokenHash: String, now: Date)
        async throws -> (account: AccountRecord, admin: ActorRecord, token: TokenRecord)
    {
        try await mapping {
            try await database.write { db in
                let account = AccountRecord(name: name, slug: slug, createdAt: now)
                try account.insert(db)
                let admin = ActorRecord(accountID: account.id, type: .admin, name: adminName, email: adminEmail, createdAt: now)
                try admin.insert(db)
                // The built-in group of every user and admin: a row, so that policies can name it, and
                // never any membership rows (membership is implicit; see `GroupRecord.everyone`).
                try GroupRecord(accountID: account.id, name: GroupRecord.everyone, createdAt: now).insert(db)
                let token = TokenRecord(accountID: account.id, kind: .adminAPI, secretHash: tokenHash, expiresAt: nil,
                                        actorID: admin.id, createdAt: now)
                try token.insert(db)
                try Self.audit(db, account: account.id, actor: admin, action: "bootstrap", subject: "account", id: account.id,
                               before: nil, after: account, now: now)
                return (account, admin, token)
            }
        }
    }

    package func find<Record: GatehouseRecord & Identified>(_ type: Record.Type, accountID: AccountID, id: Record.ID) async throws -> Record? {
        try await database.read { db in
            try Record.filter(Column("id") == id)
                .filter(Column("account_id") == accountID).fetchOne(db)
        }
    }

    package func auditEvents(accountID: AccountID, after cursor: AuditCursor?, limit: Int) async throws -> [AuditEventRecord] {
        try await database.read { db in
            var request = AuditEventRecord.filter(Column("account_id") == accountID)
            if let cursor {
                // Newest first by time, then by ID among events of the same instant: a total order.
                let id = cursor.id
                request = request.filter(Column("at") < cursor.at || (Column("at") == cursor.at && Column("id") < id))
            }
            return try request.order(Column("at").desc, Column("id").desc).limit(limit).fetchAll(db)
        }
    }

    package func accountIDs() async throws -> [AccountID] {
        try await database.read { db in try AccountID.fetchAll(db, sql: "SELECT id FROM account ORDER BY id") }
    }

    package func account(id: AccountID) async throws -> AccountRecord? {
        try await database.read { db in try AccountRecord.filter(Column("id") == id).fetchOne(db) }
    }

    package func updateAccount(id: AccountID, by actor: ActorRecord, now: Date,
                               _ change: @escaping @Sendable (inout AccountRecord) throws -> Void) async throws -> AccountRecord? {
        try await update(AccountRecord.self, accountID: id, id: id, subject: "account", accountColumn: "id", by: actor, now: now, change)
    }
}
