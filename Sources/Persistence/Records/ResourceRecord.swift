package import Foundation
package import GRDB
package import Identifiers

package struct ResourceRecord: GatehouseRecord, Equatable {
    package static let databaseTableName = "resource"

    package enum Kind: String, Codable, Sendable, CaseIterable {
        case cidr, ip, dns
    }

    package var id: ResourceID
    package var accountID: AccountID
    package var siteID: SiteID
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

    package init(id: ResourceID = ResourceID(), accountID: AccountID, siteID: SiteID, name: String, type: Kind, address: String,
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

extension ResourceRecord: Identified {}
