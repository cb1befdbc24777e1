import Addresses
import Foundation
import ICE
import Testing

/// Two agents over a simulated network (zero latency, a virtual clock): the client controlling, the
/// gateway controlled, each with a host candidate, the client also with a relayed one.
@Suite struct ICEAgentTests {
    static func address(_ text: String, _ port: UInt16) -> SocketAddress { try! SocketAddress(text, port: port) }

    struct Network {
        var client: ICEAgent
        var gateway: ICEAgent
        let clientHost = ICECandidate(kind: .host, address: ICEAgentTests.address("192.0.2.10", 40000))
        let clientRelayed = ICECandidate(kind: .relayed, address: ICEAgentTests.address("198.51.100.1", 50000),
                                         base: ICEAgentTests.address("198.51.100.1", 50000), server: ICEAgentTests.address("198.51.100.1", 3478))
        let gatewayHost = ICECandidate(kind: .host, address: ICEAgentTests.address("203.0.113.5", 51820))
        /// (from, to) pairs of addresses the network drops; and how many datagrams to lose first.
        var blocked: Set<[SocketAddress]> = []
        var loseFirst = 0
        var sent = 0
        var clientSelected: [ICEPair] = []
        var gatewaySelected: [ICEPair] = []
        var clientFailed = false
        var clientLost: [ICEPair] = []

        init(clientControlling: Bool = true, gatewayControlling: Bool = false) {
            let clientCredentials = ICEAgent.Credentials(ufrag: "clientufrag0001", password: "client-password-0123456789abcd")
            let gatewayCredentials = ICEAgent.Credentials(ufrag: "gatewayufrag001", password: "gateway-password-0123456789abc")
            client = ICEAgent(controlling: clientControlling, local: clientCredentials, remote: gatewayCredentials)
            gateway = ICEAgent(controlling: gatewayControlling, local: gatewayCredentials, remote: clientCredentials)
        }

        /// Candidates trickled both ways, then the clock runs until both selected (or `seconds` pass).
        mutating func run(seconds: Double = 10, relayed: Bool = true) {
            client.addLocal(clientHost)
            if relayed { client.addLocal(clientRelayed) }
            gateway.addLocal(gatewayHost)
            gateway.addRemote(clientHost)
            if relayed { gateway.addRemote(clientRelayed) }
            client.addRemote(gatewayHost)
            var now = Date(timeIntervalSince1970: 1_800_000_000)
            let end = now.addingTimeInterval(seconds)
            while now < end {
                deliver(client.poll(now: now), fromClient: true, now: now)
                deliver(gateway.poll(now: now), fromClient: false, now: now)
                if !clientSelected.isEmpty && !gatewaySelected.isEmpty && now > end.addingTimeInterval(-seconds + 2) { break }
                now = now.addingTimeInterval(0.01)
            }
        }

        mutating func deliver(_ outputs: [ICEAgent.Output], fromClient: Bool, now: Date) {
            for output in outputs {
                switch output {
                case let .selected(pair):
                    if fromClient { clientSelected.append(pair) } else { gatewaySelected.append(pair) }
                case .failed:
                    if fromClient { clientFailed = true }
                case let .lost(pair):
                    if fromClient { clientLost.append(pair) }
                case let .send(bytes, from, to):
                    sent += 1
                    if sent <= loseFirst || blocked.contains([from.address, to]) { continue }
                    // The source the other end sees: the host's address, or the relay's for a relayed candidate.
                    let source = from.address
                    if to == gatewayHost.address {
                        deliver(gateway.receive(bytes, at: gatewayHost, from: source, now: now) ?? [], fromClient: false, now: now)
                    } else if to == clientHost.address {
                        deliver(client.receive(bytes, at: clientHost, from: source, now: now) ?? [], fromClient: true, now: now)
                    } else if to == clientRelayed.address {
                        deliver(client.receive(bytes, at: clientRelayed, from: source, now: now) ?? [], fromClient: true, now: now)
                    }
                }
            }
        }
    }

    @Test func theDirectPairWinsOnBothSides() {
        var network = Network()
        network.run()
        let client = try! #require(network.clientSelected.last)
        let gateway = try! #require(network.gatewaySelected.last)
        #expect(client.local.address == network.clientHost.address && client.remote.address == network.gatewayHost.address, "\(client)")
        #expect(gateway.local.address == network.gatewayHost.address && gateway.remote.address == network.clientHost.address, "\(gateway)")
        #expect(network.client.controlling && !network.gateway.controlling)
    }

    @Test func withoutADirectPathTheRelayedPairIsChosen() {
        var network = Network()
        network.blocked = [[network.clientHost.address, network.gatewayHost.address], [network.gatewayHost.address, network.clientHost.address]]
        network.run()
        let client = try! #require(network.clientSelected.last)
        let gateway = try! #require(network.gatewaySelected.last)
        #expect(client.local.kind == .relayed && client.remote.address == network.gatewayHost.address, "\(client)")
        #expect(gateway.remote.address == network.clientRelayed.address, "\(gateway)")
    }

    @Test func bothControllingResolveTheConflictAndAgree() {
        var network = Network(clientControlling: true, gatewayControlling: true)
        network.run(relayed: false)
        #expect(network.client.controlling != network.gateway.controlling, "one gave way by the tie-breakers")
        let client = try! #require(network.clientSelected.last)
        let gateway = try! #require(network.gatewaySelected.last)
        #expect(client.remote.address == gateway.local.address && gateway.remote.address == client.local.address)
    }

