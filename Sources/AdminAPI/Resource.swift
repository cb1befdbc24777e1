package import Identifiers

/// What clients may reach through a site's gateways: a CIDR range, one IP address, or DNS names.
package struct Resource: APIObject, Equatable {
    package enum Kind: String, Codable, Sendable, CaseIterable {
        case cidr, ip, dns
    }

    /// Which address families a DNS resource resolves to.
    package enum IPStack: String, Codable, Sendable, CaseIterable {
        case ipv4, ipv6, dual
    }

    package var id: ResourceID
    package var name: String
    package var type: Kind
    package var address: String
    package var siteID: SiteID
    package var filters: [String]
    package var addressDescription: String?
    package var ipStack: IPStack?

    package init(id: ResourceID, name: String, type: Kind, address: String, siteID: SiteID, filters: [String],
                 addressDescription: String?, ipStack: IPStack?) {
        self.id = id
        self.name = name
        self.type = type
        self.address = address
        self.siteID = siteID
        self.filters = filters
        self.addressDescription = addressDescription
        self.ipStack = ipStack
    }

    enum CodingKeys: String, CodingKey {
        case id, name, type, address, filters
        case siteID = "site_id"
        case addressDescription = "address_description"
        case ipStack = "ip_stack"
    }

    static let fields: [ObjectSchema.Field] = [
        .init("name", .text(maximum: 200), description: "unique in the account"),
        .init("type", .choice(Kind.allCases.map(\.rawValue))),
        .init("address", .text(maximum: 253),
              description: "cidr: a network such as 10.0.0.0/24 (not loopback, not the tunnel or DNS proxy ranges); ip: one address; dns: a name, * and ? match one label's characters, ** any labels"),
        .init("site_id", .id(noun: "site")),
        .init("filters", .list(of: .text(maximum: 500), maximum: 100), description: "tcp:5432, udp:1000-2000, icmp; none allows everything"),
        .init("address_description", .text(maximum: 500)),
        .init("ip_stack", .choice(IPStack.allCases.map(\.rawValue)), description: "dns resources only; dual when left out"),
    ]

    package static let schema = ObjectSchema([.init("id", .id(noun: "resource"), required: true)] + fields.map { field in
        var field = field
        field.required = ["name", "type", "address", "site_id", "filters"].contains(field.name)
        field.description = nil
        return field
    })
}

/// `POST /resources`.
package struct CreateResource: APIObject, Equatable {
    package var name: String
    package var type: Resource.Kind
    package var address: String
    package var siteID: SiteID
    package var filters: [String]?
    package var addressDescription: String?
    package var ipStack: Resource.IPStack?

    package init(name: String, type: Resource.Kind, address: String, siteID: SiteID, filters: [String]? = nil,
                 addressDescription: String? = nil, ipStack: Resource.IPStack? = nil) {
        self.name = name
        self.type = type
        self.address = address
        self.siteID = siteID
        self.filters = filters
        self.addressDescription = addressDescription
        self.ipStack = ipStack
    }

    enum CodingKeys: String, CodingKey {
        case name, type, address, filters
        case siteID = "site_id"
        case addressDescription = "address_description"
        case ipStack = "ip_stack"
    }

    package static let schema = ObjectSchema(Resource.fields.map { field in
        var field = field
        field.required = ["name", "type", "address", "site_id"].contains(field.name)
        return field
    })
}

/// `PATCH /resources/{id}`: what is given changes; the result is checked as a whole (a new type needs
/// a fitting address).
package struct UpdateResource: APIObject, Equatable {
    package var name: String?
    package var type: Resource.Kind?
    package var address: String?
    package var siteID: SiteID?
    package var filters: [String]?
    package var addressDescription: String?
    package var ipStack: Resource.IPStack?

    package init(name: String? = nil, type: Resource.Kind? = nil, address: String? = nil, siteID: SiteID? = nil, filters: [String]? = nil,
                 addressDescription: String? = nil, ipStack: Resource.IPStack? = nil) {
        self.name = name
        self.type = type
        self.address = address
        self.siteID = siteID
        self.filters = filters
        self.addressDescription = addressDescription
        self.ipStack = ipStack
    }

    enum CodingKeys: String, CodingKey {
        case name, type, address, filters
        case siteID = "site_id"
        case addressDescription = "address_description"
        case ipStack = "ip_stack"
    }

    package static let schema = ObjectSchema(Resource.fields)
}
