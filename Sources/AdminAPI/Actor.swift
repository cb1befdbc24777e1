package import Identifiers

/// A user, an admin or a service account.
package struct Actor: APIObject, Equatable {
    package enum Kind: String, Codable, Sendable, CaseIterable {
        case user, admin
        case serviceAccount = "service_account"
    }

    package var id: ActorID
    package var type: Kind
    package var name: String
    package var email: String?
    package var disabled: Bool

    package init(id: ActorID, type: Kind, name: String, email: String?, disabled: Bool) {
        self.id = id
        self.type = type
        self.name = name
        self.email = email
        self.disabled = disabled
    }

    package static let schema = ObjectSchema([
        .init("id", .id(noun: "actor"), required: true), .init("type", .choice(Kind.allCases.map(\.rawValue)), required: true),
        .init("name", .text(maximum: 200), required: true), .init("email", .email), .init("disabled", .boolean, required: true),
    ])
}

/// `POST /actors`. Users and admins have an email; service accounts do not.
package struct CreateActor: APIObject, Equatable {
    package var type: Actor.Kind
    package var name: String
    package var email: String?

    package init(type: Actor.Kind, name: String, email: String?) {
        self.type = type
        self.name = name
        self.email = email
    }

    package static let schema = ObjectSchema([
        .init("type", .choice(Actor.Kind.allCases.map(\.rawValue)), required: true), .init("name", .text(maximum: 200), required: true),
        .init("email", .email, description: "required for users and admins, unique in the account; none for service accounts"),
    ])
}

/// `PATCH /actors/{id}`: what is given changes. Disabling takes the actor's access away at once.
package struct UpdateActor: APIObject, Equatable {
    package var name: String?
    package var email: String?
    package var disabled: Bool?

    package init(name: String? = nil, email: String? = nil, disabled: Bool? = nil) {
        self.name = name
        self.email = email
        self.disabled = disabled
    }

    package static let schema = ObjectSchema([.init("name", .text(maximum: 200)), .init("email", .email), .init("disabled", .boolean)])
}
