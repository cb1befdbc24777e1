package import Foundation
import GRDB
import Addresses
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

    package func deleteAuthorizations(accountID: AccountID, _ rows: [AuthorizationRecord]) async throws -> Int {
        guard !rows.isEmpty else { return 0 }
        // The IDs as one JSON array (any number of them; SQLite limits bound parameters), and only the
        // deleted IDs read back: the rows themselves are the caller's.
        let ids = String(decoding: try JSONEncoder().encode(rows.map(\.id.description)), as: UTF8.self)
        let deleted = try await database.write { db in
            Set(try String.fetchAll(db, sql: """
                DELETE FROM authorization WHERE account_id = ? AND id IN (SELECT value FROM json_each(?)) RETURNING id
                """, arguments: [accountID, ids]))
        }
        for row in rows where deleted.contains(row.id.description) { record(.authorization(before: row, after: nil), account: accountID) }
        return deleted.count
    }
}

/// What a client or gateway says of itself when it joins, with what its token says of its owner.
package struct DeviceRegistration: Sendable {
    package var accountID: AccountID
    package var kind: DeviceRecord.Kind
    package var externalID: String
    package var name: String
    package var publicKey: String
    package var version: String
    /// The client's actor (a client token's owner), or the gateway's site (a gateway token's owner).
    package var actorID: ActorID?
    package var siteID: SiteID?
    package var tokenID: TokenID
    /// The address it connected from.
    package var address: String?

    package init(accountID: AccountID, kind: DeviceRecord.Kind, externalID: String, name: String, publicKey: String, version: String,
                 actorID: ActorID?, siteID: SiteID?, tokenID: TokenID, address: String?) {
        self.accountID = accountID
        self.kind = kind
        self.externalID = externalID
        self.name = name
        self.publicKey = publicKey
        self.version = version
        self.actorID = actorID
        self.siteID = siteID
        self.tokenID = tokenID
        self.address = address
    }
}

package enum DeviceRegistrationError: Error, Equatable, CustomStringConvertible {
    /// The account's tunnel range has no free address left.
    case rangeFull(String)

    package var description: String {
        switch self {
        case let .rangeFull(range): "no free tunnel address is left in \(range)"
        }
    }
}

extension SQLitePortalRepository {
    package func registerDevice(_ registration: DeviceRegistration, now: Date) async throws -> DeviceRecord {
        let rows: (before: DeviceRecord?, after: DeviceRecord) = try await mapping {
            try await database.write { db in
                let existing = try DeviceRecord.filter(Column("account_id") == registration.accountID)
                    .filter(Column("kind") == registration.kind.rawValue)
                    .filter(Column("external_id") == registration.externalID).fetchOne(db)
                if let existing {
                    var device = existing
                    device.name = registration.name
                    device.publicKey = registration.publicKey
                    device.version = registration.version
                    device.actorID = registration.actorID
                    device.siteID = registration.siteID
                    device.tokenID = registration.tokenID
                    device.lastSeenAt = now
                    device.lastSeenAddress = registration.address
                    if device != existing { try device.update(db) }
                    return (existing, device)
                }
                guard let account = try AccountRecord.filter(Column("id") == registration.accountID).fetchOne(db) else {
                    throw RepositoryError.missingReference
                }
                var taken: (v4: Set<SocketAddress.IP>, v6: Set<SocketAddress.IP>) = ([], [])
                let rows = try Row.fetchCursor(db, sql: "SELECT tunnel_ipv4, tunnel_ipv6 FROM device WHERE account_id = ?",
                                               arguments: [registration.accountID])
                while let row = try rows.next() {
                    if let ip = try? SocketAddress(row[0] as String, port: 0).ip { taken.v4.insert(ip) }
                    if let ip = try? SocketAddress(row[1] as String, port: 0).ip { taken.v6.insert(ip) }
                }
                var generator = SystemRandomNumberGenerator()
                func pick(_ range: String, _ taken: Set<SocketAddress.IP>) throws -> String {
                    guard let parsed = try? AddressRange(range),
                          let ip = TunnelAddresses.pick(in: parsed, taken: taken, using: &generator)
                    else { throw DeviceRegistrationError.rangeFull(range) }
                    return SocketAddress(ip: ip, port: 0).address
                }
                let device = DeviceRecord(
                    accountID: registration.accountID, kind: registration.kind, externalID: registration.externalID, name: registration.name,
                    publicKey: registration.publicKey, tunnelIPv4: try pick(account.tunnelIPv4Range, taken.v4),
                    tunnelIPv6: try pick(account.tunnelIPv6Range, taken.v6), actorID: registration.actorID, siteID: registration.siteID,
                    version: registration.version, lastSeenAt: now, lastSeenAddress: registration.address, tokenID: registration.tokenID,
                    createdAt: now)
                try device.insert(db)
                try Self.audit(db, account: registration.accountID, actor: nil, action: "create", subject: "device", id: device.id,
                               before: nil as DeviceRecord?, after: device, now: now)
                return (nil, device)
            }
        }
        if rows.before != rows.after { record(DeviceRecord.self, before: rows.before, after: rows.after, account: registration.accountID) }
        return rows.after
    }

    package func deleteDevice(accountID: AccountID, kind: DeviceRecord.Kind, id: DeviceID, by actor: ActorRecord, now: Date) async throws -> Bool {
        guard let device = try await find(DeviceRecord.self, accountID: accountID, id: id), device.kind == kind else { return false }
        return try await remove(DeviceRecord.self, accountID: accountID, id: id, subject: "device", by: actor, now: now)
    }
}
