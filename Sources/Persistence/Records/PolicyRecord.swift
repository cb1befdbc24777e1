package import Foundation
package import GRDB

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

extension PolicyRecord: Identified {}
