package import Foundation
import GRDB
package import Identifiers

// Tokens.
extension SQLitePortalRepository {
    package func useToken(hash: String, now: Date, address: String?) async throws -> TokenRecord? {
        let found = try await database.read { db in try TokenRecord.filter(TokenRecord.Columns.secretHash == hash).fetchOne(db) }
        guard var token = found else { return nil }
        if let expiry = token.expiresAt, expiry <= now { return nil }
        guard token.needsUseRecorded(now: now, address: address) else { return token }
        token.lastUsedAt = now
        token.lastUsedAddress = address
        let used = token
        try await database.write { db in
            // Another request may have recorded a use meanwhile; the later one wins, which is the truth.
            try db.execute(sql: "UPDATE token SET last_used_at = ?, last_used_address = ? WHERE id = ?",
                           arguments: [used.lastUsedAt, used.lastUsedAddress, used.id])
        }
        return token
    }

    package func createToken(_ token: TokenRecord, by actor: ActorRecord, now: Date) async throws -> TokenRecord {
        let account = token.accountID ?? actor.accountID
        return try await insert(token, account: account, subject: "token", by: actor, now: now, redact: {
            $0.secretHash = String(repeating: "0", count: 64)  // the audit trail keeps no hash either
        }, check: { db in
            if let owner = token.actorID { try Self.requireInAccount(db, ActorRecord.self, owner, account: account) }
            if let site = token.siteID { try Self.requireInAccount(db, SiteRecord.self, site, account: account) }
        })
    }

    package func listTokens(accountID: AccountID, after cursor: String?, limit: Int) async throws -> [TokenRecord] {
        try await page(TokenRecord.self, accountID: accountID, orderedBy: "id", after: cursor, limit: limit)
    }

    package func deleteToken(accountID: AccountID, id: TokenID, by actor: ActorRecord, now: Date) async throws -> Bool {
        // The audit trail keeps no hash either.
        try await remove(TokenRecord.self, accountID: accountID, id: id, subject: "token", action: "revoke", by: actor, now: now) {
            $0.secretHash = String(repeating: "0", count: 64)
        }
    }

    // Relay tokens belong to the installation (no account): the operator makes them on the portal host.

    package func createRelayToken(secretHash: String, expiresAt: Date?, now: Date) async throws -> TokenRecord {
        let token = TokenRecord(accountID: nil, kind: .relay, secretHash: secretHash, expiresAt: expiresAt, createdAt: now)
        return try await mapping {
            try await database.write { db in
                try token.insert(db)
                return token
            }
        }
    }

    package func listRelayTokens() async throws -> [TokenRecord] {
        try await database.read { db in
            try TokenRecord.filter(Column("kind") == TokenRecord.Kind.relay.rawValue).filter(Column("account_id") == nil)
                .order(Column("created_at")).fetchAll(db)
        }
    }

    package func deleteRelayToken(id: TokenID) async throws -> Bool {
        try await database.write { db in
            try TokenRecord.filter(Column("id") == id).filter(Column("kind") == TokenRecord.Kind.relay.rawValue)
                .filter(Column("account_id") == nil).deleteAll(db) == 1
        }
    }
}
