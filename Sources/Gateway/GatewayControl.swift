package import Actors
package import Addresses
package import ControlProtocol
import Foundation
package import Identifiers
package import Logging

/// ICE on the gateway's WireGuard socket, as the control side drives it.
package protocol GatewayICE: Sendable {
    /// An agent for a flow: `local` the gateway's credentials, `remote` the client's.
    func start(client publicKey: String, local: ICECredentials, remote: ICECredentials)
    /// The client's candidates (RFC 8839 texts) for the agent named by the gateway's ufrag.
    func addRemote(_ candidates: [String], ufrag: String)
    /// Learns server-reflexive candidates from these STUN servers.
    func gather(from servers: [SocketAddress])
}

/// The gateway's side of the realtime API (portal spec, "Realtime API"): joins with its identity and
/// endpoints, and hands what the portal tells to one `ClientSession` actor per client, which rewrites
/// that client's kernel entries. The `init` after each connection is authoritative (sessions and
/// flows it does not list end); an `authorize_flow` is confirmed once its rules are in the kernel;
/// `reject_access` and `resource_updated` act at once. Each change is logged, so an operator sees
/// what the gateway was told. While the portal is unreachable, the sessions keep their rules.
package actor GatewayControl: PortalSession {
    package struct Identity: Sendable {
        package var device: DeviceIdentity
        package var name: String
        /// Where clients reach this gateway, `HOST:PORT` (IPv6 in brackets).
        package var endpoints: [String]

        package init(device: DeviceIdentity, name: String, endpoints: [String]) {
            self.device = device
            self.name = name
            self.endpoints = endpoints
        }
    }

    private let identity: Identity
    private let logger: Logger
    private let kernel: KernelRules
    private let dataPlane: (any SessionDataPlane)?
    private let clock: any WallClock
    /// Resolves DNS resources' names (the gateway's own resolver, gateway spec "DNS resources").
    private let resolver: NameResolver
    package private(set) var sessions: [DeviceID: ClientSession] = [:]
    package private(set) var relays: [RelayID: RelayCredential] = [:]
    package private(set) var interface: Interface?
    /// Called with the gateway's tunnel addresses from each `init` (to configure the tunnel device).
    private let onInterface: @Sendable (Interface) async -> Void
    /// ICE on the WireGuard socket: an agent per flow (the gateway controlled).
    private let ice: (any GatewayICE)?
    /// Each flow's gateway ufrag, and back (candidates travel named by flow).
    private var iceUfrags: [AuthorizationID: String] = [:]
    private var iceFlows: [String: (flow: AuthorizationID, client: DeviceID)] = [:]
    private var sender: PortalSender?

    package init(identity: Identity, kernel: KernelRules, dataPlane: (any SessionDataPlane)? = nil, clock: any WallClock = SystemWallClock(),
                 resolver: NameResolver = .system(), ice: (any GatewayICE)? = nil, logger: Logger,
                 onInterface: @escaping @Sendable (Interface) async -> Void = { _ in }) {
        self.ice = ice
        self.identity = identity
        self.resolver = resolver
        self.kernel = kernel
        self.dataPlane = dataPlane
        self.clock = clock
        self.logger = logger
        self.onInterface = onInterface
    }

    /// The session of `client`, made on first use.
    private func session(_ client: DeviceID, _ interface: Interface) -> ClientSession {
        if let session = sessions[client] { return session }
        let session = ClientSession(clientID: client, interface: interface, kernel: kernel, dataPlane: dataPlane, clock: clock, logger: logger)
        sessions[client] = session
        return session
    }

    /// Forgets sessions with nothing left (their entries are already gone).
    private func closeEmptySessions() async {
        for (client, session) in sessions where await session.isEmpty {
            sessions[client] = nil
            logger.info("session closed", metadata: ["client": "\(client)"])
        }
    }

    /// Every session's flows, for the operations endpoints.
    package func snapshot() async -> [(client: DeviceID, flows: [FlowAuthorization], rules: [KernelRule])] {
        var result: [(client: DeviceID, flows: [FlowAuthorization], rules: [KernelRule])] = []
        for (client, session) in sessions {
            result.append((client, Array(await session.flows.values), await session.rules))
        }
        return result.sorted { $0.client < $1.client }
    }

    /// The addresses of each DNS flow's name (each name asked once, all at once); a name that does not
    /// resolve is logged, and its flow's proxy addresses lead nowhere until the flow is made again.
    private func resolve(_ flows: [FlowAuthorization]) async -> [AuthorizationID: NameResolver.Resolved] {
        let names = Set(flows.compactMap { $0.dns?.name.lowercased() })
        guard !names.isEmpty else { return [:] }
        let resolver = self.resolver
        let logger = self.logger
        let byName = await withTaskGroup(of: (String, NameResolver.Resolved?).self) { group in
            for name in names {
                group.addTask {
                    do {
                        let found = try await resolver.resolve(name)
                        if found.ipv4.isEmpty && found.ipv6.isEmpty { logger.warning("a DNS resource's name has no address", metadata: ["name": "\(name)"]) }
                        return (name, found)
                    } catch {
                        logger.warning("a DNS resource's name did not resolve", metadata: ["name": "\(name)", "error": "\(error)"])
                        return (name, nil)
                    }
                }
            }
            var result: [String: NameResolver.Resolved] = [:]
            for await (name, found) in group { result[name] = found }
            return result
        }
        var result: [AuthorizationID: NameResolver.Resolved] = [:]
        for flow in flows {
            if let name = flow.dns?.name.lowercased(), let found = byName[name] { result[flow.flowID] = found }
        }
        return result
    }

    package nonisolated func join() async -> ControlMessage {
        .join(DeviceJoin(externalID: identity.device.externalID, name: identity.name, publicKey: identity.device.publicKey,
                         endpoints: identity.endpoints))
    }

    package func connectionChanged(joined: Bool) async {}

    /// Starts ICE for a flow (once).
    private func startICE(_ flow: FlowAuthorization) {
        guard let ice, iceUfrags[flow.flowID] == nil else { return }
        iceUfrags[flow.flowID] = flow.gatewayICE.username
        iceFlows[flow.gatewayICE.username] = (flow.flowID, flow.clientID)
        ice.start(client: flow.clientPublicKey, local: flow.gatewayICE, remote: flow.clientICE)
    }

    /// The engine's local candidates for the flow named by `ufrag`, to the client through the portal.
    package func trickle(ufrag: String, candidates: [String]) {
        guard let (flow, client) = iceFlows[ufrag] else { return }
        sender?.send(.iceCandidates(ICECandidates(flowID: flow, peerID: client, candidates: candidates)))
        logger.debug("ice_candidates sent", metadata: ["flow": "\(flow)", "candidates": "\(candidates.joined(separator: " | "))"])
    }

    private func gatherFromRelays() {
        ice?.gather(from: relays.values.flatMap { relay in
            [relay.ipv4, relay.ipv6].compactMap { $0 }.compactMap { try? SocketAddress($0, port: UInt16(clamping: relay.port)) }
        })
    }

    package func received(_ frame: ControlFrame, sender: PortalSender) async {
        self.sender = sender
        switch frame.message {
        case let .gatewayInit(initial):
            interface = initial.interface
            await onInterface(initial.interface)
            let byClient = Dictionary(grouping: initial.authorizations, by: \.clientID)
            var dropped = 0
            for (client, session) in sessions {
                let kept = Set(byClient[client]?.map(\.flowID) ?? [])
                dropped += await session.flows.keys.filter { !kept.contains($0) }.count
                if byClient[client] == nil { await session.close() }
            }
            // Sessions compile and write in parallel (each owns its client's entries).
            let resolved = await resolve(initial.authorizations)
            let updates = byClient.map { client, flows in (session(client, flows[0].clientInterface), flows) }
            await withTaskGroup(of: Void.self) { group in
                for (session, flows) in updates { group.addTask { await session.replace(with: flows, resolved: resolved) } }
            }
            await closeEmptySessions()
            relays = Dictionary(initial.relays.map { ($0.id, $0) }, uniquingKeysWith: { _, last in last })
            for flow in initial.authorizations { startICE(flow) }
            gatherFromRelays()
            logger.info("init", metadata: [
                "ipv4": "\(initial.interface.ipv4)", "ipv6": "\(initial.interface.ipv6)", "flows": "\(initial.authorizations.count)",
                "dropped": "\(dropped)", "sessions": "\(sessions.count)", "relays": "\(initial.relays.map(\.name).joined(separator: ","))",
            ])
        case let .authorizeFlow(flow):
            // Confirmed once the kernel lets the flow through (a DNS resource's name resolved first).
            let resolved = await resolve([flow])[flow.flowID]
            await session(flow.clientID, flow.clientInterface).authorize(flow, resolved: resolved)
            await closeEmptySessions()
            startICE(flow)
            sender.send(.flowAuthorized(FlowAuthorized(flowID: flow.flowID)), ref: frame.ref)
            logger.info("authorize_flow", metadata: [
                "flow": "\(flow.flowID)", "client": "\(flow.clientID)", "resource": "\(flow.resource.id)",
                "address": "\(flow.resource.address)", "expires_at": "\(flow.expiresAt)",
            ].merging(flow.dns.map { dns in
                let found = resolved.map { ($0.ipv4 + $0.ipv6).map { SocketAddress(ip: $0, port: 0).address }.joined(separator: ",") } ?? "unresolved"
                return ["name": "\(dns.name)", "proxies": "\(dns.addresses.joined(separator: ","))", "resolved": "\(found)"]
            } ?? [:]) { first, _ in first })
        case let .rejectAccess(rejection):
            let ended = await sessions[rejection.clientID]?.reject(resourceID: rejection.resourceID) ?? 0
            await closeEmptySessions()
            logger.info("reject_access", metadata: [
                "client": "\(rejection.clientID)", "resource": "\(rejection.resourceID)", "flows": "\(ended)",
            ])
        case let .resourceUpdated(resource):
            // Every session holding the resource recompiles and rewrites its rules (in parallel).
            let started = ContinuousClock.now
            let touched = await withTaskGroup(of: Bool.self) { group in
                for session in sessions.values { group.addTask { await session.update(resource) } }
                var count = 0
                for await held in group where held { count += 1 }
                return count
            }
            let took = ContinuousClock.now - started
            await closeEmptySessions()
            logger.info("resource_updated", metadata: [
                "resource": "\(resource.id)", "filters": "\(resource.filters.joined(separator: ","))", "sessions": "\(touched)",
                "took_ms": "\(String(format: "%.1f", Double(took.components.attoseconds) / 1e15 + Double(took.components.seconds) * 1000))",
            ])
        case let .relaysPresence(presence):
            for gone in presence.disconnected { relays[gone] = nil }
            for relay in presence.connected { relays[relay.id] = relay }
            if !presence.connected.isEmpty { gatherFromRelays() }
            logger.info("relays_presence", metadata: [
                "connected": "\(presence.connected.map(\.name).joined(separator: ","))", "disconnected": "\(presence.disconnected.count)",
            ])
        case let .iceCandidates(candidates):
            logger.debug("ice_candidates", metadata: ["flow": "\(candidates.flowID)", "count": "\(candidates.candidates.count)"])
            if let ufrag = iceUfrags[candidates.flowID] { ice?.addRemote(candidates.candidates, ufrag: ufrag) }
        case let .reply(reply) where reply.status == .error:
            logger.warning("the portal answered an error", metadata: ["code": "\(reply.code ?? "")", "message": "\(reply.message ?? "")"])
        default:
            break
        }
    }
}
