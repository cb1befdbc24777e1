import Addresses
import STUN
import TURN
import TURNTesting
import Testing

/// The front door (`TURNServer`) on its own and with its sessions hosted inline: relayed ports that will
/// not bind, nonces swept on its own timer, peer datagrams gated by permission before anything is
/// queued, the 401 limiter's eviction (issue #10, defects 3, 4, 5 and 7).
@Suite struct FrontDoorTests {
    typealias Hosted = HostedTURNServer<STUNCodec, SplitMix64>
    typealias FrontDoor = TURNServer<STUNCodec, SplitMix64>

    let listener = address("192.0.2.1", 3478)
    let peer = address("10.1.2.3", 7000)
    let secret = "unit-secret"
    let codec = STUNCodec()
    var username: String { RESTCredentials.username(expiry: t0.unixSeconds + 3600, id: "unit") }

    func configuration(ports: ClosedRange<UInt16> = 50_000...50_099) -> FrontDoor.Configuration {
        var configuration = FrontDoor.Configuration()
        configuration.secrets = [secret]
        configuration.relayIPv4 = address("192.0.2.1", 0).ip
        configuration.relayIPv6 = address("2001:db8::1", 0).ip
        configuration.portRange = ports
        return configuration
    }

    func credentials(_ nonce: String) -> STUNCodec.RequestCredentials {
        .init(username: username, realm: "gatehouse", nonce: nonce, password: RESTCredentials.password(secret: secret, username: username))
    }

    /// Sends one datagram from `client`; returns what came out.
    func send(_ server: inout Hosted, _ bytes: [UInt8], from client: SocketAddress, at now: TURNTime = t0) -> [TURNCommand] {
        var commands: [TURNCommand] = []
        bytes.withUnsafeBytes { server.handleClientDatagram($0, from: client, to: listener, now: now, into: &commands) }
        return commands
    }

    /// 401 for the nonce, then an authenticated Allocate with `attributes`; returns the nonce and the answer.
    func allocate(_ server: inout Hosted, from client: SocketAddress, _ attributes: [TURNRequestAttribute] = [.transport(17)])
        -> (nonce: String, answer: [UInt8], commands: [TURNCommand]) {
        let challenge = send(&server, codec.encodeRequest(method: .allocate, attributes, transactionID: Array(repeating: 1, count: 12)), from: client)
        guard case let .sendToClient(bytes, _, _)? = challenge.last, let nonce = STUNCodec.nonce(in: bytes) else { return ("", [], challenge) }
        let commands = send(&server, codec.encodeRequest(
            method: .allocate, attributes, transactionID: Array(repeating: 2, count: 12), credentials: credentials(nonce)), from: client)
        guard case let .sendToClient(answer, _, _)? = commands.last else { return (nonce, [], commands) }
        return (nonce, answer, commands)
    }

    func relayedAddresses(_ answer: [UInt8]) -> [SocketAddress] {
        guard answer.count >= 20 else { return [] }
        let transactionID = Array(answer[8..<20])
        var addresses: [SocketAddress] = []
        var offset = 20
        while offset + 4 <= answer.count {
            let type = UInt16(answer[offset]) << 8 | UInt16(answer[offset + 1])
            let length = Int(UInt16(answer[offset + 2]) << 8 | UInt16(answer[offset + 3]))
            if type == STUNCodec.AttributeType.xorRelayedAddress {
                let value = Array(answer[(offset + 4)..<(offset + 4 + length)])
                if let address = value.withUnsafeBytes({ STUNCodec.decodeXORAddress($0, transactionID: transactionID) }) { addresses.append(address) }
            }
            offset += 4 + (length + 3) & ~3
        }
        return addresses
    }

    // MARK: Defect 3: a relayed socket that does not bind

    @Test func aPortTheHostWillNotBindIsReplacedByAnother() {
        var server = Hosted(configuration: configuration(ports: 50_000...50_001), codec: codec, random: SplitMix64(seed: 3))
        server.unbindablePorts = [50_000]
        let first = allocate(&server, from: address("198.51.100.1", 40_000))
        #expect(STUNCodec.errorCode(in: first.answer) == nil)
        #expect(relayedAddresses(first.answer) == [address("192.0.2.1", 50_001)], "the port that binds")
        let second = allocate(&server, from: address("198.51.100.2", 40_000))
        #expect(STUNCodec.errorCode(in: second.answer) == 508, "no port left that binds: Insufficient Capacity, never a success")
        #expect(relayedAddresses(second.answer).isEmpty)
        #expect(server.allocationCount == 1)
        #expect(server.portsInUse == 1, "the port that would not bind went back")
    }