    @Test func lostChecksAreRetransmitted() {
        var network = Network()
        network.loseFirst = 4
        network.run(relayed: false)
        #expect(network.clientSelected.last?.remote.address == network.gatewayHost.address)
        #expect(network.gatewaySelected.last?.remote.address == network.clientHost.address)
    }

    /// The controlling side checks its selected pair every keepalive interval; when the path dies, the
    /// check goes unanswered through every retransmission and the pair is reported lost.
    @Test func anUnansweredKeepaliveLosesTheSelectedPair() throws {
        var network = Network()
        network.client.keepaliveInterval = 1
        network.run(seconds: 3, relayed: false)
        let selected = try #require(network.clientSelected.last)
        #expect(network.clientLost.isEmpty, "keepalives were answered while the path lived")
        network.blocked = [[network.clientHost.address, network.gatewayHost.address], [network.gatewayHost.address, network.clientHost.address]]
        var now = Date(timeIntervalSince1970: 1_800_000_003)
        for _ in 0..<500 {
            network.deliver(network.client.poll(now: now), fromClient: true, now: now)
            network.deliver(network.gateway.poll(now: now), fromClient: false, now: now)
            now = now.addingTimeInterval(0.01)
        }
        #expect(network.clientLost == [selected] && network.client.selected == nil, "\(network.clientLost)")
    }

    /// A candidate trickled again (the other side restarted its checks) has its pairs checked again:
    /// the gateway's checks toward the client's relayed address failed long ago (its NAT forgot them),
    /// and only checking again lets the client's new checks in through that NAT.
    @Test func aCandidateTrickledAgainIsCheckedAgain() {
        var network = Network()
        network.blocked = [[network.gatewayHost.address, network.clientRelayed.address]]
        network.run(seconds: 10, relayed: true)
        func checksToRelayed(after trickle: Bool, at start: Double) -> Int {
            if trickle { network.gateway.addRemote(network.clientRelayed) }
            var count = 0
            var now = Date(timeIntervalSince1970: start)
            for _ in 0..<300 {
                for case let .send(_, _, to) in network.gateway.poll(now: now) where to == network.clientRelayed.address { count += 1 }
                now = now.addingTimeInterval(0.01)
            }
            return count
        }
        #expect(checksToRelayed(after: false, at: 1_800_000_100) == 0, "a failed pair stays failed")
        #expect(checksToRelayed(after: true, at: 1_800_000_200) > 0, "trickled again, it is checked again")
    }

    /// The direct pair's checks come late (a loaded machine): the relayed pair is nominated first, and
    /// once the direct pair succeeds it is nominated too, on both sides.
    @Test func aDirectPairThatSucceedsLateReplacesTheRelayedOne() {
        var network = Network()
        network.blocked = [[network.clientHost.address, network.gatewayHost.address], [network.gatewayHost.address, network.clientHost.address]]
        network.run(seconds: 0.6, relayed: true)
        #expect(network.clientSelected.last?.local.kind == .relayed, "first the relayed pair: \(network.clientSelected)")
        network.blocked = []
        var now = Date(timeIntervalSince1970: 1_800_000_000.6)
        for _ in 0..<300 {
            network.deliver(network.client.poll(now: now), fromClient: true, now: now)
            network.deliver(network.gateway.poll(now: now), fromClient: false, now: now)
            now = now.addingTimeInterval(0.01)
        }
        #expect(network.clientSelected.last?.local.kind == .host, "then the direct pair: \(network.clientSelected)")
        #expect(network.gatewaySelected.last?.remote.address == network.clientHost.address, "the gateway too: \(network.gatewaySelected)")
    }

    @Test func withNothingReachableTheAgentSaysSo() {
        var network = Network()
        network.blocked = [[network.clientHost.address, network.gatewayHost.address], [network.clientRelayed.address, network.gatewayHost.address]]
        network.run(relayed: true)
        #expect(network.clientSelected.isEmpty && network.clientFailed)
    }

    @Test func checksOfAnotherSessionOrForgedAreNotTaken() {
        var agent = ICEAgent(controlling: false, local: .init(ufrag: "mine", password: "my-password-0123456789abcdef"),
                             remote: .init(ufrag: "theirs", password: "their-password-0123456789abc"))
        let host = ICECandidate(kind: .host, address: Self.address("203.0.113.5", 51820))
        agent.addLocal(host)
        let stranger = CheckMessage.request(.init(transactionID: Array(repeating: 1, count: 12), username: "mine:someone", priority: 1,
                                                  role: .controlling(tieBreaker: 1), useCandidate: true), password: "my-password-0123456789abcdef")
        #expect(agent.receive(stranger, at: host, from: Self.address("192.0.2.1", 1), now: Date()) == nil, "another session's username")
        let forged = CheckMessage.request(.init(transactionID: Array(repeating: 2, count: 12), username: "mine:theirs", priority: 1,
                                                role: .controlling(tieBreaker: 1), useCandidate: true), password: "guessed")
        #expect(agent.receive(forged, at: host, from: Self.address("192.0.2.1", 1), now: Date()) == nil, "a wrong password")
        #expect(agent.receive([1, 0, 0, 0] + Array(repeating: 0, count: 144), at: host, from: Self.address("192.0.2.1", 1), now: Date()) == nil)
        #expect(agent.selected == nil)
    }
}
