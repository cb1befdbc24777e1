package import Foundation
package import GRDB
package import Identifiers

package struct SiteRecord: GatehouseRecord, Equatable {
    package static let databaseTableName = "site"
    package var id: SiteID
    package var accountID: AccountID
    package var name: String
    package var createdAt: Date

    package enum CodingKeys: String, CodingKey {
        case id, name
        case accountID = "account_id"
        case createdAt = "created_at"
    }

    package init(id: SiteID = SiteID(), accountID: AccountID, name: String, createdAt: Date) {
        self.id = id
        self.accountID = accountID
        self.name = name
        self.createdAt = createdAt
    }
}

extension SiteRecord: Identified {}
