package import Foundation
package import GRDB

// One Codable record per table. IDs are UUIDs stored as lower-case text (readable in the sqlite3 shell
// and portable to PostgreSQL); dates are stored by GRDB as UTC text.

/// What every record shares: UUIDs as lower-case text.
package protocol GatehouseRecord: Codable, Sendable, FetchableRecord, PersistableRecord {}

/// A record with a UUID primary key.
package protocol Identified {
    var id: UUID { get }
}

extension AccountRecord: Identified {}
extension ActorRecord: Identified {}
extension GroupRecord: Identified {}
extension SiteRecord: Identified {}
extension ResourceRecord: Identified {}
extension PolicyRecord: Identified {}
extension TokenRecord: Identified {}
extension AuditEventRecord: Identified {}
extension DeviceRecord: Identified {}
extension AuthorizationRecord: Identified {}

extension GatehouseRecord {
    package static func databaseUUIDEncodingStrategy(for column: String) -> DatabaseUUIDEncodingStrategy {
        .lowercaseString
    }
}

package struct AccountRecord: GatehouseRecord, Equatable {
    package static let databaseTableName = "account"
    package var id: UUID
    package var name: String
    package var slug: String
    package var tunnelIPv4Range: String
    package var tunnelIPv6Range: String
    package var createdAt: Date

    package enum CodingKeys: String, CodingKey {
        case id, name, slug
        case tunnelIPv4Range = "tunnel_ipv4_range"
        case tunnelIPv6Range = "tunnel_ipv6_range"
        case createdAt = "created_at"
    }

    package enum Columns {
        static let slug = Column(CodingKeys.slug)
    }

    package init(id: UUID = UUID(), name: String, slug: String, tunnelIPv4Range: String = "100.64.0.0/11",
                 tunnelIPv6Range: String = "fd00:6761:7465::/48", createdAt: Date) {
        self.id = id
        self.name = name
        self.slug = slug
        self.tunnelIPv4Range = tunnelIPv4Range
        self.tunnelIPv6Range = tunnelIPv6Range
        self.createdAt = createdAt
    }
}

package struct ActorRecord: GatehouseRecord, Equatable {
    package static let databaseTableName = "actor"

    package enum Kind: String, Codable, Sendable, CaseIterable {
        case user
        case admin
        case serviceAccount = "service_account"
    }

    package var id: UUID
    package var accountID: UUID
    package var type: Kind
    package var name: String
    package var email: String?
    package var disabled: Bool
    package var createdAt: Date

    package enum CodingKeys: String, CodingKey {
        case id, type, name, email, disabled
        case accountID = "account_id"
        case createdAt = "created_at"
    }

    package init(id: UUID = UUID(), accountID: UUID, type: Kind, name: String, email: String?, disabled: Bool = false, createdAt: Date) {
        self.id = id
        self.accountID = accountID
        self.type = type
        self.name = name
        self.email = email
        self.disabled = disabled
        self.createdAt = createdAt
    }
}

package struct GroupRecord: GatehouseRecord, Equatable {
    package static let databaseTableName = "actor_group"
    /// The built-in group that implicitly contains every user and admin (not service accounts).
    package static let everyone = "Everyone"

    package var isEveryone: Bool { name == Self.everyone }
    package var id: UUID
    package var accountID: UUID
    package var name: String
    package var createdAt: Date

    package enum CodingKeys: String, CodingKey {
        case id, name
        case accountID = "account_id"
        case createdAt = "created_at"
    }

    package init(id: UUID = UUID(), accountID: UUID, name: String, createdAt: Date) {
        self.id = id
        self.accountID = accountID
        self.name = name
        self.createdAt = createdAt
    }
}

package struct MembershipRecord: GatehouseRecord, Hashable {
    package static let databaseTableName = "membership"
    package var accountID: UUID
    package var actorID: UUID
    package var groupID: UUID

    package enum CodingKeys: String, CodingKey {
        case accountID = "account_id"
        case actorID = "actor_id"
        case groupID = "group_id"
    }

    package init(accountID: UUID, actorID: UUID, groupID: UUID) {
        self.accountID = accountID
        self.actorID = actorID
        self.groupID = groupID
    }
}

package struct SiteRecord: GatehouseRecord, Equatable {
    package static let databaseTableName = "site"
    package var id: UUID
    package var accountID: UUID
    package var name: String
    package var createdAt: Date

    package enum CodingKeys: String, CodingKey {
        case id, name
        case accountID = "account_id"
        case createdAt = "created_at"
    }

    package init(id: UUID = UUID(), accountID: UUID, name: String, createdAt: Date) {
        self.id = id
        self.accountID = accountID
        self.name = name
        self.createdAt = createdAt
    }
}

package struct ResourceRecord: GatehouseRecord, Equatable {
    package static let databaseTableName = "resource"

    package enum Kind: String, Codable, Sendable, CaseIterable {
        case cidr, ip, dns
    }

    package var id: UUID
    package var accountID: UUID
    package var siteID: UUID
    package var name: String
    package var type: Kind
    package var address: String
    package var addressDescription: String?
    /// JSON array, as the `Policy` module encodes filters.
    package var filters: String
    package var ipStack: String?
    package var createdAt: Date

    package enum CodingKeys: String, CodingKey {
        case id, name, type, address, filters
        case accountID = "account_id"
        case siteID = "site_id"
        case addressDescription = "address_description"
        case ipStack = "ip_stack"
        case createdAt = "created_at"
    }

    package init(id: UUID = UUID(), accountID: UUID, siteID: UUID, name: String, type: Kind, address: String,
                 addressDescription: String? = nil, filters: String = "[]", ipStack: String? = nil, createdAt: Date) {
        self.id = id
        self.accountID = accountID
        self.siteID = siteID
        self.name = name
        self.type = type
        self.address = address
        self.addressDescription = addressDescription
        self.filters = filters
        self.ipStack = ipStack
        self.createdAt = createdAt
    }
}

