import Actors
import Addresses
import Foundation
import TestSupport
import Testing
import Tunnel
import WireGuard

/// The WireGuard data plane against wireguard-go as the client, in network namespaces: client (with
/// wireguard-go and `wg`), gateway (our engine on a TUN, forwarding) and a resource network. UDP goes
/// from the client through the tunnel to a resource and the answer comes back; a packet from an
/// address the client does not own is not let into the TUN; a removed peer's traffic stops.
@Suite(.privileged) struct TunnelEngineTests {
    @Test func wireguardGoReachesAResourceThroughTheEngine() async throws {
        try await TestNetwork.with { network in
            let client = try network.namespace("client")
            let gateway = try network.namespace("gw")
            let resources = try network.namespace("res")
            let uplink = try network.connect(client, gateway)      // 198.18.1.1 (client) - 198.18.1.2 (gw)
            let resourceLink = try network.connect(gateway, resources)  // 198.18.2.1 (gw) - 198.18.2.2 (res)
            try gateway.enableForwarding()
            // Until the gateway masquerades (#15, left), the resource network routes the tunnel range back to it.
            try network.route(in: resources, to: "100.64.0.0/10", via: resourceLink.a.ipv4)

            // The gateway: our engine on a TUN, its UDP socket on 51820.
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

            // The client: wireguard-go with the gateway as its peer for the resource network.
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

            // UDP to the resource and back, through the tunnel.
            let server = try resources.run { try UDPSocket(bindTo: SocketAddress(resourceLink.b.ipv4, port: 7000)) }
            let app = try client.run { try UDPSocket(bindTo: SocketAddress("100.64.0.7", port: 40000)) }
            _ = try app.send(Array("through the tunnel".utf8), to: SocketAddress(resourceLink.b.ipv4, port: 7000))
            let arrived = try await GatewayEnforcementTests.onThread { try server.receive(timeout: .seconds(10)) }
            #expect(arrived?.bytes == Array("through the tunnel".utf8), "the resource got it")
            #expect(arrived?.from.address == "100.64.0.7", "from the client's tunnel address")
            _ = try server.send(Array("and back".utf8), to: SocketAddress("100.64.0.7", port: 40000))
            let answer = try await GatewayEnforcementTests.onThread { try app.receive(timeout: .seconds(10)) }
            #expect(answer?.bytes == Array("and back".utf8), "the answer came back through the tunnel")
            let statistics = engine.statistics
            #expect(statistics.handshakes >= 1 && statistics.packetsIn >= 1 && statistics.packetsOut >= 1, "\(statistics)")

            // A packet from an address the client does not own never enters the TUN.
            try client.ip("addr", "add", "100.64.0.8/32", "dev", interface)
            let spoofing = try client.run { try UDPSocket(bindTo: SocketAddress("100.64.0.8", port: 40001)) }
            _ = try spoofing.send(Array("spoofed".utf8), to: SocketAddress(resourceLink.b.ipv4, port: 7000))
            let spoofed = try await GatewayEnforcementTests.onThread { try server.receive(timeout: .seconds(1)) }
            #expect(spoofed == nil)
            try await Wait.until("the engine counted the spoofed packet", timeout: .seconds(5)) { engine.statistics.droppedSpoofed >= 1 }

            // Removed: its traffic stops.
            engine.remove(publicKey: clientKey.publicKey)
            try await Task.sleep(for: .milliseconds(100))
            _ = try app.send(Array("after removal".utf8), to: SocketAddress(resourceLink.b.ipv4, port: 7000))
            let late = try await GatewayEnforcementTests.onThread { try server.receive(timeout: .seconds(1)) }
            #expect(late == nil, "a removed peer's packets are not let in")
        }
    }
}
