import Actors
import Foundation
import STUN
import TestSupport
import Testing

/// Every error branch of the relay spec, over real UDP against `gatehouse relay`.
@Suite struct TURNErrorResponseTests {
    @Test func unauthenticatedThenAuthenticatedAllocate() async throws {
        let relay = try await RelayProcess.start()
        defer { relay.process.stop() }
        let client = try relay.client()
        let challenge = try #require(try client.request(TURNTestClient.allocate, [.transport(17)], authenticated: false))
        #expect(challenge.errorCode == 401)
        #expect(challenge.realm == "gatehouse")
        let nonce = try #require(challenge.nonce)
        client.nonce = nonce
        let allocated = try #require(try client.request(TURNTestClient.allocate, [.transport(17)]))
        #expect(allocated.isSuccess)
        #expect(allocated.hasIntegrity, "responses to authenticated requests carry MESSAGE-INTEGRITY")
        let relayed = try #require(allocated.relayedAddresses.first)
        #expect((61200...61999).contains(relayed.port))
    }

    @Test func wrongPasswordAndExpiredUsernameAre401() async throws {
        let relay = try await RelayProcess.start()
        defer { relay.process.stop() }
        let wrong = try relay.client()
        wrong.password = "not-the-password"
        #expect(try wrong.allocate()?.errorCode == 401)
        let expired = try relay.client(expiry: Int64(Date().timeIntervalSince1970) - 10)
        #expect(try expired.allocate()?.errorCode == 401)
    }

    @Test func aStaleNonceIs438WithAFreshOne() async throws {
        let relay = try await RelayProcess.start()
        defer { relay.process.stop() }
        let client = try relay.client()
        client.nonce = "0123456789abcdef01234567"
        let stale = try #require(try client.request(TURNTestClient.allocate, [.transport(17)]))
        #expect(stale.errorCode == 438)
        let fresh = try #require(stale.nonce)
        client.nonce = fresh
        #expect(try client.request(TURNTestClient.allocate, [.transport(17)])?.isSuccess == true)
    }

    @Test func aSecondAllocationFromOneFiveTupleIs437AndARetransmissionGetsTheSameAnswer() async throws {
        let relay = try await RelayProcess.start()
        defer { relay.process.stop() }
        let client = try relay.client()
        _ = try client.request(TURNTestClient.allocate, [.transport(17)], authenticated: false).map { client.nonce = $0.nonce }
        let transaction: [UInt8] = Array(repeating: 7, count: 12)
        let first = try #require(try client.request(TURNTestClient.allocate, [.transport(17)], transactionID: transaction))
        #expect(first.isSuccess)
        let again = try #require(try client.request(TURNTestClient.allocate, [.transport(17)], transactionID: transaction))
        #expect(again.bytes == first.bytes, "a retransmission gets the same answer")
        #expect(try client.request(TURNTestClient.allocate, [.transport(17)])?.errorCode == 437)
    }

    @Test func transportAndAddressFamilyErrors() async throws {
        let relay = try await RelayProcess.start(ipv6: false)
        defer { relay.process.stop() }
        let client = try relay.client()
        #expect(try client.allocate([.transport(6)])?.errorCode == 442, "TCP relaying is not offered")
        #expect(try client.allocate([])?.errorCode == 400, "REQUESTED-TRANSPORT is required")
        #expect(try client.allocate([.transport(17), .requestedFamily(0x01), .additionalFamily(0x02)])?.errorCode == 400)
        #expect(try client.allocate([.transport(17), .requestedFamily(0x03)])?.errorCode == 440)
        #expect(try client.allocate([.transport(17), .requestedFamily(0x02)])?.errorCode == 440, "no IPv6 on this relay")
    }

    @Test func dualStackAllocationGetsBothFamiliesOnOnePort() async throws {
        let relay = try await RelayProcess.start(ipv6: true)
        defer { relay.process.stop() }
        let client = try relay.client()
        let reply = try #require(try client.allocate([.transport(17), .additionalFamily(0x02)]))
        #expect(reply.isSuccess)
        let addresses = reply.relayedAddresses
        #expect(addresses.count == 2)
        #expect(Set(addresses.map(\.isIPv6)) == [false, true])
        #expect(Set(addresses.map(\.port)).count == 1, "the same port number in both families")
    }

    @Test func aPeerOfAFamilyWithoutARelayedAddressIs443() async throws {
        let relay = try await RelayProcess.start()
        defer { relay.process.stop() }
        let client = try relay.client()
        #expect(try client.allocate()?.isSuccess == true)
        let peer6 = try SocketAddress("::1", port: 9)
        #expect(try client.request(TURNTestClient.channelBind, [.channel(0x4000), .peer(peer6)])?.errorCode == 443)
        #expect(try client.request(TURNTestClient.createPermission, [.peer(peer6)])?.errorCode == 443)
    }

    @Test func theQuotaPerUsernameIs486() async throws {
        let relay = try await RelayProcess.start(extra: ["--allocations-per-username", "2"])
        defer { relay.process.stop() }
        for index in 0..<2 {
            #expect(try relay.client(id: "alice").allocate()?.isSuccess == true, "allocation \(index)")
        }
        #expect(try relay.client(id: "alice").allocate()?.errorCode == 486)
        #expect(try relay.client(id: "bob").allocate()?.isSuccess == true, "other usernames are not affected")
    }

