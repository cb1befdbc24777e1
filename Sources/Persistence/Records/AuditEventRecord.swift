package import Foundation
package import GRDB
package import Identifiers

package struct AuditEventRecord: GatehouseRecord, Equatable {
    package static let databaseTableName = "audit_event"
    package var id: AuditEventID
    package var accountID: AccountID
    package var actorID: ActorID?
    package var actorName: String?
    package var action: String
    package var subjectType: String
    package var subjectID: String
    package var before: String?
    package var after: String?
    package var at: Date

    package enum CodingKeys: String, CodingKey {
        case id, action, before, after, at
        case accountID = "account_id"
        case actorID = "actor_id"
        case actorName = "actor_name"
        case subjectType = "subject_type"
        case subjectID = "subject_id"
    }

    package init(id: AuditEventID = AuditEventID(), accountID: AccountID, actorID: ActorID?, actorName: String?, action: String,
                 subjectType: String, subjectID: String, before: String?, after: String?, at: Date) {
        self.id = id
        self.accountID = accountID
        self.actorID = actorID
        self.actorName = actorName
        self.action = action
        self.subjectType = subjectType
        self.subjectID = subjectID
        self.before = before
        self.after = after
        self.at = at
    }
}

extension AuditEventRecord: Identified {}
