package import Foundation
package import GRDB
package import Identifiers

/// A connected client or gateway.
package struct DeviceRecord: GatehouseRecord, Equatable {
    package static let databaseTableName = "device"

    package enum Kind: String, Codable, Sendable, CaseIterable {
        case client, gateway
    }

    package var id: DeviceID
    package var accountID: AccountID
    package var kind: Kind
    package var externalID: String
    package var name: String
    package var publicKey: String
    package var tunnelIPv4: String
    package var tunnelIPv6: String
    package var actorID: ActorID?
    package var siteID: SiteID?
    package var version: String?
    package var lastSeenAt: Date?
    package var lastSeenAddress: String?
    package var verified: Bool
    package var tokenID: TokenID?
    package var createdAt: Date

    package enum CodingKeys: String, CodingKey {
        case id, kind, name, version, verified
        case accountID = "account_id"
        case externalID = "external_id"
        case publicKey = "public_key"
        case tunnelIPv4 = "tunnel_ipv4"
        case tunnelIPv6 = "tunnel_ipv6"
        case actorID = "actor_id"
        case siteID = "site_id"
        case lastSeenAt = "last_seen_at"
        case lastSeenAddress = "last_seen_address"
        case tokenID = "token_id"
        case createdAt = "created_at"
    }

    package init(id: DeviceID = DeviceID(), accountID: AccountID, kind: Kind, externalID: String, name: String, publicKey: String,
                 tunnelIPv4: String, tunnelIPv6: String, actorID: ActorID? = nil, siteID: SiteID? = nil, version: String? = nil,
                 lastSeenAt: Date? = nil, lastSeenAddress: String? = nil, verified: Bool = false, tokenID: TokenID? = nil, createdAt: Date) {
        self.id = id
        self.accountID = accountID
        self.kind = kind
        self.externalID = externalID
        self.name = name
        self.publicKey = publicKey
        self.tunnelIPv4 = tunnelIPv4
        self.tunnelIPv6 = tunnelIPv6
        self.actorID = actorID
        self.siteID = siteID
        self.version = version
        self.lastSeenAt = lastSeenAt
        self.lastSeenAddress = lastSeenAddress
        self.verified = verified
        self.tokenID = tokenID
        self.createdAt = createdAt
    }
}

extension DeviceRecord: Identified {}
