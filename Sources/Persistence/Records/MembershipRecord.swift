package import Foundation
package import GRDB

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
