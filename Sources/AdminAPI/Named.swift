package import Foundation
package import Identifiers

/// A thing that is only a name: a site (where gateways run; resources belong to one) or a group (of
/// actors, the subject of policies; "Everyone" is built in).
package struct Named<Noun: IdentifiedNoun>: APIObject, Equatable {
    package var id: Identifier<Noun>
    package var name: String
    package var createdAt: Date

    package init(id: Identifier<Noun>, name: String, createdAt: Date) {
        self.id = id
        self.name = name
        self.createdAt = createdAt
    }

    enum CodingKeys: String, CodingKey {
        case id, name
        case createdAt = "created_at"
    }

    package static var schema: ObjectSchema {
        ObjectSchema([
            .init("id", .id(noun: Noun.noun), required: true), .init("name", .text(maximum: 200), required: true),
            .init("created_at", .dateTime, required: true),
        ])
    }
}

package typealias Site = Named<SiteNoun>
package typealias Group = Named<GroupNoun>

/// Creating or renaming a site or a group: its name, unique in the account.
package struct Naming: APIObject, Equatable {
    package var name: String

    package init(name: String) {
        self.name = name
    }

    package static let schema = ObjectSchema([.init("name", .text(maximum: 200), required: true, description: "unique in the account")])
}

package typealias CreateSite = Naming
package typealias UpdateSite = Naming
package typealias CreateGroup = Naming
package typealias UpdateGroup = Naming
