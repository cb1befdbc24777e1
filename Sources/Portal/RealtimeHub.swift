import AdminAPI
import Addresses
package import ControlProtocol
package import Foundation
package import Identifiers
package import Logging
package import Persistence
import Policy
import STUN

/// A connection's end, asked for through its mailbox: the close frame follows the frames sent before.
package struct Closing: Sendable {
    var reason: String
    var code: CloseCode
}

/// Why the portal closes a connection.
package enum CloseCode: Sendable {
    /// Access ended (token revoked or expired, actor disabled, site or device deleted, replaced by a
    /// newer connection of the same device): 1008.
    case policy
    /// Silence, shutdown: 1001.
    case goingAway
    /// The peer speaks a protocol version not spoken here: 1002.
    case protocolError
}

/// A connection's way out: frames are handed to its channel's event loop at once, in the order they are
/// sent, without waiting for the socket (a slow device never holds up the others, and telling a
/// thousand devices takes no task switch per device); a close goes to the connection's closing task,
/// which sends the close frame after them.
package struct Mailbox: Sendable {
    package let id = UUID()
    private let frames: FrameWriter
    private let closing: AsyncStream<Closing>.Continuation

    init(frames: FrameWriter, closing: AsyncStream<Closing>.Continuation) {
        self.frames = frames
        self.closing = closing
    }

    package func send(_ message: ControlMessage, ref: String? = nil) {
        frames.submit([ControlFrame(message, ref: ref)])
    }

    /// Several messages at once, in order, in one flush. The receipt, if any, is told when they were
    /// handed to the socket (or could not be).
    package func send(_ messages: [ControlMessage], receipt: DeliveryReceipt? = nil) {
        guard !messages.isEmpty else { return }
        receipt?.expect()
        frames.submit(messages.map { ControlFrame($0) }, handed: { receipt?.done() })
    }

    package func close(_ reason: String, code: CloseCode = .policy) {
        closing.yield(Closing(reason: reason, code: code))
    }
}