    @Test func aFullPortRangeIs508() async throws {
        let relay = try await RelayProcess.start(portRange: "61100-61101")
        defer { relay.process.stop() }
        #expect(try relay.client(id: "a").allocate()?.isSuccess == true)
        #expect(try relay.client(id: "b").allocate()?.isSuccess == true)
        #expect(try relay.client(id: "c").allocate()?.errorCode == 508)
    }

    @Test(arguments: ["127.0.0.1", "::ffff:127.0.0.1", "169.254.169.254", "::ffff:169.254.169.254", "224.0.0.1", "0.0.0.0", "198.18.0.1"])
    func refusedPeersAre403(peer: String) async throws {
        // The relay's public address is 198.18.0.1 here, so that "its own address" is not also loopback.
        let relay = try await RelayProcess.start(ipv6: true, allowLoopbackPeers: false, publicIPv4: "198.18.0.1")
        defer { relay.process.stop() }
        let client = try relay.client()
        #expect(try client.allocate([.transport(17), .additionalFamily(0x02)])?.isSuccess == true)
        let address = try SocketAddress(peer, port: 40_500)
        #expect(try client.request(TURNTestClient.createPermission, [.peer(address)])?.errorCode == 403)
        #expect(try client.request(TURNTestClient.channelBind, [.channel(0x4001), .peer(address)])?.errorCode == 403)
        // A private address is a gateway's, and stays allowed.
        #expect(try client.request(TURNTestClient.createPermission, [.peer(try SocketAddress("10.1.2.3", port: 1))])?.isSuccess == true)
    }

    @Test func refreshWithoutAnAllocationIs437AndRefreshZeroDeletes() async throws {
        let relay = try await RelayProcess.start()
        defer { relay.process.stop() }
        let client = try relay.client()
        _ = try client.request(TURNTestClient.allocate, [.transport(17)], authenticated: false).map { client.nonce = $0.nonce }
        #expect(try client.request(TURNTestClient.refresh, [.lifetime(600)])?.errorCode == 437)
        #expect(try client.request(TURNTestClient.allocate, [.transport(17)])?.isSuccess == true)
        let refreshed = try #require(try client.request(TURNTestClient.refresh, [.lifetime(100_000)]))
        #expect(refreshed.attribute(0x000D) == [0, 0, 0x0E, 0x10], "lifetime capped at 3600 s")
        #expect(try client.request(TURNTestClient.refresh, [.lifetime(0)])?.isSuccess == true)
        #expect(try client.request(TURNTestClient.refresh, [.lifetime(600)])?.errorCode == 437, "Refresh(0) deleted it")
    }

    @Test func channelBindConflictsAre400() async throws {
        let relay = try await RelayProcess.start()
        defer { relay.process.stop() }
        let client = try relay.client()
        #expect(try client.allocate()?.isSuccess == true)
        let peerA = try SocketAddress("127.0.0.1", port: 9001)
        let peerB = try SocketAddress("127.0.0.1", port: 9002)
        #expect(try client.request(TURNTestClient.channelBind, [.channel(0x4000), .peer(peerA)])?.isSuccess == true)
        #expect(try client.request(TURNTestClient.channelBind, [.channel(0x4000), .peer(peerA)])?.isSuccess == true, "re-binding refreshes")
        #expect(try client.request(TURNTestClient.channelBind, [.channel(0x4000), .peer(peerB)])?.errorCode == 400)
        #expect(try client.request(TURNTestClient.channelBind, [.channel(0x4001), .peer(peerA)])?.errorCode == 400)
        #expect(try client.request(TURNTestClient.channelBind, [.channel(0x3FFF), .peer(peerB)])?.errorCode == 400)
    }

    @Test func unknownComprehensionRequiredAttributesAre420() async throws {
        let relay = try await RelayProcess.start()
        defer { relay.process.stop() }
        let client = try relay.client()
        let reply = try #require(try client.allocate([.transport(17), .raw(0x0003, [0, 0, 0, 0]), .raw(0x7777, [1, 2, 3, 4])]))
        #expect(reply.errorCode == 420)
        #expect(reply.unknownAttributes == [0x0003, 0x7777])
        // Comprehension-optional ones (0x8000 and up) are ignored.
        #expect(try client.allocate([.transport(17), .raw(0xC001, [1, 2, 3, 4])])?.isSuccess == true)
    }

    @Test func aMalformedRequestWithAReadableTransactionIDIs400() async throws {
        let relay = try await RelayProcess.start()
        defer { relay.process.stop() }
        let client = try relay.client()
        let transaction: [UInt8] = Array(repeating: 9, count: 12)
        var bytes = client.encode(method: TURNTestClient.allocate, [.transport(17)], authenticated: false, transactionID: transaction)
        bytes[3] = 200  // a length that does not match the datagram
        try client.sendRaw(bytes)
        let reply = try #require(try client.receiveReply(transactionID: transaction))
        #expect(reply.errorCode == 400)
        try client.sendRaw([0x00, 0x01, 0x00])  // too short to carry a transaction ID: dropped
        #expect(try client.receiveReply(timeout: .milliseconds(300)) == nil)
    }
}
