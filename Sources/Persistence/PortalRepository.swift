package import Foundation
import GRDB
package import Identifiers

/// What the portal asks of its storage. SQLite implements it now; a PostgreSQL implementation can
/// follow without touching the callers. Every write is one transaction.
package protocol PortalRepository: Sendable {
    /// Creates the first account, its first admin and an admin API token whose secret hashes to
    /// `tokenHash`, in one transaction. Fails with `.conflict` if the account slug exists.
    func bootstrap(account: String, slug: String, adminName: String, adminEmail: String, tokenHash: String, now: Date) async throws
        -> (account: AccountRecord, admin: ActorRecord, token: TokenRecord)

    /// The unexpired token with this secret hash. Its use (time and address) is recorded at most once
    /// a minute, so that reads stay reads.
    func useToken(hash: String, now: Date, address: String?) async throws -> TokenRecord?

    func createSite(accountID: AccountID, name: String, by actor: ActorRecord, now: Date) async throws -> SiteRecord
    /// Sites in name order, after `cursor` (a name), at most `limit`.
    func listSites(accountID: AccountID, after cursor: String?, limit: Int) async throws -> [SiteRecord]
    /// Deletes a site (and, by cascade, its resources); false when there was none.
    func deleteSite(accountID: AccountID, id: SiteID, by actor: ActorRecord, now: Date) async throws -> Bool
    /// The account's actor with this ID; nil when the account has none.
    func actor(accountID: AccountID, id: ActorID) async throws -> ActorRecord?
    /// The account's row of this type with this ID; nil when the account has none.
    func find<Record: GatehouseRecord & Identified>(_ type: Record.Type, accountID: AccountID, id: Record.ID) async throws -> Record?
    /// The audit log, newest first, after `cursor` (the position of the last event seen), at most `limit`.
    func auditEvents(accountID: AccountID, after cursor: AuditCursor?, limit: Int) async throws -> [AuditEventRecord]

    func createGroup(accountID: AccountID, name: String, by actor: ActorRecord, now: Date) async throws -> GroupRecord
    func listGroups(accountID: AccountID, after cursor: String?, limit: Int) async throws -> [GroupRecord]
    func deleteGroup(accountID: AccountID, id: GroupID, by actor: ActorRecord, now: Date) async throws -> Bool

    func createActor(_ record: ActorRecord, by actor: ActorRecord, now: Date) async throws -> ActorRecord
    func listActors(accountID: AccountID, after cursor: String?, limit: Int) async throws -> [ActorRecord]
    func deleteActor(accountID: AccountID, id: ActorID, by actor: ActorRecord, now: Date) async throws -> Bool

    /// Adds `member` to `group`; false if it was a member already. Throws `.missingReference` if either
    /// is not in the account.
    func addMember(accountID: AccountID, group: GroupID, member: ActorID, by actor: ActorRecord, now: Date) async throws -> Bool
    func removeMember(accountID: AccountID, group: GroupID, member: ActorID, by actor: ActorRecord, now: Date) async throws -> Bool
    /// The group's members; nil when the account has no such group.
    func members(accountID: AccountID, group: GroupID) async throws -> [ActorRecord]?

    /// Stores a resource; `.missingReference` if its site is not in the account, `.conflict` for a taken name.
    func createResource(_ resource: ResourceRecord, by actor: ActorRecord, now: Date) async throws -> ResourceRecord
    func listResources(accountID: AccountID, after cursor: String?, limit: Int) async throws -> [ResourceRecord]
    func deleteResource(accountID: AccountID, id: ResourceID, by actor: ActorRecord, now: Date) async throws -> Bool

    /// Stores a policy; `.missingReference` if its group or resource is not in the account, `.conflict`
    /// if the group already has a policy for the resource.
    func createPolicy(_ policy: PolicyRecord, by actor: ActorRecord, now: Date) async throws -> PolicyRecord
    func listPolicies(accountID: AccountID, after cursor: String?, limit: Int) async throws -> [PolicyRecord]
    func deletePolicy(accountID: AccountID, id: PolicyID, by actor: ActorRecord, now: Date) async throws -> Bool

    /// Stores a token (its hash); `.missingReference` if its actor or site is not in the account.
    func createToken(_ token: TokenRecord, by actor: ActorRecord, now: Date) async throws -> TokenRecord
    func listTokens(accountID: AccountID, after cursor: String?, limit: Int) async throws -> [TokenRecord]
    /// Relay tokens belong to the installation, not to an account: made, listed and revoked by the
    /// operator (`gatehouse portal relay-token`), never through the admin API.
    func createRelayToken(secretHash: String, expiresAt: Date?, now: Date) async throws -> TokenRecord
    func listRelayTokens() async throws -> [TokenRecord]
    func deleteRelayToken(id: TokenID) async throws -> Bool
    func deleteToken(accountID: AccountID, id: TokenID, by actor: ActorRecord, now: Date) async throws -> Bool

    // Updates: `change` edits the current row inside the write transaction (it may throw to refuse
    // the change, which then changes nothing); nil when the account has no such row. A change that
    // leaves the row as it was writes nothing and leaves no audit event.
    func updateActor(accountID: AccountID, id: ActorID, by actor: ActorRecord, now: Date,
                     _ change: @escaping @Sendable (inout ActorRecord) throws -> Void) async throws -> ActorRecord?
    func updateGroup(accountID: AccountID, id: GroupID, by actor: ActorRecord, now: Date,
                     _ change: @escaping @Sendable (inout GroupRecord) throws -> Void) async throws -> GroupRecord?
    func updateSite(accountID: AccountID, id: SiteID, by actor: ActorRecord, now: Date,
                    _ change: @escaping @Sendable (inout SiteRecord) throws -> Void) async throws -> SiteRecord?
    func updateResource(accountID: AccountID, id: ResourceID, by actor: ActorRecord, now: Date,
                        _ change: @escaping @Sendable (inout ResourceRecord) throws -> Void) async throws -> ResourceRecord?
    func updatePolicy(accountID: AccountID, id: PolicyID, by actor: ActorRecord, now: Date,
                      _ change: @escaping @Sendable (inout PolicyRecord) throws -> Void) async throws -> PolicyRecord?

    func account(id: AccountID) async throws -> AccountRecord?
    /// Every account of the installation.
    func accountIDs() async throws -> [AccountID]
    func updateAccount(id: AccountID, by actor: ActorRecord, now: Date,
                       _ change: @escaping @Sendable (inout AccountRecord) throws -> Void) async throws -> AccountRecord?

    /// Stores a device (the realtime API does when a client or gateway joins); `by` is nil for a
    /// device acting for itself.
    func createDevice(_ device: DeviceRecord, by actor: ActorRecord?, now: Date) async throws -> DeviceRecord
    func listDevices(accountID: AccountID, kind: DeviceRecord.Kind, after cursor: String?, limit: Int) async throws -> [DeviceRecord]
    func updateDevice(accountID: AccountID, id: DeviceID, by actor: ActorRecord?, now: Date,
                      _ change: @escaping @Sendable (inout DeviceRecord) throws -> Void) async throws -> DeviceRecord?

    /// A device that joined the realtime API: the one with its external ID, brought up to date (name,
    /// key, version, owner, token, last seen), or a new one with tunnel addresses from the account's
    /// ranges. A device keeps its addresses on every reconnect.
    func registerDevice(_ registration: DeviceRegistration, now: Date) async throws -> DeviceRecord
    /// Removes a device and its authorisations (`gatehouse admin client delete`); false when there was none.
    func deleteDevice(accountID: AccountID, kind: DeviceRecord.Kind, id: DeviceID, by actor: ActorRecord, now: Date) async throws -> Bool

    func createAuthorization(_ authorization: AuthorizationRecord) async throws -> AuthorizationRecord
    /// Removes authorisations (revoked or expired) of the account, the rows as last read; returns how
    /// many there still were.
    func deleteAuthorizations(accountID: AccountID, _ rows: [AuthorizationRecord]) async throws -> Int

    /// Everything policy evaluation needs about an account, read in one transaction: every resource,
    /// policy, group, actor, membership, token, device and authorisation.
    func accessData(accountID: AccountID) async throws -> AccessData
    /// Whether the account was written to outside a change the evaluator recorded (see
    /// `AccessChangeRecorder`) since the last time this was asked; asking forgets it.
    func takeUnrecordedWrites(accountID: AccountID) -> Bool
    func resource(accountID: AccountID, id: ResourceID) async throws -> ResourceRecord?
    /// What evaluating one actor's access to one resource reads, in one transaction: the resource's
    /// policies, the names of their groups, the actor's groups and the account's Everyone group.
    func evaluationInputs(accountID: AccountID, actor: ActorID, resource: ResourceID) async throws -> EvaluationInputs
}

