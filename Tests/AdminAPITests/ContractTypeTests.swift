import AdminAPI
import Foundation
import Identifiers
import Testing

/// Each type of the contract encodes to exactly what its own schema declares (so the document the
/// portal serves, built from the schemas, describes the bytes it sends), and decodes back unchanged.
@Suite struct ContractTypeTests {
    static let at = Date(timeIntervalSince1970: 1_795_000_000)

    /// As many fields set as fit together, so that the keys are checked against the schema.
    static let samples: [(String, any APIObject)] = [
        ("Site", Site(id: SiteID(), name: "hq", createdAt: at)),
        ("CreateSite", CreateSite(name: "hq")),
        ("Group", Group(id: GroupID(), name: "eng", createdAt: at)),
        ("Members", Members(data: [Actor(id: ActorID(), type: .user, name: "Ada", email: "ada@acme.test", disabled: false)])),
        ("Actor", Actor(id: ActorID(), type: .serviceAccount, name: "ci", email: nil, disabled: true)),
        ("CreateActor", CreateActor(type: .admin, name: "Grace", email: "grace@acme.test")),
        ("UpdateActor", UpdateActor(name: "Ada L", email: "ada@acme.test", disabled: true)),
        ("Resource", Resource(id: ResourceID(), name: "web", type: .dns, address: "**.corp.example", siteID: SiteID(), filters: ["tcp:443"],
                              addressDescription: "https://corp.example", ipStack: .dual)),
        ("CreateResource", CreateResource(name: "db", type: .cidr, address: "10.0.0.0/24", siteID: SiteID(), filters: ["tcp:5432", "icmp"],
                                          addressDescription: "the database", ipStack: nil)),
        ("UpdateResource", UpdateResource(name: "db2", type: .ip, address: "10.0.0.5", siteID: SiteID(), filters: [], addressDescription: "x",
                                          ipStack: .ipv4)),
        ("Policy", Policy(id: PolicyID(), groupID: GroupID(), resourceID: ResourceID(), disabled: false, conditions: ["verified"],
                          description: "why")),
        ("CreatePolicy", CreatePolicy(groupID: GroupID(), resourceID: ResourceID(), description: "why", disabled: true, conditions: ["verified"])),
        ("UpdatePolicy", UpdatePolicy(groupID: GroupID(), resourceID: ResourceID(), description: "d", disabled: false, conditions: [])),
        ("Token", Token(id: TokenID(), kind: .gateway, createdAt: at, expiresAt: at, actorID: nil, siteID: SiteID(), lastUsedAt: at,
                        lastUsedAddress: "127.0.0.1")),
        ("CreatedToken", CreatedToken(token: Token(id: TokenID(), kind: .client, createdAt: at, expiresAt: nil, actorID: ActorID(), siteID: nil,
                                                   lastUsedAt: nil, lastUsedAddress: nil), secret: "gh_client_x")),
        ("CreateToken", CreateToken(kind: .client, actorID: ActorID(), siteID: nil, expiresInSeconds: 3600)),
        ("Account", Account(id: AccountID(), name: "Acme", slug: "acme", tunnelIPv4Range: "100.64.0.0/11", tunnelIPv6Range: "fd00:6761:7465::/48")),
        ("UpdateAccount", UpdateAccount(name: "Acme", tunnelIPv4Range: "10.200.0.0/16", tunnelIPv6Range: "fd00:1234::/48")),
        ("Device", Device(id: DeviceID(), kind: .client, name: "laptop", externalID: "m-1", publicKey: "key", tunnelIPv4: "100.64.0.10",
                          tunnelIPv6: "fd00:6761:7465::10", verified: true, actorID: ActorID(), siteID: nil, version: "1.0", lastSeenAt: at,
                          lastSeenAddress: "192.0.2.1", online: false)),
        ("AuditEvent", AuditEvent(id: AuditEventID(), action: "update", subjectType: "site", subjectID: SiteID().description, at: at,
                                  actorID: ActorID(), actorName: "Admin", before: ["name": "hq"], after: ["name": "headquarters"])),
        ("AccessExplanation", AccessExplanation(
            decision: "allowed", actorDisabled: false, at: at, failedConditions: [],
            policies: [.init(policyID: PolicyID(), group: "eng", disabled: false, groupContainsActor: true, grants: true,
                             conditions: [.init(condition: "verified", holds: true)], conditionsHoldUntil: at)],
            policyID: PolicyID(), expiresAt: at, clientID: DeviceID())),
        ("Page<Site>", Page(data: [Site(id: SiteID(), name: "hq", createdAt: at)], nextCursor: "hq")),
        ("ErrorBody", ErrorBody(code: "invalid", message: "\"name\" is required", field: "name")),
        ("Page<Resource>", Page(data: [Resource(id: ResourceID(), name: "db", type: .cidr, address: "10.0.0.0/24", siteID: SiteID(),
                                                filters: ["tcp:5432", "icmp"], addressDescription: nil, ipStack: nil)], nextCursor: nil)),
        ("AccessPreview", {
            var preview = AccessPreview()
            preview.gains = [.init(clientID: DeviceID(), client: "laptop", actorID: ActorID(), actor: "Ada", resourceID: ResourceID(),
                                   resource: "db", policies: [PolicyID()])]
            preview.losses = [.init(clientID: DeviceID(), client: "phone", actorID: nil, actor: nil, resourceID: ResourceID(), resource: nil,
                                    policies: [])]
            preview.rejectedAuthorizations = [.init(gatewayID: DeviceID(), clientID: DeviceID(), resourceID: ResourceID())]
            preview.filterUpdates = [.init(gatewayID: DeviceID(), clientID: nil, resourceID: ResourceID())]
            return preview
        }()),
    ]

