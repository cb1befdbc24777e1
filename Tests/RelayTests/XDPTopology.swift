import Actors
import BPF
import Foundation
import STUN
import TestSupport
import Testing

/// The relay with its XDP fast path, in network namespaces:
///
///     client 198.18.1.2 ── 198.18.1.1  router  198.18.2.1 ── 198.18.2.2 peer
///                                    198.18.3.1   (a pass-through XDP program on this end)
///                                        │
///                                    198.18.3.2 relay (gatehouse relay --xdp eth0)
///
/// (and fd00:6768:0:k::/64 beside each 198.18.k.0/24). XDP_TX sends a frame back out the interface it
/// came in on, so the relay's next hop is the router in both directions; veth drops XDP_TX frames
/// unless the receiving end runs an XDP program, so the router's end runs the foundation's counter
/// program, which passes everything. Transmit checksum offload is off on every interface, so frames
/// carry full checksums as from a real NIC.
struct XDPTopology {
    static let secret = "xdp-secret"
    static let operations = "127.0.0.1:9478"

    let network: TestNetwork
    let client: NetworkNamespace
    let peer: NetworkNamespace
    let router: NetworkNamespace
    let relay: NetworkNamespace
    let clientEnd: VethEnd
    let peerEnd: VethEnd
    let relayEnd: VethEnd
    /// The router's end of the relay's link (where the relay's frames arrive).
    let routerRelayEnd: VethEnd
    let passThrough: XDPAttachment

    static func make(_ network: TestNetwork) throws -> XDPTopology {
        let router = try network.namespace("router")
        let client = try network.namespace("client")
        let peer = try network.namespace("peer")
        let relay = try network.namespace("relay")
        let toClient = try network.connect(router, client)
        let toPeer = try network.connect(router, peer)
        let toRelay = try network.connect(router, relay)
        try router.enableForwarding()
        for pair in [toClient, toPeer, toRelay] {
            try network.route(in: pair.b.namespace, to: "default", via: pair.a.ipv4)
            try network.route(in: pair.b.namespace, to: "default", via: pair.a.ipv6)
            for end in [pair.a, pair.b] { try end.namespace.disableChecksumOffload(end.interface) }
        }
        let counter = try CounterProgram()
        let passThrough = try router.run { try counter.attachXDP(to: toRelay.a.interface, mode: .native) }
        return XDPTopology(
            network: network, client: client, peer: peer, router: router, relay: relay,
            clientEnd: toClient.b, peerEnd: toPeer.b, relayEnd: toRelay.b, routerRelayEnd: toRelay.a,
            passThrough: passThrough)
    }

    static func with(_ body: (XDPTopology) async throws -> Void) async throws {
        try await TestNetwork.with { network in
            let topology = try make(network)
            defer { try? topology.passThrough.detach() }
            try await body(topology)
        }
    }

    /// Starts `gatehouse relay` in the relay namespace, by default with the XDP fast path on its interface.
    func startRelay(listenPort: UInt16 = 3478, portRange: String? = nil, xdp: Bool = true, extra: [String] = []) async throws -> XDPRelay {
        var arguments = [
            Binaries.gatehouse, "relay", "--public-ipv4", relayEnd.ipv4, "--public-ipv6", relayEnd.ipv6,
            "--auth-secret", Self.secret, "--listen-port", String(listenPort), "--operations-address", Self.operations,
        ]
        if xdp { arguments += ["--xdp", relayEnd.interface] }
        if let portRange { arguments += ["--port-range", portRange] }
        let process = try network.spawn(in: relay, arguments + extra)
        if xdp { try await process.waitForOutput(containing: "XDP fast path attached") }
        try await process.waitForOutput(containing: "operations listening")
        return XDPRelay(process: process, topology: self, listenPort: listenPort)
    }

    /// A TURN client in the client namespace, talking to the relay over IPv4 or IPv6.
    func turnClient(ipv6: Bool = false, id: String = "tester", relay: XDPRelay) throws -> TURNTestClient {
        let server = try SocketAddress(ipv6 ? relayEnd.ipv6 : relayEnd.ipv4, port: relay.listenPort)
        return try client.run {
            try TURNTestClient(server: server, secret: Self.secret, id: id, bindTo: ipv6 ? clientEnd.ipv6 : clientEnd.ipv4)
        }
    }

