package import Foundation
package import GRDB
package import Identifiers

package struct ActorRecord: GatehouseRecord, Equatable {
    package static let databaseTableName = "actor"

    package enum Kind: String, Codable, Sendable, CaseIterable {
        case user
        case admin
        case serviceAccount = "service_account"
    }

    package var id: ActorID
    package var accountID: AccountID
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

    package init(id: ActorID = ActorID(), accountID: AccountID, type: Kind, name: String, email: String?, disabled: Bool = false, createdAt: Date) {
        self.id = id
        self.accountID = accountID
        self.type = type
        self.name = name
        self.email = email
        self.disabled = disabled
        self.createdAt = createdAt
    }
}

extension ActorRecord: Identified {}
