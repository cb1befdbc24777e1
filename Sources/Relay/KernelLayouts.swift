import Actors
import BPFMaps
import TURN

/// What the XDP program is told about the relay: the whole `relay_config`, built from the relay's
/// configuration and the interface the program is attached to.
struct XDPConfiguration: Equatable, Sendable {
    var listenPort: UInt16
    var portRange: ClosedRange<UInt16>
    /// Advertised addresses (XOR-RELAYED-ADDRESS); accepted as destinations and recognised in routes.
    var publicIPv4: SocketAddress.IP?
    var publicIPv6: SocketAddress.IP?
    /// The interface's own addresses: the source of every datagram the kernel emits.
    var interfaceIPv4: SocketAddress.IP?
    var interfaceIPv6: SocketAddress.IP?
    /// Largest IP packet the kernel may emit (the interface's MTU).
    var mtu: UInt16

    /// The kernel's layout: marked configured, every multi-byte field in network byte order. A family
    /// is relayed in the kernel only when the relay serves it and the interface has an address of it.
    var kernelValue: relay_config {
        var value = relay_config()
        value.configured = UInt8(RELAY_CONFIGURED)
        value.checksum_mode = UInt8(RELAY_CSUM_UPDATE)
        var families: UInt8 = 0
        if publicIPv4 != nil, case let .v4(address)? = interfaceIPv4 {
            families |= UInt8(RELAY_HAS_IPV4)
            value.iface_ipv4 = address.bigEndian
        }
        if publicIPv6 != nil, let address = interfaceIPv6, case .v6 = address {
            families |= UInt8(RELAY_HAS_IPV6)
            KernelAddress.store(address, into: &value.iface_ipv6)
        }
        if case let .v4(address)? = publicIPv4 { value.public_ipv4 = address.bigEndian }
        if let address = publicIPv6, case .v6 = address { KernelAddress.store(address, into: &value.public_ipv6) }
        value.families = families
        value.listen_port = listenPort.bigEndian
        value.port_min = portRange.lowerBound.bigEndian
        value.port_max = portRange.upperBound.bigEndian
        value.mtu = mtu.bigEndian
        return value
    }
}

/// Addresses as the route maps hold them: 16 bytes for both families, IPv4 in the first four (network
/// order) and zeros after, with a family byte beside them (`gatehouse_maps.h`).
enum KernelAddress {
    typealias Bytes = (UInt8, UInt8, UInt8, UInt8, UInt8, UInt8, UInt8, UInt8,
                       UInt8, UInt8, UInt8, UInt8, UInt8, UInt8, UInt8, UInt8)

    static func family(of ip: SocketAddress.IP) -> UInt8 {
        switch ip {
        case .v4: UInt8(RELAY_FAMILY_IPV4)
        case .v6: UInt8(RELAY_FAMILY_IPV6)
        }
    }

    static func store(_ ip: SocketAddress.IP, into bytes: inout Bytes) {
        withUnsafeMutableBytes(of: &bytes) { ip.storeZeroPadded(into: $0) }
    }

    /// Nil for an unknown family byte or an IPv4 entry with non-zero padding (not ours).
    static func load(_ bytes: Bytes, family: UInt8) -> SocketAddress.IP? {
        guard family == UInt8(RELAY_FAMILY_IPV4) || family == UInt8(RELAY_FAMILY_IPV6) else { return nil }
        return withUnsafeBytes(of: bytes) { SocketAddress.IP(zeroPadded: $0, isV4: family == UInt8(RELAY_FAMILY_IPV4)) }
    }
}

/// One channel route as the two kernel maps hold it.
struct KernelRoute: Hashable, Sendable, CustomStringConvertible {
    var client: SocketAddress
    var channel: UInt16
    var peer: SocketAddress
    var allocationPort: UInt16

    init(client: SocketAddress, channel: UInt16, peer: SocketAddress, allocationPort: UInt16) {
        self.client = client
        self.channel = channel
        self.peer = peer
        self.allocationPort = allocationPort
    }

    /// The kernel's view of a user-space route: the listener and the relayed address are the relay's
    /// own, known to the kernel from the config.
    init(_ route: ChannelRoute) {
        self.init(client: route.client, channel: route.channel, peer: route.peer, allocationPort: route.relayed.port)
    }

    var description: String {
        "\(client) ch 0x\(String(channel, radix: 16)) ⇄ :\(allocationPort)→\(peer)"
    }

    var channelKey: relay_channel {
        var key = relay_channel()
        key.family = KernelAddress.family(of: client.ip)
        key.port = client.port.bigEndian
        key.channel = channel.bigEndian
        KernelAddress.store(client.ip, into: &key.addr)
        return key
    }

    var peerKey: relay_peer {
        var key = relay_peer()
        key.family = KernelAddress.family(of: peer.ip)
        key.port = peer.port.bigEndian
        key.alloc_port = allocationPort.bigEndian
        KernelAddress.store(peer.ip, into: &key.addr)
        return key
    }

    /// Reads a client → peer entry back; nil when either side is not a valid entry.
    init?(channel key: relay_channel, peer value: relay_peer) {
        guard let client = KernelAddress.load(key.addr, family: key.family),
              let peer = KernelAddress.load(value.addr, family: value.family) else { return nil }
        self.init(
            client: SocketAddress(ip: client, port: UInt16(bigEndian: key.port)), channel: UInt16(bigEndian: key.channel),
            peer: SocketAddress(ip: peer, port: UInt16(bigEndian: value.port)), allocationPort: UInt16(bigEndian: value.alloc_port))
    }
}
