package import Actors
package import BPF
import Addresses
import ControlProtocol
import ICE
import Identifiers
package import Foundation
package import Logging
package import Prometheus
import Synchronization
package import Tunnel
import WireGuard

/// The gateway's data-plane setup and its operations view: the tunnel device, the TC program on its
/// ingress with the rules of the session actors, the metrics (sessions, rules, kernel verdicts by
/// reason) and `GET /rules` (the actors' rules beside the kernel's, read back).
package final class GatewayService: Sendable {
    package let tunnel: TUNDevice
    package let kernel: KernelRules
    package let control: GatewayControl
    package let engine: TunnelEngine
    private let hostNetwork: GatewayForwarding
    private let attachment: TCAttachment
    private let metrics: GatewayMetrics
    private let logger: Logger

    /// Loads the TC program, opens the tunnel device `tunName` (MTU `mtu`) and attaches the program to
    /// its ingress. Needs CAP_NET_ADMIN and CAP_BPF; says which step failed and why.
    /// `userSpaceChecks` false leaves the judging of what clients send to the kernel's TC program alone
    /// (a test's switch, to show that the program enforces by itself).
    package init(identity: GatewayControl.Identity, tunName: String, mtu: Int, listenPort: UInt16, forwarding: Bool = true, masquerade: Bool = true,
                 userSpaceChecks: Bool = true, flowLogPath: String? = nil, resolver: NameResolver = .system(), natIdleLimit: TimeInterval? = nil,
                 registry: PrometheusCollectorRegistry, clock: any WallClock = SystemWallClock(), logger: Logger) throws {
        let program: GatewayTCProgram
        do {
            program = try GatewayTCProgram()
        } catch {
            throw GatewayStartError("loading the gateway's TC program (needs CAP_BPF and CAP_NET_ADMIN): \(error)")
        }
        do {
            // With offloads (TCP super-packets both ways) where the kernel has them, else plain.
            let offloading = try? TUNDevice(name: tunName, offload: true)
            if offloading == nil { logger.warning("the TUN device has no offloads here: one packet per read and write") }
            tunnel = try offloading ?? TUNDevice(name: tunName)
            try tunnel.configure(mtu: mtu, addresses: [])
        } catch {
            throw GatewayStartError("\(error)")
        }
        do {
            attachment = try program.attach(to: tunnel.name)
        } catch {
            tunnel.close()
            throw GatewayStartError("attaching the TC program to \(tunName): \(error)")
        }
        kernel = KernelRules(program: program)
        metrics = GatewayMetrics(registry: registry)
        self.logger = logger
        let device = tunnel
        guard let keyBytes = Data(base64Encoded: identity.device.privateKey.reveal()), keyBytes.count == 32 else {
            throw GatewayStartError("the gateway's WireGuard private key is not 32 bytes of base64")
        }
        do {
            let socket = try UDPSocket.tunnelEndpoint(bindTo: SocketAddress("0.0.0.0", port: listenPort))
            if let warning = socket.smallBufferWarning { logger.warning("\(warning)") }
            var sockets = [socket]
            // IPv6 on the same port, where the host has IPv6.
            do {
                sockets.append(try UDPSocket.tunnelEndpoint(bindTo: SocketAddress("::", port: socket.localPort)))
            } catch {
                logger.warning("WireGuard listens on IPv4 only", metadata: ["error": "\(error)"])
            }
            let flowLog = try flowLogPath.map { path in
                do {
                    return try FlowLog(path: path)
                } catch {
                    throw GatewayStartError("opening the flow log \(path): \(error)")
                }
            }
            engine = try TunnelEngine(tun: tunnel, sockets: sockets, local: StaticKey(privateKey: [UInt8](keyBytes)), flowLog: flowLog,
                                  natIdleLimit: natIdleLimit)
        } catch {
            try? attachment.detach()
            tunnel.close()
            throw GatewayStartError("listening for WireGuard on UDP port \(listenPort): \(error)")
        }
        do {
            hostNetwork = try GatewayForwarding(tunnel: tunnel.name, forwarding: forwarding, masquerade: masquerade, logger: logger)
        } catch {
            try? attachment.detach()
            tunnel.close()
            throw error
        }
        let running = engine
        let engineThread = Thread { running.run() }
        engineThread.name = "gatehouse-wireguard"
        engineThread.start()
        let dataPlane = GatewayDataPlane(engine: engine, tunnel: tunnel, userSpaceChecks: userSpaceChecks, logger: logger)
        if !userSpaceChecks { logger.warning("user-space checks are off: only the kernel's TC program judges what clients send") }
        if resolver.servers.isEmpty { logger.warning("no DNS server: DNS resources will not resolve (none in /etc/resolv.conf; see --dns-server)") }
        control = GatewayControl(identity: identity, kernel: kernel, dataPlane: dataPlane, clock: clock, resolver: resolver,
                                 ice: EngineICE(engine: engine), logger: logger) { interface in
            // The gateway's own tunnel addresses, as host addresses of the device.
            var addresses: [AddressRange] = []
            if let ip = try? SocketAddress(interface.ipv4, port: 0).ip { addresses.append(AddressRange(network: ip, prefixLength: 32)) }
            if let ip = try? SocketAddress(interface.ipv6, port: 0).ip { addresses.append(AddressRange(network: ip, prefixLength: 128)) }
            do {
                try device.configure(mtu: mtu, addresses: addresses)
            } catch {
                logger.error("configuring the tunnel device failed", metadata: ["error": "\(error)"])
            }
        }
        // ICE host candidates: this host's addresses (never the tunnel's) and the endpoints it was
        // told to announce, at the WireGuard port.
        var hosts = HostAddresses.list(excludingInterfaces: [tunnel.name]).map { SocketAddress(ip: $0, port: engine.port) }
        for endpoint in identity.endpoints.compactMap(SocketAddress.init(endpoint:)) where !hosts.contains(endpoint) { hosts.append(endpoint) }
        engine.setHostCandidates(ICECandidate.hosts(hosts))
        let trickling = control
        engine.onICECandidates { ufrag, candidates in
            Task { await trickling.trickle(ufrag: ufrag, candidates: candidates.map(\.sdp)) }
        }
        logger.info("tunnel device ready", metadata: ["tun": "\(tunnel.name)", "mtu": "\(mtu)", "offload": "\(tunnel.offload ? (tunnel.udpOffload ? "tcp+udp" : "tcp") : "none")", "tc": "ingress", "wireguard_port": "\(engine.port)",
                                                  "forwarding": "\(forwarding)", "masquerade": "\(masquerade)"])
    }

    /// Detaches the program and closes the device (the device goes with it).
    package func shutdown() {
        engine.stopAndWait()  // the flows going on are written to the flow log
        hostNetwork.remove()
        do {
            try attachment.detach()
        } catch {
            logger.warning("detaching the TC program failed", metadata: ["error": "\(error)"])
        }
        tunnel.close()
    }

    /// Brings the counters up to date (before `/metrics` answers).
    package func collect() async {
        let snapshot = await control.snapshot()
        metrics.sessions.set(Int64(snapshot.count))
        metrics.rules.set(Int64(kernel.entryCount))
        metrics.mapErrors.set(Int64(kernel.errorCount))
        metrics.record(engine.statistics)
        do {
            metrics.record(try kernel.program.statistics())
        } catch {
            logger.warning("reading the kernel's counters failed", metadata: ["error": "\(error)"])
        }
    }

    /// `GET /rules`: per session its flows and compiled rules, and what the kernel holds, with whether
    /// the two agree.
    package func rulesDocument() async -> String {
        let snapshot = await control.snapshot()
        let actors = snapshot.flatMap(\.rules)
        let kernelRules: [KernelRule]
        var document: [String: Any] = [:]
        do {
            kernelRules = try kernel.readBack()
        } catch {
            kernelRules = []
            document["kernel_error"] = "\(error)"
        }
        let dates = ISO8601DateFormatter()
        document["sessions"] = snapshot.map { session in
            [
                "client": session.client.description,
                "flows": session.flows.sorted { $0.flowID < $1.flowID }.map { flow in
                    var entry: [String: Any] = ["flow": flow.flowID.description, "resource": flow.resource.id.description,
                                                "address": flow.resource.address, "filters": flow.resource.filters,
                                                "expires_at": dates.string(from: flow.expiresAt)]
                    if let dns = flow.dns { entry["dns"] = ["name": dns.name, "proxies": dns.addresses] }
                    return entry
                },
                "rules": session.rules.map(Self.describe).sorted(),
            ] as [String: Any]
        }
        document["kernel"] = kernelRules.map(Self.describe).sorted()
        document["consistent"] = Set(actors.map(Self.describe)) == Set(kernelRules.map(Self.describe)) && actors.count == kernelRules.count
        let data = (try? JSONSerialization.data(withJSONObject: document, options: [.sortedKeys, .prettyPrinted])) ?? Data("{}".utf8)
        return String(decoding: data, as: UTF8.self) + "\n"
    }

    /// One rule as a line: `CLIENT -> PREFIX: WHAT` (WHAT: all, none, or icmp,tcp:RANGES,udp:RANGES).
    package static func describe(_ rule: KernelRule) -> String {
        "\(SocketAddress(ip: rule.client, port: 0).address) -> \(rule.destination): \(describe(rule.ports))"
    }

    static func describe(_ ports: RulePorts) -> String {
        if ports.allowsAll { return "all" }
        func ranges(_ list: [ClosedRange<UInt16>]) -> String {
            list.map { $0.lowerBound == $0.upperBound ? "\($0.lowerBound)" : "\($0.lowerBound)-\($0.upperBound)" }.joined(separator: ",")
        }
        var parts: [String] = []
        if ports.icmp { parts.append("icmp") }
        if !ports.tcp.isEmpty { parts.append("tcp:" + ranges(ports.tcp)) }
        if !ports.udp.isEmpty { parts.append("udp:" + ranges(ports.udp)) }
        return parts.isEmpty ? "none" : parts.joined(separator: " ")
    }
}

