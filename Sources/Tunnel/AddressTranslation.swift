package import Addresses

/// Rewrites of an IP packet's addresses in place, for the DNS proxy NAT (gateway spec, "DNS
/// resources"): the IPv4 header checksum and the TCP, UDP or ICMPv6 checksum (whose pseudo-header holds
/// the addresses) are updated incrementally (RFC 1624: HC' = ~(~HC + ~m + m')), so a packet is not summed
/// again. ICMP errors about a translated packet get the quoted packet translated too.
package enum AddressTranslation {
    /// The DNS proxy ranges clients give names from (`100.96.0.0/11`, `fd00:6761:7465:8000::/64`).
    package static func isProxyAddress(_ ip: SocketAddress.IP) -> Bool {
        switch ip {
        case let .v4(value): value & 0xFFE0_0000 == 0x6460_0000
        case let .v6(high, _): high == 0xFD00_6761_7465_8000
        }
    }

    /// Sets the source (or destination) address of `packet` to `address` (of the packet's family);
    /// false when the packet is too short or of another family (nothing changed).
    @discardableResult
    package static func rewrite(_ packet: UnsafeMutableRawBufferPointer, source: Bool, to address: SocketAddress.IP) -> Bool {
        guard let first = packet.first else { return false }
        let version = first >> 4
        let addressOffset: Int
        let transport: Int
        let protocolNumber: UInt8
        var transportHeld = true
        switch (version, address) {
        case (4, .v4):
            transport = Int(first & 0x0F) * 4
            guard packet.count >= 20, transport >= 20 else { return false }
            addressOffset = source ? 12 : 16
            protocolNumber = packet[9]
            // Later fragments carry no transport header.
            transportHeld = load16(packet, 6) & 0x1FFF == 0
        case (6, .v6):
            guard packet.count >= 40 else { return false }
            transport = 40
            addressOffset = source ? 8 : 24
            protocolNumber = packet[6]
        default:
            return false
        }
        let width = version == 4 ? 4 : 16
        var delta: UInt32 = 0
        var newBytes = [UInt8](repeating: 0, count: 16)
        newBytes.withUnsafeMutableBytes { address.storeZeroPadded(into: $0) }
        for word in stride(from: 0, to: width, by: 2) {
            delta += UInt32(~load16(packet, addressOffset + word))
            delta += UInt32(newBytes[word]) << 8 | UInt32(newBytes[word + 1])
        }
        for index in 0..<width { packet[addressOffset + index] = newBytes[index] }
        if version == 4 { adjust(packet, checksumAt: 10, by: delta) }
        guard transportHeld else { return true }
        switch protocolNumber {
        case 6 where packet.count >= transport + 18:
            adjust(packet, checksumAt: transport + 16, by: delta)
        case 17 where packet.count >= transport + 8:
            // An IPv4 UDP checksum of zero means none: it stays none.
            if version == 6 || load16(packet, transport + 6) != 0 { adjust(packet, checksumAt: transport + 6, by: delta, zeroIsNone: true) }
        case 58 where packet.count >= transport + 4:
            adjust(packet, checksumAt: transport + 2, by: delta)
        default:
            break
        }
        return true
    }

    /// The packet an ICMP or ICMPv6 error quotes (from its IP header on), or nil when `packet` is no
    /// ICMP error.
    package static func quoted(in packet: UnsafeRawBufferPointer) -> Range<Int>? {
        guard let first = packet.first else { return nil }
        let transport: Int
        switch first >> 4 {
        case 4 where packet.count >= 20 && packet[9] == 1:
            transport = Int(first & 0x0F) * 4
            guard transport >= 20, packet.count > transport + 8, [3, 11, 12].contains(packet[transport]) else { return nil }
        case 6 where packet.count >= 40 && packet[6] == 58:
            transport = 40
            guard packet.count > transport + 8, (1...4).contains(packet[transport]) else { return nil }
        default:
            return nil
        }
        return transport + 8..<packet.count
    }

    /// An ICMP error about a packet the client sent to `proxy` (translated to `real`): the quoted
    /// packet's destination becomes `proxy` again, and the error's source too when it came from `real`;
    /// the ICMP checksum is made again over the whole message.
    package static func translateError(_ packet: UnsafeMutableRawBufferPointer, real: SocketAddress.IP, proxy: SocketAddress.IP) {
        guard let inner = quoted(in: UnsafeRawBufferPointer(packet)) else { return }
        rewrite(UnsafeMutableRawBufferPointer(rebasing: packet[inner]), source: false, to: proxy)
        let isV4 = packet[0] >> 4 == 4
        let outerSource: SocketAddress.IP = isV4
            ? .v4(UInt32(load16(packet, 12)) << 16 | UInt32(load16(packet, 14)))
            : .v6(load64(packet, 8), load64(packet, 16))
        if outerSource == real { rewrite(packet, source: true, to: proxy) }
        let transport = inner.lowerBound - 8
        let length = packet.count - transport
        packet[transport + 2] = 0
        packet[transport + 3] = 0
        let initial = isV4 ? 0 : InternetChecksum.pseudoHeader(UnsafeRawBufferPointer(packet), protocolNumber: 58, length: length)
        let checksum = ~InternetChecksum.fold(InternetChecksum.sum(UnsafeRawBufferPointer(rebasing: packet[transport...]), initial: initial))
        packet[transport + 2] = UInt8(checksum >> 8)
        packet[transport + 3] = UInt8(checksum & 0xFF)
    }

    private static func adjust(_ packet: UnsafeMutableRawBufferPointer, checksumAt offset: Int, by delta: UInt32, zeroIsNone: Bool = false) {
        var sum = UInt32(~load16(packet, offset)) + delta
        while sum > 0xFFFF { sum = (sum & 0xFFFF) + (sum >> 16) }
        var checksum = ~UInt16(sum)
        if zeroIsNone && checksum == 0 { checksum = 0xFFFF }
        packet[offset] = UInt8(checksum >> 8)
        packet[offset + 1] = UInt8(checksum & 0xFF)
    }

    private static func load16(_ packet: UnsafeMutableRawBufferPointer, _ offset: Int) -> UInt16 {
        UInt16(packet[offset]) << 8 | UInt16(packet[offset + 1])
    }

    private static func load64(_ packet: UnsafeMutableRawBufferPointer, _ offset: Int) -> UInt64 {
        (0..<8).reduce(UInt64(0)) { $0 << 8 | UInt64(packet[offset + $1]) }
    }
}
