package import Foundation
package import GRDB
package import Identifiers

package struct AccountRecord: GatehouseRecord, Equatable {
    package static let databaseTableName = "account"
    package var id: AccountID
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

    package init(id: AccountID = AccountID(), name: String, slug: String, tunnelIPv4Range: String = "100.64.0.0/11",
                 tunnelIPv6Range: String = "fd00:6761:7465::/48", createdAt: Date) {
        self.id = id
        self.name = name
        self.slug = slug
        self.tunnelIPv4Range = tunnelIPv4Range
        self.tunnelIPv6Range = tunnelIPv6Range
        self.createdAt = createdAt
    }
}

extension AccountRecord: Identified {}
