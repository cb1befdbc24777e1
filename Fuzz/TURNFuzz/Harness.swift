import Addresses
import FuzzSupport
import STUN
import TURN
import TURNTesting

/// What one input made the server do (the replay prints it, so seeds can be seen to reach deep states).
struct Summary {
    var allocations = 0
    var routes = 0
    var toPeers = 0
    var toClients = 0
    var successes = 0
    /// The last RESERVATION-TOKEN the server handed out, for a later Allocate to redeem.
    var lastToken: [UInt8]?
}

enum Harness {
    static let secret = "fuzz-secret"
    static let listener = SocketAddress(ip: .v4(0xC000_0201), port: 3478)  // 192.0.2.1
    static let clients: [SocketAddress] = [
        SocketAddress(ip: .v4(0xC633_6401), port: 40000),  // 198.51.100.1
        SocketAddress(ip: .v4(0xC633_6402), port: 40001),
        SocketAddress(ip: .v6(0x2001_0DB8_0000_0001, 1), port: 40002),
        SocketAddress(ip: .v4(0xC633_6401), port: 40003),
    ]
    static let peers: [SocketAddress] = [
        SocketAddress(ip: .v4(0x0A00_0001), port: 9),  // 10.0.0.1
        SocketAddress(ip: .v6(0xFD00_0000_0000_0000, 1), port: 9),  // fd00::1
        SocketAddress(ip: .v4(0x7F00_0001), port: 9),  // 127.0.0.1: refused
        SocketAddress(ip: .v4(0xC000_0201), port: 50010),  // the relay itself: hairpin or refused
        SocketAddress(ip: .v4(0x0A00_0001), port: 53),
    ]
    static let methods: [TURNRequest.Method] = [.binding, .allocate, .refresh, .send, .createPermission, .channelBind]
    static let t0 = TURNTime(monotonic: .seconds(1000), unixSeconds: 1_700_000_000)

    @discardableResult
    static func run(_ input: [UInt8]) -> Summary {
        var summary = Summary()
        var reader = InputReader(input)
        var configuration = HostedTURNServer<STUNCodec, SplitMix64>.Configuration()
        configuration.secrets = [secret]
        configuration.relayIPv4 = .v4(0xC000_0201)
        configuration.relayIPv6 = .v6(0x2001_0DB8_0000_0000, 1)
        configuration.portRange = 50_000...50_015
        configuration.allocationsPerUsername = 4
        configuration.nonceLimits.capacity = 8
        let codec = STUNCodec()
        var server = HostedTURNServer(configuration: configuration, codec: codec, random: SplitMix64(seed: 1))  // an input replays exactly
        let username = RESTCredentials.username(expiry: t0.unixSeconds + 3600, id: "fuzz")
        let password = RESTCredentials.password(secret: secret, username: username)
        var nonces: [SocketAddress: String] = [:]
        var relayed: [SocketAddress] = []
        var routes: Set<ChannelRoute> = []
        var now = t0
        var commands: [TURNCommand] = []
        var steps = 0

        while !reader.isAtEnd && steps < 64 {
            steps += 1
            let client = clients[Int(reader.byte()) % clients.count]
            var datagram: [UInt8]
            var fromPeer: (SocketAddress, SocketAddress)?
            switch reader.byte() % 6 {
            case 0:
                datagram = reader.chunk()
            case let op where op == 1 || op == 2:
                datagram = signedRequest(
                    &reader, codec: codec, nonce: nonces[client], username: username, password: password, lastToken: summary.lastToken)
                if op == 2, !datagram.isEmpty {
                    let index = Int(reader.u16()) % datagram.count
                    datagram[index] ^= max(1, reader.byte())
                }
            case 3:
                let payload = reader.chunk()
                let channel = 0x4000 | (reader.u16() & 0x3FFF)
                let length = reader.byte() % 2 == 0 ? UInt16(payload.count) : reader.u16()
                datagram = [UInt8(channel >> 8), UInt8(channel & 0xFF), UInt8(length >> 8), UInt8(length & 0xFF)] + payload
            case 4:
                datagram = reader.chunk()
                if !relayed.isEmpty {
                    fromPeer = (peers[Int(reader.byte()) % peers.count], relayed[Int(reader.byte()) % relayed.count])
                }
            default:
                now = now.adding(.seconds(Int64(reader.u16() % 1024)))
                commands.removeAll(keepingCapacity: true)
                server.handleTimeout(now: now, into: &commands)
                follow(commands, relayed: &relayed, routes: &routes, nonces: &nonces, client: client, input: nil, summary: &summary)
                continue
            }
            commands.removeAll(keepingCapacity: true)
            if let (peer, target) = fromPeer {
                datagram.withUnsafeBytes { server.handlePeerDatagram($0, from: peer, to: target, now: now, into: &commands) }
                follow(commands, relayed: &relayed, routes: &routes, nonces: &nonces, client: client, input: nil, summary: &summary)
            } else {
                datagram.withUnsafeBytes { server.handleClientDatagram($0, from: client, to: listener, now: now, into: &commands) }
                follow(commands, relayed: &relayed, routes: &routes, nonces: &nonces, client: client, input: datagram, summary: &summary)
            }
            // Decoding and integrity checking alone, too: the codec must take any bytes.
            _ = datagram.withUnsafeBytes { codec.decode($0) }
            _ = datagram.withUnsafeBytes { codec.verifyIntegrity($0, username: username, realm: "gatehouse", password: password) }
            check(server.allocationCount <= configuration.portRange.count, "allocations beyond the port range")
            check(server.nonceCount <= configuration.nonceLimits.capacity, "nonce table beyond its bound")
        }
        return summary
    }

