import Actors
import Addresses
import TURN

/// The channel routes user space relays by: the same routes the sessions install in the XDP program's
/// maps, keyed the way packets arrive. ChannelData from a client on a bound channel goes to its peer
/// from the allocation's relayed socket; a datagram from a bound peer goes to the client, framed as
/// ChannelData (`STUN.ChannelData`), from the listener the client talks to.
struct ChannelRouteTable {
    struct ToPeer {
        var socket: UDPSocket
        var peer: SocketAddress
    }

    struct ToClient {
        var socket: UDPSocket
        var client: SocketAddress
        var channel: UInt16
    }

    private struct ClientKey: Hashable {
        var client: SocketAddress
        var channel: UInt16
    }

    private struct PeerKey: Hashable {
        var relayedPort: UInt16
        var peer: SocketAddress
    }

    private var toPeer: [ClientKey: ToPeer] = [:]
    private var toClient: [PeerKey: ToClient] = [:]

    var count: Int { toPeer.count }

    /// Installs (or re-installs) `route` over the allocation's relayed socket and the client's listener.
    mutating func install(_ route: ChannelRoute, relayed: UDPSocket, listener: UDPSocket) {
        toPeer[ClientKey(client: route.client, channel: route.channel)] = ToPeer(socket: relayed, peer: route.peer)
        toClient[PeerKey(relayedPort: route.relayed.port, peer: route.peer)] = ToClient(socket: listener, client: route.client, channel: route.channel)
    }

    mutating func remove(_ route: ChannelRoute) {
        toPeer[ClientKey(client: route.client, channel: route.channel)] = nil
        toClient[PeerKey(relayedPort: route.relayed.port, peer: route.peer)] = nil
    }

    /// Where ChannelData from `client` on `channel` goes.
    func peer(from client: SocketAddress, channel: UInt16) -> ToPeer? {
        toPeer[ClientKey(client: client, channel: channel)]
    }

    /// Where a datagram from `peer` to the relayed port goes.
    func client(from peer: SocketAddress, relayedPort: UInt16) -> ToClient? {
        toClient[PeerKey(relayedPort: relayedPort, peer: peer)]
    }
}