    @Test func noPortThatBindsGives508AfterAFewTries() {
        var server = Hosted(configuration: configuration(ports: 50_000...50_099), codec: codec, random: SplitMix64(seed: 5))
        server.unbindablePorts = Set(50_000...50_099)
        let attempt = allocate(&server, from: address("198.51.100.1", 40_000))
        #expect(STUNCodec.errorCode(in: attempt.answer) == 508)
        let opens = attempt.commands.filter { if case .openRelayedSockets = $0 { true } else { false } }
        #expect(opens.count == FrontDoor.bindAttempts)
        #expect(server.portsInUse == 0 && server.allocationCount == 0)
    }

    // MARK: Defect 4: nonces swept while the relay runs

    @Test func expiredNoncesAreSweptOnTheFrontDoorsOwnTimer() {
        var settings = configuration()
        settings.nonceLimits.lifetime = .seconds(2)
        settings.housekeepingInterval = .seconds(1)
        var server = FrontDoor(configuration: settings, codec: codec, random: SplitMix64(seed: 1))
        var commands: [TURNCommand] = []
        server.handleTimeout(now: t0, into: &commands)
        for index in 0..<200 {
            let request = codec.encodeRequest(method: .allocate, [.transport(17)], transactionID: Array(repeating: 1, count: 12))
            request.withUnsafeBytes {
                server.handleClientDatagram($0, from: address("198.51.\(index / 100).\(index % 100 + 1)", 40_000), to: listener, now: t0, into: &commands)
            }
        }
        #expect(server.nonceCount == 200)
        #expect(server.nextDeadline <= t0.monotonic + .seconds(1), "the sweep is always scheduled")
        server.handleTimeout(now: t0.adding(.seconds(1)), into: &commands)
        #expect(server.nonceCount == 200, "not expired yet")
        server.handleTimeout(now: t0.adding(.seconds(2)), into: &commands)
        #expect(server.nonceCount == 0, "the table falls back after the burst")
    }

    // MARK: Defect 5: peer data without a permission is dropped before it is queued

    @Test func peerDataWithoutAPermissionIsNeverDispatched() {
        var server = FrontDoor(configuration: configuration(ports: 50_000...50_000), codec: codec, random: SplitMix64(seed: 1))
        let client = address("198.51.100.1", 40_000)
        let tuple = TURNFiveTuple(client: client, listener: listener)
        var commands: [TURNCommand] = []
        codec.encodeRequest(method: .allocate, [.transport(17)], transactionID: Array(repeating: 1, count: 12)).withUnsafeBytes {
            server.handleClientDatagram($0, from: client, to: listener, now: t0, into: &commands)
        }
        guard case let .sendToClient(challenge, _, _)? = commands.last, let nonce = STUNCodec.nonce(in: challenge) else {
            Issue.record("no 401")
            return
        }
        commands.removeAll()
        codec.encodeRequest(method: .allocate, [.transport(17)], transactionID: Array(repeating: 2, count: 12), credentials: credentials(nonce))
            .withUnsafeBytes { server.handleClientDatagram($0, from: client, to: listener, now: t0, into: &commands) }
        server.relayedSocketsOpened(for: tuple, success: true, now: t0, into: &commands)
        _ = server.takeDispatched()
        let relayed = address("192.0.2.1", 50_000)

        for _ in 0..<1000 {
            [UInt8](repeating: 9, count: 100).withUnsafeBytes { server.handlePeerDatagram($0, from: peer, to: relayed, now: t0, into: &commands) }
        }
        #expect(server.takeDispatched().isEmpty, "nothing queued for the allocation")
        #expect(server.droppedPeerDatagrams == 1000)

        server.updatePermissions([peer.ip: t0.monotonic + .seconds(300)], for: tuple)
        [UInt8]([1]).withUnsafeBytes { server.handlePeerDatagram($0, from: peer, to: relayed, now: t0, into: &commands) }
        #expect(server.takeDispatched().count == 1, "with a permission, the session gets it")
        [UInt8]([1]).withUnsafeBytes { server.handlePeerDatagram($0, from: peer, to: relayed, now: t0.adding(.seconds(300)), into: &commands) }
        #expect(server.takeDispatched().isEmpty, "an expired permission gates like none")
    }