package struct EvaluationInputs: Sendable {
    package var policies: [PolicyRecord]
    package var groupNames: [GroupID: String]
    package var memberOf: Set<GroupID>
    package var everyone: GroupID?

    package init(policies: [PolicyRecord], groupNames: [GroupID: String], memberOf: Set<GroupID>, everyone: GroupID?) {
        self.policies = policies
        self.groupNames = groupNames
        self.memberOf = memberOf
        self.everyone = everyone
    }
}

/// A consistent read of what evaluating an account's clients takes: every resource, policy, group,
/// actor, token and membership, the client and gateway devices, and the authorisations held.
package struct AccessData: Sendable {
    package var resources: [ResourceID: ResourceRecord] = [:]
    package var policies: [PolicyRecord] = []
    package var groups: [GroupID: GroupRecord] = [:]
    package var clients: [DeviceRecord] = []
    package var gateways: [DeviceRecord] = []
    package var actors: [ActorID: ActorRecord] = [:]
    package var tokens: [TokenID: TokenRecord] = [:]
    /// Actor → the groups it has membership rows for (Everyone is implicit and not here).
    package var memberships: [ActorID: Set<GroupID>] = [:]
    package var authorizations: [AuthorizationRecord] = []

    package init() {}
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
    package let unrecorded = UnrecordedWrites()

    package init(database: AppDatabase) {
        self.database = database
    }

    package func takeUnrecordedWrites(accountID: AccountID) -> Bool {
        unrecorded.take(accountID)
    }

    // MARK: The shapes every table shares

    /// Applies `change` to an account's row and writes it with its audit event, in one transaction.
    func update<Record: GatehouseRecord & Identified & Equatable>(
        _ type: Record.Type, accountID: AccountID, id: Record.ID, subject: String, accountColumn: String = "account_id", by actor: ActorRecord?,
        now: Date, _ change: @escaping @Sendable (inout Record) throws -> Void,
        check: @escaping @Sendable (Database, Record) throws -> Void = { _, _ in }
    ) async throws -> Record? {
        let rows: (before: Record, after: Record)? = try await mapping {
            try await database.write { db in
                guard let before = try Record.filter(Column("id") == id)
                    .filter(Column(accountColumn) == accountID).fetchOne(db) else { return nil }
                var after = before
                try change(&after)
                guard after != before else { return (before, before) }
                try check(db, after)
                try after.update(db)
                try Self.audit(db, account: accountID, actor: actor, action: "update", subject: subject, id: id,
                               before: before, after: after, now: now)
                return (before, after)
            }
        }
        if let rows, rows.before != rows.after { record(Record.self, before: rows.before, after: rows.after, account: accountID) }
        return rows?.after
    }

    /// Inserts `record` after `check`, with its audit event, in one transaction.
    func insert<Record: GatehouseRecord & Identified>(
        _ record: Record, account: AccountID, subject: String, by actor: ActorRecord?, now: Date,
        redact: @escaping @Sendable (inout Record) -> Void = { _ in }, check: @escaping @Sendable (Database) throws -> Void = { _ in }
    ) async throws -> Record {
        let inserted = try await mapping {
            try await database.write { db in
                try check(db)
                try record.insert(db)
                var logged = record
                redact(&logged)
                try Self.audit(db, account: account, actor: actor, action: "create", subject: subject, id: record.id,
                               before: nil as Record?, after: logged, now: now)
                return record
            }
        }
        self.record(Record.self, before: nil, after: inserted, account: account)
        return inserted
    }

    /// One page of an account's rows, ordered by `column`, after `cursor`.
    func page<Record: GatehouseRecord>(
        _ type: Record.Type, accountID: AccountID, orderedBy column: String, after cursor: String?, limit: Int
    ) async throws -> [Record] {
        try await database.read { db in
            var request = Record.filter(Column("account_id") == accountID)
            if let cursor { request = request.filter(Column(column) > cursor) }
            return try request.order(Column(column)).limit(limit).fetchAll(db)
        }
    }

    /// Deletes an account's row by ID, with its audit event; false when there was none.
    func remove<Record: GatehouseRecord & Identified>(
        _ type: Record.Type, accountID: AccountID, id: Record.ID, subject: String, action: String = "delete", by actor: ActorRecord, now: Date,
        redact: @escaping @Sendable (inout Record) -> Void = { _ in }
    ) async throws -> Bool {
        let deleted: Record? = try await database.write { db in
            guard let record = try Record.filter(Column("id") == id)
                .filter(Column("account_id") == accountID).fetchOne(db) else { return nil }
            _ = try record.delete(db)
            var logged = record
            redact(&logged)
            try Self.audit(db, account: accountID, actor: actor, action: action, subject: subject, id: record.id,
                           before: logged, after: nil as Record?, now: now)
            return record
        }
        guard let deleted else { return false }
        record(Record.self, before: deleted, after: nil, account: accountID)
        return true
    }

    /// Throws `.missingReference` unless the row of `type` with `id` belongs to `account`.
    static func requireInAccount<Record: GatehouseRecord>(_ db: Database, _ type: Record.Type, _ id: some DatabaseValueConvertible, account: AccountID) throws {
        let count = try Record.filter(Column("id") == id)
            .filter(Column("account_id") == account).fetchCount(db)
        if count == 0 { throw RepositoryError.missingReference }
    }

    /// Every change leaves an audit event with before and after values, in the same transaction.
    static func audit<Subject: Encodable>(
        _ db: Database, account: AccountID, actor: ActorRecord?, action: String, subject: String, id: some CustomStringConvertible,
        before: Subject?, after: Subject?, now: Date
    ) throws {
        let encoder = JSONEncoder()
        encoder.outputFormatting = [.sortedKeys]
        encoder.dateEncodingStrategy = .iso8601
        func json(_ value: Subject?) throws -> String? {
            try value.map { String(decoding: try encoder.encode($0), as: UTF8.self) }
        }
        try AuditEventRecord(accountID: account, actorID: actor?.id, actorName: actor?.name, action: action, subjectType: subject,
                             subjectID: id.description, before: json(before), after: json(after), at: now).insert(db)
    }

    /// Turns the schema's refusals into repository errors the API maps to statuses.
    func mapping<T>(_ body: () async throws -> T) async throws -> T {
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

/// A position in the audit log: the time and ID of the last event a page showed. Its text form
/// ("<seconds since 1970>~<id>") is the opaque `cursor` of the API.
package struct AuditCursor: Sendable, Equatable {
    package var at: Date
    package var id: AuditEventID

    package init(at: Date, id: AuditEventID) {
        self.at = at
        self.id = id
    }

    package init?(_ text: String) {
        let parts = text.split(separator: "~")
        guard parts.count == 2, let seconds = Double(parts[0]), let id = AuditEventID(String(parts[1])) else { return nil }
        self.init(at: Date(timeIntervalSince1970: seconds), id: id)
    }

    package var text: String { "\(at.timeIntervalSince1970)~\(id)" }
}

