package import Addresses

/// What the sans-IO server asks its shell to do. The shell performs them in order.
package enum TURNCommand: Equatable, Sendable {
    /// Send `bytes` to a client from the listener socket it talks to.
    case sendToClient([UInt8], client: SocketAddress, listener: SocketAddress)
    /// Send `bytes` to a peer from a relayed socket.
    case sendToPeer([UInt8], peer: SocketAddress, relayed: SocketAddress)
    /// Bind a relayed socket on this address (the shell binds the relay's bind address with this port).
    case openRelayedSocket(SocketAddress)
    case closeRelayedSocket(SocketAddress)
    /// Install (or re-install) a channel route in the data paths (user space and kernel).
    case installChannelRoute(ChannelRoute)
    case removeChannelRoute(ChannelRoute)
}