    // MARK: Defect 7: the 401 limiter evicts the least recently seen source

    @Test func aFullLimiterForgetsTheLeastRecentlySeenSourceOnly() {
        var limiter = RateLimiter(burst: 1, perSecond: 0.001, capacity: 3)
        let (a, b, c, d) = (address("203.0.113.1", 0).ip, address("203.0.113.2", 0).ip, address("203.0.113.3", 0).ip, address("203.0.113.4", 0).ip)
        var answers: [Bool] = []
        for source in [a, b, c] { answers.append(limiter.allow(source, now: t0)) }
        #expect(answers == [true, true, true])
        // a spent its burst; seeing it again makes it the most recent. Then d takes the slot of b, the
        // least recently seen.
        answers = [limiter.allow(a, now: t0), limiter.allow(d, now: t0)]
        #expect(answers == [false, true])
        #expect(limiter.trackedSources == 3)
        // a and c are still remembered as empty (a full table does not wipe everyone); b was forgotten,
        // so it starts afresh.
        answers = [limiter.allow(a, now: t0), limiter.allow(c, now: t0), limiter.allow(b, now: t0)]
        #expect(answers == [false, false, true])
    }

    @Test func aFloodOfNewSourcesKeepsTheTableAtItsBound() {
        var limiter = RateLimiter(burst: 1, perSecond: 1, capacity: 1000)
        let steady = address("203.0.113.1", 0).ip
        _ = limiter.allow(steady, now: t0)
        for index in 0..<50_000 {
            _ = limiter.allow(.v4(0x0A00_0000 + UInt32(index)), now: t0)
            if index % 100 == 0 { _ = limiter.allow(steady, now: t0) }
        }
        #expect(limiter.trackedSources == 1000)
        let steadyAgain = limiter.allow(steady, now: t0)
        #expect(!steadyAgain, "a source seen often stays tracked (and limited) through the flood")
    }
}

/// A peer datagram too large to reach the client as a Data indication is dropped and counted; it used
/// to crash the encoder (a STUN message length beyond 16 bits).
@Suite struct OversizedPeerDataTests {
    @Test func theLargestIPv6DatagramIsDroppedNotEncoded() throws {
        let base = FrontDoorTests()
        var server = FrontDoorTests.Hosted(configuration: base.configuration(), codec: STUNCodec(), random: SplitMix64(seed: 2))
        let client = address("198.51.100.1", 40_000)
        let allocated = base.allocate(&server, from: client, [.transport(17), .requestedFamily(2)])
        let relayed = try #require(base.relayedAddresses(allocated.answer).first)
        let peer = address("2001:db8::99", 7000)
        let permission = base.send(&server, STUNCodec().encodeRequest(
            method: .createPermission, [.peer(peer)], transactionID: Array(repeating: 5, count: 12), credentials: base.credentials(allocated.nonce)),
            from: client)
        #expect(STUNCodec.errorCode(in: { if case let .sendToClient(bytes, _, _)? = permission.last { bytes } else { [] } }()) == nil)
        var commands: [TURNCommand] = []
        [UInt8](repeating: 1, count: 65_527).withUnsafeBytes { server.handlePeerDatagram($0, from: peer, to: relayed, now: t0, into: &commands) }
        #expect(commands.isEmpty)
        #expect(server.frontDoor.droppedOversizedPeerDatagrams == 1)
        // The largest payload that fits one IPv4 datagram to the client as a Data indication still goes.
        let fits = (65_507 - AllocationSession<STUNCodec>.dataIndicationSize(payload: 0, peer: peer)) & ~3
        [UInt8](repeating: 1, count: fits).withUnsafeBytes { server.handlePeerDatagram($0, from: peer, to: relayed, now: t0, into: &commands) }
        guard case let .sendToClient(indication, _, _)? = commands.first else {
            Issue.record("no Data indication: \(commands.count) commands")
            return
        }
        #expect(indication.count == AllocationSession<STUNCodec>.dataIndicationSize(payload: fits, peer: peer))
        #expect(indication.count > 65_500)
    }
}
