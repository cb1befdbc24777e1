package import Foundation
import GRDB
package import Identifiers

// Actors, groups and memberships.
extension SQLitePortalRepository {
    package func actor(accountID: AccountID, id: ActorID) async throws -> ActorRecord? {
        try await database.read { db in
            try ActorRecord.filter(Column("id") == id)
                .filter(Column("account_id") == accountID).fetchOne(db)
        }
    }

    package func createGroup(accountID: AccountID, name: String, by actor: ActorRecord, now: Date) async throws -> GroupRecord {
        try await insert(GroupRecord(accountID: accountID, name: name, createdAt: now), account: accountID, subject: "group", by: actor, now: now)
    }

    package func listGroups(accountID: AccountID, after cursor: String?, limit: Int) async throws -> [GroupRecord] {
        try await page(GroupRecord.self, accountID: accountID, orderedBy: "name", after: cursor, limit: limit)
    }

    package func deleteGroup(accountID: AccountID, id: GroupID, by actor: ActorRecord, now: Date) async throws -> Bool {
        try await remove(GroupRecord.self, accountID: accountID, id: id, subject: "group", by: actor, now: now)
    }

    package func createActor(_ record: ActorRecord, by actor: ActorRecord, now: Date) async throws -> ActorRecord {
        try await insert(record, account: record.accountID, subject: "actor", by: actor, now: now)
    }

    package func listActors(accountID: AccountID, after cursor: String?, limit: Int) async throws -> [ActorRecord] {
        try await page(ActorRecord.self, accountID: accountID, orderedBy: "id", after: cursor, limit: limit)
    }

    package func deleteActor(accountID: AccountID, id: ActorID, by actor: ActorRecord, now: Date) async throws -> Bool {
        try await remove(ActorRecord.self, accountID: accountID, id: id, subject: "actor", by: actor, now: now)
    }

    package func addMember(accountID: AccountID, group: GroupID, member: ActorID, by actor: ActorRecord, now: Date) async throws -> Bool {
        let added = try await database.write { db in
            guard try GroupRecord.filter(Column("id") == group).filter(Column("account_id") == accountID).fetchCount(db) == 1,
                  try ActorRecord.filter(Column("id") == member).filter(Column("account_id") == accountID).fetchCount(db) == 1
            else { throw RepositoryError.missingReference }
            let membership = MembershipRecord(accountID: accountID, actorID: member, groupID: group)
            if try membership.exists(db) { return false }
            try membership.insert(db)
            try Self.audit(db, account: accountID, actor: actor, action: "add_member", subject: "group", id: group,
                           before: nil as MembershipRecord?, after: membership, now: now)
            return true
        }
        if added { record(.membership(actor: member, group: group, added: true), account: accountID) }
        return added
    }

    package func removeMember(accountID: AccountID, group: GroupID, member: ActorID, by actor: ActorRecord, now: Date) async throws -> Bool {
        let removed = try await database.write { db in
            // Scoped by account: the membership's key alone is (actor, group), whoever's they are.
            let membership = MembershipRecord(accountID: accountID, actorID: member, groupID: group)
            let deleted = try MembershipRecord.filter(Column("account_id") == accountID)
                .filter(Column("actor_id") == member)
                .filter(Column("group_id") == group).deleteAll(db)
            guard deleted == 1 else { return false }
            try Self.audit(db, account: accountID, actor: actor, action: "remove_member", subject: "group", id: group,
                           before: membership, after: nil as MembershipRecord?, now: now)
            return true
        }
        if removed { record(.membership(actor: member, group: group, added: false), account: accountID) }
        return removed
    }

    package func members(accountID: AccountID, group: GroupID) async throws -> [ActorRecord]? {
        try await database.read { db in
            guard try GroupRecord.filter(Column("id") == group).filter(Column("account_id") == accountID).fetchCount(db) == 1
            else { return nil }
            return try ActorRecord.fetchAll(db, sql: """
                SELECT actor.* FROM actor JOIN membership ON membership.actor_id = actor.id
                WHERE membership.group_id = ? AND membership.account_id = ? AND actor.account_id = ? ORDER BY actor.name
                """, arguments: [group, accountID, accountID])
        }
    }

    package func updateActor(accountID: AccountID, id: ActorID, by actor: ActorRecord, now: Date,
                             _ change: @escaping @Sendable (inout ActorRecord) throws -> Void) async throws -> ActorRecord? {
        try await update(ActorRecord.self, accountID: accountID, id: id, subject: "actor", by: actor, now: now, change)
    }

    package func updateGroup(accountID: AccountID, id: GroupID, by actor: ActorRecord, now: Date,
                             _ change: @escaping @Sendable (inout GroupRecord) throws -> Void) async throws -> GroupRecord? {
        try await update(GroupRecord.self, accountID: accountID, id: id, subject: "group", by: actor, now: now, change)
    }
}
