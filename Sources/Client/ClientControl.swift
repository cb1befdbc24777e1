package import Actors
package import Addresses
package import ControlProtocol
package import Foundation
package import Identifiers
package import Logging
import ICE
import Policy
import Tunnel
import WireGuard

/// The client's side of the realtime API (portal spec, "Realtime API"; client spec): joins with its
/// identity, keeps its resources and relays current from `init` and the live changes, routes the
/// resources into the tunnel device (never the addresses the tunnel itself travels to), asks for a
/// flow when the tunnel has a packet waiting for one, and hands what the portal answers to the tunnel.
/// Flows outlive a lost connection (their gateways still hold them until they expire).
package actor ClientControl: PortalSession {
    package struct Identity: Sendable {
        package var device: DeviceIdentity
        package var name: String

        package init(device: DeviceIdentity, name: String) {
            self.device = device
            self.name = name
        }
    }

    /// A flow as `status` shows it.
    package struct FlowRecord: Sendable {
        var target: ClientTunnel.Target
        var flow: FlowCreated
        var endpoint: SocketAddress
    }

    private let identity: Identity
    private let tunnel: ClientTunnel
    private let device: any ClientDevice
    private let dns: ClientDNS?
    private let logger: Logger
    /// Addresses the tunnel must never carry: the portal's and the upstream resolvers' (more come with
    /// relays and gateways).
    private let fixedExclusions: [SocketAddress.IP]
    private var sender: PortalSender?
    private(set) var joined = false
    private(set) var interface: Interface?
    private(set) var resources: [ResourceID: ClientResource] = [:]
    private(set) var relays: [RelayID: RelayCredential] = [:]
    private(set) var flows: [ClientTunnel.Target: FlowRecord] = [:]
    /// Why the last request for a resource's flow failed (until a flow is made).
    private(set) var failures: [ResourceID: String] = [:]
    /// What each `create_flow` asked for, by its `ref` (the portal echoes it in the answer).
    private var asked: [String: ClientTunnel.Target] = [:]
    private var nextRef = 0
    /// Resources taken away (the policy or the resource deleted), by name, and when: `status` says so.
    private(set) var revoked: [ResourceID: (name: String, at: Date)] = [:]
    /// Flows asked for and not yet answered (asked again after a reconnect).
    private var requested: Set<ClientTunnel.Target> = []
    private var routed: Set<AddressRange> = []
    private var lastRouteError: String?

    package init(identity: Identity, tunnel: ClientTunnel, device: any ClientDevice, dns: ClientDNS?, excluding: [SocketAddress.IP],
                 logger: Logger) {
        self.identity = identity
        self.tunnel = tunnel
        self.device = device
        self.dns = dns
        fixedExclusions = excluding
        self.logger = logger
    }

    package nonisolated func join() async -> ControlMessage {
        .join(DeviceJoin(externalID: identity.device.externalID, name: identity.name, publicKey: identity.device.publicKey, endpoints: nil))
    }

    package func connectionChanged(joined: Bool) async {
        self.joined = joined
        if !joined { sender = nil }
    }

    /// What the tunnel asks for.
    package func handle(_ event: ClientTunnel.Event) {
        switch event {
        case let .needFlow(resource):
            requestFlow(resource)
        case let .prohibited(resource):
            logger.info("the gateway refused a packet: asking the portal again", metadata: ["resource": "\(resource)"])
            flows[resource] = nil
            requestFlow(resource)
        case let .networkChanged(reason, ports):
            logger.notice("the network changed: sockets bound again, finding every gateway's way again", metadata: [
                "reason": "\(reason)", "ports": "\(ports.map(String.init).joined(separator: ","))",
            ])
        case let .relayUnavailable(relay, reason, retryIn):
            logger.warning("no relayed candidate through a relay: trying again", metadata: [
                "relay": "\(relay)", "reason": "\(reason)", "retry_in": "\(Int(retryIn)) s",
            ])
        case let .pathLost(gateway, reason):
            logger.warning("the way to a gateway was lost: finding another", metadata: ["gateway": "\(gateway)", "reason": "\(reason)"])
        case let .candidates(flow, gateway, candidates):
            sender?.send(.iceCandidates(ICECandidates(flowID: flow, peerID: gateway, candidates: candidates)))
            logger.debug("ice_candidates sent", metadata: ["flow": "\(flow)", "candidates": "\(candidates.joined(separator: " | "))"])
        }
    }

    private func requestFlow(_ target: ClientTunnel.Target) {
        guard resources[target.resource] != nil else {
            tunnel.flowRefused(target, reason: .unreachable)
            return
        }
        var proxy: DNSProxy?
        if let name = target.name {
            guard let proxies = dns?.proxies(for: name) else {
                tunnel.flowRefused(target, reason: .unreachable)
                return
            }
            proxy = DNSProxy(name: name, addresses: proxies.all.map { SocketAddress(ip: $0, port: 0).address })
        }
        requested.insert(target)
        guard let sender else { return }  // asked once the portal is back
        // Gateways this client already has a tunnel with are preferred by the portal.
        let connected = Array(Set(flows.values.map(\.flow.gatewayID))).sorted()
        nextRef += 1
        let ref = "flow-\(nextRef)"
        asked[ref] = target
        sender.send(.createFlow(CreateFlow(resourceID: target.resource, connectedGatewayIDs: connected, dns: proxy)), ref: ref)
        logger.info("create_flow", metadata: ["resource": "\(target.resource)", "name": "\(resources[target.resource]?.name ?? "")"]
            .merging(target.name.map { ["dns_name": "\($0)"] } ?? [:]) { first, _ in first })
    }

    /// What the answer with `ref` is about (its resource's flow when the ref is unknown).
    private func target(_ ref: String?, _ resource: ResourceID) -> ClientTunnel.Target {
        if let ref, let target = asked.removeValue(forKey: ref), target.resource == resource { return target }
        return ClientTunnel.Target(resource: resource)
    }

    package func received(_ frame: ControlFrame, sender: PortalSender) async {
        self.sender = sender
        switch frame.message {
        case let .clientInit(initial):
            let first = interface == nil
            interface = initial.interface
            if first || interface != initial.interface { configureAddresses(initial.interface) }
            let listed = Dictionary(initial.resources.map { ($0.id, $0) }, uniquingKeysWith: { _, last in last })
            for (id, old) in resources where listed[id] != old { forget(id) }
            resources = listed
            relays = Dictionary(initial.relays.map { ($0.id, $0) }, uniquingKeysWith: { _, last in last })
            updateRoutes()
            gatherFromRelays()
            logger.info("init", metadata: [
                "ipv4": "\(initial.interface.ipv4)", "ipv6": "\(initial.interface.ipv6)", "resources": "\(initial.resources.count)",
                "relays": "\(initial.relays.map(\.name).joined(separator: ","))",
            ])
            // What was asked while the portal was away is asked now; what was trickled then is sent again.
            for resource in requested.sorted() { requestFlow(resource) }
            if !first { tunnel.announceCandidates() }
        case let .resourceCreatedOrUpdated(resource):
            if resources[resource.id] != nil, resources[resource.id] != resource { forget(resource.id) }
            resources[resource.id] = resource
            failures[resource.id] = nil
            revoked[resource.id] = nil
            updateRoutes()
            logger.info("resource_created_or_updated", metadata: ["resource": "\(resource.id)", "name": "\(resource.name)", "address": "\(resource.address)"])
        case let .resourceDeleted(deleted):
            if let resource = resources[deleted.resourceID] { revoked[deleted.resourceID] = (resource.name, Date()) }
            resources[deleted.resourceID] = nil
            forget(deleted.resourceID)
            updateRoutes()
            logger.info("resource_deleted", metadata: ["resource": "\(deleted.resourceID)"])
        case let .flowCreated(created):
            let target = target(frame.ref, created.resourceID)
            requested.remove(target)
            guard let key = Data(base64Encoded: created.gatewayPublicKey), key.count == 32,
                  let psk = Data(base64Encoded: created.presharedKey), psk.count == 32 else {
                logger.error("flow_created with unusable keys", metadata: ["resource": "\(created.resourceID)"])
                tunnel.flowRefused(target, reason: .unreachable)
                return
            }
            // The first endpoint of a family this host can send to (IPv4 first when both are there).
            let endpoints = created.gatewayEndpoints.compactMap(SocketAddress.init(endpoint:))
            guard let endpoint = endpoints.first(where: { !$0.isIPv6 }) ?? endpoints.first else {
                logger.error("flow_created without a gateway endpoint", metadata: ["resource": "\(created.resourceID)", "gateway": "\(created.gatewayID)"])
                failures[created.resourceID] = "the gateway has no endpoint"
                tunnel.flowRefused(target, reason: .unreachable)
                return
            }
            flows[target] = FlowRecord(target: target, flow: created, endpoint: endpoint)
            failures[created.resourceID] = nil
            updateRoutes()  // the gateway's address stays out of the tunnel
            let ice = (local: ICEAgent.Credentials(ufrag: created.clientICE.username, password: created.clientICE.password),
                       remote: ICEAgent.Credentials(ufrag: created.gatewayICE.username, password: created.gatewayICE.password))
            tunnel.flowCreated(.init(flowID: created.flowID, ice: ice, target: target, gateway: created.gatewayID, gatewayPublicKey: [UInt8](key),
                                     presharedKey: [UInt8](psk), endpoint: endpoint, expiresAt: created.expiresAt))
            logger.info("flow_created", metadata: [
                "resource": "\(created.resourceID)", "gateway": "\(created.gatewayID)", "endpoint": "\(endpoint)", "expires_at": "\(created.expiresAt)",
            ])
        case let .flowCreationFailed(failed):
            let target = target(frame.ref, failed.resourceID)
            requested.remove(target)
            flows[target] = nil
            failures[failed.resourceID] = failed.reason.rawValue
            tunnel.flowRefused(target, reason: failed.reason == .forbidden ? .prohibited : .unreachable)
            logger.warning("flow_creation_failed", metadata: ["resource": "\(failed.resourceID)", "reason": "\(failed.reason.rawValue)"])
        case let .relaysPresence(presence):
            for gone in presence.disconnected { relays[gone] = nil }
            for relay in presence.connected { relays[relay.id] = relay }
            updateRoutes()
            gatherFromRelays()
        case let .iceCandidates(candidates):
            logger.debug("ice_candidates", metadata: ["flow": "\(candidates.flowID)", "candidates": "\(candidates.candidates.joined(separator: " | "))"])
            tunnel.addRemoteCandidates(candidates.candidates.compactMap(ICECandidate.init(sdp:)), flow: candidates.flowID)
        case let .reply(reply) where reply.status == .error:
            logger.warning("the portal answered an error", metadata: ["code": "\(reply.code ?? "")", "message": "\(reply.message ?? "")"])
            if let ref = frame.ref, let target = asked.removeValue(forKey: ref) {
                requested.remove(target)
                failures[target.resource] = reply.message ?? reply.code ?? "error"
                tunnel.flowRefused(target, reason: .unreachable)
            }
        default:
            break
        }
    }

    /// Server-reflexive candidates from the relays (as STUN servers), and an allocation on each (its
    /// relayed candidate), at their IPv4 address when they have one.
    private func gatherFromRelays() {
        tunnel.gatherCandidates(from: relays.values.flatMap { relay in
            [relay.ipv4, relay.ipv6].compactMap { $0 }.compactMap { try? SocketAddress($0, port: UInt16(clamping: relay.port)) }
        })
        tunnel.setRelays(relays.values.sorted { $0.name < $1.name }.compactMap { relay in
            guard let address = [relay.ipv4, relay.ipv6].compactMap({ $0 }).compactMap({ try? SocketAddress($0, port: UInt16(clamping: relay.port)) }).first
            else { return nil }
            return ClientTunnel.RelayServer(name: relay.name, address: address, username: relay.username, password: relay.password)
        })
    }

    private func forget(_ resource: ResourceID) {
        flows = flows.filter { $0.key.resource != resource }
        requested = requested.filter { $0.resource != resource }
        failures[resource] = nil
        tunnel.forget(resource)
    }

    private func configureAddresses(_ interface: Interface) {
        var addresses: [SocketAddress.IP] = []
        for text in [interface.ipv4, interface.ipv6] {
            if let ip = try? SocketAddress(text, port: 0).ip { addresses.append(ip) }
        }
        do {
            try device.setAddresses(addresses)
        } catch {
            logger.error("configuring the tunnel device's addresses failed", metadata: ["error": "\(error)"])
        }
        tunnel.setAddresses(addresses)
    }

    /// The addresses the tunnel itself travels to: the portal's, the relays', the gateways'.
    private var excludedAddresses: [SocketAddress.IP] {
        var addresses = fixedExclusions
        for relay in relays.values {
            for text in [relay.ipv4, relay.ipv6].compactMap({ $0 }) {
                if let ip = try? SocketAddress(text, port: 0).ip { addresses.append(ip) }
            }
        }
        for record in flows.values { addresses.append(record.endpoint.ip) }
        return addresses
    }

    /// Routes every CIDR and IP resource into the tunnel device, less the excluded addresses; the
    /// tunnel learns each range's resource.
    private func updateRoutes() {
        let routes = ClientRoutes.compute(resources: Array(resources.values), excluding: excludedAddresses)
        tunnel.setRoutes(routes.lookup)
        dns?.setResources(resources.values.filter { $0.type == .dns }.map { ($0.address, $0.id) })
        let wanted = Set(routes.kernel)
        do {
            try device.replaceRoutes(removing: routed.subtracting(wanted), adding: wanted.subtracting(routed))
            routed = wanted
            lastRouteError = nil
        } catch {
            lastRouteError = "\(error)"
            logger.error("routing resources into the tunnel failed", metadata: ["error": "\(error)"])
        }
    }

    /// What `gatehouse client status` shows.
    package func status(counters: ClientTunnel.Counters, portalURL: String) -> ClientStatus {
        func iso(_ date: Date) -> String { date.formatted(.iso8601) }
        return ClientStatus(
            portal: .init(url: portalURL, connected: joined),
            interface: interface,
            resources: resources.values.sorted { $0.name < $1.name }.map { resource in
                ClientStatus.Resource(id: resource.id.description, name: resource.name, type: resource.type.rawValue, address: resource.address,
                                      filters: resource.filters, failure: failures[resource.id])
            },
            flows: flows.values.sorted { $0.target < $1.target }.map { record in
                let gateway = counters.gateways[record.flow.gatewayID]
                return ClientStatus.Flow(
                    resource: record.flow.resourceID.description, resourceName: resources[record.flow.resourceID]?.name ?? "",
                    dnsName: record.target.name,
                    gateway: record.flow.gatewayID.description, endpoint: (gateway?.endpoint ?? record.endpoint).description,
                    path: gateway?.pair.map { $0.local.kind == .relayed || $0.remote.kind == .relayed ? "relayed" : "direct" }
                        ?? (gateway?.searching == true ? "searching" : "direct"),
                    relay: gateway?.relay,
                    candidatePair: gateway?.pair.map { "\($0.local.kind.rawValue) \($0.local.address) <-> \($0.remote.kind.rawValue) \($0.remote.address)" }
                        ?? (gateway?.searching == true ? "none: the last one stopped answering, finding another (\(gateway?.restarts ?? 0) fresh establishments so far)"
                            : "none: plain WireGuard to the gateway's endpoint \(record.endpoint)"),
                    established: gateway?.established ?? false, lastHandshake: gateway?.lastHandshake.map { iso($0) },
                    expiresAt: iso(record.flow.expiresAt),
                    bytesSent: gateway?.bytesSent ?? 0, bytesReceived: gateway?.bytesReceived ?? 0)
            },
            revoked: revoked.values.sorted { $0.at < $1.at }.map { .init(name: $0.name, at: iso($0.at)) },
            relays: relays.values.map(\.name).sorted(),
            routes: routed.map(\.description).sorted(),
            routeError: lastRouteError,
            refusedPackets: counters.refusedPackets,
            dns: dns.map { counts in
                let (answered, forwarded, failed) = counts.counts
                return ClientStatus.DNSCounts(answered: answered, forwarded: forwarded, failed: failed)
            },
            dropped: counters.dropped)
    }
}