/// Sessions' peers into the WireGuard engine, with a route per client address into the tunnel device
/// (so that what resources answer goes back through the tunnel).
struct GatewayDataPlane: SessionDataPlane {
    let engine: TunnelEngine
    let tunnel: TUNDevice
    let userSpaceChecks: Bool
    let logger: Logger

    func peerChanged(client: DeviceID, from old: TunnelPeer?, to new: TunnelPeer?) {
        if let old, old.publicKey != new?.publicKey { engine.remove(publicKey: old.publicKey) }
        for address in old?.addresses ?? [] where !(new?.addresses.contains(address) ?? false) {
            try? tunnel.route(AddressRange(network: address, prefixLength: address.bitWidth), add: false)
        }
        guard let new else {
            logger.info("peer removed", metadata: ["client": "\(client)"])
            return
        }
        engine.authorize(.init(publicKey: new.publicKey, presharedKey: new.presharedKey, addresses: new.addresses,
                               rules: userSpaceChecks ? new.rules : nil, labels: new.labels, unlabelled: new.unlabelled,
                               translations: new.translations, withoutAddress: new.withoutAddress))
        for address in new.addresses {
            do {
                try tunnel.route(AddressRange(network: address, prefixLength: address.bitWidth), add: true)
            } catch {
                logger.error("routing a client's address into the tunnel failed", metadata: ["client": "\(client)", "error": "\(error)"])
            }
        }
        if old?.publicKey != new.publicKey {
            logger.info("peer authorised", metadata: ["client": "\(client)", "public_key": "\(Data(new.publicKey).base64EncodedString())"])
        } else {
            logger.debug("peer's rules changed", metadata: ["client": "\(client)"])
        }
    }
}

