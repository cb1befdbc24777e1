package import Foundation
package import Identifiers

/// A client or a gateway that has joined the portal.
package struct Device: APIObject, Equatable {
    package enum Kind: String, Codable, Sendable, CaseIterable {
        case client, gateway
    }

    package var id: DeviceID
    package var kind: Kind
    package var name: String
    package var externalID: String
    package var publicKey: String
    package var tunnelIPv4: String
    package var tunnelIPv6: String
    /// Clients only: whether an admin marked it verified.
    package var verified: Bool?
    package var actorID: ActorID?
    package var siteID: SiteID?
    package var version: String?
    package var lastSeenAt: Date?
    package var lastSeenAddress: String?
    package var online: Bool

    package init(id: DeviceID, kind: Kind, name: String, externalID: String, publicKey: String, tunnelIPv4: String, tunnelIPv6: String,
                 verified: Bool?, actorID: ActorID?, siteID: SiteID?, version: String?, lastSeenAt: Date?, lastSeenAddress: String?,
                 online: Bool) {
        self.id = id
        self.kind = kind
        self.name = name
        self.externalID = externalID
        self.publicKey = publicKey
        self.tunnelIPv4 = tunnelIPv4
        self.tunnelIPv6 = tunnelIPv6
        self.verified = verified
        self.actorID = actorID
        self.siteID = siteID
        self.version = version
        self.lastSeenAt = lastSeenAt
        self.lastSeenAddress = lastSeenAddress
        self.online = online
    }

    enum CodingKeys: String, CodingKey {
        case id, kind, name, verified, version, online
        case externalID = "external_id"
        case publicKey = "public_key"
        case tunnelIPv4 = "tunnel_ipv4"
        case tunnelIPv6 = "tunnel_ipv6"
        case actorID = "actor_id"
        case siteID = "site_id"
        case lastSeenAt = "last_seen_at"
        case lastSeenAddress = "last_seen_address"
    }

    package static let schema = ObjectSchema([
        .init("id", .id(noun: "device"), required: true), .init("kind", .choice(Kind.allCases.map(\.rawValue)), required: true),
        .init("name", .string, required: true), .init("external_id", .string, required: true),
        .init("public_key", .string, required: true), .init("tunnel_ipv4", .string, required: true),
        .init("tunnel_ipv6", .string, required: true), .init("verified", .boolean, description: "clients only"),
        .init("actor_id", .id(noun: "actor")), .init("site_id", .id(noun: "site")), .init("version", .string),
        .init("last_seen_at", .dateTime), .init("last_seen_address", .string), .init("online", .boolean, required: true),
    ])
}
