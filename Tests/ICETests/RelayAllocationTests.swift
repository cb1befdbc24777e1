import Addresses
import Foundation
import ICE
import STUN
import TURN
import TURNTesting
import Testing

/// The client's side of a TURN allocation against the relay's own server logic (the sans-IO core that
/// `gatehouse relay` runs), datagram by datagram, in memory.
@Suite struct RelayAllocationTests {
    typealias Server = HostedTURNServer<STUNCodec, SplitMix64>

    static func address(_ text: String, _ port: UInt16) -> SocketAddress { try! SocketAddress(text, port: port) }
    let client = address("198.51.100.7", 50_000)
    let listener = address("192.0.2.1", 3478)
    let peer = address("10.1.2.3", 51_820)
    let secret = "unit-secret"
    let serverNow = TURNTime(monotonic: .seconds(1000), unixSeconds: 1_700_000_000)
    let start = Date(timeIntervalSince1970: 1_700_000_000)

    /// The two ends, and what the server asked its shell to send to peers.
    struct Link {
        var server: Server
        var allocation: RelayAllocation
        var toPeers: [[UInt8]] = []
        var events: [RelayAllocation.Event] = []
        /// The relay's clock.
        var serverTime: TURNTime
    }

    func makeLink() -> Link {
        var configuration = Server.Configuration()
        configuration.secrets = [secret]
        configuration.relayIPv4 = listener.ip
        configuration.portRange = 50_000...50_099
        let username = RESTCredentials.username(expiry: serverNow.unixSeconds + 3600, id: "unit")
        return Link(server: Server(configuration: configuration, codec: STUNCodec(), random: SplitMix64(seed: 7)),
                    allocation: RelayAllocation(server: listener, username: username,
                                                password: RESTCredentials.password(secret: secret, username: username)),
                    serverTime: serverNow)
    }

    /// `datagrams` from the client to the relay, and every answer back, until nothing is left to send.
    func deliver(_ datagrams: [[UInt8]], over link: inout Link) {
        var outbound = datagrams
        while !outbound.isEmpty {
            let bytes = outbound.removeFirst()
            var commands: [TURNCommand] = []
            bytes.withUnsafeBytes { link.server.handleClientDatagram($0, from: client, to: listener, now: link.serverTime, into: &commands) }
            for command in commands {
                switch command {
                case let .sendToClient(answer, _, _):
                    guard let (send, events) = link.allocation.receive(answer, now: start) else { continue }
                    outbound += send
                    link.events += events
                case let .sendToPeer(payload, destination, _):
                    #expect(destination == peer)
                    link.toPeers.append(payload)
                default:
                    break
                }
            }
        }
    }

    func allocated() throws -> Link {
        var link = makeLink()
        deliver(link.allocation.start(now: start), over: &link)
        let relayed = try #require(link.allocation.relayed, "allocated after the 401: \(link.events)")
        #expect(relayed.ip == listener.ip)
        return link
    }

    @Test func whatIsSentBeforeTheChannelIsBoundReachesThePeerOnceItIs() throws {
        var link = try allocated()
        var requests: [[UInt8]] = []
        // The first check through the relay, and its retransmission, before the relay has answered the
        // ChannelBind that the first one asked for.
        #expect(link.allocation.wrap(Array("check 1".utf8), for: peer, now: start, requests: &requests) == .held)
        #expect(link.allocation.wrap(Array("check 2".utf8), for: peer, now: start, requests: &requests) == .held)
        #expect(requests.count == 1, "one ChannelBind for the peer")
        #expect(link.toPeers.isEmpty)

        deliver(requests, over: &link)
        #expect(link.toPeers == [Array("check 1".utf8), Array("check 2".utf8)], "released in order once bound, through the channel")
        #expect(link.allocation.boundChannel(for: peer) != nil)
        requests = []
        guard case let .frame(frame) = link.allocation.wrap(Array("data".utf8), for: peer, now: start, requests: &requests) else {
            Issue.record("a bound channel frames at once"); return
        }
        #expect(requests.isEmpty)
        deliver([frame], over: &link)
        #expect(link.toPeers.last == Array("data".utf8))
    }

    @Test func onlyTheNewestPayloadsAreHeld() throws {
        var link = try allocated()
        var requests: [[UInt8]] = []
        let payloads = (1...(RelayAllocation.heldPerChannel + 3)).map { Array("payload \($0)".utf8) }
        for payload in payloads { _ = link.allocation.wrap(payload, for: peer, now: start, requests: &requests) }
        deliver(requests, over: &link)
        #expect(link.toPeers == Array(payloads.suffix(RelayAllocation.heldPerChannel)))
    }

    @Test func aRefusedChannelBindIsAskedForAgainByTheNextData() throws {
        var link = try allocated()
        let loopback = Self.address("127.0.0.1", 51_820)  // a peer the relay refuses (403)
        var requests: [[UInt8]] = []
        #expect(link.allocation.wrap(Array("check".utf8), for: loopback, now: start, requests: &requests) == .held)
        deliver(requests, over: &link)
        #expect(link.toPeers.isEmpty)
        #expect(link.allocation.boundChannel(for: loopback) == nil)
        requests = []
        #expect(link.allocation.wrap(Array("again".utf8), for: loopback, now: start, requests: &requests) == .held)
        #expect(requests.count == 1, "a new ChannelBind, not a channel left pending for good")
    }

