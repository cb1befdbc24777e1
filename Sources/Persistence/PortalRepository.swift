package import Foundation
import GRDB

/// What the portal asks of its storage. SQLite implements it now; a PostgreSQL implementation can
/// follow without touching the callers. Every write is one transaction.
package protocol PortalRepository: Sendable {
    /// Creates the first account, its first admin and an admin API token whose secret hashes to
    /// `tokenHash`, in one transaction. Fails with `.conflict` if the account slug exists.
    func bootstrap(account: String, slug: String, adminName: String, adminEmail: String, tokenHash: String, now: Date) async throws
        -> (account: AccountRecord, admin: ActorRecord, token: TokenRecord)

    /// The unexpired token with this secret hash, after recording its use.
    func useToken(hash: String, now: Date, address: String?) async throws -> TokenRecord?

    func createSite(accountID: UUID, name: String, by actor: ActorRecord, now: Date) async throws -> SiteRecord
    /// Sites in name order, after `cursor` (a name), at most `limit`.
    func listSites(accountID: UUID, after cursor: String?, limit: Int) async throws -> [SiteRecord]
    /// Deletes a site (and, by cascade, its resources); false when there was none.
    func deleteSite(accountID: UUID, id: UUID, by actor: ActorRecord, now: Date) async throws -> Bool
    func actor(id: UUID) async throws -> ActorRecord?
    func auditEvents(accountID: UUID, limit: Int) async throws -> [AuditEventRecord]

    func createGroup(accountID: UUID, name: String, by actor: ActorRecord, now: Date) async throws -> GroupRecord
    func listGroups(accountID: UUID, after cursor: String?, limit: Int) async throws -> [GroupRecord]
    func deleteGroup(accountID: UUID, id: UUID, by actor: ActorRecord, now: Date) async throws -> Bool

    func createActor(_ record: ActorRecord, by actor: ActorRecord, now: Date) async throws -> ActorRecord
    func listActors(accountID: UUID, after cursor: String?, limit: Int) async throws -> [ActorRecord]
    func deleteActor(accountID: UUID, id: UUID, by actor: ActorRecord, now: Date) async throws -> Bool

    /// Adds `member` to `group`; false if it was a member already. Throws `.missingReference` if either
    /// is not in the account.
    func addMember(accountID: UUID, group: UUID, member: UUID, by actor: ActorRecord, now: Date) async throws -> Bool
    func removeMember(accountID: UUID, group: UUID, member: UUID, by actor: ActorRecord, now: Date) async throws -> Bool
    func members(accountID: UUID, group: UUID) async throws -> [ActorRecord]

    /// Stores a resource; `.missingReference` if its site is not in the account, `.conflict` for a taken name.
    func createResource(_ resource: ResourceRecord, by actor: ActorRecord, now: Date) async throws -> ResourceRecord
    func listResources(accountID: UUID, after cursor: String?, limit: Int) async throws -> [ResourceRecord]
    func deleteResource(accountID: UUID, id: UUID, by actor: ActorRecord, now: Date) async throws -> Bool

    /// Stores a policy; `.missingReference` if its group or resource is not in the account, `.conflict`
    /// if the group already has a policy for the resource.
    func createPolicy(_ policy: PolicyRecord, by actor: ActorRecord, now: Date) async throws -> PolicyRecord
    func listPolicies(accountID: UUID, after cursor: String?, limit: Int) async throws -> [PolicyRecord]
    func deletePolicy(accountID: UUID, id: UUID, by actor: ActorRecord, now: Date) async throws -> Bool
    /// The policies of one resource, and the groups `actor` belongs to (for explaining access).
    func policies(accountID: UUID, resource: UUID) async throws -> [PolicyRecord]
    func groupIDs(of actor: UUID) async throws -> Set<UUID>

    /// Stores a token (its hash); `.missingReference` if its actor or site is not in the account.
    func createToken(_ token: TokenRecord, by actor: ActorRecord, now: Date) async throws -> TokenRecord
    func listTokens(accountID: UUID, after cursor: String?, limit: Int) async throws -> [TokenRecord]
    func deleteToken(accountID: UUID, id: UUID, by actor: ActorRecord, now: Date) async throws -> Bool
}

