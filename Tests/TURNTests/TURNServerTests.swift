import Addresses
import STUN
import TURN
import TURNTesting
import Testing

/// The sans-IO core fed bytes and instants, asserting on the exact commands that come out.
@Suite struct TURNServerTests {
    typealias Server = HostedTURNServer<STUNCodec, SplitMix64>

    let client = address("198.51.100.7", 50_000)
    let listener = address("192.0.2.1", 3478)
    let peer = address("10.1.2.3", 7000)
    let secret = "unit-secret"
    let codec = STUNCodec()

    func makeServer() -> Server {
        var configuration = Server.Configuration()
        configuration.secrets = [secret]
        configuration.relayIPv4 = address("192.0.2.1", 0).ip
        configuration.portRange = 50_000...50_099
        return Server(configuration: configuration, codec: codec, random: SplitMix64(seed: 42))
    }

    var username: String { RESTCredentials.username(expiry: t0.unixSeconds + 3600, id: "unit") }

    func credentials(nonce: String) -> STUNCodec.RequestCredentials {
        .init(username: username, realm: "gatehouse", nonce: nonce, password: RESTCredentials.password(secret: secret, username: username))
    }

    func send(_ server: inout Server, _ bytes: [UInt8], from: SocketAddress? = nil, at time: TURNTime = t0) -> [TURNCommand] {
        var commands: [TURNCommand] = []
        bytes.withUnsafeBytes { server.handleClientDatagram($0, from: from ?? client, to: listener, now: time, into: &commands) }
        return commands
    }

    func reply(_ commands: [TURNCommand]) -> [UInt8]? {
        for case let .sendToClient(bytes, _, _) in commands { return bytes }
        return nil
    }

