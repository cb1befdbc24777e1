package import Foundation
package import Identifiers

/// A group of actors, the subject of policies. "Everyone" is built in: every user and admin.
package struct Group: APIObject, Equatable {
    package var id: GroupID
    package var name: String
    package var createdAt: Date

    package init(id: GroupID, name: String, createdAt: Date) {
        self.id = id
        self.name = name
        self.createdAt = createdAt
    }

    enum CodingKeys: String, CodingKey {
        case id, name
        case createdAt = "created_at"
    }

    package static let schema = ObjectSchema([
        .init("id", .id(noun: "group"), required: true), .init("name", .text(maximum: 200), required: true),
        .init("created_at", .dateTime, required: true),
    ])
}

/// `POST /groups`.
package struct CreateGroup: APIObject, Equatable {
    package var name: String

    package init(name: String) {
        self.name = name
    }

    package static let schema = ObjectSchema([.init("name", .text(maximum: 200), required: true, description: "unique in the account")])
}

/// `PATCH /groups/{id}`: a new name.
package struct UpdateGroup: APIObject, Equatable {
    package var name: String

    package init(name: String) {
        self.name = name
    }

    package static let schema = ObjectSchema([.init("name", .text(maximum: 200), required: true)])
}

/// `GET /groups/{id}/members`.
package struct Members: APIObject, Equatable {
    package var data: [Actor]

    package init(data: [Actor]) {
        self.data = data
    }

    package static let schema = ObjectSchema([.init("data", .list(of: .object(Actor.schema), maximum: nil), required: true)])
}
