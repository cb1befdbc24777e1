import Actors
import Addresses
import Foundation
import TestSupport
import Testing
import WireGuard

/// Our handshake and transport against wireguard-go (configured with `wg`), a WireGuard nobody here
/// wrote, in a network namespace: as the initiator and as the responder, with a preshared key, data
/// both ways through its TUN device. Our side is a UDP socket in the same namespace driven by hand.
@Suite(.privileged) struct WireGuardGoInteropTests {
    /// An IPv4 UDP packet with a valid header checksum (UDP checksum 0: none, allowed in IPv4).
    static func udpPacket(from source: [UInt8], to destination: [UInt8], sourcePort: UInt16, port: UInt16, payload: [UInt8]) -> [UInt8] {
        let length = 28 + payload.count
        var header: [UInt8] = [0x45, 0, UInt8(length >> 8), UInt8(length & 0xFF), 0, 1, 0x40, 0, 64, 17, 0, 0] + source + destination
        var sum: UInt32 = 0
        for index in stride(from: 0, to: 20, by: 2) { sum += UInt32(header[index]) << 8 | UInt32(header[index + 1]) }
        while sum >> 16 != 0 { sum = (sum & 0xFFFF) + (sum >> 16) }
        header[10] = UInt8(~sum >> 8 & 0xFF)
        header[11] = UInt8(~sum & 0xFF)
        let udpLength = 8 + payload.count
        return header + [UInt8(sourcePort >> 8), UInt8(sourcePort & 0xFF), UInt8(port >> 8), UInt8(port & 0xFF),
                         UInt8(udpLength >> 8), UInt8(udpLength & 0xFF), 0, 0] + payload
    }

    /// The UDP payload of an IPv4 packet (padding after the IP total length dropped).
    static func udpPayload(_ packet: [UInt8]) -> [UInt8]? {
        guard packet.count >= 28, packet[0] >> 4 == 4, packet[9] == 17 else { return nil }
        let total = Int(packet[2]) << 8 | Int(packet[3])
        let start = Int(packet[0] & 0x0F) * 4 + 8
        guard total <= packet.count, start <= total else { return nil }
        return Array(packet[start..<total])
    }

    struct Peer {
        var namespace: NetworkNamespace
        var interface: String
        var key: StaticKey
        var ours: StaticKey
        var psk: [UInt8]
        var socket: UDPSocket
    }

    /// wireguard-go on a TUN in a namespace, 100.64.0.1/24, listening on 51820, with us as its one
    /// peer (100.64.0.2/32, endpoint our socket on 127.0.0.1).
    static func withWireGuardGo(_ body: (Peer, TestNetwork) async throws -> Void) async throws {
        try await TestNetwork.with { network in
            let namespace = try network.namespace("wg")
            let interface = TestNetwork.uniqueInterfaceName("wgt")
            // wireguard-go's control socket lives outside the namespace, in one directory for all; it
            // stays after a SIGTERM, so the test removes it.
            defer { try? FileManager.default.removeItem(atPath: "/var/run/wireguard/\(interface).sock") }
            _ = try network.spawn(in: namespace, ["env", "WG_PROCESS_FOREGROUND=1", "wireguard-go", "-f", interface])
            try await Wait.until("wireguard-go made \(interface)", timeout: .seconds(20)) {
                (try? namespace.ip("link", "show", interface)) != nil
            }
            let key = StaticKey.generate()
            let ours = StaticKey.generate()
            let psk = Sodium.randomBytes(32)
            let socket = try namespace.run { try UDPSocket(bindTo: SocketAddress("127.0.0.1", port: 0)) }
            let directory = FileManager.default.temporaryDirectory.appending(path: "gatehouse-wg-\(UUID().uuidString)")
            try FileManager.default.createDirectory(at: directory, withIntermediateDirectories: true)
            defer { try? FileManager.default.removeItem(at: directory) }
            let keyFile = directory.appending(path: "private").path
            let pskFile = directory.appending(path: "psk").path
            try Data(Data(key.privateKey).base64EncodedString().utf8).write(to: URL(filePath: keyFile))
            try Data(Data(psk).base64EncodedString().utf8).write(to: URL(filePath: pskFile))
            try await namespace.exec(["wg", "set", interface, "private-key", keyFile, "listen-port", "51820",
                                      "peer", Data(ours.publicKey).base64EncodedString(), "preshared-key", pskFile,
                                      "allowed-ips", "100.64.0.2/32", "endpoint", "127.0.0.1:\(socket.localPort)"])
            try namespace.ip("addr", "add", "100.64.0.1/24", "dev", interface)
            try namespace.ip("link", "set", interface, "up")
            try await body(Peer(namespace: namespace, interface: interface, key: key, ours: ours, psk: psk, socket: socket), network)
        }
    }

    static let wgAddress: [UInt8] = [100, 64, 0, 1]
    static let ourAddress: [UInt8] = [100, 64, 0, 2]
    static let wgEndpoint = try! SocketAddress("127.0.0.1", port: 51820)