/// The tunnel device as the control side changes it (a test or another platform may stand in).
package protocol ClientDevice: Sendable {
    func setAddresses(_ addresses: [SocketAddress.IP]) throws
    func replaceRoutes(removing: Set<AddressRange>, adding: Set<AddressRange>) throws
}

/// Which ranges go into the tunnel and which resource each stands for.
package enum ClientRoutes {
    /// `lookup`: every CIDR/IP resource's range with its resource (what the tunnel matches packets
    /// against); `kernel`: the routes to install, those ranges less `excluding` (a resource that covers
    /// the portal, a relay or a gateway would otherwise loop the tunnel into itself), and the DNS proxy
    /// ranges when there is a DNS resource.
    package static func compute(resources: [ClientResource], excluding: [SocketAddress.IP])
        -> (lookup: [(range: AddressRange, target: ClientTunnel.Target)], kernel: [AddressRange]) {
        var lookup: [(range: AddressRange, target: ClientTunnel.Target)] = []
        var kernel = Set<AddressRange>()
        for resource in resources where resource.type != .dns {
            guard let range = try? AddressRange(resource.address) else { continue }
            lookup.append((range, ClientTunnel.Target(resource: resource.id)))
            kernel.formUnion(range.excluding(excluding))
        }
        if resources.contains(where: { $0.type == .dns }) {
            kernel.formUnion(ResourceAddress.dnsProxyRanges.compactMap { try? AddressRange($0) })
        }
        return (lookup, kernel.sorted { $0.description < $1.description })
    }
}