    /// A UDP socket in the peer namespace.
    func peerSocket(ipv6: Bool = false, port: UInt16 = 0) throws -> UDPSocket {
        try peer.run { try UDPSocket(bindTo: ipv6 ? peerEnd.ipv6 : peerEnd.ipv4, port: port) }
    }

    /// Captures what arrives at the router from the relay (every frame the relay emits, from the kernel
    /// or from user space) until `stop()`.
    func captureRelayFrames() async throws -> Capture {
        let file = FileManager.default.temporaryDirectory.appending(path: "gatehouse-xdp-\(UUID().uuidString).pcap")
        let process = try network.spawn(in: router, [
            "tcpdump", "-i", routerRelayEnd.interface, "-n", "-U", "-w", file.path(percentEncoded: false),
            "-Q", "in", "udp",
        ])
        try await process.waitForOutput(containing: "listening on")
        return Capture(process: process, file: file, sources: [relayEnd.ipv4, relayEnd.ipv6])
    }
}

/// A running `gatehouse relay --xdp` in the topology.
struct XDPRelay {
    let process: BackgroundProcess
    let topology: XDPTopology
    let listenPort: UInt16

    /// GET on the relay's operations server (inside the relay namespace).
    func get(_ path: String) throws -> String {
        try topology.relay.exec(["curl", "-sf", "http://\(XDPTopology.operations)\(path)"]).standardOutput
    }

    /// A counter or gauge from `/metrics`; 0 when the series does not exist yet.
    func metric(_ name: String, _ labels: String = "") throws -> Double {
        let series = labels.isEmpty ? name : "\(name){\(labels)}"
        for line in try get("/metrics").split(separator: "\n") where line.hasPrefix(series + " ") {
            return Double(line.dropFirst(series.count + 1)) ?? .nan
        }
        return 0
    }

    /// A counter summed over all its labels; 0 when it has no series yet.
    func metricTotal(_ name: String) throws -> Double {
        try get("/metrics").split(separator: "\n").filter { $0.hasPrefix(name + " ") || $0.hasPrefix(name + "{") }
            .compactMap { Double($0.split(separator: " ").last ?? "") }.reduce(0, +)
    }

    func kernel(_ reason: String, action: String = "passed") throws -> Double {
        try metric("gatehouse_relay_xdp_packets_total", "action=\"\(action)\",reason=\"\(reason)\"")
    }

    func userSpacePackets() throws -> Double {
        try metric("gatehouse_relay_relayed_packets_total", "path=\"user_space\"")
    }

    struct Route: Codable, Hashable, CustomStringConvertible {
        var client: String
        var channel: Int
        var peer: String
        var relayed_port: Int
        var description: String { "\(client) ch \(channel) ⇄ :\(relayed_port)→\(peer)" }
    }

    struct KernelConfig: Codable, Equatable {
        var configured: Int
        var checksum_mode: Int
        var families: Int
        var listen_port: Int
        var port_min: Int
        var port_max: Int
        var mtu: Int
        var interface_ipv4: String?
        var interface_ipv6: String?
    }

    struct Routes: Codable {
        var user_space: [Route]
        var kernel: [Route]?
        var kernel_inconsistencies: [String]?
        var kernel_config: KernelConfig?
    }

    /// The channel routes user space holds and the kernel's maps hold (read back by the relay).
    func routes() throws -> Routes {
        try JSONDecoder().decode(Routes.self, from: Data(get("/routes").utf8))
    }

    /// Waits until the kernel's routes are exactly `expected`, and user space's too.
    func waitForRoutes(_ expected: Set<Route>, _ what: String) async throws {
        var last: Routes?
        do {
            try await Wait.until("routes are \(expected) (\(what))", timeout: .seconds(5)) {
                let routes = try self.routes()
                last = routes
                return Set(routes.user_space) == expected && Set(routes.kernel ?? []) == expected
                    && routes.kernel?.count == expected.count && routes.kernel_inconsistencies == []
            }
        } catch {
            Issue.record("\(error); last read: user space \(last?.user_space ?? []), kernel \(last?.kernel ?? []), inconsistencies \(last?.kernel_inconsistencies ?? [])")
            throw error
        }
    }

    /// Whether an XDP program is attached to the relay's interface (`ip link` shows it).
    func xdpAttached() throws -> Bool {
        try topology.relay.ip("link", "show", topology.relayEnd.interface).standardOutput.contains("xdp")
    }
}