    /// 401 for the nonce, then an authenticated Allocate: the server's state is one allocation.
    func allocate(_ server: inout Server) throws -> (nonce: String, relayed: SocketAddress) {
        let challenge = send(&server, codec.encodeRequest(method: .allocate, [.transport(17)], transactionID: Array(repeating: 1, count: 12)))
        let challengeBytes = try #require(reply(challenge))
        let nonce = try #require(STUNCodec.nonce(in: challengeBytes))
        let commands = send(&server, codec.encodeRequest(
            method: .allocate, [.transport(17)], transactionID: Array(repeating: 2, count: 12), credentials: credentials(nonce: nonce)))
        let relayed = try #require(commands.compactMap { command -> SocketAddress? in
            if case let .openRelayedSockets(addresses, _) = command { return addresses.first }
            return nil
        }.first)
        #expect(commands.count == 2, "open the relayed socket, then answer: \(commands)")
        return (nonce, relayed)
    }

    func errorCode(_ bytes: [UInt8]?) -> Int? {
        bytes.flatMap { STUNCodec.errorCode(in: $0) }
    }

    @Test func channelBindInstallsARouteAndChannelDataFlowsBothWays() throws {
        var server = makeServer()
        let (nonce, relayed) = try allocate(&server)
        #expect(relayed.ip == address("192.0.2.1", 0).ip)
        let bind = send(&server, codec.encodeRequest(
            method: .channelBind, [.channel(0x4000), .peer(peer)], transactionID: Array(repeating: 3, count: 12),
            credentials: credentials(nonce: nonce)))
        let route = ChannelRoute(client: client, listener: listener, channel: 0x4000, peer: peer, relayed: relayed)
        #expect(bind.first == .installChannelRoute(route))
        #expect(errorCode(reply(bind)) == nil)

        // Client → peer: ChannelData with padding, unwrapped.
        let toPeer = send(&server, [0x40, 0x00, 0x00, 0x03, 0xAA, 0xBB, 0xCC, 0x00])
        #expect(toPeer == [.sendToPeer([0xAA, 0xBB, 0xCC], peer: peer, relayed: relayed)])
        // Peer → client: wrapped in ChannelData, unpadded.
        var commands: [TURNCommand] = []
        [UInt8]([1, 2]).withUnsafeBytes { server.handlePeerDatagram($0, from: peer, to: relayed, now: t0, into: &commands) }
        #expect(commands == [.sendToClient([0x40, 0x00, 0x00, 0x02, 1, 2], client: client, listener: listener)])
        // A length field that does not match the datagram is dropped.
        #expect(send(&server, [0x40, 0x00, 0x00, 0x09, 0xAA]).isEmpty)
    }

    @Test func aBindingRefreshedAfterItExpiredReinstallsItsRoute() throws {
        var server = makeServer()
        let (nonce, relayed) = try allocate(&server)
        let route = ChannelRoute(client: client, listener: listener, channel: 0x4000, peer: peer, relayed: relayed)
        _ = send(&server, codec.encodeRequest(method: .channelBind, [.channel(0x4000), .peer(peer)],
                                              transactionID: Array(repeating: 3, count: 12), credentials: credentials(nonce: nonce)))
        // Keep the allocation alive, let the channel expire.
        _ = send(&server, codec.encodeRequest(method: .refresh, [.lifetime(3600)], transactionID: Array(repeating: 4, count: 12),
                                              credentials: credentials(nonce: nonce)), at: t0.adding(.seconds(500)))
        var commands: [TURNCommand] = []
        server.handleTimeout(now: t0.adding(.seconds(600)), into: &commands)
        #expect(commands == [.removeChannelRoute(route)])
        #expect(send(&server, [0x40, 0x00, 0x00, 0x01, 0xAA], at: t0.adding(.seconds(601))).isEmpty, "an expired channel carries nothing")
        let rebind = send(&server, codec.encodeRequest(method: .channelBind, [.channel(0x4000), .peer(peer)],
                                                       transactionID: Array(repeating: 5, count: 12), credentials: credentials(nonce: nonce)),
                          at: t0.adding(.seconds(700)))
        #expect(rebind.first == .installChannelRoute(route), "the route goes back to every data path")
        #expect(send(&server, [0x40, 0x00, 0x00, 0x01, 0xAA], at: t0.adding(.seconds(701))) == [.sendToPeer([0xAA], peer: peer, relayed: relayed)])
    }

    @Test func freeingAnAllocationRemovesItsRoutesAndSocket() throws {
        var server = makeServer()
        let (nonce, relayed) = try allocate(&server)
        let route = ChannelRoute(client: client, listener: listener, channel: 0x4000, peer: peer, relayed: relayed)
        _ = send(&server, codec.encodeRequest(method: .channelBind, [.channel(0x4000), .peer(peer)],
                                              transactionID: Array(repeating: 3, count: 12), credentials: credentials(nonce: nonce)))
        let freed = send(&server, codec.encodeRequest(method: .refresh, [.lifetime(0)], transactionID: Array(repeating: 4, count: 12),
                                                      credentials: credentials(nonce: nonce)))
        #expect(Array(freed.prefix(2)) == [.removeChannelRoute(route), .closeRelayedSocket(relayed)])
        #expect(server.allocationCount == 0)
        #expect(server.activeRoutes(now: t0).isEmpty)
    }

    @Test func anAllocationExpiresWithItsLifetime() throws {
        var server = makeServer()
        let (_, relayed) = try allocate(&server)
        var commands: [TURNCommand] = []
        server.handleTimeout(now: t0.adding(.seconds(599)), into: &commands)
        #expect(commands.isEmpty)
        #expect(server.nextDeadline == t0.monotonic + .seconds(600))
        server.handleTimeout(now: t0.adding(.seconds(600)), into: &commands)
        #expect(commands == [.closeRelayedSocket(relayed)])
    }

    @Test func dataFromAPeerWithoutPermissionIsDroppedAndWithOneBecomesADataIndication() throws {
        var server = makeServer()
        let (nonce, relayed) = try allocate(&server)
        var commands: [TURNCommand] = []
        [UInt8]([9]).withUnsafeBytes { server.handlePeerDatagram($0, from: peer, to: relayed, now: t0, into: &commands) }
        #expect(commands.isEmpty)
        _ = send(&server, codec.encodeRequest(method: .createPermission, [.peer(peer)], transactionID: Array(repeating: 3, count: 12),
                                              credentials: credentials(nonce: nonce)))
        [UInt8]([9]).withUnsafeBytes { server.handlePeerDatagram($0, from: address("10.1.2.3", 1234), to: relayed, now: t0, into: &commands) }
        let indication = try #require(reply(commands))
        #expect(Array(indication.prefix(2)) == [0x00, 0x17], "a Data indication")
        #expect(STUNCodec.firstAttribute(STUNCodec.AttributeType.data, in: indication) == [9])
        // Permissions last 300 s.
        commands.removeAll()
        [UInt8]([9]).withUnsafeBytes { server.handlePeerDatagram($0, from: peer, to: relayed, now: t0.adding(.seconds(300)), into: &commands) }
        #expect(commands.isEmpty)
    }

    @Test func sendIndicationsNeedAPermission() throws {
        var server = makeServer()
        let (nonce, relayed) = try allocate(&server)
        let indication = codec.encodeRequest(method: .send, [.peer(peer), .data([5, 6])], transactionID: Array(repeating: 8, count: 12), indication: true)
        #expect(send(&server, indication).isEmpty)
        _ = send(&server, codec.encodeRequest(method: .createPermission, [.peer(peer)], transactionID: Array(repeating: 3, count: 12),
                                              credentials: credentials(nonce: nonce)))
        #expect(send(&server, indication) == [.sendToPeer([5, 6], peer: peer, relayed: relayed)])
    }

    @Test func requestsOnAnAllocationMustUseItsUsername() throws {
        var server = makeServer()
        let (nonce, _) = try allocate(&server)
        let other = RESTCredentials.username(expiry: t0.unixSeconds + 3600, id: "mallory")
        let foreign = STUNCodec.RequestCredentials(username: other, realm: "gatehouse", nonce: nonce,
                                                   password: RESTCredentials.password(secret: secret, username: other))
        let answer = send(&server, codec.encodeRequest(method: .refresh, [.lifetime(600)], transactionID: Array(repeating: 9, count: 12), credentials: foreign))
        #expect(errorCode(reply(answer)) == 441)
    }

    @Test func aSecondSecretIsAcceptedDuringRotation() throws {
        var configuration = Server.Configuration()
        configuration.secrets = ["new-secret", secret]
        configuration.relayIPv4 = address("192.0.2.1", 0).ip
        var server = Server(configuration: configuration, codec: codec, random: SplitMix64(seed: 1))
        _ = try allocate(&server)
        #expect(server.allocationCount == 1)
    }
}