/// `gatehouse client status`: what the running client says of itself.
package struct ClientStatus: Codable, Sendable {
    package struct Portal: Codable, Sendable {
        package var url: String
        package var connected: Bool
    }

    package struct Resource: Codable, Sendable {
        package var id: String
        package var name: String
        package var type: String
        package var address: String
        package var filters: [String]
        /// Why the last flow to it could not be made.
        package var failure: String?
    }

    package struct Flow: Codable, Sendable {
        package var resource: String
        package var resourceName: String
        /// For a DNS resource: the name this flow is for.
        package var dnsName: String?
        package var gateway: String
        package var endpoint: String
        /// direct or relayed.
        package var path: String
        /// The relay a relayed path goes through.
        package var relay: String?
        package var candidatePair: String
        package var established: Bool
        package var lastHandshake: String?
        package var expiresAt: String
        package var bytesSent: Int
        package var bytesReceived: Int

        enum CodingKeys: String, CodingKey {
            case resource, gateway, endpoint, path, relay, established
            case resourceName = "resource_name"
            case dnsName = "dns_name"
            case candidatePair = "candidate_pair"
            case lastHandshake = "last_handshake"
            case expiresAt = "expires_at"
            case bytesSent = "bytes_sent"
            case bytesReceived = "bytes_received"
        }
    }

    /// What the DNS stub did: names of DNS resources it answered, other questions it passed upstream,
    /// and those no upstream answered.
    package struct DNSCounts: Codable, Sendable {
        package var answered: Int
        package var forwarded: Int
        package var failed: Int
    }

    /// A resource this client no longer has access to.
    package struct Revoked: Codable, Sendable {
        package var name: String
        package var at: String
    }

    package var portal: Portal
    package var interface: Interface?
    package var resources: [Resource]
    package var flows: [Flow]
    package var revoked: [Revoked]
    package var relays: [String]
    package var routes: [String]
    package var routeError: String?
    package var refusedPackets: Int
    /// Nil when DNS is left alone (`--resolv-conf off`).
    package var dns: DNSCounts?
    package var dropped: [String: Int]

    enum CodingKeys: String, CodingKey {
        case portal, interface, resources, flows, revoked, relays, routes, dns, dropped
        case routeError = "route_error"
        case refusedPackets = "refused_packets"
    }

    /// For people: what is connected, what can be reached, and how.
    package var text: String {
        var lines = ["portal: \(portal.url) (\(portal.connected ? "connected" : "not connected"))"]
        if let interface { lines.append("tunnel addresses: \(interface.ipv4), \(interface.ipv6)") }
        lines.append("resources: \(resources.count)")
        for resource in resources {
            let resourceFlows = flows.filter { $0.resource == resource.id }
            var line = "  \(resource.name) (\(resource.type) \(resource.address))"
            for flow in resourceFlows {
                line += (flow.dnsName.map { "\n    \($0)" } ?? "") + ": via gateway \(flow.gateway) at \(flow.endpoint), \(flow.path)"
                    + (flow.relay.map { " through relay \($0)" } ?? "") + ", "
                    + (flow.established ? "tunnel up" : "tunnel not up yet") + ", sent \(flow.bytesSent) B, received \(flow.bytesReceived) B, until \(flow.expiresAt)"
            }
            if !resourceFlows.isEmpty {
            } else if let failure = resource.failure {
                line += ": no access (\(failure))"
            } else {
                line += ": no flow yet (made on the first packet)"
            }
            lines.append(line)
        }
        for gone in revoked { lines.append("  \(gone.name): access removed at \(gone.at)") }
        lines.append("relays: \(relays.isEmpty ? "none" : relays.joined(separator: ", "))")
        if let routeError { lines.append("routes: FAILED: \(routeError)") }
        if refusedPackets > 0 { lines.append("packets refused for want of a flow: \(refusedPackets)") }
        if let dns {
            lines.append("DNS: \(dns.answered) answered for resources, \(dns.forwarded) passed upstream, \(dns.failed) unanswered upstream")
        }
        return lines.joined(separator: "\n") + "\n"
    }
}
