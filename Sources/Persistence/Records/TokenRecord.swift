package import Foundation
package import GRDB
package import Identifiers

package struct TokenRecord: GatehouseRecord, Equatable {
    package static let databaseTableName = "token"

    package enum Kind: String, Codable, Sendable, CaseIterable {
        case adminAPI = "admin_api"
        case client, gateway, relay
    }

    package var id: TokenID
    package var accountID: AccountID?
    package var kind: Kind
    /// SHA-256 of the secret, lower-case hex.
    package var secretHash: String
    package var expiresAt: Date?
    package var actorID: ActorID?
    package var siteID: SiteID?
    package var lastUsedAt: Date?
    package var lastUsedAddress: String?
    package var createdAt: Date

    package enum CodingKeys: String, CodingKey {
        case id, kind
        case accountID = "account_id"
        case secretHash = "secret_hash"
        case expiresAt = "expires_at"
        case actorID = "actor_id"
        case siteID = "site_id"
        case lastUsedAt = "last_used_at"
        case lastUsedAddress = "last_used_address"
        case createdAt = "created_at"
    }

    package enum Columns {
        static let secretHash = Column(CodingKeys.secretHash)
    }

    package init(id: TokenID = TokenID(), accountID: AccountID?, kind: Kind, secretHash: String, expiresAt: Date?,
                 actorID: ActorID? = nil, siteID: SiteID? = nil, createdAt: Date) {
        self.id = id
        self.accountID = accountID
        self.kind = kind
        self.secretHash = secretHash
        self.expiresAt = expiresAt
        self.actorID = actorID
        self.siteID = siteID
        self.createdAt = createdAt
    }
}

extension TokenRecord: Identified {}

extension TokenRecord {
    /// How often a token's last use is written at most.
    package static let useResolution: TimeInterval = 60

    /// Whether a use now must be written: a minute has passed since the recorded one, or the address
    /// changed. Reads otherwise stay reads.
    package func needsUseRecorded(now: Date, address: String?) -> Bool {
        lastUsedAddress != address || lastUsedAt.map { now.timeIntervalSince($0) >= Self.useResolution } ?? true
    }
}
