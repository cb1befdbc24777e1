package import Foundation
package import Identifiers
import Addresses
import Policy

// The payloads of the realtime API's messages (portal spec, "Realtime API"; docs/protocol.md). Field
// names on the wire are snake_case; IDs are typed; times are ISO 8601.

/// `join` from a relay: who it is and where clients reach it. `secret` is drawn at each start; the
/// portal derives TURN REST credentials from it.
package struct RelayJoin: Codable, Sendable, Equatable {
    package var version: String
    package var name: String
    package var secret: String
    package var ipv4: String?
    package var ipv6: String?
    package var port: Int

    package init(version: String = ProtocolVersion.current, name: String, secret: String, ipv4: String?, ipv6: String?, port: Int) {
        self.version = version
        self.name = name
        self.secret = secret
        self.ipv4 = ipv4
        self.ipv6 = ipv6
        self.port = port
    }
}

/// `join` from a gateway or a client: its identity across restarts (`external_id`), its WireGuard
/// public key, and, for a gateway, where clients reach it (`host:port`, IPv6 in brackets).
package struct DeviceJoin: Codable, Sendable, Equatable {
    package var version: String
    package var externalID: String
    package var name: String
    package var publicKey: String
    package var endpoints: [String]?

    package init(version: String = ProtocolVersion.current, externalID: String, name: String, publicKey: String, endpoints: [String]? = nil) {
        self.version = version
        self.externalID = externalID
        self.name = name
        self.publicKey = publicKey
        self.endpoints = endpoints
    }

    enum CodingKeys: String, CodingKey {
        case version, name, endpoints
        case externalID = "external_id"
        case publicKey = "public_key"
    }
}

/// A device's tunnel addresses.
package struct Interface: Codable, Sendable, Equatable {
    package var ipv4: String
    package var ipv6: String

    package init(ipv4: String, ipv6: String) {
        self.ipv4 = ipv4
        self.ipv6 = ipv6
    }
}

/// A relay a device may use, with TURN REST credentials valid until `expires_at`.
package struct RelayCredential: Codable, Sendable, Equatable {
    package var id: RelayID
    package var name: String
    package var ipv4: String?
    package var ipv6: String?
    package var port: Int
    package var username: String
    package var password: String
    package var expiresAt: Date

    package init(id: RelayID, name: String, ipv4: String?, ipv6: String?, port: Int, username: String, password: String, expiresAt: Date) {
        self.id = id
        self.name = name
        self.ipv4 = ipv4
        self.ipv6 = ipv6
        self.port = port
        self.username = username
        self.password = password
        self.expiresAt = expiresAt
    }

    enum CodingKeys: String, CodingKey {
        case id, name, ipv4, ipv6, port, username, password
        case expiresAt = "expires_at"
    }
}

/// `relays_presence`: relays that came (with fresh credentials) and went.
package struct RelaysPresence: Codable, Sendable, Equatable {
    package var connected: [RelayCredential]
    package var disconnected: [RelayID]

    package init(connected: [RelayCredential], disconnected: [RelayID]) {
        self.connected = connected
        self.disconnected = disconnected
    }
}

/// ICE username fragment and password of one end of a flow.
package struct ICECredentials: Codable, Sendable, Equatable {
    package var username: String
    package var password: String

    package init(username: String, password: String) {
        self.username = username
        self.password = password
    }
}

/// A resource as a gateway enforces it.
package struct GatewayResource: Codable, Sendable, Equatable {
    package enum Kind: String, Codable, Sendable, CaseIterable {
        case cidr, ip, dns
    }

    package var id: ResourceID
    package var name: String
    package var type: Kind
    package var address: String
    /// `tcp[:PORTS]`, `udp[:PORTS]`, `icmp`; none means all traffic.
    package var filters: [String]

    package init(id: ResourceID, name: String, type: Kind, address: String, filters: [String]) {
        self.id = id
        self.name = name
        self.type = type
        self.address = address
        self.filters = filters
    }
}

/// For a flow to a DNS resource: the name the client resolved (matched by the resource's pattern) and
/// the proxy addresses it gave that name (portal spec's proxy ranges, `100.96.0.0/11` and
/// `fd00:6761:7465:8000::/64`). The gateway resolves the name itself and maps the i-th proxy address of
/// a family to the i-th real address of that family.
package struct DNSProxy: Codable, Sendable, Equatable, Hashable {
    package var name: String
    package var addresses: [String]

    package init(name: String, addresses: [String]) {
        self.name = name
        self.addresses = addresses
    }

    /// At most this many proxy addresses per name.
    package static let addressLimit = 8
}

