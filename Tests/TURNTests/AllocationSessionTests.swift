import Addresses
import STUN
import TURN
import Testing

/// The per-allocation state machine on its own, without the front door (`TURNServer`) around it: what
/// it answers, what it tells the data paths, and when it reports itself freed.
@Suite struct AllocationSessionTests {
    let client = address("198.51.100.7", 50_000)
    let listener = address("192.0.2.1", 3478)
    let relayed = address("192.0.2.1", 50_001)
    let peer = address("10.1.2.3", 7000)
    let credentials = TURNCredentials(username: "1700003600:alice", password: "secret", integrity: .sha1)
    let codec = STUNCodec()

    func session(lifetime: Duration = .seconds(600)) -> AllocationSession<STUNCodec> {
        let allocation = Allocation(client: client, listener: listener, username: credentials.username, relayed: [relayed], lifetime: lifetime, now: t0)
        return AllocationSession(
            allocation: allocation, allocateTransaction: [1], allocateResponse: [2], codec: codec,
            context: TURNAnswerContext(realm: "gatehouse", software: "gatehouse"))
    }

    func request(_ method: TURNRequest.Method, _ configure: (inout TURNRequest) -> Void = { _ in }) -> TURNRequest {
        var request = TURNRequest(method: method, kind: .request, transactionID: Array(repeating: 7, count: 12))
        configure(&request)
        return request
    }

    /// Answers' method and code, as the session reports them.
    func handle(_ session: inout AllocationSession<STUNCodec>, _ request: TURNRequest, at now: TURNTime = t0, permits: Bool = true)
        -> (outcome: AllocationSession<STUNCodec>.Outcome, commands: [TURNCommand], answers: [Int]) {
        var commands: [TURNCommand] = []
        var answers: [Int] = []
        let outcome = session.handle(request, credentials: credentials, now: now, permits: { _ in permits }, into: &commands) { _, code in
            answers.append(code)
        }
        return (outcome, commands, answers)
    }

    @Test func channelBindInstallsTheRouteAndPeerDataBecomesChannelData() {
        var session = session()
        let (outcome, commands, answers) = handle(&session, request(.channelBind) { $0.channel = 0x4000; $0.peers = [peer] })
        #expect(outcome == .active && answers == [200])
        let route = ChannelRoute(client: client, listener: listener, channel: 0x4000, peer: peer, relayed: relayed)
        #expect(commands.first == .installChannelRoute(route))
        var relayedCommands: [TURNCommand] = []
        [UInt8]([1, 2, 3]).withUnsafeBytes {
            session.handlePeerDatagram($0, from: peer, now: t0, transactionID: { Array(repeating: 0, count: 12) }, into: &relayedCommands)
        }
        #expect(relayedCommands == [.sendToClient([0x40, 0x00, 0x00, 0x03, 1, 2, 3], client: client, listener: listener)])
    }

    @Test func refusedPeersAndWrongFamiliesGetTheirCodes() {
        var session = session()
        #expect(handle(&session, request(.createPermission) { $0.peers = [peer] }, permits: false).answers == [403])
        #expect(handle(&session, request(.channelBind) { $0.channel = 0x4000; $0.peers = [address("2001:db8::9", 1)] }).answers == [443])
        #expect(handle(&session, request(.createPermission)).answers == [400], "no peer")
        #expect(handle(&session, request(.channelBind) { $0.channel = 0x3FFF; $0.peers = [peer] }).answers == [400])
        var dropped: [TURNCommand] = []
        [UInt8]([9]).withUnsafeBytes {
            session.handlePeerDatagram($0, from: peer, now: t0, transactionID: { [] }, into: &dropped)
        }
        #expect(dropped.isEmpty, "no permission: dropped")
    }

    @Test func refreshZeroFreesWithRoutesRemovedAndSocketsClosed() {
        var session = session()
        _ = handle(&session, request(.channelBind) { $0.channel = 0x4000; $0.peers = [peer] })
        let (outcome, commands, answers) = handle(&session, request(.refresh) { $0.lifetime = 0 })
        #expect(outcome == .freed && answers == [200])
        let route = ChannelRoute(client: client, listener: listener, channel: 0x4000, peer: peer, relayed: relayed)
        #expect(Array(commands.prefix(2)) == [.removeChannelRoute(route), .closeRelayedSocket(relayed)])
    }

