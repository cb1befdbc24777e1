package import Foundation
import GRDB
package import Identifiers

// Policies, and what the evaluator reads.
extension SQLitePortalRepository {
    package func createPolicy(_ policy: PolicyRecord, by actor: ActorRecord, now: Date) async throws -> PolicyRecord {
        try await insert(policy, account: policy.accountID, subject: "policy", by: actor, now: now, check: { db in
            try Self.requireInAccount(db, GroupRecord.self, policy.groupID, account: policy.accountID)
            try Self.requireInAccount(db, ResourceRecord.self, policy.resourceID, account: policy.accountID)
        })
    }

    package func listPolicies(accountID: AccountID, after cursor: String?, limit: Int) async throws -> [PolicyRecord] {
        try await page(PolicyRecord.self, accountID: accountID, orderedBy: "id", after: cursor, limit: limit)
    }

    package func deletePolicy(accountID: AccountID, id: PolicyID, by actor: ActorRecord, now: Date) async throws -> Bool {
        try await remove(PolicyRecord.self, accountID: accountID, id: id, subject: "policy", by: actor, now: now)
    }

    package func updatePolicy(accountID: AccountID, id: PolicyID, by actor: ActorRecord, now: Date,
                              _ change: @escaping @Sendable (inout PolicyRecord) throws -> Void) async throws -> PolicyRecord? {
        try await update(PolicyRecord.self, accountID: accountID, id: id, subject: "policy", by: actor, now: now, change, check: { db, policy in
            try Self.requireInAccount(db, GroupRecord.self, policy.groupID, account: accountID)
            try Self.requireInAccount(db, ResourceRecord.self, policy.resourceID, account: accountID)
        })
    }

    package func evaluationInputs(accountID: AccountID, actor: ActorID, resource: ResourceID) async throws -> EvaluationInputs {
        try await database.read { db in
            let policies = try PolicyRecord.filter(Column("account_id") == accountID)
                .filter(Column("resource_id") == resource).fetchAll(db)
            var names: [GroupID: String] = [:]
            var everyone: GroupID?
            for group in try GroupRecord.fetchAll(db, sql: """
                SELECT * FROM actor_group WHERE account_id = ? AND name = ?
                UNION
                SELECT * FROM actor_group WHERE account_id = ? AND id IN (SELECT group_id FROM policy WHERE resource_id = ? AND account_id = ?)
                """, arguments: [accountID, GroupRecord.everyone, accountID, resource, accountID]) {
                names[group.id] = group.name
                if group.isEveryone { everyone = group.id }
            }
            let memberOf = Set(try MembershipRecord.filter(Column("actor_id") == actor)
                .filter(Column("account_id") == accountID).fetchAll(db).map(\.groupID))
            return EvaluationInputs(policies: policies, groupNames: names, memberOf: memberOf, everyone: everyone)
        }
    }

    package func accessData(accountID: AccountID) async throws -> AccessData {
        try await database.read { db in
            var data = AccessData()
            for resource in try ResourceRecord.filter(Column("account_id") == accountID).fetchAll(db) { data.resources[resource.id] = resource }
            data.policies = try PolicyRecord.filter(Column("account_id") == accountID).fetchAll(db)
            for group in try GroupRecord.filter(Column("account_id") == accountID).fetchAll(db) { data.groups[group.id] = group }
            let devices = try DeviceRecord.filter(Column("account_id") == accountID).fetchAll(db)
            data.clients = devices.filter { $0.kind == .client }
            data.gateways = devices.filter { $0.kind == .gateway }
            for actor in try ActorRecord.filter(Column("account_id") == accountID).fetchAll(db) { data.actors[actor.id] = actor }
            for token in try TokenRecord.filter(Column("account_id") == accountID).fetchAll(db) { data.tokens[token.id] = token }
            for membership in try MembershipRecord.filter(Column("account_id") == accountID).fetchAll(db) {
                data.memberships[membership.actorID, default: []].insert(membership.groupID)
            }
            data.authorizations = try AuthorizationRecord.filter(Column("account_id") == accountID).fetchAll(db)
            return data
        }
    }
}
