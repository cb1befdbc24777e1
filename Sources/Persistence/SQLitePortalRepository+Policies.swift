package import Foundation
import GRDB

// Policies, and what the evaluator reads.
extension SQLitePortalRepository {
    package func createPolicy(_ policy: PolicyRecord, by actor: ActorRecord, now: Date) async throws -> PolicyRecord {
        try await insert(policy, account: policy.accountID, subject: "policy", by: actor, now: now, check: { db in
            try Self.requireInAccount(db, GroupRecord.self, policy.groupID, account: policy.accountID)
            try Self.requireInAccount(db, ResourceRecord.self, policy.resourceID, account: policy.accountID)
        })
    }

    package func listPolicies(accountID: UUID, after cursor: String?, limit: Int) async throws -> [PolicyRecord] {
        try await page(PolicyRecord.self, accountID: accountID, orderedBy: "id", after: cursor, limit: limit)
    }

    package func deletePolicy(accountID: UUID, id: UUID, by actor: ActorRecord, now: Date) async throws -> Bool {
        try await remove(PolicyRecord.self, accountID: accountID, id: id, subject: "policy", by: actor, now: now)
    }

    package func updatePolicy(accountID: UUID, id: UUID, by actor: ActorRecord, now: Date,
                              _ change: @escaping @Sendable (inout PolicyRecord) throws -> Void) async throws -> PolicyRecord? {
        try await update(PolicyRecord.self, accountID: accountID, id: id, subject: "policy", by: actor, now: now, change, check: { db, policy in
            try Self.requireInAccount(db, GroupRecord.self, policy.groupID, account: accountID)
            try Self.requireInAccount(db, ResourceRecord.self, policy.resourceID, account: accountID)
        })
    }

    package func evaluationInputs(accountID: UUID, actor: UUID, resource: UUID) async throws -> EvaluationInputs {
        try await database.read { db in
            let account = accountID.uuidString.lowercased()
            let policies = try PolicyRecord.filter(Column("account_id") == account)
                .filter(Column("resource_id") == resource.uuidString.lowercased()).fetchAll(db)
            var names: [UUID: String] = [:]
            var everyone: UUID?
            for group in try GroupRecord.fetchAll(db, sql: """
                SELECT * FROM actor_group WHERE account_id = ? AND name = ?
                UNION
                SELECT * FROM actor_group WHERE account_id = ? AND id IN (SELECT group_id FROM policy WHERE resource_id = ? AND account_id = ?)
                """, arguments: [account, GroupRecord.everyone, account, resource.uuidString.lowercased(), account]) {
                names[group.id] = group.name
                if group.isEveryone { everyone = group.id }
            }
            let memberOf = Set(try MembershipRecord.filter(Column("actor_id") == actor.uuidString.lowercased())
                .filter(Column("account_id") == account).fetchAll(db).map(\.groupID))
            return EvaluationInputs(policies: policies, groupNames: names, memberOf: memberOf, everyone: everyone)
        }
    }

    package func accessData(accountID: UUID) async throws -> AccessData {
        try await database.read { db in
            let account = accountID.uuidString.lowercased()
            var data = AccessData()
            for resource in try ResourceRecord.filter(Column("account_id") == account).fetchAll(db) { data.resources[resource.id] = resource }
            data.policies = try PolicyRecord.filter(Column("account_id") == account).fetchAll(db)
            for group in try GroupRecord.filter(Column("account_id") == account).fetchAll(db) { data.groups[group.id] = group }
            let devices = try DeviceRecord.filter(Column("account_id") == account).fetchAll(db)
            data.clients = devices.filter { $0.kind == .client }
            data.gateways = devices.filter { $0.kind == .gateway }
            for actor in try ActorRecord.fetchAll(db, sql: """
                SELECT * FROM actor WHERE account_id = ? AND id IN (SELECT actor_id FROM device WHERE account_id = ? AND kind = 'client')
                """, arguments: [account, account]) { data.actors[actor.id] = actor }
            for token in try TokenRecord.fetchAll(db, sql: """
                SELECT * FROM token WHERE account_id = ? AND id IN (SELECT token_id FROM device WHERE account_id = ?)
                """, arguments: [account, account]) { data.tokens[token.id] = token }
            for membership in try MembershipRecord.fetchAll(db, sql: """
                SELECT * FROM membership WHERE account_id = ?
                  AND actor_id IN (SELECT actor_id FROM device WHERE account_id = ? AND kind = 'client')
                """, arguments: [account, account]) { data.memberships[membership.actorID, default: []].insert(membership.groupID) }
            data.authorizations = try AuthorizationRecord.filter(Column("account_id") == account).fetchAll(db)
            return data
        }
    }
}