/// ICE on the WireGuard engine's sockets.
struct EngineICE: GatewayICE {
    let engine: TunnelEngine

    func start(client publicKey: String, local: ICECredentials, remote: ICECredentials) {
        guard let key = Data(base64Encoded: publicKey), key.count == 32 else { return }
        engine.startICE(client: [UInt8](key), local: .init(ufrag: local.username, password: local.password),
                        remote: .init(ufrag: remote.username, password: remote.password))
    }

    func addRemote(_ candidates: [String], ufrag: String) {
        engine.addRemoteCandidates(candidates.compactMap(ICECandidate.init(sdp:)), ufrag: ufrag)
    }

    func gather(from servers: [SocketAddress]) { engine.gatherCandidates(from: servers) }
}

/// Why the gateway could not start, said plainly.
package struct GatewayStartError: Error, CustomStringConvertible {
    package let description: String
    package init(_ description: String) { self.description = description }
}

/// The gateway's metrics, in Prometheus form (`GET /metrics`).
final class GatewayMetrics: Sendable {
    let sessions: Gauge
    let rules: Gauge
    let mapErrors: Gauge
    private let registry: PrometheusCollectorRegistry
    private let previous = Mutex<[GatewayTCReason: BPFCount]>([:])
    private let previousTunnel = Mutex(TunnelEngine.Counters())
    private let tunnelPeers: Gauge
    private let translations: Gauge

    init(registry: PrometheusCollectorRegistry) {
        self.registry = registry
        sessions = registry.makeGauge(name: "gatehouse_gateway_sessions", help: "Client sessions with authorised flows")
        rules = registry.makeGauge(name: "gatehouse_gateway_kernel_rules", help: "Entries of the kernel's rule trie written by sessions")
        mapErrors = registry.makeGauge(name: "gatehouse_gateway_rule_write_errors", help: "Rule rewrites the kernel refused")
        tunnelPeers = registry.makeGauge(name: "gatehouse_gateway_wireguard_peers", help: "WireGuard peers authorised now")
        translations = registry.makeGauge(name: "gatehouse_gateway_dns_translations",
                                          help: "DNS proxy translations in use (one per flow from a client to a proxy address)")
        for reason in GatewayTCReason.allCases { _ = counters(reason) }
        for reason in WireGuardDrop.allCases { _ = dropped(reason) }
        recordTunnel(TunnelEngine.Counters(), since: TunnelEngine.Counters())
    }

