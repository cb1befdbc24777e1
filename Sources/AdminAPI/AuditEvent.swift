package import Foundation
package import Identifiers

/// One change, who made it, and the values before and after.
package struct AuditEvent: APIObject, Equatable {
    package var id: AuditEventID
    package var action: String
    package var subjectType: String
    package var subjectID: String
    package var at: Date
    package var actorID: ActorID?
    package var actorName: String?
    package var before: JSONValue?
    package var after: JSONValue?

    package init(id: AuditEventID, action: String, subjectType: String, subjectID: String, at: Date, actorID: ActorID?,
                 actorName: String?, before: JSONValue?, after: JSONValue?) {
        self.id = id
        self.action = action
        self.subjectType = subjectType
        self.subjectID = subjectID
        self.at = at
        self.actorID = actorID
        self.actorName = actorName
        self.before = before
        self.after = after
    }

    enum CodingKeys: String, CodingKey {
        case id, action, at, before, after
        case subjectType = "subject_type"
        case subjectID = "subject_id"
        case actorID = "actor_id"
        case actorName = "actor_name"
    }

    package static let schema = ObjectSchema([
        .init("id", .id(noun: "audit event"), required: true), .init("action", .string, required: true),
        .init("subject_type", .string, required: true), .init("subject_id", .string, required: true),
        .init("at", .dateTime, required: true), .init("actor_id", .id(noun: "actor")), .init("actor_name", .string),
        .init("before", .anyValue), .init("after", .anyValue),
    ])
}
