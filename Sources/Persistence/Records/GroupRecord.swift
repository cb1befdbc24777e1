package import Foundation
package import GRDB
package import Identifiers

package struct GroupRecord: GatehouseRecord, Equatable {
    package static let databaseTableName = "actor_group"
    /// The built-in group that implicitly contains every user and admin (not service accounts).
    package static let everyone = "Everyone"

    package var isEveryone: Bool { name == Self.everyone }
    package var id: GroupID
    package var accountID: AccountID
    package var name: String
    package var createdAt: Date

    package enum CodingKeys: String, CodingKey {
        case id, name
        case accountID = "account_id"
        case createdAt = "created_at"
    }

    package init(id: GroupID = GroupID(), accountID: AccountID, name: String, createdAt: Date) {
        self.id = id
        self.accountID = accountID
        self.name = name
        self.createdAt = createdAt
    }
}

extension GroupRecord: Identified {}
