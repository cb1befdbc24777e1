package import Addresses
package import ControlProtocol
package import Foundation
package import Tunnel
package import Identifiers
package import Logging
import Policy
package import Actors

/// One client's session at the gateway (gateway spec, "Sessions and enforcement"): its tunnel
/// addresses, the flows the portal authorised with their resources, filters and expiries, and the
/// kernel entries compiled from them. Every change compiles the whole rule set again and rewrites the
/// client's entries at once; an expiry is acted on when it comes, portal or no portal.
package actor ClientSession {
    package let clientID: DeviceID
    private let kernel: KernelRules
    private let dataPlane: (any SessionDataPlane)?
    /// What the data plane was last told about this client's peer.
    private var peer: TunnelPeer?
    private let clock: any WallClock
    private let logger: Logger
    package private(set) var interface: Interface
    package private(set) var flows: [AuthorizationID: FlowAuthorization] = [:]
    /// The entries this session wrote (what the kernel holds for the client).
    package private(set) var rules: [KernelRule] = []
    private var expiry: Task<Void, Never>?
    /// Each resource as last parsed (its address and filters are parsed once, not at every change):
    /// the prefix of a CIDR/IP resource, and the filters (nil when they do not parse).
    private var parsed: [ResourceID: (resource: GatewayResource, prefix: AddressRange?, filters: [Filter]?)] = [:]
    /// What the gateway's resolver found for each DNS flow's name (absent: not resolved).
    private var resolved: [AuthorizationID: NameResolver.Resolved] = [:]
    /// Set when a write failed: the next apply writes every entry again.
    private var rewriteAll = false

    package init(clientID: DeviceID, interface: Interface, kernel: KernelRules, dataPlane: (any SessionDataPlane)? = nil, clock: any WallClock,
                 logger: Logger) {
        self.clientID = clientID
        self.interface = interface
        self.kernel = kernel
        self.dataPlane = dataPlane
        self.clock = clock
        self.logger = logger
    }

    /// Whether anything is left (a session with no flow is closed by its owner).
    package var isEmpty: Bool { flows.isEmpty }

    /// Sets the session's flows to exactly `flows` (the portal's `init` is authoritative).
    /// `resolved`: the addresses of the DNS flows' names.
    package func replace(with flows: [FlowAuthorization], resolved: [AuthorizationID: NameResolver.Resolved] = [:]) {
        self.flows = Dictionary(flows.map { ($0.flowID, $0) }, uniquingKeysWith: { _, last in last })
        self.resolved = resolved.filter { self.flows[$0.key] != nil }
        if let last = flows.last { interface = last.clientInterface }
        apply()
    }

    package func authorize(_ flow: FlowAuthorization, resolved addresses: NameResolver.Resolved? = nil) {
        flows[flow.flowID] = flow
        resolved[flow.flowID] = addresses
        interface = flow.clientInterface
        apply()
    }

    /// Ends the client's flows to `resourceID`; returns how many ended.
    package func reject(resourceID: ResourceID) -> Int {
        let ended = flows.values.filter { $0.resource.id == resourceID }.map(\.flowID)
        for id in ended {
            flows[id] = nil
            resolved[id] = nil
        }
        if !ended.isEmpty { apply() }
        return ended.count
    }

    /// A resource's address or filters changed. A DNS flow whose name the new pattern no longer
    /// matches ends. Whether the session holds the resource.
    @discardableResult
    package func update(_ resource: GatewayResource) -> Bool {
        var changed = false
        let pattern = resource.type == .dns ? try? DNSPattern(resource.address) : nil
        for (id, flow) in flows where flow.resource.id == resource.id {
            if resource.type == .dns, !(flow.dns.map { pattern?.matches($0.name) ?? false } ?? false) {
                flows[id] = nil
                resolved[id] = nil
                logger.info("flow ended: its name no longer matches the resource", metadata: [
                    "client": "\(clientID)", "flow": "\(id)", "name": "\(flow.dns?.name ?? "")", "pattern": "\(resource.address)",
                ])
            } else {
                flows[id]?.resource = resource
            }
            changed = true
        }
        if changed { apply() }
        return changed
    }

    /// Removes every entry of the client (the session is over).
    package func close() {
        flows = [:]
        apply()
    }

    /// Drops what expired, compiles the rest and rewrites the client's entries; then waits for the
    /// next expiry.
    private func apply() {
        let now = clock.now()
        let expired = flows.values.filter { $0.expiresAt <= now }
        for flow in expired {
            flows[flow.flowID] = nil
            resolved[flow.flowID] = nil
            logger.info("flow expired", metadata: ["client": "\(clientID)", "flow": "\(flow.flowID)", "resource": "\(flow.resource.id)"])
        }
        let grants = grants()
        let compiled = flows.isEmpty ? [] : RuleCompiler.compile(client: addresses, grants.kernel)
        do {
            try kernel.replace(rules, with: compiled, rewritingAll: rewriteAll)
            rewriteAll = false
        } catch {
            rewriteAll = true
            logger.error("writing the client's kernel rules failed", metadata: ["client": "\(clientID)", "error": "\(error)"])
        }
        rules = compiled
        // The tunnel takes the client while it has flows (the kernel's rules are in place first).
        let latest = flows.values.max { $0.expiresAt < $1.expiresAt }
        let wanted = latest.flatMap { flow -> TunnelPeer? in
            guard let key = Data(base64Encoded: flow.clientPublicKey), key.count == 32,
                  let psk = Data(base64Encoded: flow.presharedKey), psk.count == 32 else { return nil }
            // User space checks exactly what the policy says (no port ranges joined to fit an entry),
            // at the addresses the client sends to (a DNS resource's proxy addresses).
            let exact = RuleCompiler.compile(client: addresses, grants.user.map(\.destination), rangesPerEntry: .max)
            // Each rule's flows are logged under the flow whose grant is exactly its prefix.
            var labels: [FlowLabel] = []
            var labelByPrefix: [AddressRange: Int] = [:]
            for (destination, flow) in grants.user.sorted(by: { $0.flow.flowID < $1.flow.flowID }) where labelByPrefix[destination.prefix] == nil {
                labelByPrefix[destination.prefix] = labels.count
                labels.append(FlowLabel(client: clientID.description, actor: flow.actorID?.description ?? "",
                                        resource: flow.resource.id.description, policy: flow.policyID?.description ?? ""))
            }
            return TunnelPeer(publicKey: [UInt8](key), presharedKey: [UInt8](psk), addresses: addresses,
                              rules: AccessRules(labelled: exact.map { ($0.destination, $0.ports, labelByPrefix[$0.destination] ?? -1) }),
                              labels: labels, unlabelled: FlowLabel(client: clientID.description, actor: flow.actorID?.description ?? ""),
                              translations: grants.translations, withoutAddress: grants.withoutAddress)
        }
        if wanted != peer {
            dataPlane?.peerChanged(client: clientID, from: peer, to: wanted)
            peer = wanted
        }
        expiry?.cancel()
        expiry = nil
        if let next = flows.values.map(\.expiresAt).min() {
            expiry = Task { [clock] in
                do {
                    try await clock.sleep(until: next)
                } catch {
                    return
                }
                self.expire()
            }
        }
    }

    private func expire() {
        apply()
    }

    /// The client's tunnel addresses.
    private var addresses: [SocketAddress.IP] {
        [interface.ipv4, interface.ipv6].compactMap { text in (try? SocketAddress(text, port: 0))?.ip }
    }

    /// What the flows authorise: as the kernel enforces it (real addresses), as user space checks it
    /// (the addresses the client sends to: a DNS resource's proxy addresses, each with the flow that
    /// grants it), and the proxy → real address translations. A DNS flow's i-th proxy address of a
    /// family stands for the i-th resolved address of that family (wrapping around); a proxy address
    /// with no address of its family behind it is checked but not translated (the engine refuses what
    /// is sent to it: "unreachable" when the name resolved without that family, in `withoutAddress`,
    /// "prohibited" when it did not resolve). A resource whose address or filters do not parse
    /// authorises nothing (and says so).
    private func grants() -> (kernel: [GrantedDestination], user: [(destination: GrantedDestination, flow: FlowAuthorization)],
                              translations: [SocketAddress.IP: SocketAddress.IP], withoutAddress: Set<SocketAddress.IP>) {
        if parsed.count > 2 * flows.count + 16 {
            let current = Set(flows.values.map(\.resource.id))
            parsed = parsed.filter { current.contains($0.key) }
        }
        var kernel: [GrantedDestination] = []
        var user: [(destination: GrantedDestination, flow: FlowAuthorization)] = []
        var translations: [SocketAddress.IP: SocketAddress.IP] = [:]
        var withoutAddress: Set<SocketAddress.IP> = []
        for flow in flows.values {
            let entry: (resource: GatewayResource, prefix: AddressRange?, filters: [Filter]?)
            if let cached = parsed[flow.resource.id], cached.resource == flow.resource {
                entry = cached
            } else {
                entry = parse(flow.resource)
                parsed[flow.resource.id] = entry
            }
            guard let filters = entry.filters else { continue }
            if let prefix = entry.prefix {
                let destination = GrantedDestination(prefix: prefix, filters: filters)
                kernel.append(destination)
                user.append((destination, flow))
                continue
            }
            guard let dns = flow.dns else { continue }
            let proxies = dns.addresses.compactMap { (try? SocketAddress($0, port: 0))?.ip }
            let real = resolved[flow.flowID]
            var index = (v4: 0, v6: 0)
            for proxy in proxies {
                user.append((GrantedDestination(prefix: AddressRange(network: proxy, prefixLength: proxy.bitWidth), filters: filters), flow))
                let family: [SocketAddress.IP]
                let position: Int
                if case .v4 = proxy {
                    family = real?.ipv4 ?? []
                    position = index.v4
                    index.v4 += 1
                } else {
                    family = real?.ipv6 ?? []
                    position = index.v6
                    index.v6 += 1
                }
                guard !family.isEmpty else {
                    if real != nil { withoutAddress.insert(proxy) }
                    continue
                }
                let target = family[position % family.count]
                translations[proxy] = target
                kernel.append(GrantedDestination(prefix: AddressRange(network: target, prefixLength: target.bitWidth), filters: filters))
            }
        }
        return (kernel, user, translations, withoutAddress)
    }

    private func parse(_ resource: GatewayResource) -> (resource: GatewayResource, prefix: AddressRange?, filters: [Filter]?) {
        let prefix: AddressRange?
        switch resource.type {
        case .cidr: prefix = try? AddressRange(resource.address)
        case .ip: prefix = (try? SocketAddress(resource.address, port: 0)).map { AddressRange(network: $0.ip, prefixLength: $0.ip.bitWidth) }
        case .dns: prefix = nil
        }
        let filters = resource.filters.compactMap { try? Filter($0) }
        guard prefix != nil || resource.type == .dns, filters.count == resource.filters.count else {
            logger.error("resource not enforced: its address or filters do not parse", metadata: [
                "resource": "\(resource.id)", "address": "\(resource.address)", "filters": "\(resource.filters.joined(separator: ","))",
            ])
            return (resource, nil, nil)
        }
        return (resource, prefix, filters)
    }
}

/// A client's WireGuard peer as the data plane takes it.
package struct TunnelPeer: Sendable, Equatable {
    package var publicKey: [UInt8]
    package var presharedKey: [UInt8]
    package var addresses: [SocketAddress.IP]
    /// What the client may reach, as user space checks it, and who its flows belong to.
    package var rules: AccessRules
    package var labels: [FlowLabel]
    package var unlabelled: FlowLabel
    /// DNS proxy address → the real address it stands for.
    package var translations: [SocketAddress.IP: SocketAddress.IP] = [:]
    /// Proxy addresses of names that resolved without an address of their family.
    package var withoutAddress: Set<SocketAddress.IP> = []
}

/// Where sessions hand their client's peer: the gateway's WireGuard data plane.
package protocol SessionDataPlane: Sendable {
    /// The client's peer changed (`to` nil: it is gone).
    func peerChanged(client: DeviceID, from old: TunnelPeer?, to new: TunnelPeer?)
}
