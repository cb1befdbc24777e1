import Actors
import Foundation
import STUN
import TestSupport
import Testing

/// The relay's own addresses are not peers: not only its public ones, but the address it binds to and
/// every address of its host's interfaces (private ones behind a cloud NAT), so that a client cannot
/// reach services on the relay's host through it (issue #10, defect 2). In namespaces (see
/// `XDPTopology`), with a second interface on the relay's host holding a "private" address.
@Suite(.privileged, .serialized) struct RelayPeerPolicyTests {
    static let hostOnlyAddress = "198.18.99.1"

    /// The relay's host gets a second address that only the host has (on its loopback interface; the
    /// kernel here has no dummy interfaces).
    func addHostOnlyInterface(_ topology: XDPTopology) throws {
        try topology.relay.ip("addr", "add", "\(Self.hostOnlyAddress)/32", "dev", "lo")
    }

    @Test func theRelaysOwnAddressesAreRefusedAsPeers() async throws {
        try await XDPTopology.with { topology in
            try addHostOnlyInterface(topology)
            // Behind a NAT: the public address (TEST-NET-3; nothing is sent to it) is on no interface; the
            // relay binds its interface's address, which is private.
            let relay = try await topology.startRelay(
                xdp: false, extra: ["--public-ipv4", "203.0.113.10", "--bind-ipv4", topology.relayEnd.ipv4, "--bind-ipv6", topology.relayEnd.ipv6])
            let client = try topology.turnClient(id: "prober", relay: relay)
            let relayed = try client.allocateRelayed(ipv6: false)
            #expect(relayed.address == "203.0.113.10", "the public address, which no interface holds")

            let refused = [
                ("the bind (interface) address", try SocketAddress(topology.relayEnd.ipv4, port: 22)),
                ("another interface's address", try SocketAddress(Self.hostOnlyAddress, port: 22)),
                ("loopback", try SocketAddress("127.0.0.1", port: 22)),
            ]
            for (what, peer) in refused {
                let permission = try #require(try client.request(TURNTestClient.createPermission, [.peer(peer)]))
                #expect(permission.errorCode == 403, "CreatePermission to \(what) \(peer): \(permission.errorCode ?? 200)")
                let bind = try #require(try client.request(TURNTestClient.channelBind, [.channel(0x4000), .peer(peer)]))
                #expect(bind.errorCode == 403, "ChannelBind to \(what) \(peer): \(bind.errorCode ?? 200)")
            }
            let peer = try topology.peerSocket()
            try client.bind(channel: 0x4001, to: peer.localAddress)
            let routes = try relay.routes().user_space
            #expect(routes.map(\.peer) == [peer.localAddress.description], "only the permitted peer has a route")
            print("relay's own addresses refused as peers: \(refused.map { "\($0.1)" }.joined(separator: ", ")); routes: \(routes)")
        }
    }

    @Test func allowPeerLiftsTheRefusal() async throws {
        try await XDPTopology.with { topology in
            try addHostOnlyInterface(topology)
            let relay = try await topology.startRelay(xdp: false, extra: ["--allow-peer", "\(Self.hostOnlyAddress)/32"])
            let client = try topology.turnClient(id: "allowed", relay: relay)
            _ = try client.allocateRelayed(ipv6: false)
            let peer = try SocketAddress(Self.hostOnlyAddress, port: 22)
            #expect(try client.request(TURNTestClient.createPermission, [.peer(peer)])?.isSuccess == true)
            let interface = try SocketAddress(topology.relayEnd.ipv4, port: 22)
            #expect(try client.request(TURNTestClient.createPermission, [.peer(interface)])?.errorCode == 403, "only the range allowed")
        }
    }
}