    @Test func aChannelBindThatGoesUnansweredIsAskedForAgain() throws {
        var link = try allocated()
        var requests: [[UInt8]] = []
        _ = link.allocation.wrap(Array("check".utf8), for: peer, now: start, requests: &requests)
        #expect(requests.count == 1)
        // The relay never hears it: every retransmission is lost.
        var now = start
        while link.allocation.nextDeadline < now.addingTimeInterval(60) {
            now = link.allocation.nextDeadline
            _ = link.allocation.poll(now: now)
            if now.timeIntervalSince(start) > 30 { break }
        }
        requests = []
        #expect(link.allocation.wrap(Array("later".utf8), for: peer, now: now, requests: &requests) == .held)
        #expect(requests.count == 1, "the next data asks for the channel again")
        deliver(requests, over: &link)
        #expect(link.toPeers == [Array("later".utf8)], "only what was held for the new binding")
    }

    @Test func releaseDeletesTheAllocationOnTheRelay() throws {
        var link = try allocated()
        #expect(link.server.allocationCount == 1)
        deliver(link.allocation.release(), over: &link)
        #expect(link.server.allocationCount == 0, "a Refresh with lifetime 0 freed it")
        var requests: [[UInt8]] = []
        #expect(link.allocation.wrap(Array("data".utf8), for: peer, now: start, requests: &requests) == .unavailable)
        #expect(link.allocation.release().isEmpty, "released once")
    }

    /// A client killed without releasing its allocation and started again on the same address and port:
    /// the relay still holds the old allocation and refuses the new one (437) until it expires; the
    /// client tries again, and is allocated once the old one is gone.
    @Test func anAllocateRefusedForAnAddressStillInUseIsTriedAgainLater() throws {
        var link = try allocated()
        link.allocation = makeLink().allocation
        deliver(link.allocation.start(now: start), over: &link)
        guard case let .failed(reason, lost, retryIn) = link.events.last else {
            Issue.record("the Allocate fails: \(link.events)"); return
        }
        #expect(reason == "Allocate refused with 437" && lost == nil && retryIn == RelayAllocation.retryFirst)
        #expect(link.allocation.relayed == nil)
        #expect(link.allocation.nextDeadline == start.addingTimeInterval(RelayAllocation.retryFirst))

        // The old allocation's lifetime ends on the relay.
        link.serverTime = serverNow.adding(.seconds(Int(RelayAllocation.lifetime) + 1))
        var expired: [TURNCommand] = []
        link.server.handleTimeout(now: link.serverTime, into: &expired)
        #expect(link.server.allocationCount == 0)
        let retry = link.allocation.poll(now: start.addingTimeInterval(RelayAllocation.retryFirst))
        #expect(retry.send.count == 1, "an Allocate again")
        deliver(retry.send, over: &link)
        #expect(link.allocation.relayed != nil, "allocated on the second try: \(link.events)")
        #expect(link.allocation.failure == nil)
    }

    @Test func anAllocationTheRelayNeverAnswersIsTriedAgainWithBackoff() throws {
        var allocation = makeLink().allocation
        _ = allocation.start(now: start)
        var failures: [TimeInterval] = []
        var allocates = 0
        var now = start
        while failures.count < 3 {
            now = allocation.nextDeadline
            let result = allocation.poll(now: now)
            allocates += result.send.count
            for case let .failed(_, _, retryIn) in result.events { failures.append(retryIn) }
        }
        #expect(failures == [1, 2, 4], "the waits double")
        #expect(allocation.failure == "the relay did not answer")
        #expect(allocates >= 3 * 5, "each try retransmits its Allocate")
    }

    /// The relay restarted and forgot every allocation: the next Refresh is answered 437, the relayed
    /// address is reported lost, and a new allocation follows.
    @Test func anAllocationTheRelayForgotIsReportedLostAndMadeAgain() throws {
        var link = try allocated()
        let first = try #require(link.allocation.relayed)
        link.server = makeLink().server
        let refreshAt = link.allocation.nextDeadline
        #expect(refreshAt < start.addingTimeInterval(RelayAllocation.lifetime))
        let refresh = link.allocation.poll(now: refreshAt)
        #expect(refresh.send.count == 1, "a Refresh")
        deliver(refresh.send, over: &link)
        guard case let .failed(_, lost, retryIn) = link.events.last else {
            Issue.record("the allocation is lost: \(link.events)"); return
        }
        #expect(lost == first && retryIn == RelayAllocation.retryFirst)
        #expect(link.allocation.relayed == nil)
        deliver(link.allocation.poll(now: refreshAt.addingTimeInterval(RelayAllocation.retryFirst)).send, over: &link)
        #expect(link.allocation.relayed != nil, "allocated again: \(link.events)")
    }
}