    /// A request or indication signed with the harness's valid credentials, its attributes drawn from
    /// the input.
    static func signedRequest(
        _ reader: inout InputReader, codec: STUNCodec, nonce: String?, username: String, password: String, lastToken: [UInt8]?
    ) -> [UInt8] {
        let method = methods[Int(reader.byte()) % methods.count]
        var attributes: [TURNRequestAttribute] = []
        for _ in 0..<(reader.byte() % 6) {
            switch reader.byte() % 10 {
            case 0: attributes.append(.transport(reader.byte() % 3 == 0 ? 6 : 17))
            case 1: attributes.append(.lifetime(reader.byte() % 4 == 0 ? 0 : reader.u32() % 7200))
            case 2: attributes.append(.peer(peers[Int(reader.byte()) % peers.count]))
            case 3: attributes.append(.channel(0x3FF0 &+ reader.u16() % 0x4030))
            case 4: attributes.append(.requestedFamily([1, 2, 3][Int(reader.byte()) % 3]))
            case 5: attributes.append(.additionalFamily([1, 2][Int(reader.byte()) % 2]))
            case 6: attributes.append(.data(reader.chunk(limit: 64)))
            case 7: attributes.append(.raw(reader.u16(), reader.chunk(limit: 16)))
            case 8: attributes.append(.evenPort(reserveNext: reader.byte() % 2 == 0))
            default: attributes.append(.reservationToken(lastToken ?? (0..<8).map { _ in reader.byte() }))
            }
        }
        let credentials = (reader.byte() % 8 == 0 || nonce == nil)
            ? nil : STUNCodec.RequestCredentials(username: username, realm: "gatehouse", nonce: nonce ?? "", password: password)
        let transactionID = (0..<12).map { _ in reader.byte() }
        return codec.encodeRequest(
            method: method, attributes, transactionID: transactionID, credentials: credentials,
            indication: method == .send, fingerprint: reader.byte() % 2 == 0)
    }

    /// Tracks what the server told the shell to do, and checks it.
    static func follow(
        _ commands: [TURNCommand], relayed: inout [SocketAddress], routes: inout Set<ChannelRoute>, nonces: inout [SocketAddress: String],
        client: SocketAddress, input: [UInt8]?, summary: inout Summary
    ) {
        for command in commands {
            switch command {
            case let .sendToClient(answer, destination, _):
                guard answer.count >= 20, answer[0] & 0xC0 == 0 else {
                    summary.toClients += 1  // ChannelData
                    continue
                }
                if answer[0] == 0x00 && answer[1] == 0x17 { summary.toClients += 1 }  // Data indication
                if answer[0] & 0x01 == 0x01 && answer[1] & 0x10 == 0 { summary.successes += 1 }
                if let input {
                    check(input.count >= 20, "answered a datagram without a transaction ID")
                    check(destination == client, "answered someone else")
                }
                if let nonce = STUNCodec.nonce(in: answer) { nonces[destination] = nonce }
                if let token = STUNCodec.firstAttribute(STUNCodec.AttributeType.reservationToken, in: answer) { summary.lastToken = token }
            case let .openRelayedSockets(addresses, _):
                for address in addresses {
                    check(!relayed.contains(address), "opened a relayed address twice")
                    relayed.append(address)
                }
                summary.allocations += 1
            case let .closeRelayedSocket(address):
                relayed.removeAll { $0 == address }
                // Freeing an allocation removes every route it installed, before its sockets close.
                check(!routes.contains { $0.relayed == address }, "a route outlived its allocation")
            case let .sendToPeer(_, peer, _):
                check(peer.port != 0, "sent to port 0")
                summary.toPeers += 1
            case let .installChannelRoute(route):
                routes.insert(route)
                summary.routes += 1
            case let .removeChannelRoute(route):
                routes.remove(route)
            case .setPermissions:
                break
            }
        }
    }


    static func check(_ condition: Bool, _ message: String) {
        if !condition { fatalError("invariant broken: \(message)") }
    }
}