    @Test(arguments: samples.map(\.0))
    func encodesAsItsSchemaDeclaresAndDecodesBack(_ name: String) throws {
        let value = try #require(Self.samples.first { $0.0 == name }?.1)
        try Self.roundTrip(value)
    }

    static func roundTrip<Value: APIObject>(_ value: Value) throws {
        let data = try APICoding.encoder().encode(value)
        guard case let .object(members) = try JSONDecoder().decode(JSONValue.self, from: data) else {
            Issue.record("\(Value.self) does not encode as an object")
            return
        }
        let declared = Set(Value.schema.fields.map(\.name))
        let required = Set(Value.schema.fields.filter(\.required).map(\.name))
        #expect(Set(members.keys).isSubset(of: declared), "\(Value.self): encoded \(members.keys.sorted()), declared \(declared.sorted())")
        #expect(required.isSubset(of: Set(members.keys)), "\(Value.self): required \(required.sorted()), encoded \(members.keys.sorted())")
        #expect(throws: Never.self, "\(Value.self) fits its own schema") { try Value.schema.check(members) }
        let decoded = try APICoding.decoder().decode(Value.self, from: data)
        #expect(try APICoding.encoder().encode(decoded) == data, "\(Value.self) decodes back unchanged")
    }

    @Test func aCreatedTokenCarriesTheTokenAndItsSecretSideBySide() throws {
        let token = Token(id: TokenID(), kind: .relay, createdAt: Self.at, expiresAt: nil, actorID: nil, siteID: nil, lastUsedAt: nil,
                          lastUsedAddress: nil)
        let json = String(decoding: try APICoding.encoder().encode(CreatedToken(token: token, secret: "gh_relay_s")), as: UTF8.self)
        #expect(json == #"{"created_at":"\#(ISO8601DateFormatter().string(from: Self.at))","id":"\#(token.id)","kind":"relay","secret":"gh_relay_s"}"#)
    }

    /// The portal answers through `APIJSONEncoder`; it must say what `JSONEncoder` with the API's
    /// conventions says, for every type of the contract (Foundation also escapes "/", which JSON allows
    /// either way).
    @Test(arguments: samples.map(\.0))
    func theAnswerWriterAgreesWithJSONEncoder(_ name: String) throws {
        let value = try #require(Self.samples.first { $0.0 == name }?.1)
        try Self.agree(value)
    }

    static func agree<Value: Encodable>(_ value: Value) throws {
        let reference = String(decoding: try APICoding.encoder().encode(value), as: UTF8.self).replacingOccurrences(of: "\\/", with: "/")
        let written = String(decoding: try APIJSONEncoder.encode(value), as: UTF8.self)
        #expect(written == reference, "\(Value.self)")
    }

    @Test func theAnswerWriterEscapesAndDatesAsJSONEncoderDoes() throws {
        for name in ["plain", "quote \" and backslash \\", "line\nfeed\ttab\rreturn", "bell \u{07} nul \u{00} us \u{1F}", "üñï ☃ 😀", ""] {
            try Self.agree(Site(id: SiteID(), name: name, createdAt: Self.at))
        }
        var random = SystemRandomNumberGenerator()
        for _ in 0..<500 {
            // Whole and fractional seconds from 1970 to 2100: the fraction is dropped, never rounded up.
            let instant = Date(timeIntervalSince1970: Double(random.next() % 4_102_444_800) + Double(random.next() % 1000) / 1000)
            try Self.agree(Site(id: SiteID(), name: "t", createdAt: instant))
        }
        try Self.agree(Page(data: [Site](), nextCursor: nil))
    }
}