/// A flow the gateway is to accept (`authorize_flow`, and each entry of its `init`): the client's side of
/// the tunnel, the resource, and until when.
package struct FlowAuthorization: Codable, Sendable, Equatable {
    package var flowID: AuthorizationID
    package var clientID: DeviceID
    package var clientPublicKey: String
    package var clientInterface: Interface
    package var presharedKey: String
    package var clientICE: ICECredentials
    package var gatewayICE: ICECredentials
    package var resource: GatewayResource
    package var expiresAt: Date
    /// Who the client acts for and the policy that grants the flow (for the gateway's flow log); absent
    /// from portals before protocol 1.1.
    package var actorID: ActorID?
    package var policyID: PolicyID?
    /// For a DNS resource: the name and the client's proxy addresses for it (protocol 1.1).
    package var dns: DNSProxy?

    package init(flowID: AuthorizationID, clientID: DeviceID, clientPublicKey: String, clientInterface: Interface, presharedKey: String,
                 clientICE: ICECredentials, gatewayICE: ICECredentials, resource: GatewayResource, expiresAt: Date,
                 actorID: ActorID? = nil, policyID: PolicyID? = nil, dns: DNSProxy? = nil) {
        self.flowID = flowID
        self.clientID = clientID
        self.clientPublicKey = clientPublicKey
        self.clientInterface = clientInterface
        self.presharedKey = presharedKey
        self.clientICE = clientICE
        self.gatewayICE = gatewayICE
        self.resource = resource
        self.expiresAt = expiresAt
        self.actorID = actorID
        self.policyID = policyID
        self.dns = dns
    }

    enum CodingKeys: String, CodingKey {
        case resource, dns
        case actorID = "actor_id"
        case policyID = "policy_id"
        case flowID = "flow_id"
        case clientID = "client_id"
        case clientPublicKey = "client_public_key"
        case clientInterface = "client_interface"
        case presharedKey = "preshared_key"
        case clientICE = "client_ice"
        case gatewayICE = "gateway_ice"
        case expiresAt = "expires_at"
    }
}

/// `init` to a gateway: its tunnel addresses, relays, and every flow it is to accept (authoritative:
/// flows it holds that are not listed are gone).
package struct GatewayInit: Codable, Sendable, Equatable {
    package var interface: Interface
    package var relays: [RelayCredential]
    package var authorizations: [FlowAuthorization]

    package init(interface: Interface, relays: [RelayCredential], authorizations: [FlowAuthorization]) {
        self.interface = interface
        self.relays = relays
        self.authorizations = authorizations
    }
}

/// `reject_access` to a gateway: stop accepting the client for the resource, now.
package struct RejectAccess: Codable, Sendable, Equatable {
    package var clientID: DeviceID
    package var resourceID: ResourceID

    package init(clientID: DeviceID, resourceID: ResourceID) {
        self.clientID = clientID
        self.resourceID = resourceID
    }

    enum CodingKeys: String, CodingKey {
        case clientID = "client_id"
        case resourceID = "resource_id"
    }
}

/// `flow_authorized` from a gateway, echoing the `ref` of the `authorize_flow` it confirms.
package struct FlowAuthorized: Codable, Sendable, Equatable {
    package var flowID: AuthorizationID

    package init(flowID: AuthorizationID) {
        self.flowID = flowID
    }

    enum CodingKeys: String, CodingKey {
        case flowID = "flow_id"
    }
}

/// A resource as a client shows and routes it.
package struct ClientResource: Codable, Sendable, Equatable {
    package var id: ResourceID
    package var name: String
    package var type: GatewayResource.Kind
    package var address: String
    package var addressDescription: String?
    package var filters: [String]

    package init(id: ResourceID, name: String, type: GatewayResource.Kind, address: String, addressDescription: String?, filters: [String]) {
        self.id = id
        self.name = name
        self.type = type
        self.address = address
        self.addressDescription = addressDescription
        self.filters = filters
    }

    enum CodingKeys: String, CodingKey {
        case id, name, type, address, filters
        case addressDescription = "address_description"
    }
}

/// `init` to a client: its tunnel addresses, the resources it may reach, and relays.
package struct ClientInit: Codable, Sendable, Equatable {
    package var interface: Interface
    package var resources: [ClientResource]
    package var relays: [RelayCredential]

    package init(interface: Interface, resources: [ClientResource], relays: [RelayCredential]) {
        self.interface = interface
        self.resources = resources
        self.relays = relays
    }
}

/// `resource_deleted` to a client: nothing grants it the resource any more.
package struct ResourceDeleted: Codable, Sendable, Equatable {
    package var resourceID: ResourceID

    package init(resourceID: ResourceID) {
        self.resourceID = resourceID
    }

    enum CodingKeys: String, CodingKey {
        case resourceID = "resource_id"
    }
}

/// `create_flow` from a client: a tunnel to a gateway for the resource, preferring one it is connected to.
package struct CreateFlow: Codable, Sendable, Equatable {
    package var resourceID: ResourceID
    package var connectedGatewayIDs: [DeviceID]
    /// Required for a DNS resource, refused for any other: the name and the proxy addresses the client
    /// gave it.
    package var dns: DNSProxy?

    package init(resourceID: ResourceID, connectedGatewayIDs: [DeviceID] = [], dns: DNSProxy? = nil) {
        self.resourceID = resourceID
        self.connectedGatewayIDs = connectedGatewayIDs
        self.dns = dns
    }

    enum CodingKeys: String, CodingKey {
        case dns
        case resourceID = "resource_id"
        case connectedGatewayIDs = "connected_gateway_ids"
    }
}

