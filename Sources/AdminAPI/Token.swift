package import Foundation
package import Identifiers

/// A token's metadata; its secret is shown once, when it is made, and stored only as a hash.
package struct Token: APIObject, Equatable {
    package enum Kind: String, Codable, Sendable, CaseIterable {
        case adminAPI = "admin_api"
        case client, gateway, relay
    }

    package var id: TokenID
    package var kind: Kind
    package var createdAt: Date
    package var expiresAt: Date?
    package var actorID: ActorID?
    package var siteID: SiteID?
    package var lastUsedAt: Date?
    package var lastUsedAddress: String?

    package init(id: TokenID, kind: Kind, createdAt: Date, expiresAt: Date?, actorID: ActorID?, siteID: SiteID?,
                 lastUsedAt: Date?, lastUsedAddress: String?) {
        self.id = id
        self.kind = kind
        self.createdAt = createdAt
        self.expiresAt = expiresAt
        self.actorID = actorID
        self.siteID = siteID
        self.lastUsedAt = lastUsedAt
        self.lastUsedAddress = lastUsedAddress
    }

    enum CodingKeys: String, CodingKey {
        case id, kind
        case createdAt = "created_at"
        case expiresAt = "expires_at"
        case actorID = "actor_id"
        case siteID = "site_id"
        case lastUsedAt = "last_used_at"
        case lastUsedAddress = "last_used_address"
    }

    package static let schema = ObjectSchema([
        .init("id", .id(noun: "token"), required: true), .init("kind", .choice(Kind.allCases.map(\.rawValue)), required: true),
        .init("created_at", .dateTime, required: true), .init("expires_at", .dateTime),
        .init("actor_id", .id(noun: "actor")), .init("site_id", .id(noun: "site")),
        .init("last_used_at", .dateTime, description: "recorded at most once a minute"),
        .init("last_used_address", .string),
    ])
}

/// The answer to `POST /tokens`: the token and its secret, which is never shown again.
package struct CreatedToken: APIObject, Equatable {
    package var token: Token
    package var secret: String

    package init(token: Token, secret: String) {
        self.token = token
        self.secret = secret
    }

    enum CodingKeys: String, CodingKey {
        case secret
    }

    package init(from decoder: any Decoder) throws {
        token = try Token(from: decoder)
        secret = try decoder.container(keyedBy: CodingKeys.self).decode(String.self, forKey: .secret)
    }

    package func encode(to encoder: any Encoder) throws {
        try token.encode(to: encoder)
        var container = encoder.container(keyedBy: CodingKeys.self)
        try container.encode(secret, forKey: .secret)
    }

    package static let schema = ObjectSchema(Token.schema.fields + [.init("secret", .string, required: true)])
}

/// `POST /tokens`. Admin API and client tokens belong to an actor, gateway tokens to a site; relay
/// tokens to neither.
package struct CreateToken: APIObject, Equatable {
    /// Longest lifetime a token may be given: ten years.
    package static let maximumLifetime = 10 * 365 * 24 * 3600

    package var kind: Token.Kind
    package var actorID: ActorID?
    package var siteID: SiteID?
    package var expiresInSeconds: Int?

    package init(kind: Token.Kind, actorID: ActorID? = nil, siteID: SiteID? = nil, expiresInSeconds: Int? = nil) {
        self.kind = kind
        self.actorID = actorID
        self.siteID = siteID
        self.expiresInSeconds = expiresInSeconds
    }

    enum CodingKeys: String, CodingKey {
        case kind
        case actorID = "actor_id"
        case siteID = "site_id"
        case expiresInSeconds = "expires_in_seconds"
    }

    package static let schema = ObjectSchema([
        // Relay tokens belong to the installation: the operator makes them (`gatehouse portal relay-token create`).
        .init("kind", .choice(Token.Kind.allCases.filter { $0 != .relay }.map(\.rawValue)), required: true),
        .init("actor_id", .id(noun: "actor"), description: "admin_api and client tokens"),
        .init("site_id", .id(noun: "site"), description: "gateway tokens"),
        .init("expires_in_seconds", .integer(60...maximumLifetime), description: "never expires when left out"),
    ])
}