package struct PolicyRecord: GatehouseRecord, Equatable {
    package static let databaseTableName = "policy"
    package var id: UUID
    package var accountID: UUID
    package var groupID: UUID
    package var resourceID: UUID
    package var description: String?
    /// JSON array, as the `Policy` module encodes conditions.
    package var conditions: String
    package var disabled: Bool
    package var createdAt: Date

    package enum CodingKeys: String, CodingKey {
        case id, description, conditions, disabled
        case accountID = "account_id"
        case groupID = "group_id"
        case resourceID = "resource_id"
        case createdAt = "created_at"
    }

    package init(id: UUID = UUID(), accountID: UUID, groupID: UUID, resourceID: UUID, description: String? = nil,
                 conditions: String = "[]", disabled: Bool = false, createdAt: Date) {
        self.id = id
        self.accountID = accountID
        self.groupID = groupID
        self.resourceID = resourceID
        self.description = description
        self.conditions = conditions
        self.disabled = disabled
        self.createdAt = createdAt
    }
}

package struct TokenRecord: GatehouseRecord, Equatable {
    package static let databaseTableName = "token"

    package enum Kind: String, Codable, Sendable, CaseIterable {
        case adminAPI = "admin_api"
        case client, gateway, relay
    }

    package var id: UUID
    package var accountID: UUID?
    package var kind: Kind
    /// SHA-256 of the secret, lower-case hex.
    package var secretHash: String
    package var expiresAt: Date?
    package var actorID: UUID?
    package var siteID: UUID?
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

    package init(id: UUID = UUID(), accountID: UUID?, kind: Kind, secretHash: String, expiresAt: Date?,
                 actorID: UUID? = nil, siteID: UUID? = nil, createdAt: Date) {
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

package struct AuditEventRecord: GatehouseRecord, Equatable {
    package static let databaseTableName = "audit_event"
    package var id: UUID
    package var accountID: UUID
    package var actorID: UUID?
    package var actorName: String?
    package var action: String
    package var subjectType: String
    package var subjectID: String
    package var before: String?
    package var after: String?
    package var at: Date

    package enum CodingKeys: String, CodingKey {
        case id, action, before, after, at
        case accountID = "account_id"
        case actorID = "actor_id"
        case actorName = "actor_name"
        case subjectType = "subject_type"
        case subjectID = "subject_id"
    }

    package init(id: UUID = UUID(), accountID: UUID, actorID: UUID?, actorName: String?, action: String,
                 subjectType: String, subjectID: String, before: String?, after: String?, at: Date) {
        self.id = id
        self.accountID = accountID
        self.actorID = actorID
        self.actorName = actorName
        self.action = action
        self.subjectType = subjectType
        self.subjectID = subjectID
        self.before = before
        self.after = after
        self.at = at
    }
}

/// A connected client or gateway.
package struct DeviceRecord: GatehouseRecord, Equatable {
    package static let databaseTableName = "device"

    package enum Kind: String, Codable, Sendable, CaseIterable {
        case client, gateway
    }

    package var id: UUID
    package var accountID: UUID
    package var kind: Kind
    package var externalID: String
    package var name: String
    package var publicKey: String
    package var tunnelIPv4: String
    package var tunnelIPv6: String
    package var actorID: UUID?
    package var siteID: UUID?
    package var version: String?
    package var lastSeenAt: Date?
    package var lastSeenAddress: String?
    package var verified: Bool
    package var tokenID: UUID?
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

    package init(id: UUID = UUID(), accountID: UUID, kind: Kind, externalID: String, name: String, publicKey: String,
                 tunnelIPv4: String, tunnelIPv6: String, actorID: UUID? = nil, siteID: UUID? = nil, version: String? = nil,
                 lastSeenAt: Date? = nil, lastSeenAddress: String? = nil, verified: Bool = false, tokenID: UUID? = nil, createdAt: Date) {
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

/// The record that a gateway was told to accept a client for a resource, under a policy, until `expiresAt`.
package struct AuthorizationRecord: GatehouseRecord, Equatable, Hashable {
    package static let databaseTableName = "authorization"
    package var id: UUID
    package var accountID: UUID
    package var clientID: UUID
    package var gatewayID: UUID
    package var resourceID: UUID
    package var policyID: UUID
    package var expiresAt: Date
    package var createdAt: Date

    package enum CodingKeys: String, CodingKey {
        case id
        case accountID = "account_id"
        case clientID = "client_id"
        case gatewayID = "gateway_id"
        case resourceID = "resource_id"
        case policyID = "policy_id"
        case expiresAt = "expires_at"
        case createdAt = "created_at"
    }

    package init(id: UUID = UUID(), accountID: UUID, clientID: UUID, gatewayID: UUID, resourceID: UUID, policyID: UUID,
                 expiresAt: Date, createdAt: Date) {
        self.id = id
        self.accountID = accountID
        self.clientID = clientID
        self.gatewayID = gatewayID
        self.resourceID = resourceID
        self.policyID = policyID
        self.expiresAt = expiresAt
        self.createdAt = createdAt
    }
}
