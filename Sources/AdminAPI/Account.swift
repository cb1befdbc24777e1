package import Identifiers

/// The account and the ranges its tunnel addresses come from.
package struct Account: APIObject, Equatable {
    package var id: AccountID
    package var name: String
    package var slug: String
    package var tunnelIPv4Range: String
    package var tunnelIPv6Range: String

    package init(id: AccountID, name: String, slug: String, tunnelIPv4Range: String, tunnelIPv6Range: String) {
        self.id = id
        self.name = name
        self.slug = slug
        self.tunnelIPv4Range = tunnelIPv4Range
        self.tunnelIPv6Range = tunnelIPv6Range
    }

    enum CodingKeys: String, CodingKey {
        case id, name, slug
        case tunnelIPv4Range = "tunnel_ipv4_range"
        case tunnelIPv6Range = "tunnel_ipv6_range"
    }

    package static let schema = ObjectSchema([
        .init("id", .id(noun: "account"), required: true), .init("name", .text(maximum: 200), required: true),
        .init("slug", .string, required: true), .init("tunnel_ipv4_range", .string, required: true),
        .init("tunnel_ipv6_range", .string, required: true),
    ])
}

/// `PATCH /account`: what is given changes.
package struct UpdateAccount: APIObject, Equatable {
    package var name: String?
    package var tunnelIPv4Range: String?
    package var tunnelIPv6Range: String?

    package init(name: String? = nil, tunnelIPv4Range: String? = nil, tunnelIPv6Range: String? = nil) {
        self.name = name
        self.tunnelIPv4Range = tunnelIPv4Range
        self.tunnelIPv6Range = tunnelIPv6Range
    }

    enum CodingKeys: String, CodingKey {
        case name
        case tunnelIPv4Range = "tunnel_ipv4_range"
        case tunnelIPv6Range = "tunnel_ipv6_range"
    }

    package static let schema = ObjectSchema([
        .init("name", .text(maximum: 200)),
        .init("tunnel_ipv4_range", .text(maximum: 64), description: "an IPv4 network, prefix length 8-24; no resource may be inside it"),
        .init("tunnel_ipv6_range", .text(maximum: 64), description: "an IPv6 network, prefix length 32-96; no resource may be inside it"),
    ])
}
