import Actors
import Addresses
import Foundation
import Synchronization
import TestSupport
import Testing
import Tunnel
import WireGuard

/// The WireGuard data plane against wireguard-go as the client, in network namespaces: client (with
/// wireguard-go and `wg`), gateway (our engine on a TUN, forwarding) and a resource network.
@Suite(.privileged) struct TunnelEngineTests {
    struct Topology {
        var network: TestNetwork
        var client: NetworkNamespace
        var gateway: NetworkNamespace
        var resources: NetworkNamespace
        var gatewayAddress: String
        var resourceAddress: String
        var engine: TunnelEngine
        var clientKey: StaticKey
        var gatewayKey: StaticKey
        var interface: String
    }

    /// Builds the three namespaces, runs the engine on a TUN in the gateway's with wireguard-go's key
    /// authorised for 100.64.0.7, and starts wireguard-go in the client's with the gateway as its peer
    /// for the resource network.
    static func withTopology(_ body: (Topology) async throws -> Void) async throws {
        try await TestNetwork.with { network in
            let client = try network.namespace("client")
            let gateway = try network.namespace("gw")
            let resources = try network.namespace("res")
            let uplink = try network.connect(client, gateway)      // 198.18.1.1 (client) - 198.18.1.2 (gw)
            let resourceLink = try network.connect(gateway, resources)  // 198.18.2.1 (gw) - 198.18.2.2 (res)
            try gateway.enableForwarding()
            // The engine alone does no NAT (the gateway's masquerade is tested with the whole gateway).
            try network.route(in: resources, to: "100.64.0.0/10", via: resourceLink.a.ipv4)

            let gatewayKey = StaticKey.generate()
            let clientKey = StaticKey.generate()
            let psk = Sodium.randomBytes(32)
            let tunName = TestNetwork.uniqueInterfaceName("gtn")
            let tun = try gateway.run { try TUNDevice(name: tunName) }
            try gateway.run { try tun.configure(mtu: 1420, addresses: []) }
            try gateway.ip("route", "add", "100.64.0.7/32", "dev", tunName)
            let socket = try gateway.run { try UDPSocket(bindTo: SocketAddress(uplink.b.ipv4, port: 51820)) }
            let engine = try TunnelEngine(tun: tun, socket: socket, local: gatewayKey)
            engine.authorize(.init(publicKey: clientKey.publicKey, presharedKey: psk, addresses: [try SocketAddress("100.64.0.7", port: 0).ip]))
            let thread = Thread { engine.run() }
            thread.start()
            defer { engine.stop() }

            let interface = TestNetwork.uniqueInterfaceName("wgc")
            defer { try? FileManager.default.removeItem(atPath: "/var/run/wireguard/\(interface).sock") }
            _ = try network.spawn(in: client, ["env", "WG_PROCESS_FOREGROUND=1", "wireguard-go", "-f", interface])
            try await Wait.until("wireguard-go made \(interface)", timeout: .seconds(20)) { (try? client.ip("link", "show", interface)) != nil }
            let directory = FileManager.default.temporaryDirectory.appending(path: "gatehouse-wgc-\(UUID().uuidString)")
            try FileManager.default.createDirectory(at: directory, withIntermediateDirectories: true)
            defer { try? FileManager.default.removeItem(at: directory) }
            try Data(Data(clientKey.privateKey).base64EncodedString().utf8).write(to: directory.appending(path: "key"))
            try Data(Data(psk).base64EncodedString().utf8).write(to: directory.appending(path: "psk"))
            try await client.exec(["wg", "set", interface, "private-key", directory.appending(path: "key").path,
                                   "peer", Data(gatewayKey.publicKey).base64EncodedString(), "preshared-key", directory.appending(path: "psk").path,
                                   "allowed-ips", "198.18.2.0/24", "endpoint", "\(uplink.b.ipv4):51820"])
            try client.ip("addr", "add", "100.64.0.7/32", "dev", interface)
            try client.ip("link", "set", interface, "up")
            try client.ip("route", "add", "198.18.2.0/24", "dev", interface)
            try await body(Topology(network: network, client: client, gateway: gateway, resources: resources, gatewayAddress: uplink.b.ipv4,
                                    resourceAddress: resourceLink.b.ipv4, engine: engine, clientKey: clientKey, gatewayKey: gatewayKey,
                                    interface: interface))
        }
    }

    /// UDP goes from the client through the tunnel to a resource and the answer comes back; a packet
    /// from an address the client does not own is not let into the TUN; a removed peer's traffic stops.
    @Test func wireguardGoReachesAResourceThroughTheEngine() async throws {
        try await Self.withTopology { topology in
            let server = try topology.resources.run { try UDPSocket(bindTo: SocketAddress(topology.resourceAddress, port: 7000)) }
            let app = try topology.client.run { try UDPSocket(bindTo: SocketAddress("100.64.0.7", port: 40000)) }
            _ = try app.send(Array("through the tunnel".utf8), to: SocketAddress(topology.resourceAddress, port: 7000))
            let arrived = try await GatewayEnforcementTests.onThread { try server.receive(timeout: .seconds(10)) }
            #expect(arrived?.bytes == Array("through the tunnel".utf8), "the resource got it")
            #expect(arrived?.from.address == "100.64.0.7", "from the client's tunnel address")
            _ = try server.send(Array("and back".utf8), to: SocketAddress("100.64.0.7", port: 40000))
            let answer = try await GatewayEnforcementTests.onThread { try app.receive(timeout: .seconds(10)) }
            #expect(answer?.bytes == Array("and back".utf8), "the answer came back through the tunnel")
            // The engine publishes its counters once per turn of its loop.
            try await Wait.until("the engine counted the handshake and both packets", timeout: .seconds(5)) {
                let statistics = topology.engine.statistics
                return statistics.handshakes >= 1 && statistics.packetsIn >= 1 && statistics.packetsOut >= 1
            }

            // A packet from an address the client does not own never enters the TUN.
            try topology.client.ip("addr", "add", "100.64.0.8/32", "dev", topology.interface)
            let spoofing = try topology.client.run { try UDPSocket(bindTo: SocketAddress("100.64.0.8", port: 40001)) }
            _ = try spoofing.send(Array("spoofed".utf8), to: SocketAddress(topology.resourceAddress, port: 7000))
            let spoofed = try await GatewayEnforcementTests.onThread { try server.receive(timeout: .seconds(1)) }
            #expect(spoofed == nil)
            try await Wait.until("the engine counted the spoofed packet", timeout: .seconds(5)) { topology.engine.statistics.dropped(.spoofed) >= 1 }

            // Removed: its traffic stops.
            topology.engine.remove(publicKey: topology.clientKey.publicKey)
            try await Wait.until("the engine forgot the peer", timeout: .seconds(5)) { topology.engine.statistics.peers == 0 }
            _ = try app.send(Array("after removal".utf8), to: SocketAddress(topology.resourceAddress, port: 7000))
            let late = try await GatewayEnforcementTests.onThread { try server.receive(timeout: .seconds(1)) }
            #expect(late == nil, "a removed peer's packets are not let in")
        }
    }
}