/// A packet capture running in the router.
struct Capture {
    let process: BackgroundProcess
    let file: URL
    let sources: [String]

    struct Result: Codable {
        var checked: Int
        var bad: Int
        var examples: [String]
        var ipv4_zero_udp_checksum: Int
    }

    /// Stops the capture and checks every captured frame from the relay with scapy.
    func stopAndCheck() async throws -> Result {
        process.stop()
        defer { try? FileManager.default.removeItem(at: file) }
        let script = Binaries.packageRoot.appending(path: "Tests/Interop/check_checksums.py").path(percentEncoded: false)
        let output = try await Command.run(
            [Binaries.python, script, file.path(percentEncoded: false)] + sources.flatMap { ["--source", $0] })
        return try JSONDecoder().decode(Result.self, from: Data(output.standardOutput.utf8))
    }
}

extension TURNTestClient {
    /// Allocates (relayed address of the peer's family) and returns the relayed address.
    func allocateRelayed(ipv6: Bool) throws -> SocketAddress {
        let reply = try #require(try allocate([.transport(17)] + (ipv6 ? [.requestedFamily(0x02)] : [])))
        #expect(reply.isSuccess, "allocate: error \(reply.errorCode ?? 0)")
        return try #require(reply.relayedAddresses.first)
    }

    func bind(channel: UInt16, to peer: SocketAddress) throws {
        let reply = try #require(try request(Self.channelBind, [.channel(channel), .peer(peer)]))
        #expect(reply.isSuccess, "ChannelBind 0x\(String(channel, radix: 16)) → \(peer): error \(reply.errorCode ?? 0)")
    }

    /// Sends ChannelData, padded to a multiple of 4 bytes when asked.
    func sendChannelData(_ channel: UInt16, _ payload: [UInt8], padded: Bool = false) throws {
        var bytes = [UInt8(channel >> 8), UInt8(channel & 0xFF), UInt8(payload.count >> 8), UInt8(payload.count & 0xFF)] + payload
        if padded { bytes += [UInt8](repeating: 0, count: (4 - payload.count % 4) % 4) }
        try sendRaw(bytes)
    }

    /// The next ChannelData from the relay's listen address, skipping anything else.
    func receiveChannelData(timeout: Duration = .seconds(2)) throws -> (channel: UInt16, payload: [UInt8])? {
        let deadline = ContinuousClock.now + timeout
        while ContinuousClock.now < deadline {
            guard let (bytes, from) = try socket.receive(timeout: deadline - ContinuousClock.now) else { return nil }
            guard from == server, bytes.count >= 4, bytes[0] & 0xC0 == 0x40 else { continue }
            let length = Int(bytes[2]) << 8 | Int(bytes[3])
            guard bytes.count >= 4 + length else { continue }
            return (UInt16(bytes[0]) << 8 | UInt16(bytes[1]), Array(bytes[4..<(4 + length)]))
        }
        return nil
    }
}

/// Sends `count` ChannelData from `client` on `channel` and `count` datagrams back from `peer` to
/// `relayed`; returns how many arrived intact each way (payload, source address and channel checked).
func exchange(
    _ client: TURNTestClient, channel: UInt16, peer: UDPSocket, relayed: SocketAddress, count: Int,
    timeout: Duration = .seconds(2)
) throws -> (toPeer: Int, toClient: Int) {
    var toPeer = 0
    var toClient = 0
    for index in 0..<count {
        let payload = (0..<(40 + index % 40)).map { UInt8(truncatingIfNeeded: $0 &* 7 &+ index) }
        try client.sendChannelData(channel, payload)
        if let (bytes, from) = try peer.receive(timeout: timeout) {
            if bytes == payload && from == relayed { toPeer += 1 } else { Issue.record("peer got \(bytes.count) bytes from \(from), expected \(payload.count) from \(relayed)") }
        }
        let reply = payload.reversed() + [UInt8(index & 0xFF)]
        _ = try peer.send(Array(reply), to: relayed)
        if let (number, bytes) = try client.receiveChannelData(timeout: timeout) {
            if number == channel && bytes == Array(reply) { toClient += 1 } else { Issue.record("client got channel 0x\(String(number, radix: 16)) with \(bytes.count) bytes") }
        }
    }
    return (toPeer, toClient)
}
