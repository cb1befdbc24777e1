package import Foundation
package import GRDB
package import Identifiers

/// The record that a gateway was told to accept a client for a resource, under a policy, until `expiresAt`.
package struct AuthorizationRecord: GatehouseRecord, Equatable, Hashable {
    package static let databaseTableName = "authorization"
    package var id: AuthorizationID
    package var accountID: AccountID
    package var clientID: DeviceID
    package var gatewayID: DeviceID
    package var resourceID: ResourceID
    package var policyID: PolicyID
    package var expiresAt: Date
    package var createdAt: Date
    /// For a DNS resource: the name the client resolved, and its proxy addresses, space-separated.
    package var dnsName: String?
    package var dnsProxies: String?

    /// By ID alone (equal records have equal IDs): the portal's view rebuilds and compares sets of
    /// thousands of authorisations at every change, and hashing every field was much of that.
    package func hash(into hasher: inout Hasher) {
        hasher.combine(id)
    }

    package enum CodingKeys: String, CodingKey {
        case id
        case accountID = "account_id"
        case clientID = "client_id"
        case gatewayID = "gateway_id"
        case resourceID = "resource_id"
        case policyID = "policy_id"
        case expiresAt = "expires_at"
        case createdAt = "created_at"
        case dnsName = "dns_name"
        case dnsProxies = "dns_proxies"
    }

    package init(id: AuthorizationID = AuthorizationID(), accountID: AccountID, clientID: DeviceID, gatewayID: DeviceID, resourceID: ResourceID, policyID: PolicyID,
                 expiresAt: Date, createdAt: Date, dnsName: String? = nil, dnsProxies: String? = nil) {
        self.id = id
        self.accountID = accountID
        self.clientID = clientID
        self.gatewayID = gatewayID
        self.resourceID = resourceID
        self.policyID = policyID
        self.expiresAt = expiresAt
        self.createdAt = createdAt
        self.dnsName = dnsName
        self.dnsProxies = dnsProxies
    }
}

extension AuthorizationRecord: Identified {}

extension AuthorizationRecord {
    /// The DNS columns only when set: a row of a flow to a CIDR or IP resource names only the columns
    /// every schema version has.
    package func encode(to container: inout PersistenceContainer) throws {
        container[CodingKeys.id.rawValue] = id
        container[CodingKeys.accountID.rawValue] = accountID
        container[CodingKeys.clientID.rawValue] = clientID
        container[CodingKeys.gatewayID.rawValue] = gatewayID
        container[CodingKeys.resourceID.rawValue] = resourceID
        container[CodingKeys.policyID.rawValue] = policyID
        container[CodingKeys.expiresAt.rawValue] = expiresAt
        container[CodingKeys.createdAt.rawValue] = createdAt
        if let dnsName { container[CodingKeys.dnsName.rawValue] = dnsName }
        if let dnsProxies { container[CodingKeys.dnsProxies.rawValue] = dnsProxies }
    }
}
