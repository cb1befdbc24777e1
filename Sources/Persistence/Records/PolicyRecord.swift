package import Foundation
package import GRDB
package import Identifiers

package struct PolicyRecord: GatehouseRecord, Equatable {
    package static let databaseTableName = "policy"
    package var id: PolicyID
    package var accountID: AccountID
    package var groupID: GroupID
    package var resourceID: ResourceID
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

    package init(id: PolicyID = PolicyID(), accountID: AccountID, groupID: GroupID, resourceID: ResourceID, description: String? = nil,
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

extension PolicyRecord: Identified {}
