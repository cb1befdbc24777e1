package import Foundation
package import Identifiers

/// A relay online now (`GET /relays`): relays belong to the installation, and every account's clients
/// and gateways may use every relay. Its secret is never shown.
package struct Relay: APIObject, Equatable {
    package var id: RelayID
    package var name: String
    package var ipv4: String?
    package var ipv6: String?
    package var port: Int
    package var connectedAt: Date

    package init(id: RelayID, name: String, ipv4: String?, ipv6: String?, port: Int, connectedAt: Date) {
        self.id = id
        self.name = name
        self.ipv4 = ipv4
        self.ipv6 = ipv6
        self.port = port
        self.connectedAt = connectedAt
    }

    enum CodingKeys: String, CodingKey {
        case id, name, ipv4, ipv6, port
        case connectedAt = "connected_at"
    }

    package static let schema = ObjectSchema([
        .init("id", .id(noun: "relay"), required: true), .init("name", .string, required: true),
        .init("ipv4", .string, description: "its public IPv4 address, when it has one"),
        .init("ipv6", .string, description: "its public IPv6 address, when it has one"),
        .init("port", .integer(1...65535), required: true), .init("connected_at", .dateTime, required: true),
    ])
}
