package import Foundation
package import Identifiers

/// A place where gateways run; resources belong to a site.
package struct Site: APIObject, Equatable {
    package var id: SiteID
    package var name: String
    package var createdAt: Date

    package init(id: SiteID, name: String, createdAt: Date) {
        self.id = id
        self.name = name
        self.createdAt = createdAt
    }

    enum CodingKeys: String, CodingKey {
        case id, name
        case createdAt = "created_at"
    }

    package static let schema = ObjectSchema([
        .init("id", .id(noun: "site"), required: true), .init("name", .text(maximum: 200), required: true),
        .init("created_at", .dateTime, required: true),
    ])
}

/// `POST /sites`.
package struct CreateSite: APIObject, Equatable {
    package var name: String

    package init(name: String) {
        self.name = name
    }

    package static let schema = ObjectSchema([.init("name", .text(maximum: 200), required: true, description: "unique in the account")])
}

/// `PATCH /sites/{id}`: a new name.
package struct UpdateSite: APIObject, Equatable {
    package var name: String

    package init(name: String) {
        self.name = name
    }

    package static let schema = ObjectSchema([.init("name", .text(maximum: 200), required: true)])
}
