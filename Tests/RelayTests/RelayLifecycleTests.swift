import Actors
import Foundation
import STUN
import TestSupport
import Testing

/// An allocation's life as a client sees it over real UDP: freeing it leaves no route and no port
/// behind, a relayed port the host will not bind is never answered with a success, and data too big to
/// relay is dropped and counted instead of going out empty (issue #10, defects 1, 3 and 6).
@Suite(.serialized) struct RelayLifecycleTests {
    struct Routes: Decodable {
        struct Route: Decodable { var channel: Int }
        var user_space: [Route]
    }

    func userSpaceRoutes(_ relay: RelayProcess) throws -> Int {
        try JSONDecoder().decode(Routes.self, from: Data(relay.get("/routes").body.utf8)).user_space.count
    }

    /// A counter's value summed over its labels; 0 when it has no series yet.
    func metric(_ relay: RelayProcess, _ name: String, labels: String? = nil) throws -> Double {
        try relay.get("/metrics").body.split(separator: "\n").filter { line in
            guard line.hasPrefix(name + " ") || line.hasPrefix(name + "{") else { return false }
            return labels.map { line.contains($0) } ?? true
        }.compactMap { Double($0.split(separator: " ").last ?? "") }.reduce(0, +)
    }

    /// Allocates, binds `channel` to `peer`, and checks data flows both ways once.
    func boundAllocation(_ relay: RelayProcess, id: String, lifetime: UInt32 = 600, channel: UInt16, peer: UDPSocket)
        throws -> (TURNTestClient, SocketAddress) {
        let client = try relay.client(id: id)
        let reply = try #require(try client.allocate([.transport(17), .lifetime(lifetime)]))
        #expect(reply.isSuccess, "allocate: \(reply.errorCode ?? 0)")
        let relayed = try #require(reply.relayedAddresses.first)
        try client.bind(channel: channel, to: peer.localAddress)
        let (toPeer, toClient) = try exchange(client, channel: channel, peer: peer, relayed: relayed, count: 1)
        #expect(toPeer == 1 && toClient == 1)
        return (client, relayed)
    }

    @Test func anExpiredAllocationLeavesNoRouteNoPortAndRelaysNothing() async throws {
        // Channel and allocation lifetimes of 2 s: the channel expires in the allocation's last moments.
        let relay = try await RelayProcess.start(ipv6: false, portRange: "61000-61009", extra: ["--channel-lifetime", "2"])
        defer { relay.process.stop() }
        let peer = try UDPSocket(bindTo: "127.0.0.1")
        let (client, relayed) = try boundAllocation(relay, id: "expiring", lifetime: 2, channel: 0x4001, peer: peer)
        #expect(try userSpaceRoutes(relay) == 1)

        try await Wait.until("the allocation expired", timeout: .seconds(10)) {
            try relay.get("/metrics").body.contains("gatehouse_relay_allocations 0")
        }
        #expect(try userSpaceRoutes(relay) == 0, "no route outlives its allocation")
        // The port is free on the host: the relayed socket was closed.
        try await Wait.until("the relayed port can be bound again", timeout: .seconds(5)) {
            (try? UDPSocket(bindTo: "127.0.0.1", port: relayed.port)) != nil
        }
        try client.sendChannelData(0x4001, [1, 2, 3])
        #expect(try peer.receive(timeout: .milliseconds(500)) == nil, "ChannelData on the old channel is not relayed")
        print("expired allocation: routes 0, port \(relayed.port) bindable, old channel relays nothing")
    }

    @Test func refreshZeroLeavesNoRouteAndFreesThePort() async throws {
        let relay = try await RelayProcess.start(ipv6: false, portRange: "61010-61019")
        defer { relay.process.stop() }
        let peer = try UDPSocket(bindTo: "127.0.0.1")
        let (client, relayed) = try boundAllocation(relay, id: "leaving", channel: 0x4002, peer: peer)
        let reply = try #require(try client.request(TURNTestClient.refresh, [.lifetime(0)]))
        #expect(reply.isSuccess)
        #expect(try userSpaceRoutes(relay) == 0)
        try await Wait.until("the relayed port can be bound again", timeout: .seconds(5)) {
            (try? UDPSocket(bindTo: "127.0.0.1", port: relayed.port)) != nil
        }
        try client.sendChannelData(0x4002, [1, 2, 3])
        #expect(try peer.receive(timeout: .milliseconds(500)) == nil)
    }

    @Test func aRelayedPortTakenOnTheHostIsNeverAnsweredWithSuccess() async throws {
        let relay = try await RelayProcess.start(ipv6: false, portRange: "61020-61021")
        defer { relay.process.stop() }
        let squatter = try UDPSocket(bindTo: "127.0.0.1", port: 61020)  // another program holds one port
        let first = try #require(try relay.client(id: "first").allocate())
        #expect(first.isSuccess)
        #expect(first.relayedAddresses.map(\.port) == [61021], "the port that binds")
        let second = try #require(try relay.client(id: "second").allocate())
        #expect(second.errorCode == 508, "no port that binds is left: Insufficient Capacity")
        #expect(second.relayedAddresses.isEmpty)
        #expect(try relay.get("/metrics").body.contains("gatehouse_relay_allocations 1"))
        #expect(try metric(relay, "gatehouse_relay_relayed_bind_failures_total") >= 1)
        _ = squatter
    }

    @Test func dataTooBigToRelayIsDroppedAndCountedNotSentEmpty() async throws {
        let relay = try await RelayProcess.start()
        defer { relay.process.stop() }
        defer { if !relay.process.isRunning { print("relay output:\n\(relay.process.output)") } }
        let client = try relay.client(id: "big")
        // An IPv6 relayed address for an IPv4 client: a Data indication around the largest IPv6 UDP
        // payload (65,527 bytes) cannot be one IPv4 datagram, or any UDP datagram at all.
        let reply = try #require(try client.allocate([.transport(17), .requestedFamily(0x02)]))
        let relayed = try #require(reply.relayedAddresses.first)
        let peer = try UDPSocket(bindTo: "::1")
        #expect(try client.request(TURNTestClient.createPermission, [.peer(peer.localAddress)])?.isSuccess == true)
        _ = try peer.send([UInt8](repeating: 0x5A, count: 65_527), to: relayed)
        let arrived = try client.socket.receive(timeout: .milliseconds(700))
        #expect(arrived == nil, "nothing, not an empty or truncated datagram: got \(arrived?.bytes.count ?? -1) bytes")
        try await Wait.until("the drop is counted") {
            try metric(relay, "gatehouse_relay_dropped_sends_total", labels: #"reason="too_big""#) == 1
        }
        // What fits still goes: a Data indication around 1,000 bytes, and ChannelData around 65,000.
        _ = try peer.send([UInt8](repeating: 1, count: 1000), to: relayed)
        let indication = try #require(try client.socket.receive(timeout: .seconds(2)))
        #expect(STUNCodec.isDataIndication(indication.bytes))
        try client.bind(channel: 0x4003, to: peer.localAddress)
        _ = try peer.send([UInt8](repeating: 2, count: 65_000), to: relayed)
        let data = try #require(try client.receiveChannelData())
        #expect(data.channel == 0x4003 && data.payload.count == 65_000)
    }
}