    /// We initiate: wireguard-go answers, takes our packet into its TUN (a UDP socket behind it gets
    /// it), and its answer comes back to us through the tunnel.
    @Test func weInitiateAndDataFlowsBothWays() async throws {
        try await Self.withWireGuardGo { peer, _ in
            let listener = try peer.namespace.run { try UDPSocket(bindTo: SocketAddress("100.64.0.1", port: 5555)) }
            let initiator = try #require(Handshake.Initiator(local: peer.ours, remoteStatic: peer.key.publicKey, presharedKey: peer.psk,
                                                             localIndex: 0x1234_5678, now: Date()))
            _ = try peer.socket.send(initiator.message, to: Self.wgEndpoint)
            let response = try #require(try peer.socket.receive(timeout: .seconds(10)), "wireguard-go answered our initiation")
            let keys = try #require(initiator.consume(response: response.bytes), "its response completes the handshake")
            var session = TransportSession(keys: keys)

            let payload = Array("hello wireguard-go".utf8)
            let packet = Self.udpPacket(from: Self.ourAddress, to: Self.wgAddress, sourcePort: 40000, port: 5555, payload: payload)
            let sealed = session.seal(packet)
            _ = try peer.socket.send(try #require(sealed), to: Self.wgEndpoint)
            let received = try #require(try listener.receive(timeout: .seconds(10)), "the packet came out of its TUN")
            #expect(received.bytes == payload)
            #expect(received.from.address == "100.64.0.2" && received.from.port == 40000)

            _ = try listener.send(Array("hello gatehouse".utf8), to: SocketAddress("100.64.0.2", port: 40000))
            let back = try #require(try peer.socket.receive(timeout: .seconds(10)), "its answer came through the tunnel")
            let openedBack = session.open(back.bytes)
            let opened = try #require(openedBack, "and opens with our keys")
            #expect(Self.udpPayload(opened) == Array("hello gatehouse".utf8))
        }
    }

    /// wireguard-go initiates (a packet for us is queued in its TUN): we answer its initiation, and
    /// the packet arrives as its first transport message.
    @Test func itInitiatesAndWeRespond() async throws {
        try await Self.withWireGuardGo { peer, _ in
            let sender = try peer.namespace.run { try UDPSocket(bindTo: SocketAddress("100.64.0.1", port: 5556)) }
            _ = try sender.send(Array("queued for gatehouse".utf8), to: SocketAddress("100.64.0.2", port: 40001))
            let initiation = try #require(try peer.socket.receive(timeout: .seconds(10)), "wireguard-go sent a handshake initiation")
            #expect(initiation.bytes.count == Handshake.initiationSize && initiation.bytes.first == 1)
            let response = try #require(Handshake.respond(to: initiation.bytes, local: peer.ours, localIndex: 0x0BAD_CAFE) {
                $0 == peer.key.publicKey ? peer.psk : nil
            }, "its initiation is valid to us")
            #expect(response.initiatorStatic == peer.key.publicKey)
            _ = try peer.socket.send(response.message, to: initiation.from)
            var session = TransportSession(keys: response.keys)
            // Its first transport message may be a keepalive (empty) before the queued packet.
            var payload: [UInt8]?
            let deadline = ContinuousClock.now + .seconds(10)
            while payload == nil, ContinuousClock.now < deadline, let message = try peer.socket.receive(timeout: deadline - ContinuousClock.now) {
                if let packet = session.open(message.bytes), !packet.isEmpty { payload = Self.udpPayload(packet) }
            }
            #expect(payload == Array("queued for gatehouse".utf8))
        }
    }

    /// Under load we answer its initiation with a cookie reply: wireguard-go retries with the cookie
    /// in MAC2, valid for its source, and the handshake then completes.
    @Test func itRetriesWithOurCookie() async throws {
        try await Self.withWireGuardGo { peer, _ in
            let sender = try peer.namespace.run { try UDPSocket(bindTo: SocketAddress("100.64.0.1", port: 5557)) }
            _ = try sender.send(Array("after the cookie".utf8), to: SocketAddress("100.64.0.2", port: 40002))
            let first = try #require(try peer.socket.receive(timeout: .seconds(10)), "wireguard-go sent a handshake initiation")
            let cookies = CookieResponder(local: peer.ours.publicKey, now: Date())
            let source = CookieResponder.source(address: [127, 0, 0, 1], port: first.from.port)
            #expect(!cookies.hasValidMAC2(first.bytes, from: source, now: Date()))
            _ = try peer.socket.send(try #require(cookies.reply(to: first.bytes, from: source, now: Date())), to: first.from)
            // It waits REKEY-TIMEOUT (5 s, with jitter) before the next initiation.
            let second = try #require(try peer.socket.receive(timeout: .seconds(15)), "wireguard-go retried")
            #expect(second.bytes.first == 1)
            #expect(cookies.hasValidMAC2(second.bytes, from: source, now: Date()), "its MAC2 is made with our cookie")
            let response = try #require(Handshake.respond(to: second.bytes, local: peer.ours, localIndex: 77) {
                $0 == peer.key.publicKey ? peer.psk : nil
            })
            _ = try peer.socket.send(response.message, to: second.from)
            var session = TransportSession(keys: response.keys)
            var payload: [UInt8]?
            let deadline = ContinuousClock.now + .seconds(10)
            while payload == nil, ContinuousClock.now < deadline, let message = try peer.socket.receive(timeout: deadline - ContinuousClock.now) {
                if let packet = session.open(message.bytes), !packet.isEmpty { payload = Self.udpPayload(packet) }
            }
            #expect(payload == Array("after the cookie".utf8))
        }
    }
}
