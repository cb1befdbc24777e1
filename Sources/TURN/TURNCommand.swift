package import Addresses

/// A client's 5-tuple on the relay (the protocol is always UDP here): the key of its allocation.
package struct TURNFiveTuple: Hashable, Sendable {
    package var client: SocketAddress
    package var listener: SocketAddress

    package init(client: SocketAddress, listener: SocketAddress) {
        self.client = client
        self.listener = listener
    }
}

/// What the sans-IO server asks its shell to do. The shell performs them in order.
package enum TURNCommand: Equatable, Sendable {
    /// Send `bytes` to a client from the listener socket it talks to.
    case sendToClient([UInt8], client: SocketAddress, listener: SocketAddress)
    /// Send `bytes` to a peer from a relayed socket.
    case sendToPeer([UInt8], peer: SocketAddress, relayed: SocketAddress)
    /// Bind relayed sockets on these addresses (the shell binds the relay's bind address of each family
    /// with this port) for the allocation `tuple` is asking for, then tell the server whether every one
    /// of them bound (`TURNServer.relayedSocketsOpened`): the Allocate is answered only then.
    case openRelayedSockets([SocketAddress], for: TURNFiveTuple)
    case closeRelayedSocket(SocketAddress)
    /// Install (or re-install) a channel route in the data paths (user space and kernel).
    case installChannelRoute(ChannelRoute)
    case removeChannelRoute(ChannelRoute)
    /// The allocation's permissions changed: the peer addresses it holds one for, and until when. The
    /// front door checks peer datagrams against them before anything is queued for the allocation.
    case setPermissions([SocketAddress.IP: Duration], for: TURNFiveTuple)
}