    @Test func expiryFreesAndAnExpiredSessionAnswers437() {
        var session = session(lifetime: .seconds(60))
        var commands: [TURNCommand] = []
        #expect(session.handleTimeout(now: t0.adding(.seconds(59)), into: &commands) == .active)
        #expect(handle(&session, request(.refresh) { $0.lifetime = 600 }, at: t0.adding(.seconds(61))).answers == [437])
        #expect(session.handleTimeout(now: t0.adding(.seconds(61)), into: &commands) == .freed)
        #expect(commands == [.closeRelayedSocket(relayed)])
    }
}

/// Freeing an allocation removes every route it ever installed, whatever state its channels were in
/// at that instant (issue #10, defect 1).
@Suite struct AllocationSessionFreeTests {
    let client = address("198.51.100.7", 50_000)
    let listener = address("192.0.2.1", 3478)
    let relayed = address("192.0.2.1", 50_001)
    let peer = address("10.1.2.3", 7000)
    let credentials = TURNCredentials(username: "1700003600:alice", password: "secret", integrity: .sha1)

    func boundSession(channelLifetime: Duration, allocationLifetime: Duration) -> (AllocationSession<STUNCodec>, ChannelRoute) {
        let timers = Allocation.Timers(permissionLifetime: .seconds(300), channelLifetime: channelLifetime, channelCooldown: .seconds(300))
        let allocation = Allocation(
            client: client, listener: listener, username: credentials.username, relayed: [relayed], lifetime: allocationLifetime, now: t0,
            timers: timers)
        var session = AllocationSession(
            allocation: allocation, allocateTransaction: [1], allocateResponse: [2], codec: STUNCodec(),
            context: TURNAnswerContext(realm: "gatehouse", software: "gatehouse"))
        var bind = TURNRequest(method: .channelBind, kind: .request, transactionID: Array(repeating: 7, count: 12))
        bind.channel = 0x4001
        bind.peers = [peer]
        var commands: [TURNCommand] = []
        _ = session.handle(bind, credentials: credentials, now: t0, permits: { _ in true }, into: &commands) { _, _ in }
        return (session, ChannelRoute(client: client, listener: listener, channel: 0x4001, peer: peer, relayed: relayed))
    }

    @Test func aChannelExpiringInTheSameTickAsItsAllocationLosesItsRoute() {
        var (session, route) = boundSession(channelLifetime: .seconds(600), allocationLifetime: .seconds(600))
        var commands: [TURNCommand] = []
        let outcome = session.handleTimeout(now: t0.adding(.seconds(600)), into: &commands)
        #expect(outcome == .freed)
        #expect(commands == [.removeChannelRoute(route), .closeRelayedSocket(relayed)])
    }

    @Test func aTimerThatFiresLateStillRemovesTheRoute() {
        // The channel ran out a minute before the allocation; the first timeout comes after both.
        var (session, route) = boundSession(channelLifetime: .seconds(540), allocationLifetime: .seconds(600))
        var commands: [TURNCommand] = []
        let outcome = session.handleTimeout(now: t0.adding(.seconds(605)), into: &commands)
        #expect(outcome == .freed)
        #expect(commands == [.removeChannelRoute(route), .closeRelayedSocket(relayed)])
    }

    @Test func aRouteRemovedAtExpiryIsNotRemovedTwice() {
        var (session, route) = boundSession(channelLifetime: .seconds(60), allocationLifetime: .seconds(600))
        var commands: [TURNCommand] = []
        #expect(session.handleTimeout(now: t0.adding(.seconds(60)), into: &commands) == .active)
        #expect(commands == [.removeChannelRoute(route)])
        commands.removeAll()
        #expect(session.handleTimeout(now: t0.adding(.seconds(600)), into: &commands) == .freed)
        #expect(commands == [.closeRelayedSocket(relayed)])
    }
}