/// `flow_created` to a client: what it needs to reach the gateway for the resource.
package struct FlowCreated: Codable, Sendable, Equatable {
    package var flowID: AuthorizationID
    package var resourceID: ResourceID
    package var gatewayID: DeviceID
    package var gatewayPublicKey: String
    package var gatewayEndpoints: [String]
    package var presharedKey: String
    package var clientICE: ICECredentials
    package var gatewayICE: ICECredentials
    package var expiresAt: Date

    package init(flowID: AuthorizationID, resourceID: ResourceID, gatewayID: DeviceID, gatewayPublicKey: String, gatewayEndpoints: [String],
                 presharedKey: String, clientICE: ICECredentials, gatewayICE: ICECredentials, expiresAt: Date) {
        self.flowID = flowID
        self.resourceID = resourceID
        self.gatewayID = gatewayID
        self.gatewayPublicKey = gatewayPublicKey
        self.gatewayEndpoints = gatewayEndpoints
        self.presharedKey = presharedKey
        self.clientICE = clientICE
        self.gatewayICE = gatewayICE
        self.expiresAt = expiresAt
    }

    enum CodingKeys: String, CodingKey {
        case flowID = "flow_id"
        case resourceID = "resource_id"
        case gatewayID = "gateway_id"
        case gatewayPublicKey = "gateway_public_key"
        case gatewayEndpoints = "gateway_endpoints"
        case presharedKey = "preshared_key"
        case clientICE = "client_ice"
        case gatewayICE = "gateway_ice"
        case expiresAt = "expires_at"
    }
}

/// `flow_creation_failed` to a client.
package struct FlowCreationFailed: Codable, Sendable, Equatable {
    package enum Reason: String, Codable, Sendable, CaseIterable {
        /// No policy grants the resource (or there is no such resource).
        case notFound = "not_found"
        /// A policy grants it but its conditions do not hold now.
        case forbidden
        /// No gateway of the resource's site is online, or none confirmed in time.
        case offline
    }

    package var resourceID: ResourceID
    package var reason: Reason

    package init(resourceID: ResourceID, reason: Reason) {
        self.resourceID = resourceID
        self.reason = reason
    }

    enum CodingKeys: String, CodingKey {
        case reason
        case resourceID = "resource_id"
    }
}

/// `ice_candidates` in either direction: candidates (RFC 8445 `candidate:` attribute text) for the
/// other end of a flow; the portal forwards them, naming the sender as `peer_id`.
package struct ICECandidates: Codable, Sendable, Equatable {
    package var flowID: AuthorizationID
    package var peerID: DeviceID
    package var candidates: [String]

    package init(flowID: AuthorizationID, peerID: DeviceID, candidates: [String]) {
        self.flowID = flowID
        self.peerID = peerID
        self.candidates = candidates
    }

    enum CodingKeys: String, CodingKey {
        case candidates
        case flowID = "flow_id"
        case peerID = "peer_id"
    }
}

/// `reply` to a request that carried a `ref`: ok, or an error with a code and a message.
package struct Reply: Codable, Sendable, Equatable {
    package enum Status: String, Codable, Sendable {
        case ok, error
    }

    package var status: Status
    package var code: String?
    package var message: String?

    package init(status: Status, code: String? = nil, message: String? = nil) {
        self.status = status
        self.code = code
        self.message = message
    }

    package static let ok = Reply(status: .ok)

    package static func error(_ code: String, _ message: String) -> Reply {
        Reply(status: .error, code: code, message: message)
    }
}

extension DNSProxy {
    /// What is wrong with the DNS part of a `create_flow` for a resource of `pattern`, if anything: the
    /// name must be a plain name the pattern matches, and the addresses 1 to 8 distinct addresses
    /// inside the DNS proxy ranges.
    package func problem(forPattern pattern: String) -> String? {
        guard let parsed = try? DNSPattern(name), parsed.specificity == 3 else { return "\"dns.name\": \"\(name)\" is not a DNS name" }
        guard let resourcePattern = try? DNSPattern(pattern), resourcePattern.matches(name) else {
            return "\"dns.name\": \"\(name)\" does not match the resource's pattern \(pattern)"
        }
        guard (1...Self.addressLimit).contains(addresses.count) else { return "\"dns.addresses\": 1 to \(Self.addressLimit) addresses" }
        let ranges = ResourceAddress.dnsProxyRanges.compactMap { try? AddressRange($0) }
        var seen = Set<SocketAddress.IP>()
        for text in addresses {
            guard let ip = (try? SocketAddress(text, port: 0))?.ip, ranges.contains(where: { $0.contains(ip) }) else {
                return "\"dns.addresses\": \(text) is not inside the DNS proxy ranges (\(ResourceAddress.dnsProxyRanges.joined(separator: ", ")))"
            }
            guard seen.insert(ip).inserted else { return "\"dns.addresses\": \(text) is given twice" }
        }
        return nil
    }
}