/// A write the schema refused.
package enum RepositoryError: Error, Equatable {
    /// A UNIQUE constraint: the named field already has that value.
    case conflict(field: String)
    /// A referenced row does not exist.
    case missingReference
}

/// `PortalRepository` on the SQLite file of `AppDatabase`.
package struct SQLitePortalRepository: PortalRepository {
    package let database: AppDatabase

    package init(database: AppDatabase) {
        self.database = database
    }

    package func bootstrap(account name: String, slug: String, adminName: String, adminEmail: String, tokenHash: String, now: Date)
        async throws -> (account: AccountRecord, admin: ActorRecord, token: TokenRecord)
    {
        try await mapping {
            try await database.write { db in
                let account = AccountRecord(name: name, slug: slug, createdAt: now)
                try account.insert(db)
                let admin = ActorRecord(accountID: account.id, type: .admin, name: adminName, email: adminEmail, createdAt: now)
                try admin.insert(db)
                let token = TokenRecord(accountID: account.id, kind: .adminAPI, secretHash: tokenHash, expiresAt: nil,
                                        actorID: admin.id, createdAt: now)
                try token.insert(db)
                try Self.audit(db, account: account.id, actor: admin, action: "bootstrap", subject: "account", id: account.id,
                               before: nil, after: account, now: now)
                return (account, admin, token)
            }
        }
    }

    package func useToken(hash: String, now: Date, address: String?) async throws -> TokenRecord? {
        try await database.write { db in
            guard var token = try TokenRecord.filter(TokenRecord.Columns.secretHash == hash).fetchOne(db) else { return nil }
            if let expiry = token.expiresAt, expiry <= now { return nil }
            token.lastUsedAt = now
            token.lastUsedAddress = address
            try token.update(db)
            return token
        }
    }

    package func createSite(accountID: UUID, name: String, by actor: ActorRecord, now: Date) async throws -> SiteRecord {
        try await mapping {
            try await database.write { db in
                let site = SiteRecord(accountID: accountID, name: name, createdAt: now)
                try site.insert(db)
                try Self.audit(db, account: accountID, actor: actor, action: "create", subject: "site", id: site.id,
                               before: nil as SiteRecord?, after: site, now: now)
                return site
            }
        }
    }

    package func listSites(accountID: UUID, after cursor: String?, limit: Int) async throws -> [SiteRecord] {
        try await database.read { db in
            var request = SiteRecord.filter(Column("account_id") == accountID.uuidString.lowercased())
            if let cursor { request = request.filter(Column("name") > cursor) }
            return try request.order(Column("name")).limit(limit).fetchAll(db)
        }
    }

    package func deleteSite(accountID: UUID, id: UUID, by actor: ActorRecord, now: Date) async throws -> Bool {
        try await database.write { db in
            guard let site = try SiteRecord.filter(Column("id") == id.uuidString.lowercased())
                .filter(Column("account_id") == accountID.uuidString.lowercased()).fetchOne(db) else { return false }
            _ = try site.delete(db)
            try Self.audit(db, account: accountID, actor: actor, action: "delete", subject: "site", id: site.id,
                           before: site, after: nil as SiteRecord?, now: now)
            return true
        }
    }

    package func actor(id: UUID) async throws -> ActorRecord? {
        try await database.read { db in try ActorRecord.filter(Column("id") == id.uuidString.lowercased()).fetchOne(db) }
    }

    package func auditEvents(accountID: UUID, limit: Int) async throws -> [AuditEventRecord] {
        try await database.read { db in
            try AuditEventRecord.filter(Column("account_id") == accountID.uuidString.lowercased())
                .order(Column("at").desc).limit(limit).fetchAll(db)
        }
    }

    package func createGroup(accountID: UUID, name: String, by actor: ActorRecord, now: Date) async throws -> GroupRecord {
        try await mapping {
            try await database.write { db in
                let group = GroupRecord(accountID: accountID, name: name, createdAt: now)
                try group.insert(db)
                try Self.audit(db, account: accountID, actor: actor, action: "create", subject: "group", id: group.id,
                               before: nil as GroupRecord?, after: group, now: now)
                return group
            }
        }
    }

    package func listGroups(accountID: UUID, after cursor: String?, limit: Int) async throws -> [GroupRecord] {
        try await database.read { db in
            var request = GroupRecord.filter(Column("account_id") == accountID.uuidString.lowercased())
            if let cursor { request = request.filter(Column("name") > cursor) }
            return try request.order(Column("name")).limit(limit).fetchAll(db)
        }
    }

    package func deleteGroup(accountID: UUID, id: UUID, by actor: ActorRecord, now: Date) async throws -> Bool {
        try await database.write { db in
            guard let group = try GroupRecord.filter(Column("id") == id.uuidString.lowercased())
                .filter(Column("account_id") == accountID.uuidString.lowercased()).fetchOne(db) else { return false }
            _ = try group.delete(db)
            try Self.audit(db, account: accountID, actor: actor, action: "delete", subject: "group", id: group.id,
                           before: group, after: nil as GroupRecord?, now: now)
            return true
        }
    }

    package func createActor(_ record: ActorRecord, by actor: ActorRecord, now: Date) async throws -> ActorRecord {
        try await mapping {
            try await database.write { db in
                try record.insert(db)
                try Self.audit(db, account: record.accountID, actor: actor, action: "create", subject: "actor", id: record.id,
                               before: nil as ActorRecord?, after: record, now: now)
                return record
            }
        }
    }

    package func listActors(accountID: UUID, after cursor: String?, limit: Int) async throws -> [ActorRecord] {
        try await database.read { db in
            var request = ActorRecord.filter(Column("account_id") == accountID.uuidString.lowercased())
            if let cursor { request = request.filter(Column("id") > cursor) }
            return try request.order(Column("id")).limit(limit).fetchAll(db)
        }
    }

    package func deleteActor(accountID: UUID, id: UUID, by actor: ActorRecord, now: Date) async throws -> Bool {
        try await database.write { db in
            guard let record = try ActorRecord.filter(Column("id") == id.uuidString.lowercased())
                .filter(Column("account_id") == accountID.uuidString.lowercased()).fetchOne(db) else { return false }
            _ = try record.delete(db)
            try Self.audit(db, account: accountID, actor: actor, action: "delete", subject: "actor", id: record.id,
                           before: record, after: nil as ActorRecord?, now: now)
            return true
        }
    }

    package func addMember(accountID: UUID, group: UUID, member: UUID, by actor: ActorRecord, now: Date) async throws -> Bool {
        try await database.write { db in
            let account = accountID.uuidString.lowercased()
            guard try GroupRecord.filter(Column("id") == group.uuidString.lowercased()).filter(Column("account_id") == account).fetchCount(db) == 1,
                  try ActorRecord.filter(Column("id") == member.uuidString.lowercased()).filter(Column("account_id") == account).fetchCount(db) == 1
            else { throw RepositoryError.missingReference }
            let membership = MembershipRecord(accountID: accountID, actorID: member, groupID: group)
            if try membership.exists(db) { return false }
            try membership.insert(db)
            try Self.audit(db, account: accountID, actor: actor, action: "add_member", subject: "group", id: group,
                           before: nil as MembershipRecord?, after: membership, now: now)
            return true
        }
    }

    package func removeMember(accountID: UUID, group: UUID, member: UUID, by actor: ActorRecord, now: Date) async throws -> Bool {
        try await database.write { db in
            let membership = MembershipRecord(accountID: accountID, actorID: member, groupID: group)
            guard try membership.delete(db) else { return false }
            try Self.audit(db, account: accountID, actor: actor, action: "remove_member", subject: "group", id: group,
                           before: membership, after: nil as MembershipRecord?, now: now)
            return true
        }
    }

    package func members(accountID: UUID, group: UUID) async throws -> [ActorRecord] {
        try await database.read { db in
            try ActorRecord.fetchAll(db, sql: """
                SELECT actor.* FROM actor JOIN membership ON membership.actor_id = actor.id
                WHERE membership.group_id = ? AND actor.account_id = ? ORDER BY actor.name
                """, arguments: [group.uuidString.lowercased(), accountID.uuidString.lowercased()])
        }
    }

    package func createResource(_ resource: ResourceRecord, by actor: ActorRecord, now: Date) async throws -> ResourceRecord {
        try await mapping {
            try await database.write { db in
                guard try SiteRecord.filter(Column("id") == resource.siteID.uuidString.lowercased())
                    .filter(Column("account_id") == resource.accountID.uuidString.lowercased()).fetchCount(db) == 1
                else { throw RepositoryError.missingReference }
                try resource.insert(db)
                try Self.audit(db, account: resource.accountID, actor: actor, action: "create", subject: "resource", id: resource.id,
                               before: nil as ResourceRecord?, after: resource, now: now)
                return resource
            }
        }
    }

    package func listResources(accountID: UUID, after cursor: String?, limit: Int) async throws -> [ResourceRecord] {
        try await database.read { db in
            var request = ResourceRecord.filter(Column("account_id") == accountID.uuidString.lowercased())
            if let cursor { request = request.filter(Column("name") > cursor) }
            return try request.order(Column("name")).limit(limit).fetchAll(db)
        }
    }

    package func deleteResource(accountID: UUID, id: UUID, by actor: ActorRecord, now: Date) async throws -> Bool {
        try await database.write { db in
            guard let resource = try ResourceRecord.filter(Column("id") == id.uuidString.lowercased())
                .filter(Column("account_id") == accountID.uuidString.lowercased()).fetchOne(db) else { return false }
            _ = try resource.delete(db)
            try Self.audit(db, account: accountID, actor: actor, action: "delete", subject: "resource", id: resource.id,
                           before: resource, after: nil as ResourceRecord?, now: now)
            return true
        }
    }

    package func createPolicy(_ policy: PolicyRecord, by actor: ActorRecord, now: Date) async throws -> PolicyRecord {
        try await mapping {
            try await database.write { db in
                let account = policy.accountID.uuidString.lowercased()
                guard try GroupRecord.filter(Column("id") == policy.groupID.uuidString.lowercased()).filter(Column("account_id") == account).fetchCount(db) == 1,
                      try ResourceRecord.filter(Column("id") == policy.resourceID.uuidString.lowercased()).filter(Column("account_id") == account).fetchCount(db) == 1
                else { throw RepositoryError.missingReference }
                try policy.insert(db)
                try Self.audit(db, account: policy.accountID, actor: actor, action: "create", subject: "policy", id: policy.id,
                               before: nil as PolicyRecord?, after: policy, now: now)
                return policy
            }
        }
    }

    package func listPolicies(accountID: UUID, after cursor: String?, limit: Int) async throws -> [PolicyRecord] {
        try await database.read { db in
            var request = PolicyRecord.filter(Column("account_id") == accountID.uuidString.lowercased())
            if let cursor { request = request.filter(Column("id") > cursor) }
            return try request.order(Column("id")).limit(limit).fetchAll(db)
        }
    }

    package func deletePolicy(accountID: UUID, id: UUID, by actor: ActorRecord, now: Date) async throws -> Bool {
        try await database.write { db in
            guard let policy = try PolicyRecord.filter(Column("id") == id.uuidString.lowercased())
                .filter(Column("account_id") == accountID.uuidString.lowercased()).fetchOne(db) else { return false }
            _ = try policy.delete(db)
            try Self.audit(db, account: accountID, actor: actor, action: "delete", subject: "policy", id: policy.id,
                           before: policy, after: nil as PolicyRecord?, now: now)
            return true
        }
    }

    package func policies(accountID: UUID, resource: UUID) async throws -> [PolicyRecord] {
        try await database.read { db in
            try PolicyRecord.filter(Column("account_id") == accountID.uuidString.lowercased())
                .filter(Column("resource_id") == resource.uuidString.lowercased()).fetchAll(db)
        }
    }

    package func groupIDs(of actor: UUID) async throws -> Set<UUID> {
        try await database.read { db in
            Set(try MembershipRecord.filter(Column("actor_id") == actor.uuidString.lowercased()).fetchAll(db).map(\.groupID))
        }
    }

    package func createToken(_ token: TokenRecord, by actor: ActorRecord, now: Date) async throws -> TokenRecord {
        try await mapping {
            try await database.write { db in
                let account = token.accountID?.uuidString.lowercased() ?? ""
                if let owner = token.actorID,
                   try ActorRecord.filter(Column("id") == owner.uuidString.lowercased()).filter(Column("account_id") == account).fetchCount(db) == 0 {
                    throw RepositoryError.missingReference
                }
                if let site = token.siteID,
                   try SiteRecord.filter(Column("id") == site.uuidString.lowercased()).filter(Column("account_id") == account).fetchCount(db) == 0 {
                    throw RepositoryError.missingReference
                }
                try token.insert(db)
                var logged = token
                logged.secretHash = String(repeating: "0", count: 64)  // the audit trail never holds a hash either
                try Self.audit(db, account: token.accountID ?? actor.accountID, actor: actor, action: "create", subject: "token",
                               id: token.id, before: nil as TokenRecord?, after: logged, now: now)
                return token
            }
        }
    }

    package func listTokens(accountID: UUID, after cursor: String?, limit: Int) async throws -> [TokenRecord] {
        try await database.read { db in
            var request = TokenRecord.filter(Column("account_id") == accountID.uuidString.lowercased())
            if let cursor { request = request.filter(Column("id") > cursor) }
            return try request.order(Column("id")).limit(limit).fetchAll(db)
        }
    }

    package func deleteToken(accountID: UUID, id: UUID, by actor: ActorRecord, now: Date) async throws -> Bool {
        try await database.write { db in
            guard var token = try TokenRecord.filter(Column("id") == id.uuidString.lowercased())
                .filter(Column("account_id") == accountID.uuidString.lowercased()).fetchOne(db) else { return false }
            _ = try token.delete(db)
            token.secretHash = String(repeating: "0", count: 64)
            try Self.audit(db, account: accountID, actor: actor, action: "revoke", subject: "token", id: token.id,
                           before: token, after: nil as TokenRecord?, now: now)
            return true
        }
    }

    /// Every change leaves an audit event with before and after values, in the same transaction.
    private static func audit<Subject: Encodable>(
        _ db: Database, account: UUID, actor: ActorRecord, action: String, subject: String, id: UUID,
        before: Subject?, after: Subject?, now: Date
    ) throws {
        let encoder = JSONEncoder()
        encoder.outputFormatting = [.sortedKeys]
        encoder.dateEncodingStrategy = .iso8601
        func json(_ value: Subject?) throws -> String? {
            try value.map { String(decoding: try encoder.encode($0), as: UTF8.self) }
        }
        try AuditEventRecord(accountID: account, actorID: actor.id, actorName: actor.name, action: action, subjectType: subject,
                             subjectID: id.uuidString.lowercased(), before: json(before), after: json(after), at: now).insert(db)
    }

    /// Turns the schema's refusals into repository errors the API maps to statuses.
    private func mapping<T>(_ body: () async throws -> T) async throws -> T {
        do {
            return try await body()
        } catch let error as DatabaseError where error.extendedResultCode == .SQLITE_CONSTRAINT_UNIQUE {
            // "UNIQUE constraint failed: site.account_id, site.name" → name
            let field = error.message?.split(separator: ".").last.map(String.init) ?? "name"
            throw RepositoryError.conflict(field: field)
        } catch let error as DatabaseError where error.extendedResultCode == .SQLITE_CONSTRAINT_FOREIGNKEY {
            throw RepositoryError.missingReference
        }
    }
}
