import Addresses
import STUN
import TURN
import TURNTesting
import Testing

/// A mutation fuzzer over the whole server (decode, authenticate, allocate, relay), seeded so that a
/// failure reproduces: valid messages of every kind, mutated and truncated, from several clients and
/// peers. The server must never crash, never answer a datagram without a readable transaction ID, and
/// keep its tables within their bounds.
@Suite struct TURNServerFuzzTests {
    @Test(arguments: [1, 2, 3, 4] as [UInt64])
    func mutatedTrafficNeverCrashesTheServer(seed: UInt64) {
        var random = SplitMix64(seed: seed)
        let codec = STUNCodec()
        var configuration = HostedTURNServer<STUNCodec, SplitMix64>.Configuration()
        configuration.secrets = ["fuzz"]
        configuration.relayIPv4 = address("192.0.2.1", 0).ip
        configuration.relayIPv6 = address("2001:db8::1", 0).ip
        configuration.portRange = 50_000...50_063
        configuration.allocationsPerUsername = 8
        var server = HostedTURNServer(configuration: configuration, codec: codec, random: SplitMix64(seed: seed ^ 0xFEED))
        let listener = address("192.0.2.1", 3478)
        let username = RESTCredentials.username(expiry: t0.unixSeconds + 86_400, id: "fuzz")
        let password = RESTCredentials.password(secret: "fuzz", username: username)
        var nonces: [SocketAddress: String] = [:]
        var relayed: [SocketAddress] = []
        var now = t0
        var commands: [TURNCommand] = []
        var allocationsMade = 0
        var relayedToPeers = 0

        for iteration in 0..<25_000 {
            let client = address("198.51.100.\(Int.random(in: 1...4, using: &random))", UInt16.random(in: 40_000...40_003, using: &random))
            let peer = [address("10.0.0.1", 9), address("fd00::1", 9), address("127.0.0.1", 9), address("192.0.2.1", 50_010)]
                .randomElement(using: &random) ?? address("10.0.0.1", 9)
            let transactionID = (0..<12).map { _ in UInt8.random(in: 0...255, using: &random) }
            let credentials = nonces[client].map { STUNCodec.RequestCredentials(username: username, realm: "gatehouse", nonce: $0, password: password) }
            let attributes: [TURNRequestAttribute] = [
                .transport([17, 17, 6].randomElement(using: &random) ?? 17),
                .lifetime(UInt32.random(in: 0...7200, using: &random)),
                .peer(peer), .channel(UInt16.random(in: 0x3FF0...0x8010, using: &random)),
                .requestedFamily([1, 2, 9].randomElement(using: &random) ?? 1), .additionalFamily(2),
                .data((0..<Int.random(in: 0...40, using: &random)).map { UInt8(truncatingIfNeeded: $0) }),
                .raw(UInt16.random(in: 0...0xFFFF, using: &random), [1, 2, 3]),
            ]
            let chosen = attributes.filter { _ in Bool.random(using: &random) }
            let method = [TURNRequest.Method.allocate, .refresh, .createPermission, .channelBind, .send, .binding].randomElement(using: &random) ?? .binding
            var bytes = codec.encodeRequest(method: method, chosen, transactionID: transactionID, credentials: credentials,
                                            indication: method == .send, fingerprint: Bool.random(using: &random))
            switch Int.random(in: 0..<6, using: &random) {
            case 0: bytes = Array(bytes.prefix(Int.random(in: 0...bytes.count, using: &random)))
            case 1: for _ in 0..<3 { bytes[Int.random(in: 0..<bytes.count, using: &random)] = UInt8.random(in: 0...255, using: &random) }
            case 2: bytes = [0x40 | UInt8.random(in: 0...0x3F, using: &random), UInt8.random(in: 0...255, using: &random), 0, UInt8.random(in: 0...8, using: &random)] + Array(repeating: 7, count: Int.random(in: 0...8, using: &random))
            default: break
            }
            commands.removeAll(keepingCapacity: true)
            bytes.withUnsafeBytes { server.handleClientDatagram($0, from: client, to: listener, now: now, into: &commands) }
            for command in commands {
                switch command {
                case let .sendToClient(answer, _, _):
                    if answer.count >= 20, answer[0] & 0xC0 == 0, let nonce = STUNCodec.nonce(in: answer) { nonces[client] = nonce }
                    if bytes.count < 20 && answer[0] & 0xC0 == 0 { Issue.record("answered a datagram without a transaction ID") }
                case let .openRelayedSockets(addresses, _):
                    relayed.append(contentsOf: addresses)
                    allocationsMade += 1
                case let .closeRelayedSocket(address): relayed.removeAll { $0 == address }
                case .sendToPeer: relayedToPeers += 1
                case .installChannelRoute, .removeChannelRoute, .setPermissions: break
                }
            }
            if let target = relayed.randomElement(using: &random) {
                commands.removeAll(keepingCapacity: true)
                [UInt8](repeating: 1, count: Int.random(in: 0...64, using: &random)).withUnsafeBytes {
                    server.handlePeerDatagram($0, from: peer, to: target, now: now, into: &commands)
                }
            }
            if iteration % 500 == 0 {
                now = now.adding(.seconds(Int64.random(in: 0...400, using: &random)))
                commands.removeAll(keepingCapacity: true)
                server.handleTimeout(now: now, into: &commands)
                for case let .closeRelayedSocket(address) in commands { relayed.removeAll { $0 == address } }
            }
            #expect(server.allocationCount <= 64, "the port range bounds allocations")
        }
        // The mutations must not have kept the fuzzer from reaching the interesting states.
        #expect(allocationsMade > 10, "allocations made: \(allocationsMade)")
        #expect(relayedToPeers > 10, "datagrams relayed to peers: \(relayedToPeers)")
        #expect(server.nonceCount <= 16)
    }
}
