import Addresses
import STUN
import TURN
import Testing

/// The front door with its sessions hosted elsewhere (the relay's actors): it hands out each new
/// session and, in order, the work that concerns it, and answers nothing on a session's behalf.
@Suite struct TURNServerDispatchTests {
    typealias Server = TURNServer<STUNCodec, SplitMix64>

    let client = address("198.51.100.7", 50_000)
    let listener = address("192.0.2.1", 3478)
    let peer = address("10.1.2.3", 7000)
    let secret = "unit-secret"
    let codec = STUNCodec()
    var username: String { RESTCredentials.username(expiry: t0.unixSeconds + 3600, id: "unit") }

    func makeServer() -> Server {
        var configuration = Server.Configuration()
        configuration.secrets = [secret]
        configuration.relayIPv4 = address("192.0.2.1", 0).ip
        configuration.portRange = 50_000...50_000  // one port: a second allocation needs the first freed
        return Server(configuration: configuration, codec: codec, random: SplitMix64(seed: 7))
    }

    func send(_ server: inout Server, _ bytes: [UInt8], from: SocketAddress? = nil) -> [TURNCommand] {
        var commands: [TURNCommand] = []
        bytes.withUnsafeBytes { server.handleClientDatagram($0, from: from ?? client, to: listener, now: t0, into: &commands) }
        return commands
    }

    func allocate(_ server: inout Server, from: SocketAddress) throws -> (STUNCodec.RequestCredentials, [TURNCommand]) {
        let challenge = send(&server, codec.encodeRequest(method: .allocate, [.transport(17)], transactionID: Array(repeating: 1, count: 12)), from: from)
        guard case let .sendToClient(bytes, _, _)? = challenge.first else { throw WaitFailure() }
        let nonce = try #require(STUNCodec.nonce(in: bytes))
        let credentials = STUNCodec.RequestCredentials(
            username: username, realm: "gatehouse", nonce: nonce, password: RESTCredentials.password(secret: secret, username: username))
        let commands = send(&server, codec.encodeRequest(
            method: .allocate, [.transport(17)], transactionID: Array(repeating: 2, count: 12), credentials: credentials), from: from)
        return (credentials, commands)
    }

    struct WaitFailure: Error {}

    /// A relayed port that will not bind on the host (another program holds it) is not tried again for
    /// the same Allocate: with two ports, the retry is always the other one, whatever the random draws.
    @Test(arguments: UInt64(1)...UInt64(40))
    func aPortThatWouldNotBindIsNotRetried(seed: UInt64) throws {
        var configuration = Server.Configuration()
        configuration.secrets = [secret]
        configuration.relayIPv4 = address("192.0.2.1", 0).ip
        configuration.portRange = 50_000...50_001
        var server = Server(configuration: configuration, codec: codec, random: SplitMix64(seed: seed))
        let (_, commands) = try allocate(&server, from: client)
        let tuple = TURNFiveTuple(client: client, listener: listener)
        guard case let .openRelayedSockets(first, _)? = commands.first, let failed = first.first?.port else { throw WaitFailure() }
        var retry: [TURNCommand] = []
        server.relayedSocketsOpened(for: tuple, success: false, now: t0, into: &retry)
        guard case let .openRelayedSockets(second, _)? = retry.first else {
            Issue.record("a retry on the other port, got \(retry)")
            return
        }
        #expect(second.map(\.port) == [failed == 50_000 ? 50_001 : 50_000])
    }

    @Test func sessionsAndTheirWorkAreHandedOutInOrder() throws {
        var server = makeServer()
        let (credentials, commands) = try allocate(&server, from: client)
        let tuple = TURNFiveTuple(client: client, listener: listener)
        #expect(commands == [.openRelayedSockets([address("192.0.2.1", 50_000)], for: tuple)], "nothing is answered before the socket opens")
        #expect(server.takeDispatched().isEmpty)
        var opened: [TURNCommand] = []
        server.relayedSocketsOpened(for: tuple, success: true, now: t0, into: &opened)
        guard case let .sendToClient(success, _, _)? = opened.first, opened.count == 1 else { throw WaitFailure() }
        #expect(STUNCodec.errorCode(in: success) == nil, "answered once the socket is open")
        let created = server.takeDispatched()
        guard created.count == 1, case let .created(createdTuple, session) = created[0], createdTuple == tuple else {
            Issue.record("expected one created session, got \(created)")
            return
        }
        #expect(tuple.client == client && session.allocation.relayed == [address("192.0.2.1", 50_000)])

        // A ChannelBind and a Refresh: authenticated here, answered by the session, handed out in order.
        let bind = send(&server, codec.encodeRequest(
            method: .channelBind, [.channel(0x4000), .peer(peer)], transactionID: Array(repeating: 3, count: 12), credentials: credentials))
        let refresh = send(&server, codec.encodeRequest(
            method: .refresh, [.lifetime(0)], transactionID: Array(repeating: 4, count: 12), credentials: credentials))
        #expect(bind.isEmpty && refresh.isEmpty, "the front door answers nothing for the session")
        let work = server.takeDispatched()
        #expect(work.count == 2)
        if case let .work(_, .request(request, _, permitted))? = work.first {
            #expect(request.method == .channelBind && permitted == [peer])
        } else {
            Issue.record("first: the ChannelBind, got \(String(describing: work.first))")
        }
        if case let .work(_, .request(request, _, _))? = work.last { #expect(request.method == .refresh) }

        // Until the session says it freed the allocation, the port stays taken.
        let other = address("198.51.100.8", 50_001)
        let (_, refused) = try allocate(&server, from: other)  // no port to try: refused before any socket
        guard case let .sendToClient(bytes, _, _)? = refused.last else { throw WaitFailure() }
        #expect(STUNCodec.errorCode(in: bytes) == 508, "the one port is still the first allocation's")
        server.sessionFreed(tuple)
        #expect(server.allocationCount == 0)
        let (_, granted) = try allocate(&server, from: address("198.51.100.9", 50_002))
        #expect(granted.contains { if case let .openRelayedSockets(addresses, _) = $0 { addresses == [address("192.0.2.1", 50_000)] } else { false } },
                "the port is free again")
    }
}
