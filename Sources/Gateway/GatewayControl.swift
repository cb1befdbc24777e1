package import Actors
package import ControlProtocol
import Foundation
package import Identifiers
package import Logging

/// The gateway's side of the realtime API (portal spec, "Realtime API"): joins with its identity and
/// endpoints, holds the flows the portal authorised (the `init` after each connection is
/// authoritative), confirms each `authorize_flow`, and drops flows on `reject_access`. Its WireGuard
/// sessions and kernel enforcement build on these flows (issue #10); each change is logged, so an
/// operator sees what the gateway was told.
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
    package private(set) var flows: [AuthorizationID: FlowAuthorization] = [:]
    package private(set) var relays: [RelayID: RelayCredential] = [:]
    package private(set) var interface: Interface?

    package init(identity: Identity, logger: Logger) {
        self.identity = identity
        self.logger = logger
    }

    package nonisolated func join() async -> ControlMessage {
        .join(DeviceJoin(externalID: identity.device.externalID, name: identity.name, publicKey: identity.device.publicKey,
                         endpoints: identity.endpoints))
    }

    package func connectionChanged(joined: Bool) async {}

    package func received(_ frame: ControlFrame, sender: PortalSender) async {
        switch frame.message {
        case let .gatewayInit(initial):
            interface = initial.interface
            let kept = Set(initial.authorizations.map(\.flowID))
            let dropped = flows.keys.filter { !kept.contains($0) }
            flows = Dictionary(initial.authorizations.map { ($0.flowID, $0) }, uniquingKeysWith: { _, last in last })
            relays = Dictionary(initial.relays.map { ($0.id, $0) }, uniquingKeysWith: { _, last in last })
            logger.info("init", metadata: [
                "ipv4": "\(initial.interface.ipv4)", "ipv6": "\(initial.interface.ipv6)", "flows": "\(flows.count)",
                "dropped": "\(dropped.count)", "relays": "\(initial.relays.map(\.name).joined(separator: ","))",
            ])
        case let .authorizeFlow(flow):
            flows[flow.flowID] = flow
            sender.send(.flowAuthorized(FlowAuthorized(flowID: flow.flowID)), ref: frame.ref)
            logger.info("authorize_flow", metadata: [
                "flow": "\(flow.flowID)", "client": "\(flow.clientID)", "resource": "\(flow.resource.id)",
                "address": "\(flow.resource.address)", "expires_at": "\(flow.expiresAt)",
            ])
        case let .rejectAccess(rejection):
            let ended = flows.filter { $0.value.clientID == rejection.clientID && $0.value.resource.id == rejection.resourceID }.map(\.key)
            for flow in ended { flows[flow] = nil }
            logger.info("reject_access", metadata: [
                "client": "\(rejection.clientID)", "resource": "\(rejection.resourceID)", "flows": "\(ended.count)",
            ])
        case let .resourceUpdated(resource):
            for (id, flow) in flows where flow.resource.id == resource.id { flows[id]?.resource = resource }
            logger.info("resource_updated", metadata: ["resource": "\(resource.id)", "filters": "\(resource.filters.joined(separator: ","))"])
        case let .relaysPresence(presence):
            for gone in presence.disconnected { relays[gone] = nil }
            for relay in presence.connected { relays[relay.id] = relay }
            logger.info("relays_presence", metadata: [
                "connected": "\(presence.connected.map(\.name).joined(separator: ","))", "disconnected": "\(presence.disconnected.count)",
            ])
        case let .iceCandidates(candidates):
            logger.debug("ice_candidates", metadata: ["flow": "\(candidates.flowID)", "count": "\(candidates.candidates.count)"])
        case let .reply(reply) where reply.status == .error:
            logger.warning("the portal answered an error", metadata: ["code": "\(reply.code ?? "")", "message": "\(reply.message ?? "")"])
        default:
            break
        }
    }
}