    private func dropped(_ reason: WireGuardDrop) -> Counter {
        registry.makeCounter(name: "gatehouse_gateway_wireguard_dropped_total", labels: [("reason", reason.rawValue)],
                             help: "WireGuard datagrams and tunnel packets dropped, by reason")
    }

    /// Adds what the WireGuard engine counted since the last call.
    func record(_ current: TunnelEngine.Counters) {
        let before = previousTunnel.withLock { previous in defer { previous = current }; return previous }
        recordTunnel(current, since: before)
    }

    private func recordTunnel(_ current: TunnelEngine.Counters, since before: TunnelEngine.Counters) {
        func add(_ name: String, _ help: String, _ labels: [(String, String)] = [], _ value: KeyPath<TunnelEngine.Counters, Int>) {
            registry.makeCounter(name: name, labels: labels, help: help).increment(by: Int64(max(0, current[keyPath: value] - before[keyPath: value])))
        }
        add("gatehouse_gateway_wireguard_handshakes_total", "WireGuard handshakes answered", [], \.handshakes)
        add("gatehouse_gateway_wireguard_cookie_replies_total", "Cookie replies sent instead of handshakes under load", [], \.cookieReplies)
        add("gatehouse_gateway_wireguard_packets_total", "Packets through WireGuard tunnels, by direction", [("direction", "from_clients")], \.packetsIn)
        add("gatehouse_gateway_wireguard_packets_total", "Packets through WireGuard tunnels, by direction", [("direction", "to_clients")], \.packetsOut)
        add("gatehouse_gateway_wireguard_bytes_total", "IP bytes through WireGuard tunnels, by direction", [("direction", "from_clients")], \.bytesIn)
        add("gatehouse_gateway_wireguard_bytes_total", "IP bytes through WireGuard tunnels, by direction", [("direction", "to_clients")], \.bytesOut)
        add("gatehouse_gateway_flows_total", "Flows written to the flow log, by verdict", [("verdict", "allowed")], \.flowsAllowed)
        add("gatehouse_gateway_flows_total", "Flows written to the flow log, by verdict", [("verdict", "refused")], \.flowsRefused)
        for reason in WireGuardDrop.allCases {
            dropped(reason).increment(by: Int64(max(0, current.dropped(reason) - before.dropped(reason))))
        }
        add("gatehouse_gateway_dns_translations_expired_total", "DNS proxy translations that ended idle", [], \.natExpired)
        add("gatehouse_gateway_tun_write_errors_total", "Packets out of tunnels the TUN device refused (its queue full)", [], \.tunWriteErrors)
        add("gatehouse_gateway_ice_selected_total", "ICE pairs selected for clients' data", [], \.iceSelected)
        add("gatehouse_gateway_ice_failed_total", "ICE agents whose every pair failed", [], \.iceFailed)
        add("gatehouse_gateway_ice_dropped_total", "STUN datagrams on the WireGuard socket no ICE agent took", [], \.iceDropped)
        tunnelPeers.set(Int64(current.peers))
        translations.set(Int64(current.natEntries))
    }

    private func counters(_ reason: GatewayTCReason) -> (packets: Counter, bytes: Counter) {
        let verdict = reason == .allowed ? "allowed" : "dropped"
        let labels = [("verdict", verdict), ("reason", reason.label)]
        return (registry.makeCounter(name: "gatehouse_gateway_kernel_packets_total", labels: labels,
                                     help: "Packets from clients the TC program on the tunnel device judged, by verdict and reason"),
                registry.makeCounter(name: "gatehouse_gateway_kernel_bytes_total", labels: labels,
                                     help: "Bytes of packets from clients the TC program judged, by verdict and reason"))
    }

    /// Adds what the kernel counted since the last call.
    func record(_ current: [GatewayTCReason: BPFCount]) {
        let before = previous.withLock { previous in defer { previous = current }; return previous }
        for (reason, count) in current {
            let last = before[reason] ?? BPFCount(packets: 0, bytes: 0)
            guard count.packets >= last.packets, count.bytes >= last.bytes else { continue }
            counters(reason).packets.increment(by: Int64(count.packets - last.packets))
            counters(reason).bytes.increment(by: Int64(count.bytes - last.bytes))
        }
    }
}