/// The portal's side of every connected gateway and client (portal spec, "Realtime API", "Live
/// changes", "Policy evaluation"): registers a device at its `join` and sends its `init`; turns the
/// evaluator's notifications into `reject_access`, `resource_updated`, `resource_created_or_updated`
/// and `resource_deleted` for the devices online; closes the connections whose access ended; runs
/// `create_flow` (evaluation, a gateway, `authorize_flow`, the gateway's confirmation, `flow_created`);
/// forwards ICE candidates between a flow's ends; hands out relays with TURN REST credentials and
/// renews them. Presence is the set of live connections, never a guess from a last-seen time.
package actor RealtimeHub {
    package struct Configuration: Sendable {
        /// How long a gateway has to confirm `authorize_flow` before the client is told `offline`.
        package var flowConfirmationTimeout: Duration = .seconds(15)
        /// How long relay credentials are valid, and how long before they expire they are renewed.
        package var credentialLifetime: TimeInterval = 3600
        package var credentialRenewal: TimeInterval = 600
        /// Relays each device is given.
        package var relaysPerDevice = 2
        /// How often relay tokens are looked up, to close the connections of revoked ones.
        package var relayTokenCheck: Duration = .seconds(2)
        /// How long a flow lasts when nothing (a time window, the client's token) bounds it; the client
        /// asks again after.
        package var unboundedFlowLifetime: TimeInterval = 7 * 24 * 3600

        package init() {}
    }

    private struct Member {
        var device: DeviceRecord
        var token: TokenRecord
        var mailbox: Mailbox
        /// Where clients reach a gateway, as it said in its `join`.
        var endpoints: [String]
        /// The relays it was given, with when their credentials expire.
        var relays: [RelayID: Date] = [:]
    }

    private let repository: any PortalRepository
    private let evaluator: PolicyEvaluator
    private let presence: RelayPresence
    private let secrets: FlowSecrets
    private let configuration: Configuration
    private let logger: Logger
    private var members: [DeviceID: Member] = [:]
    private var byAccount: [AccountID: Set<DeviceID>] = [:]
    /// Flows each gateway carries (it was told of them and they were not rejected since): its load.
    private var load: [DeviceID: Int] = [:]
    /// Each flow's two ends, for forwarding ICE candidates.
    private var flows: [AuthorizationID: FlowEnds] = [:]
    /// The flows of each (gateway, client, resource): what one `reject_access` ends.
    private var flowsByEnds: [FlowEnds: Set<AuthorizationID>] = [:]

    private struct FlowEnds: Hashable {
        var client: DeviceID
        var gateway: DeviceID
        var resource: ResourceID
    }
    /// Flows waiting for their gateway's `flow_authorized`.
    private var pending: [AuthorizationID: CheckedContinuation<Bool, Never>] = [:]
    /// The relays online as last seen, to tell devices what changed.
    private var relaysOnline: [RelayID: RelayPresence.OnlineRelay] = [:]

    package init(repository: any PortalRepository, evaluator: PolicyEvaluator, presence: RelayPresence, secrets: FlowSecrets,
                 configuration: Configuration = .init(), logger: Logger) {
        self.repository = repository
        self.evaluator = evaluator
        self.presence = presence
        self.secrets = secrets
        self.configuration = configuration
        self.logger = logger
    }

    // MARK: Presence

    /// Whether the device has a live connection now.
    package func isOnline(_ device: DeviceID) -> Bool {
        members[device] != nil
    }

    /// The devices online now, of `ids`.
    package func online(_ ids: [DeviceID]) -> Set<DeviceID> {
        Set(ids.filter { members[$0] != nil })
    }

    /// Devices each relay serves now.
    package func relayLoad() -> [RelayID: Int] {
        var counts: [RelayID: Int] = [:]
        for member in members.values { for relay in member.relays.keys { counts[relay, default: 0] += 1 } }
        return counts
    }

    // MARK: Join and leave

    package enum JoinRefusal: Error {
        case invalid(String)
        case unavailable(String)
    }

    /// Registers the device behind a gateway's or client's `join` and returns its `init`. A device that
    /// was connected already loses its older connection.
    package func join(_ join: DeviceJoin, token: TokenRecord, peer: Peer, address: String?, mailbox: Mailbox) async throws(JoinRefusal)
        -> (DeviceRecord, ControlMessage)
    {
        if let problem = Self.problem(with: join, peer: peer) { throw .invalid(problem) }
        guard let accountID = token.accountID else { throw .invalid("the token belongs to no account") }
        let registration = DeviceRegistration(
            accountID: accountID, kind: peer == .gateway ? .gateway : .client, externalID: join.externalID, name: join.name,
            publicKey: join.publicKey, version: join.version, actorID: peer == .client ? token.actorID : nil,
            siteID: peer == .gateway ? token.siteID : nil, tokenID: token.id, address: address)
        let device: DeviceRecord
        do {
            device = try await register(registration)
        } catch let error as DeviceRegistrationError {
            throw .unavailable(error.description)
        } catch {
            logger.error("device registration failed", metadata: ["error": "\(error)"])
            throw .unavailable("the device could not be registered; try again")
        }
        if let older = members[device.id] {
            older.mailbox.close("replaced by a newer connection of the same device")
            drop(device.id)
        }
        var member = Member(device: device, token: token, mailbox: mailbox, endpoints: join.endpoints ?? [])
        let relays = credentials(for: &member, count: configuration.relaysPerDevice)
        members[device.id] = member
        byAccount[accountID, default: []].insert(device.id)
        let view = await evaluator.view(of: accountID)
        let interface = Interface(ipv4: device.tunnelIPv4, ipv6: device.tunnelIPv6)
        switch peer {
        case .gateway:
            var authorizations: [FlowAuthorization] = []
            for authorization in view?.standing(ofGateway: device.id) ?? [] {
                guard let view, let flow = flowAuthorization(authorization, view: view) else { continue }
                authorizations.append(flow)
                remember(authorization.id, FlowEnds(client: authorization.clientID, gateway: device.id, resource: authorization.resourceID))
            }
            return (device, .gatewayInit(GatewayInit(interface: interface, relays: relays, authorizations: authorizations)))
        case .client, .relay:
            let resources = (view?.access(of: device.id).keys).map { ids in
                ids.sorted().compactMap { view?.data.resources[$0].map(Self.clientResource) }
            } ?? []
            return (device, .clientInit(ClientInit(interface: interface, resources: resources, relays: relays)))
        }
    }

    /// The connection of `device` that used `mailbox` ended.
    package func leave(_ device: DeviceID, mailbox: Mailbox) {
        guard members[device]?.mailbox.id == mailbox.id else { return }  // a newer connection took over
        drop(device)
    }

    private func drop(_ device: DeviceID) {
        guard let member = members.removeValue(forKey: device) else { return }
        byAccount[member.device.accountID]?.remove(device)
        if byAccount[member.device.accountID]?.isEmpty == true { byAccount[member.device.accountID] = nil }
    }

    /// What is wrong with a device's `join`, if anything.
    static func problem(with join: DeviceJoin, peer: Peer) -> String? {
        if join.externalID.isEmpty || join.externalID.utf8.count > 200 { return "\"external_id\" must be 1-200 bytes" }
        if join.name.isEmpty || join.name.count > 200 { return "\"name\" must be 1-200 characters" }
        guard let key = Data(base64Encoded: join.publicKey), key.count == 32 else {
            return "\"public_key\" must be a WireGuard public key (32 bytes, base64)"
        }
        if peer == .client, join.endpoints?.isEmpty == false { return "\"endpoints\" are a gateway's, not a client's" }
        for endpoint in join.endpoints ?? [] where SocketAddress(endpoint: endpoint) == nil {
            return "\"endpoints\": \"\(endpoint)\" is not HOST:PORT (an IP address, IPv6 in brackets)"
        }
        return nil
    }

    // MARK: Flows

    /// Runs a client's `create_flow` to its end: `flow_created` or `flow_creation_failed`, with `ref`.
    package func createFlow(from client: DeviceID, _ request: CreateFlow, ref: String?) async {
        guard let member = members[client] else { return }
        let outcome = await authorize(member, request)
        guard let mailbox = members[client]?.mailbox else { return }
        switch outcome {
        case let .success(created): mailbox.send(.flowCreated(created), ref: ref)
        case let .failure(reason): mailbox.send(.flowCreationFailed(FlowCreationFailed(resourceID: request.resourceID, reason: reason)), ref: ref)
        case let .invalid(problem): mailbox.send(.reply(.error("invalid_payload", "create_flow: \(problem)")), ref: ref)
        }
    }

    private enum FlowOutcome {
        case success(FlowCreated)
        case failure(FlowCreationFailed.Reason)
        /// The request does not fit the resource (a DNS resource's name and proxy addresses).
        case invalid(String)
    }

    private func authorize(_ member: Member, _ request: CreateFlow) async -> FlowOutcome {
        let accountID = member.device.accountID
        let now = Date()
        guard let view = await evaluator.view(of: accountID), let actorID = member.device.actorID, let actor = view.data.actors[actorID],
              let client = view.data.clients.first(where: { $0.id == member.device.id })
        else { return .failure(.notFound) }
        let evaluation: AccessEvaluation
        do {
            evaluation = try await evaluator.evaluate(accountID: accountID, actor: actor, resource: request.resourceID, client: client,
                                                      tokenExpiry: member.token.expiresAt, now: now)
        } catch {
            logger.error("flow evaluation failed", metadata: ["error": "\(error)"])
            return .failure(.offline)
        }
        switch evaluation.decision {
        case .notFound: return .failure(.notFound)
        case .forbidden: return .failure(.forbidden)
        case .allowed: break
        }
        guard let policyID = evaluation.chosenPolicy, let resource = view.data.resources[request.resourceID] else { return .failure(.notFound) }
        // A DNS resource's flow is for one name the client resolved, at the proxy addresses it chose.
        if resource.type == .dns {
            guard let dns = request.dns else { return .invalid("\"dns\" (the name and its proxy addresses) is required for DNS resource \(resource.id)") }
            if let problem = dns.problem(forPattern: resource.address) { return .invalid(problem) }
        } else if request.dns != nil {
            return .invalid("\"dns\" is only for DNS resources; \(resource.id) is a \(resource.type.rawValue) resource")
        }
        guard let gateway = chooseGateway(site: resource.siteID, account: accountID, preferring: request.connectedGatewayIDs) else {
            return .failure(.offline)
        }
        let expiresAt = evaluation.expiresAt ?? now.addingTimeInterval(configuration.unboundedFlowLifetime)
        let record = AuthorizationRecord(accountID: accountID, clientID: client.id, gatewayID: gateway.device.id, resourceID: resource.id,
                                         policyID: policyID, expiresAt: expiresAt, createdAt: now, dnsName: request.dns?.name,
                                         dnsProxies: request.dns?.addresses.joined(separator: " "))
        do {
            try await store(record)
        } catch {
            logger.error("authorisation not recorded", metadata: ["error": "\(error)"])
            return .failure(.offline)
        }
        guard let current = await evaluator.view(of: accountID), let flow = flowAuthorization(record, view: current),
              let gatewayMailbox = members[gateway.device.id]?.mailbox
        else { return .failure(.offline) }
        remember(record.id, FlowEnds(client: client.id, gateway: gateway.device.id, resource: resource.id))
        gatewayMailbox.send(.authorizeFlow(flow), ref: record.id.description)
        let confirmed = await confirmation(of: record.id)
        guard confirmed, let gatewayNow = members[gateway.device.id] else {
            // No confirmation in time: the gateway is told to forget the flow (deleting the authorisation
            // makes the evaluator send it `reject_access`).
            logger.notice("gateway did not confirm a flow in time", metadata: ["gateway": "\(gateway.device.id)", "flow": "\(record.id)"])
            try? await revoke(record)
            return .failure(.offline)
        }
        return .success(FlowCreated(
            flowID: record.id, resourceID: resource.id, gatewayID: gatewayNow.device.id, gatewayPublicKey: gatewayNow.device.publicKey,
            gatewayEndpoints: gatewayNow.endpoints, presharedKey: flow.presharedKey, clientICE: flow.clientICE,
            gatewayICE: flow.gatewayICE, expiresAt: expiresAt))
    }

    // The writes, each one change of its account for the evaluator (nonisolated: the change runs its
    // closure off this actor).
    private nonisolated func register(_ registration: DeviceRegistration) async throws -> DeviceRecord {
        try await evaluator.change(accountID: registration.accountID) { try await repository.registerDevice(registration, now: Date()) }.0
    }

    private nonisolated func store(_ authorization: AuthorizationRecord) async throws {
        _ = try await evaluator.change(accountID: authorization.accountID) { try await repository.createAuthorization(authorization) }
    }

    private nonisolated func revoke(_ authorization: AuthorizationRecord) async throws {
        _ = try await evaluator.change(accountID: authorization.accountID) {
            try await repository.deleteAuthorizations(accountID: authorization.accountID, [authorization])
        }
    }

    /// Notes a flow the gateway was told of (its load, and its ends for ICE and `reject_access`).
    private func remember(_ flow: AuthorizationID, _ ends: FlowEnds) {
        guard flows.updateValue(ends, forKey: flow) == nil else { return }
        flowsByEnds[ends, default: []].insert(flow)
        load[ends.gateway, default: 0] += 1
    }

    /// Forgets the flows a `reject_access` ended.
    /// Forgets the flows between these ends; each gateway's load is counted down once.
    private func forget(_ ended: [FlowEnds]) {
        var endedPerGateway: [DeviceID: Int] = [:]
        for ends in ended {
            guard let flowsEnded = flowsByEnds.removeValue(forKey: ends) else { continue }
            for flow in flowsEnded { flows[flow] = nil }
            endedPerGateway[ends.gateway, default: 0] += flowsEnded.count
        }
        for (gateway, count) in endedPerGateway { load[gateway] = max(0, (load[gateway] ?? 0) - count) }
    }

    /// Waits for the gateway's `flow_authorized`, at most the confirmation timeout.
    private func confirmation(of flow: AuthorizationID) async -> Bool {
        let timeout = configuration.flowConfirmationTimeout
        let timer = Task { [weak self] in
            try await Task.sleep(for: timeout)
            await self?.settle(flow, confirmed: false)
        }
        defer { timer.cancel() }
        return await withCheckedContinuation { pending[flow] = $0 }
    }

    private func settle(_ flow: AuthorizationID, confirmed: Bool) {
        pending.removeValue(forKey: flow)?.resume(returning: confirmed)
    }

    /// A gateway's `flow_authorized`; false when it names no flow waiting for this gateway.
    package func flowAuthorized(by gateway: DeviceID, _ message: FlowAuthorized) -> Bool {
        guard flows[message.flowID]?.gateway == gateway else { return false }
        settle(message.flowID, confirmed: true)
        return true
    }

    /// The online gateway of `site` to carry a new flow: one the client already has a tunnel to, then
    /// the least loaded, then any of those at random.
    private func chooseGateway(site: SiteID, account: AccountID, preferring connected: [DeviceID]) -> Member? {
        let candidates = (byAccount[account] ?? []).compactMap { members[$0] }.filter { $0.device.kind == .gateway && $0.device.siteID == site }
        guard !candidates.isEmpty else { return nil }
        let preferred = candidates.filter { connected.contains($0.device.id) }
        let pool = preferred.isEmpty ? candidates : preferred
        let lightest = pool.map { load[$0.device.id] ?? 0 }.min() ?? 0
        return pool.filter { (load[$0.device.id] ?? 0) == lightest }.randomElement()
    }

    /// The flow as the gateway is told of it; nil when the client or the resource is gone.
    private func flowAuthorization(_ authorization: AuthorizationRecord, view: AccessView) -> FlowAuthorization? {
        guard let client = view.data.clients.first(where: { $0.id == authorization.clientID }),
              let resource = view.data.resources[authorization.resourceID]
        else { return nil }
        return FlowAuthorization(
            flowID: authorization.id, clientID: client.id, clientPublicKey: client.publicKey,
            clientInterface: Interface(ipv4: client.tunnelIPv4, ipv6: client.tunnelIPv6), presharedKey: secrets.presharedKey(client: client.id, gateway: authorization.gatewayID),
            clientICE: secrets.ice(authorization.id, for: .client), gatewayICE: secrets.ice(authorization.id, for: .gateway),
            resource: Self.gatewayResource(resource), expiresAt: authorization.expiresAt, actorID: client.actorID, policyID: authorization.policyID,
            dns: authorization.dnsName.map { DNSProxy(name: $0, addresses: (authorization.dnsProxies ?? "").split(separator: " ").map(String.init)) })
    }

    static func gatewayResource(_ resource: ResourceRecord) -> GatewayResource {
        GatewayResource(id: resource.id, name: resource.name, type: kind(resource.type), address: resource.address,
                        filters: Resource.list(resource.filters))
    }

    static func clientResource(_ resource: ResourceRecord) -> ClientResource {
        ClientResource(id: resource.id, name: resource.name, type: kind(resource.type), address: resource.address,
                       addressDescription: resource.addressDescription, filters: Resource.list(resource.filters))
    }

    private static func kind(_ kind: ResourceRecord.Kind) -> GatewayResource.Kind {
        switch kind {
        case .cidr: .cidr
        case .ip: .ip
        case .dns: .dns
        }
    }

    /// Forwards ICE candidates to the other end of the flow, naming the sender; false when the sender
    /// is not an end of that flow.
    package func forward(_ candidates: ICECandidates, from sender: DeviceID) -> Bool {
        guard let ends = flows[candidates.flowID], ends.client == sender || ends.gateway == sender else { return false }
        let other = ends.client == sender ? ends.gateway : ends.client
        members[other]?.mailbox.send(.iceCandidates(ICECandidates(flowID: candidates.flowID, peerID: sender, candidates: candidates.candidates)))
        return true
    }

    // MARK: Live changes

    /// Tells the devices online what an account's change means for them, and closes the connections
    /// whose access ended (token deleted or expired, actor disabled or deleted, device or site deleted).
    package func deliver(_ update: AccessUpdate) async {
        // Gathered per device, then handed to each device's writer in one go; the gateways' first, since
        // a revocation takes effect at the gateway (the clients' lists follow).
        var toGateways: [DeviceID: [ControlMessage]] = [:]
        var toClients: [DeviceID: [ControlMessage]] = [:]
        func online(_ device: DeviceID) -> Bool { members.index(forKey: device) != nil }
        var ended: [FlowEnds] = []
        for notification in update.notifications {
            switch notification {
            case let .rejectAccess(gateway, client, resource):
                ended.append(FlowEnds(client: client, gateway: gateway, resource: resource))
                guard online(gateway) else { continue }
                toGateways[gateway, default: []].append(.rejectAccess(RejectAccess(clientID: client, resourceID: resource)))
            case let .resourceUpdated(gateway, resource):
                guard online(gateway), let record = update.resources[resource] else { continue }
                toGateways[gateway, default: []].append(.resourceUpdated(Self.gatewayResource(record)))
            case let .resourceDeleted(client, resource):
                guard online(client) else { continue }
                toClients[client, default: []].append(.resourceDeleted(ResourceDeleted(resourceID: resource)))
            case let .resourceCreatedOrUpdated(client, resource):
                guard online(client), let record = update.resources[resource] else { continue }
                toClients[client, default: []].append(.resourceCreatedOrUpdated(Self.clientResource(record)))
            }
        }
        for batches in [toGateways, toClients] {
            for (device, messages) in batches {
                guard let index = members.index(forKey: device) else { continue }
                members.values[index].mailbox.send(messages, receipt: update.receipt)
            }
        }
        update.receipt?.sealed()
        // Bookkeeping once everyone was sent their part: the flows that ended no longer count.
        forget(ended)
        guard let standing = update.standing, let online = byAccount[update.accountID] else { return }
        for id in online {
            guard let member = members[id], let reason = Self.accessEnded(member, standing) else { continue }
            logger.info("closing a device's connection", metadata: ["device": "\(id)", "reason": "\(reason)"])
            member.mailbox.close(reason)
            drop(id)
        }
    }

    /// Why a connected device may no longer stay connected, if it may not.
    private static func accessEnded(_ member: Member, _ standing: DeviceStanding) -> String? {
        guard let expiry = standing.tokens[member.token.id] else { return "its token was revoked" }
        if let expiry, expiry <= standing.now { return "its token expired" }
        guard standing.devices.contains(member.device.id) else {
            return member.device.kind == .client ? "the device was deleted" : "its site or the device was deleted"
        }
        if member.device.kind == .client {
            guard let actorID = member.device.actorID, standing.actors.contains(actorID) else { return "its actor was deleted" }
            if standing.disabledActors.contains(actorID) { return "its actor was disabled" }
        }
        return nil
    }

    /// Delivers the evaluator's updates for as long as the task runs.
    package nonisolated func run() async {
        let updates = await evaluator.subscribeUpdates()
        await withTaskGroup(of: Void.self) { group in
            group.addTask {
                for await update in updates { await self.deliver(update) }
            }
            group.addTask {
                // Relay tokens are revoked by the operator direct to the database: looked for every few
                // seconds, and a revoked relay's connection closed (devices are then told it went).
                while !Task.isCancelled {
                    try? await Task.sleep(for: self.configuration.relayTokenCheck)
                    guard let tokens = try? await self.repository.listRelayTokens() else { continue }
                    let now = Date()
                    let valid = Set(tokens.filter { $0.expiresAt.map { $0 > now } ?? true }.map(\.id))
                    if await self.presence.closeRevoked(keeping: valid) > 0 { await self.relaysChanged() }
                }
            }
            group.addTask {
                // Relay credentials renewed before they expire (and relays' comings and goings caught
                // even if a notice was missed).
                while !Task.isCancelled {
                    try? await Task.sleep(for: .seconds(30))
                    await self.relaysChanged()
                }
            }
            await group.waitForAll()
        }
    }

    // MARK: Relays

    /// Gives `member` up to `count` more relays (the least loaded it does not have), with fresh
    /// credentials, and returns those credentials.
    private func credentials(for member: inout Member, count: Int) -> [RelayCredential] {
        guard count > 0 else { return [] }
        let counts = relayLoad()
        let choices = relaysOnline.values.filter { member.relays[$0.id] == nil }
            .sorted { (counts[$0.id] ?? 0, $0.connectedAt, $0.id) < (counts[$1.id] ?? 0, $1.connectedAt, $1.id) }
            .prefix(count)
        return choices.map { credential(for: &member, $0) }
    }

    private func credential(for member: inout Member, _ relay: RelayPresence.OnlineRelay) -> RelayCredential {
        let expiresAt = Date().addingTimeInterval(configuration.credentialLifetime)
        let username = RESTCredentials.username(expiry: Int64(expiresAt.timeIntervalSince1970), id: member.device.id.description)
        member.relays[relay.id] = expiresAt
        return RelayCredential(id: relay.id, name: relay.join.name, ipv4: relay.join.ipv4, ipv6: relay.join.ipv6, port: relay.join.port,
                               username: username, password: RESTCredentials.password(secret: relay.join.secret, username: username),
                               expiresAt: expiresAt)
    }

    /// Brings every device's relays up to date with the relays online: tells them of relays gone, gives
    /// those short of relays new ones, and renews credentials close to expiry.
    package func relaysChanged() async {
        let online = Dictionary(uniqueKeysWithValues: await presence.online().map { ($0.id, $0) })
        relaysOnline = online
        let renewBy = Date().addingTimeInterval(configuration.credentialRenewal)
        for id in Array(members.keys) {
            guard var member = members[id] else { continue }
            let gone = member.relays.keys.filter { online[$0] == nil }.sorted()
            for relay in gone { member.relays[relay] = nil }
            var connected = member.relays.filter { $0.value <= renewBy }.keys.sorted().compactMap { relay in
                online[relay].map { credential(for: &member, $0) }
            }
            connected += credentials(for: &member, count: configuration.relaysPerDevice - member.relays.count)
            members[id] = member
            if !gone.isEmpty || !connected.isEmpty {
                member.mailbox.send(.relaysPresence(RelaysPresence(connected: connected, disconnected: gone)))
            }
        }
    }
}
