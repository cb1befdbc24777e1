package import Foundation
package import GRDB
package import Identifiers

package struct MembershipRecord: GatehouseRecord, Hashable {
    package static let databaseTableName = "membership"
    package var accountID: AccountID
    package var actorID: ActorID
    package var groupID: GroupID

    package enum CodingKeys: String, CodingKey {
        case accountID = "account_id"
        case actorID = "actor_id"
        case groupID = "group_id"
    }

    package init(accountID: AccountID, actorID: ActorID, groupID: GroupID) {
        self.accountID = accountID
        self.actorID = actorID
        self.groupID = groupID
    }
}
